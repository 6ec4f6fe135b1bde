package check

import (
	"context"
	"fmt"
)

// DestinationRemoval warns when a destination registry of the base is in no
// manifest of the head: nothing more will be promoted there. Retiring a
// mirror is a legitimate change, so this is a warning; --strict makes it an
// error.
type DestinationRemoval struct{}

func (DestinationRemoval) Name() string { return "destination-removal" }
func (DestinationRemoval) Description() string {
	return "a destination registry is dropped from the manifests (warning)"
}
func (DestinationRemoval) Applies(c *Change) bool { return c.Base != nil }

func (DestinationRemoval) Run(_ context.Context, c *Change) ([]Finding, error) {
	head := c.Head.index()
	var out []Finding
	for _, m := range c.Base.Manifests {
		images := 0
		for _, img := range m.Images {
			images += len(img.Digests)
		}
		for _, d := range m.Destinations {
			if head.dsts[d] {
				continue
			}
			file := c.Base.display(m.File)
			for _, h := range c.Head.Manifests {
				if h.Rel == m.Rel {
					file = h.File
				}
			}
			out = append(out, Finding{Severity: Warning, File: file,
				Message: fmt.Sprintf("destination %s removed: the base promotes %s there, the head none", d, plural(images, "digest"))})
		}
	}
	return out, nil
}

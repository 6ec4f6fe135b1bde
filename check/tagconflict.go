package check

import (
	"context"
	"fmt"
	"strings"
)

// TagConflict refuses a tag that names two digests in one destination
// repository of the head. The repository is what counts, not the image
// name: the same name in two manifests that promote into different
// registries is no conflict. A conflict the base already has is a warning.
type TagConflict struct{}

func (TagConflict) Name() string { return "tag-conflict" }
func (TagConflict) Description() string {
	return "a tag names two digests in one destination repository"
}
func (TagConflict) Applies(*Change) bool { return true }

func (TagConflict) Run(_ context.Context, c *Change) ([]Finding, error) {
	base, head := c.Base.index(), c.Head.index()
	type group struct {
		f    Finding
		dsts []string
	}
	groups := map[string]*group{}
	for k, hes := range head.byTag {
		if len(hes) < 2 {
			continue
		}
		bt := byDestination(base.byTag[k])
		for dst, es := range byDestination(hes) {
			now := digestsOf(es)
			if len(now) < 2 {
				continue
			}
			inBase := len(digestsOf(bt[dst])) > 1 && subset(now, digestsOf(bt[dst]))
			// Report at the last entry in file order.
			last := es[0]
			for _, e := range es[1:] {
				if e.m.ImagesFile > last.m.ImagesFile || e.m.ImagesFile == last.m.ImagesFile && e.line > last.line {
					last = e
				}
			}
			sev := severity(inBase)
			key := strings.Join([]string{last.m.ImagesFile, k.image, k.tag, strings.Join(now, ","), string(sev)}, "\x00")
			g := groups[key]
			if g == nil {
				msg := fmt.Sprintf("image %q: tag %q names %d digests (%s)", k.image, k.tag, len(now), strings.Join(now, ", "))
				g = &group{f: Finding{Severity: sev, File: last.m.ImagesFile, Line: last.line, Message: msg}}
				groups[key] = g
			}
			g.dsts = append(g.dsts, dst)
		}
	}
	var out []Finding
	for _, g := range groups {
		g.f.Message += " in " + where(g.dsts) + "; a tag can name only one digest"
		if g.f.Severity == Warning {
			g.f.Message += " (already in the base)"
		}
		out = append(out, g.f)
	}
	return out, nil
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		found := false
		for _, y := range b {
			if x == y {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

package check

import (
	"context"
	"fmt"
	"regexp"
)

// DefaultFloatingTags matches the tag that is floating by convention.
var DefaultFloatingTags = regexp.MustCompile(`^latest$`)

// FloatingTags refuses new entries with a floating tag: latest, or any tag
// Pattern matches. A promoted tag names one digest forever (see TagMove),
// so a tag meant to move cannot be promoted. Entries the base already has
// are left alone.
type FloatingTags struct {
	// Pattern matches tags refused in addition to latest; nil for none.
	Pattern *regexp.Regexp
}

func (FloatingTags) Name() string { return "floating-tags" }
func (f FloatingTags) Description() string {
	d := "a new entry is tagged latest"
	if f.Pattern != nil {
		d += " or matches " + f.Pattern.String()
	}
	return d
}
func (FloatingTags) Applies(*Change) bool { return true }

func (f FloatingTags) Run(_ context.Context, c *Change) ([]Finding, error) {
	base, head := c.Base.index(), c.Head.index()
	var out []Finding
	for k, es := range head.byTag {
		if !DefaultFloatingTags.MatchString(k.tag) && (f.Pattern == nil || !f.Pattern.MatchString(k.tag)) {
			continue
		}
		old := map[string]bool{}
		for _, e := range base.byTag[k] {
			old[e.digest] = true
		}
		for _, e := range es {
			if old[e.digest] {
				continue
			}
			out = append(out, Finding{Severity: Error, File: e.m.ImagesFile, Line: e.line,
				Message: fmt.Sprintf("image %q: digest %s: tag %q is floating; a promoted tag names one digest forever, use a version tag", k.image, e.digest, k.tag)})
		}
	}
	return out, nil
}

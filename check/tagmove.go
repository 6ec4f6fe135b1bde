package check

import (
	"context"
	"fmt"
	"strings"
)

// TagMove refuses a change that points a tag of a destination repository
// at another digest than the base does. Registries would follow (the
// promoter moves tags), and every user pulling the tag would silently get
// other content.
type TagMove struct{}

func (TagMove) Name() string { return "tag-move" }
func (TagMove) Description() string {
	return "a tag names another digest in the head than in the base"
}
func (TagMove) Applies(c *Change) bool { return c.Base != nil }

func (TagMove) Run(_ context.Context, c *Change) ([]Finding, error) {
	base, head := c.Base.index(), c.Head.index()
	type group struct {
		f    Finding
		dsts []string
	}
	groups := map[string]*group{}
	for k, hes := range head.byTag {
		bt := byDestination(base.byTag[k])
		for dst, es := range byDestination(hes) {
			was := digestsOf(bt[dst])
			if len(was) == 0 {
				continue // a new tag
			}
			now := digestsOf(es)
			if overlap(was, now) {
				continue
			}
			e := es[len(es)-1]
			key := strings.Join([]string{e.m.ImagesFile, k.image, k.tag, strings.Join(was, ","), strings.Join(now, ",")}, "\x00")
			g := groups[key]
			if g == nil {
				g = &group{f: Finding{Severity: Error, File: e.m.ImagesFile, Line: e.line,
					Message: fmt.Sprintf("image %q: tag %q moves from %s to %s", k.image, k.tag, strings.Join(was, ", "), strings.Join(now, ", "))}}
				groups[key] = g
			}
			g.dsts = append(g.dsts, dst)
		}
	}
	var out []Finding
	for _, g := range groups {
		g.f.Message += " in " + where(g.dsts) + "; a promoted tag must keep its digest, give the new digest a new tag"
		out = append(out, g.f)
	}
	return out, nil
}

// overlap reports whether the sorted lists a and b share an element.
func overlap(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

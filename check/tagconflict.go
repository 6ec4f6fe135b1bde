package check

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// TagConflict refuses a tag that names two digests in one destination
// repository of the head. The repository is what counts, not the image
// name: the same name in two manifests that promote into different
// registries is no conflict. A conflict the base already has is a warning.
//
// The conflicts are validation's (manifest.Load finds them, the one check
// of tags before anything is loaded); this check reports them per
// destination registry and compares them with the base.
type TagConflict struct{}

func (TagConflict) Name() string { return "tag-conflict" }
func (TagConflict) Description() string {
	return "a tag names two digests in one destination repository"
}
func (TagConflict) Applies(*Change) bool { return true }

func (TagConflict) Run(_ context.Context, c *Change) ([]Finding, error) {
	base, head := c.Base.conflicts(), c.Head.conflicts()
	type group struct {
		f    Finding
		dsts []string
	}
	groups := map[string]*group{}
	for k, h := range head {
		b := base[k]
		inBase := b != nil && len(b.digests) > 1 && subset(h.digests, b.digests)
		sev := severity(inBase)
		key := strings.Join([]string{h.file, k.image, k.tag, strings.Join(h.digests, ","), string(sev)}, "\x00")
		g := groups[key]
		if g == nil {
			msg := fmt.Sprintf("image %q: tag %q names %d digests (%s)", k.image, k.tag, len(h.digests), strings.Join(h.digests, ", "))
			g = &group{f: Finding{Severity: sev, File: h.file, Line: h.line, Message: msg}}
			groups[key] = g
		}
		// The last entry of every destination, in file order.
		g.f.Line = max(g.f.Line, h.line)
		g.dsts = append(g.dsts, k.dst)
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

// conflictKey is a tag of an image in one destination registry.
type conflictKey struct{ image, tag, dst string }

// conflict is a tag on several digests in one destination repository:
// the digests (sorted), and the last of their entries in file order.
type conflict struct {
	digests []string
	file    string
	line    int
}

// conflicts gathers validation's tag conflicts (the State's Problems) by
// image, tag and destination registry. A nil State has none.
func (s *State) conflicts() map[conflictKey]*conflict {
	out := map[conflictKey]*conflict{}
	if s == nil {
		return out
	}
	for _, p := range s.Problems {
		tc := p.Conflict
		if tc == nil {
			continue
		}
		for _, dst := range tc.Destinations {
			k := conflictKey{tc.Image, tc.Tag, dst}
			x := out[k]
			if x == nil {
				x = &conflict{}
				out[k] = x
			}
			for _, d := range []string{tc.Digest, tc.Other} {
				if !slices.Contains(x.digests, d) {
					x.digests = append(x.digests, d)
				}
			}
			for _, e := range []struct {
				file string
				line int
			}{{p.File, tc.Line}, {tc.OtherFile, tc.OtherLine}} {
				if e.file > x.file || e.file == x.file && e.line > x.line {
					x.file, x.line = e.file, e.line
				}
			}
		}
	}
	for _, x := range out {
		slices.Sort(x.digests)
	}
	return out
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

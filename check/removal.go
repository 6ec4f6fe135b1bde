package check

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// ImageRemoval refuses a change that stops promoting a digest, or a tag,
// into a destination repository that the base promotes it into. Promotion
// is add-only: what was promoted stays in production, so dropping it from
// the manifest only makes the manifest lie. A destination registry dropped
// altogether is left to DestinationRemoval. Removing a digest that was in a
// tag conflict in the base resolves the conflict and is only a warning: the
// promoter never accepted that entry.
type ImageRemoval struct{}

func (ImageRemoval) Name() string { return "image-removal" }
func (ImageRemoval) Description() string {
	return "a (destination repository, digest) or a tag of the base is gone in the head"
}
func (ImageRemoval) Applies(c *Change) bool { return c.Base != nil }

func (ImageRemoval) Run(_ context.Context, c *Change) ([]Finding, error) {
	base, head := c.Base.index(), c.Head.index()
	conflicts := c.Base.conflicts()
	type group struct {
		file, image, digest, tag string
		line                     int
		sev                      Severity
		tags                     []string
		dsts                     []string
	}
	groups := map[string]*group{}
	add := func(key string, g group, dst string) {
		x := groups[key]
		if x == nil {
			x = &g
			groups[key] = x
		}
		x.dsts = append(x.dsts, dst)
	}
	for k, bes := range base.byDigest {
		hd := byDestination(head.byDigest[k])
		for dst, es := range byDestination(bes) {
			if !head.dsts[dst] || len(hd[dst]) > 0 {
				continue
			}
			e := es[0]
			sev := Error
			if conflicted(conflicts, e.image, dst, e.digest) {
				sev = Warning
			}
			file := c.headFile(e.m)
			key := strings.Join([]string{file, e.image, e.digest, string(sev)}, "\x00")
			add(key, group{file: file, image: e.image, digest: e.digest, line: c.headLine(file, e.image), sev: sev, tags: tagsOf(es)}, dst)
		}
	}
	for k, bes := range base.byTag {
		ht := byDestination(head.byTag[k])
		for dst, es := range byDestination(bes) {
			if !head.dsts[dst] || len(ht[dst]) > 0 {
				continue
			}
			for _, d := range digestsOf(es) {
				// Report the tag only when its digest stays; a removed
				// digest is reported above with its tags.
				if !promotes(head, imageDigest{k.image, d}, dst) {
					continue
				}
				e := es[0]
				file := c.headFile(e.m)
				key := strings.Join([]string{file, k.image, d, k.tag}, "\x00")
				add(key, group{file: file, image: k.image, digest: d, tag: k.tag, line: c.headLine(file, k.image), sev: Error}, dst)
			}
		}
	}
	var out []Finding
	for _, g := range groups {
		var msg string
		if g.tag != "" {
			msg = fmt.Sprintf("image %q: tag %q removed from digest %s in %s; promotion is add-only, the tag stays in production", g.image, g.tag, g.digest, where(g.dsts))
		} else {
			tags := "untagged"
			if len(g.tags) > 0 {
				tags = "tags " + strings.Join(g.tags, ", ")
			}
			msg = fmt.Sprintf("image %q: digest %s (%s) removed from %s", g.image, g.digest, tags, where(g.dsts))
			if g.sev == Warning {
				msg += "; it was in a tag conflict in the base, so removing it resolves the conflict"
			} else {
				msg += "; promotion is add-only, the image stays in production"
			}
		}
		out = append(out, Finding{Severity: g.sev, File: g.file, Line: g.line, Message: msg})
	}
	return out, nil
}

// promotes reports whether x has an entry for k in destination dst.
func promotes(x *index, k imageDigest, dst string) bool {
	for _, e := range x.byDigest[k] {
		for _, d := range e.m.Destinations {
			if d == dst {
				return true
			}
		}
	}
	return false
}

// conflicted reports whether one of digest's tags also names another digest
// of image in destination dst (validation's tag conflicts).
func conflicted(conflicts map[conflictKey]*conflict, image, dst, digest string) bool {
	for k, x := range conflicts {
		if k.image == image && k.dst == dst && slices.Contains(x.digests, digest) {
			return true
		}
	}
	return false
}

// tagsOf returns the distinct tags of es, sorted.
func tagsOf(es []*entry) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range es {
		for _, t := range e.tags {
			if !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	sort.Strings(out)
	return out
}

package audit

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/cipdev/cip/inventory"
)

// Finding is one difference between production, as the inventory has it,
// and the manifests: something there that no manifest promotes, or
// something a manifest promotes that is not there.
type Finding struct {
	Reason     Reason   `json:"reason" yaml:"reason"`
	Repository string   `json:"repository" yaml:"repository"`
	Digest     string   `json:"digest,omitempty" yaml:"digest,omitempty"`
	Tag        string   `json:"tag,omitempty" yaml:"tag,omitempty"`        // the tag the finding is about
	Tags       []string `json:"tags,omitempty" yaml:"tags,flow,omitempty"` // the tags an unpromoted digest carries
	// Want is the digest the manifests want Tag at (TagMismatch).
	Want string `json:"want,omitempty" yaml:"want,omitempty"`
	// Since is when the tag history saw the change (a tag moved or
	// removed), RFC 3339 UTC.
	Since string `json:"since,omitempty" yaml:"since,omitempty"`
	// File and Line locate the manifest entry involved, when there is one.
	File   string `json:"file,omitempty" yaml:"file,omitempty"`
	Line   int    `json:"line,omitempty" yaml:"line,omitempty"`
	Detail string `json:"detail" yaml:"detail"`
}

// ScanInventory is what Scan reads. *inventory.DB implements it.
type ScanInventory interface {
	Inventory
	Contents(ctx context.Context, prefix string) ([]inventory.Content, error)
	LatestTagChanges(ctx context.Context, prefix string) ([]inventory.TagHistoryEntry, error)
}

// Scan compares what the inventory holds under scopes (registry names or
// path prefixes; the policy's destination registries when none) with the
// policy, and returns every finding, sorted by repository, digest, tag and
// reason. It reads only the inventory: sync the scopes first for an
// up-to-date answer.
//
// Index children of a promoted index, and referrers of promoted digests
// (by cosign's tag scheme), are accounted for. The untagged children of an
// unpromoted index are not listed on their own: the index's finding stands
// for them.
func Scan(ctx context.Context, inv ScanInventory, p *Policy, scopes []string) ([]Finding, error) {
	if len(scopes) == 0 {
		scopes = p.Destinations()
	}
	var out []Finding
	for _, scope := range outermost(scopes) {
		fs, err := scanScope(ctx, inv, p, scope)
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Repository != b.Repository {
			return a.Repository < b.Repository
		}
		if a.Digest != b.Digest {
			return a.Digest < b.Digest
		}
		if a.Tag != b.Tag {
			return a.Tag < b.Tag
		}
		return a.Reason < b.Reason
	})
	return out, nil
}

// outermost drops scopes that lie below another scope, so that nothing is
// reported twice.
func outermost(scopes []string) []string {
	s := make([]string, 0, len(scopes))
	for _, x := range scopes {
		s = append(s, strings.TrimSuffix(x, "/"))
	}
	sort.Strings(s)
	var out []string
	for _, x := range s {
		if len(out) > 0 && inventory.Under(x, out[len(out)-1]) {
			continue
		}
		out = append(out, x)
	}
	return out
}

type held struct {
	digest string
	tags   []string
	child  bool
}

func scanScope(ctx context.Context, inv ScanInventory, p *Policy, scope string) ([]Finding, error) {
	contents, err := inv.Contents(ctx, scope)
	if err != nil {
		return nil, err
	}
	history, err := inv.LatestTagChanges(ctx, scope)
	if err != nil {
		return nil, err
	}
	byRepo := map[string][]held{}
	for _, c := range contents {
		byRepo[c.Repository] = append(byRepo[c.Repository], held{c.Digest, c.Tags, c.Child})
	}
	changes := map[[2]string]inventory.TagHistoryEntry{}
	for _, h := range history {
		changes[[2]string{h.Repository, h.Tag}] = h
	}
	// Every repository the inventory holds under scope, and every one the
	// manifests promote into below it.
	repos := map[string]bool{}
	for r := range byRepo {
		repos[r] = true
	}
	for r := range p.repos {
		if inventory.Under(r, scope) {
			repos[r] = true
		}
	}
	var out []Finding
	for _, repo := range slices.Sorted(maps.Keys(repos)) {
		fs, err := scanRepository(ctx, inv, p, repo, byRepo[repo], changes)
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	return out, nil
}

func scanRepository(ctx context.Context, inv ScanInventory, p *Policy, repo string, contents []held, changes map[[2]string]inventory.TagHistoryEntry) ([]Finding, error) {
	var out []Finding
	if !p.known(repo) {
		for _, h := range contents {
			if h.child {
				continue
			}
			out = append(out, Finding{Reason: UnknownRepository, Repository: repo, Digest: h.digest, Tags: h.tags,
				Detail: fmt.Sprintf("%s@%s: no manifest promotes into %s", repo, h.digest, repo)})
		}
		return out, nil
	}
	holds := map[string]bool{}
	tagAt := map[string]string{}
	for _, h := range contents {
		holds[h.digest] = true
		for _, t := range h.tags {
			tagAt[t] = h.digest
		}
	}
	for _, h := range contents {
		if h.child {
			// An untagged child of an index held here: judged with its
			// index (accounted when the index is, listed under it if not).
			continue
		}
		if _, _, ok, err := p.referrer(ctx, inv, repo, h.digest, h.tags); err != nil {
			return nil, err
		} else if ok {
			continue
		}
		reason, w, err := p.account(ctx, inv, repo, h.digest)
		if err != nil {
			return nil, err
		}
		if reason == "" {
			f := Finding{Reason: NotInManifest, Repository: repo, Digest: h.digest, Tags: h.tags,
				Detail: fmt.Sprintf("%s@%s: no manifest promotes it into %s", repo, h.digest, repo)}
			// A tag it carries that the manifests put elsewhere is a moved
			// tag: say so on its own line.
			var rest []string
			for _, t := range h.tags {
				if tw, ok := p.tag(repo, t); ok {
					out = append(out, tagMismatch(repo, t, h.digest, tw, changes))
					continue
				}
				rest = append(rest, t)
			}
			f.Tags = rest
			if len(rest) > 0 {
				f.Detail += " (tags " + strings.Join(rest, ", ") + ")"
			}
			out = append(out, f)
			continue
		}
		for _, t := range h.tags {
			if tw, ok := p.tag(repo, t); ok {
				if tw.digest != h.digest {
					out = append(out, tagMismatch(repo, t, h.digest, tw, changes))
				}
				continue
			}
			f := Finding{Reason: TagMismatch, Repository: repo, Digest: h.digest, Tag: t, File: w.file, Line: w.line}
			if reason == Child {
				f.Detail = fmt.Sprintf("%s:%s: tag on %s, a child of %s (%s): no manifest gives it that tag", repo, t, h.digest, w.digest, w.where())
			} else {
				f.Detail = fmt.Sprintf("%s:%s: tag on %s; %s gives it %s", repo, t, h.digest, w.where(), tagList(w.tags))
			}
			if c, ok := changes[[2]string{repo, t}]; ok && c.New == h.digest {
				f.Since = c.At
			}
			out = append(out, f)
		}
	}
	// What the manifests promote here that is not here.
	for _, w := range p.wantedIn(repo) {
		if !holds[w.digest] {
			f := Finding{Reason: Missing, Repository: repo, Digest: w.digest, File: w.file, Line: w.line,
				Detail: fmt.Sprintf("%s@%s, promoted at %s, is not there: not promoted yet, or deleted before cip saw it", repo, w.digest, w.where())}
			for _, t := range w.tags {
				if c, ok := changes[[2]string{repo, t}]; ok && c.Old == w.digest && c.Change != "added" {
					f.Reason, f.Since = Deletion, c.At
					f.Detail = fmt.Sprintf("%s@%s, promoted at %s, was deleted: its tag %s was %s at %s", repo, w.digest, w.where(), t, c.Change, c.At)
					break
				}
			}
			out = append(out, f)
			continue
		}
		for _, t := range w.tags {
			if _, ok := tagAt[t]; ok {
				// Where it should be, or elsewhere (a tag mismatch above).
				continue
			}
			f := Finding{Reason: Missing, Repository: repo, Digest: w.digest, Tag: t, Want: w.digest, File: w.file, Line: w.line,
				Detail: fmt.Sprintf("%s:%s, promoted at %s, is not there: not tagged yet, or removed before cip saw it", repo, t, w.where())}
			if c, ok := changes[[2]string{repo, t}]; ok && c.Change == "removed" {
				f.Reason, f.Since = Deletion, c.At
				f.Detail = fmt.Sprintf("%s:%s, promoted at %s, was removed at %s", repo, t, w.where(), c.At)
			}
			out = append(out, f)
		}
	}
	return out, nil
}

func tagMismatch(repo, tag, at string, w wanted, changes map[[2]string]inventory.TagHistoryEntry) Finding {
	f := Finding{Reason: TagMismatch, Repository: repo, Digest: at, Tag: tag, Want: w.digest, File: w.file, Line: w.line,
		Detail: fmt.Sprintf("%s:%s is at %s; %s wants it at %s", repo, tag, at, w.where(), w.digest)}
	if c, ok := changes[[2]string{repo, tag}]; ok && c.New == at {
		f.Since = c.At
		if c.Change == "moved" {
			f.Detail += " (moved at " + c.At + ")"
		}
	}
	return f
}

// wantedIn lists the digests the manifests promote into repo, sorted, each
// with its tags merged over every manifest naming it.
func (p *Policy) wantedIn(repo string) []wanted {
	seen := map[string]bool{}
	var out []wanted
	for _, ii := range p.repos[repo] {
		for d := range ii.digests {
			if seen[d] {
				continue
			}
			seen[d] = true
			w, _ := p.digest(repo, d)
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].digest < out[j].digest })
	return out
}

package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
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

// ScanOptions configures Scan.
type ScanOptions struct {
	// Present, when set, is asked whether a promoted digest the inventory
	// does not hold is in its repository all the same: a registry's tag
	// listing shows no untagged manifest (outside GCR), so a tagless
	// promotion is invisible to a sync. LivePresence asks with a HEAD.
	// Without it such digests are reported missing.
	Present func(ctx context.Context, repo, digest string) (bool, error)
	// Jobs bounds the Present calls in flight (sync.DefaultJobs when 0:
	// as many as a crawl's requests in flight).
	Jobs int
}

// Scan compares what the inventory holds under scopes (registry names or
// path prefixes; the policy's destination registries when none) with the
// policy, and returns every finding, sorted by repository, digest, tag and
// reason. It reads the inventory (sync the scopes first for an up-to-date
// answer), and asks opts.Present only about promoted digests it does not
// hold.
//
// Index children of a promoted index, and referrers of promoted digests
// (by their tags, or as the inventory's referrers rows and subject fields
// have them: see Policy.account), are accounted for. The untagged children of an
// unpromoted index are not listed on their own: the index's finding stands
// for them.
func Scan(ctx context.Context, inv ScanInventory, p *Policy, scopes []string, opts ScanOptions) ([]Finding, error) {
	if len(scopes) == 0 {
		scopes = p.Destinations()
	}
	var out []Finding
	var unheld []unheldDigest
	for _, scope := range outermost(scopes) {
		fs, err := scanScope(ctx, inv, p, scope, &unheld)
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	present := make([]bool, len(unheld))
	if opts.Present != nil {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(cmp.Or(opts.Jobs, cipsync.DefaultJobs))
		for i, u := range unheld {
			g.Go(func() error {
				ok, err := opts.Present(gctx, u.repo, u.digest)
				present[i] = ok
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	for i, u := range unheld {
		if present[i] {
			out = append(out, u.present...)
		} else {
			out = append(out, u.absent)
		}
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

// LivePresence answers ScanOptions.Present with a HEAD of repo@digest.
func LivePresence(client *registry.Client) func(ctx context.Context, repo, digest string) (bool, error) {
	return func(ctx context.Context, repo, digest string) (bool, error) {
		r, err := client.ParseRepository(repo)
		if err != nil {
			return false, err
		}
		if _, err := client.Head(ctx, r, digest); errors.Is(err, registry.ErrNotFound) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		return true, nil
	}
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

func scanScope(ctx context.Context, inv ScanInventory, p *Policy, scope string, unheld *[]unheldDigest) ([]Finding, error) {
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
		fs, err := scanRepository(ctx, inv, p, repo, byRepo[repo], changes, unheld)
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	return out, nil
}

func scanRepository(ctx context.Context, inv ScanInventory, p *Policy, repo string, contents []held, changes map[[2]string]inventory.TagHistoryEntry, unheld *[]unheldDigest) ([]Finding, error) {
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
		a, err := p.account(ctx, inv, repo, h.digest)
		if err != nil {
			return nil, err
		}
		// Tags that make the digest a referrer of something that belongs
		// here are accounted for; its other tags are judged like any.
		var tags []string
		for _, t := range h.tags {
			s, tw, ok, err := p.referrerTag(ctx, inv, repo, t)
			if err != nil {
				return nil, err
			}
			if ok {
				if a.reason == "" {
					a = accounted{reason: Referrer, w: tw, subject: s}
				}
				continue
			}
			tags = append(tags, t)
		}
		reason, w, subject := a.reason, a.w, a.subject
		if reason == "" {
			f := Finding{Reason: NotInManifest, Repository: repo, Digest: h.digest,
				Detail: fmt.Sprintf("%s@%s: no manifest promotes it into %s", repo, h.digest, repo)}
			// A tag it carries that the manifests put elsewhere is a moved
			// tag: say so on its own line.
			for _, t := range tags {
				if tw, ok := p.tag(repo, t); ok {
					out = append(out, tagMismatch(repo, t, h.digest, tw, changes))
					continue
				}
				f.Tags = append(f.Tags, t)
			}
			if len(f.Tags) > 0 {
				f.Detail += " (tags " + strings.Join(f.Tags, ", ") + ")"
			}
			out = append(out, f)
			continue
		}
		for _, t := range tags {
			if tw, ok := p.tag(repo, t); ok {
				if tw.digest != h.digest {
					out = append(out, tagMismatch(repo, t, h.digest, tw, changes))
				}
				continue
			}
			f := Finding{Reason: TagMismatch, Repository: repo, Digest: h.digest, Tag: t, File: w.file, Line: w.line}
			switch reason {
			case Child:
				f.Detail = fmt.Sprintf("%s:%s: tag on %s, a child of %s (%s): no manifest gives it that tag", repo, t, h.digest, w.digest, w.where())
			case Referrer:
				f.Detail = fmt.Sprintf("%s:%s: tag on %s, a referrer of %s (%s): no manifest gives it that tag", repo, t, h.digest, subject, w.where())
			default:
				f.Detail = fmt.Sprintf("%s:%s: tag on %s; %s gives it %s", repo, t, h.digest, w.where(), tagList(w.tags))
			}
			if c, ok := changes[[2]string{repo, t}]; ok && c.New == h.digest {
				f.Since = c.At
			}
			out = append(out, f)
		}
	}
	// What the manifests promote here that is not here. A digest the
	// inventory does not hold may still be there untagged (a tag listing
	// shows no untagged manifest outside GCR): Scan asks the registry.
	for _, w := range p.wantedIn(repo) {
		if holds[w.digest] {
			out = append(out, missingTags(repo, w, tagAt, changes)...)
			continue
		}
		f := Finding{Reason: Missing, Repository: repo, Digest: w.digest, File: w.file, Line: w.line,
			Detail: fmt.Sprintf("%s@%s, promoted at %s, is not there: not promoted yet, or deleted before cip saw it", repo, w.digest, w.where())}
		for _, t := range w.tags {
			if c, ok := changes[[2]string{repo, t}]; ok && c.Old == w.digest && c.Change != "added" {
				f.Reason, f.Since = Deletion, c.At
				f.Detail = fmt.Sprintf("%s@%s, promoted at %s, was deleted: its tag %s was %s at %s", repo, w.digest, w.where(), t, c.Change, c.At)
				break
			}
		}
		*unheld = append(*unheld, unheldDigest{repo: repo, digest: w.digest, absent: f, present: missingTags(repo, w, tagAt, changes)})
	}
	return out, nil
}

// unheldDigest is a promoted digest the inventory does not hold, with the
// findings for either answer of the registry: absent, or there untagged
// (then only its tags are missing).
type unheldDigest struct {
	repo, digest string
	absent       Finding
	present      []Finding
}

// missingTags lists the tags the manifests give w that repo does not carry
// anywhere (a tag at another digest is a tag mismatch, reported apart).
func missingTags(repo string, w wanted, tagAt map[string]string, changes map[[2]string]inventory.TagHistoryEntry) []Finding {
	var out []Finding
	for _, t := range w.tags {
		if _, ok := tagAt[t]; ok {
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
	return out
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

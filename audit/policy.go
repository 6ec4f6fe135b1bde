package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cipdev/cip/manifest"
	cipsync "github.com/cipdev/cip/sync"
)

// Reason says why an event or a finding got its verdict.
type Reason string

// Reasons. The first three verify an event; the others reject it.
const (
	// Promoted: a manifest promotes this digest (with this tag) into the
	// repository.
	Promoted Reason = "promoted"
	// Child: the digest is a child of an index a manifest promotes into the
	// repository (an index's children are pushed before it, so the child is
	// verified through its parent, as the original auditor did).
	Child Reason = "child"
	// Referrer: a signature, attestation or SBOM of a promoted digest.
	Referrer Reason = "referrer"

	// NotInManifest: the manifests promote this repository, not this digest.
	NotInManifest Reason = "not-in-manifest"
	// TagMismatch: the tag is not where the manifests put it (a moved
	// promoted tag, or a tag no manifest gives that digest).
	TagMismatch Reason = "tag-mismatch"
	// Deletion: something was deleted from production; deletions are
	// always rejected (promotion only adds).
	Deletion Reason = "deletion"
	// UnknownRepository: no manifest promotes into this repository.
	UnknownRepository Reason = "unknown-repository"
	// InvalidEvent: the event cannot be judged (an unknown action, no
	// digest, a name that is no valid reference).
	InvalidEvent Reason = "invalid-event"
	// Missing (cip audit only): a digest or tag the manifests promote is not
	// in production, and the tag history does not say it was deleted.
	Missing Reason = "missing"
)

// Verdicts.
const (
	Verified = "VERIFIED"
	Rejected = "REJECTED"
)

// Inventory is what judging needs from the inventory: which indexes list a
// digest as a child, and what a digest refers to in a repository (its
// subjects; known is false when the inventory does not hold the manifest).
// *inventory.DB implements it.
type Inventory interface {
	Parents(ctx context.Context, digest string) ([]string, error)
	Subjects(ctx context.Context, repo, digest string) (subjects []string, known bool, err error)
}

// Bounds on the walk from a digest up to the indexes that list it and the
// subjects it refers to: nested indexes are one or two levels deep in
// practice (an index of platform images; at most an index of such
// indexes), a digest belongs to few indexes and refers to one subject, so
// these only stop a corrupt or hostile inventory from making one event
// cost without end. Referrers of referrers are followed as deep as cip
// copies them (sync.MaxReferrerDepth: image, attestation, signature, and
// one more): a deeper chain is nothing cip promoted.
const (
	maxIndexDepth    = 8
	maxAncestors     = 1000
	maxReferrerDepth = cipsync.MaxReferrerDepth
)

// Policy is what a set of promoter manifests allows into production: per
// destination repository (destination registry / image), the digests and
// their tags. It is built once per manifest load and only read afterwards,
// so it is safe for concurrent use.
type Policy struct {
	repos map[string][]*imageIntent // full repository name -> the manifest images promoting into it
	hosts map[string]bool           // registry hosts of the destinations
	dsts  []string                  // destination registries, sorted

	Manifests, Repositories, Digests, Tags int // what the policy holds, for logs
}

// imageIntent is one manifest's image: shared by every destination of the
// manifest, so that a policy for the Kubernetes manifests (tens of
// destinations per image) holds each digest once.
type imageIntent struct {
	file    string
	digests map[string]manifest.Digest
	tags    map[string]string // tag -> digest
}

// NewPolicy builds the policy of a loaded (so validated) manifest set.
func NewPolicy(set *manifest.Set) *Policy {
	p := &Policy{repos: map[string][]*imageIntent{}, hosts: map[string]bool{}}
	dsts := map[string]bool{}
	for _, m := range set.Manifests {
		p.Manifests++
		for _, img := range m.Images {
			ii := &imageIntent{file: m.ImagesFile, digests: map[string]manifest.Digest{}, tags: map[string]string{}}
			for _, d := range img.Digests {
				ii.digests[d.Digest] = d
				for _, t := range d.Tags {
					ii.tags[t] = d.Digest
				}
			}
			for _, dst := range m.Destinations() {
				repo := dst.Name + "/" + img.Name
				p.repos[repo] = append(p.repos[repo], ii)
				p.Digests += len(ii.digests)
				p.Tags += len(ii.tags)
				dsts[dst.Name] = true
				host, _, _ := strings.Cut(dst.Name, "/")
				p.hosts[host] = true
			}
		}
	}
	p.Repositories = len(p.repos)
	for d := range dsts {
		p.dsts = append(p.dsts, d)
	}
	sort.Strings(p.dsts)
	return p
}

// Destinations returns the destination registries of the manifests, sorted.
func (p *Policy) Destinations() []string { return slices.Clone(p.dsts) }

// Host reports whether host serves some destination registry.
func (p *Policy) Host(host string) bool { return p.hosts[host] }

// known reports whether some manifest promotes into repo.
func (p *Policy) known(repo string) bool { return len(p.repos[repo]) > 0 }

// wanted is a manifest entry that decided a verdict.
type wanted struct {
	digest string
	tags   []string
	file   string
	line   int
}

func (w wanted) where() string { return fmt.Sprintf("%s:%d", w.file, w.line) }

// digest returns the manifest entry promoting digest into repo, its tags
// merged over every manifest that names it.
func (p *Policy) digest(repo, digest string) (wanted, bool) {
	var w wanted
	found := false
	for _, ii := range p.repos[repo] {
		d, ok := ii.digests[digest]
		if !ok {
			continue
		}
		if !found {
			w = wanted{digest: digest, file: ii.file, line: d.Line}
			found = true
		}
		w.tags = append(w.tags, d.Tags...)
	}
	if found {
		slices.Sort(w.tags)
		w.tags = slices.Compact(w.tags)
	}
	return w, found
}

// tag returns the manifest entry that puts tag on a digest in repo (loading
// guarantees at most one digest per destination, image and tag).
func (p *Policy) tag(repo, tag string) (wanted, bool) {
	for _, ii := range p.repos[repo] {
		if d, ok := ii.tags[tag]; ok {
			return wanted{digest: d, tags: []string{tag}, file: ii.file, line: ii.digests[d].Line}, true
		}
	}
	return wanted{}, false
}

// accounted says what accounts for a digest in a repository.
type accounted struct {
	// reason is Promoted, Child or Referrer; "" when nothing accounts for
	// the digest.
	reason Reason
	// w is the manifest entry that does: the digest's own, its promoted
	// ancestor index's, or that of what it refers to.
	w wanted
	// subject (Referrer) is what the digest refers to, the first subject
	// on the way up to w.
	subject string
}

// account says whether digest belongs in repo: promoted itself (Promoted),
// a child, however nested, of an index promoted there (Child, with the
// promoted ancestor), or a referrer of something that belongs there
// (Referrer: a signature, attestation or SBOM of a promoted digest or of a
// child of a promoted index, or a referrer of such a referrer), as the
// inventory records it (Inventory.Subjects). The walk up is bounded:
// maxIndexDepth levels, maxAncestors digests, maxReferrerDepth subjects
// on any path.
func (p *Policy) account(ctx context.Context, inv Inventory, repo, digest string) (accounted, error) {
	return p.walk(ctx, inv, repo, digest, "", 0)
}

// walk is account from digest, reached through subject (when not "")
// after refs referrer steps.
func (p *Policy) walk(ctx context.Context, inv Inventory, repo, digest, subject string, refs int) (accounted, error) {
	found := func(w wanted, child bool, subject string) accounted {
		switch {
		case subject != "":
			return accounted{reason: Referrer, w: w, subject: subject}
		case child:
			return accounted{reason: Child, w: w}
		}
		return accounted{reason: Promoted, w: w}
	}
	if w, ok := p.digest(repo, digest); ok {
		return found(w, false, subject), nil
	}
	if inv == nil || !p.known(repo) {
		return accounted{}, nil
	}
	type step struct {
		digest, subject string // subject: the first subject on the way here
		refs            int    // referrer steps on the way here
	}
	seen := map[string]bool{digest: true}
	level := []step{{digest, subject, refs}}
	for depth := 0; depth < maxIndexDepth && len(level) > 0 && len(seen) < maxAncestors; depth++ {
		var next []step
		for _, s := range level {
			if len(seen) >= maxAncestors {
				break
			}
			parents, err := inv.Parents(ctx, s.digest)
			if err != nil {
				return accounted{}, err
			}
			for _, parent := range parents {
				if seen[parent] {
					continue
				}
				seen[parent] = true
				if w, ok := p.digest(repo, parent); ok {
					return found(w, true, s.subject), nil
				}
				next = append(next, step{parent, s.subject, s.refs})
			}
			if s.refs >= maxReferrerDepth {
				continue
			}
			subjects, _, err := inv.Subjects(ctx, repo, s.digest)
			if err != nil {
				return accounted{}, err
			}
			for _, sub := range subjects {
				if seen[sub] {
					continue
				}
				seen[sub] = true
				first := cmp.Or(s.subject, sub)
				if w, ok := p.digest(repo, sub); ok {
					return found(w, false, first), nil
				}
				next = append(next, step{sub, first, s.refs + 1})
			}
		}
		level = next
	}
	return accounted{}, nil
}

// Verdict is the judgement of one event.
type Verdict struct {
	Event
	Verdict string // Verified or Rejected
	Reason  Reason
	Detail  string // one sentence for people
	// Parent is the promoted index (Child) or the promoted subject
	// (Referrer) that accounts for the event's digest.
	Parent string
	// File and Line locate the manifest entry that decided, when one did.
	File string
	Line int
}

// Judge decides one event that is not ignored (see Event.Ignored): VERIFIED
// when the manifests account for it, REJECTED with the reason otherwise. An
// error (from the inventory) means no verdict: the caller should have the
// event sent again.
func (p *Policy) Judge(ctx context.Context, inv Inventory, ev Event) (Verdict, error) {
	v := Verdict{Event: ev, Verdict: Rejected}
	ref := ev.Repository
	if ev.Digest != "" {
		ref += "@" + ev.Digest
	}
	if ev.Tag != "" {
		ref += ":" + ev.Tag
	}
	switch {
	case ev.Invalid != "":
		v.Reason, v.Detail = InvalidEvent, ev.Invalid
		return v, nil
	case ev.Action == ActionDelete:
		v.Reason, v.Detail = Deletion, fmt.Sprintf("deletion of %s: deletions from production are prohibited", ref)
		return v, nil
	case ev.Action != ActionPush:
		v.Reason, v.Detail = InvalidEvent, fmt.Sprintf("unknown action %q", ev.Action)
		return v, nil
	case !p.known(ev.Repository):
		v.Reason, v.Detail = UnknownRepository, fmt.Sprintf("push of %s: no manifest promotes into %s", ref, ev.Repository)
		return v, nil
	case ev.Digest == "":
		v.Reason, v.Detail = InvalidEvent, fmt.Sprintf("push of %s names no digest: its tag cannot be checked", ref)
		return v, nil
	}

	if ev.Tag != "" {
		subject, w, ok, err := p.referrerTag(ctx, inv, ev.Repository, ev.Tag)
		if err != nil {
			return v, err
		}
		if ok {
			v.Verdict, v.Reason, v.Parent, v.File, v.Line = Verified, Referrer, subject, w.file, w.line
			v.Detail = referDetail(ref, subject, w)
			return v, nil
		}
		if w, ok := p.tag(ev.Repository, ev.Tag); ok {
			v.File, v.Line = w.file, w.line
			if w.digest == ev.Digest {
				v.Verdict, v.Reason = Verified, Promoted
				v.Detail = fmt.Sprintf("%s agrees with %s", ref, w.where())
				return v, nil
			}
			v.Reason = TagMismatch
			v.Detail = fmt.Sprintf("tag %s moved to %s; %s wants it at %s", ev.Tag, ev.Digest, w.where(), w.digest)
			return v, nil
		}
	}

	a, err := p.account(ctx, inv, ev.Repository, ev.Digest)
	if err != nil {
		return v, err
	}
	w := a.w
	switch {
	case a.reason == "":
		v.Reason = NotInManifest
		v.Detail = fmt.Sprintf("push of %s: no manifest promotes %s into %s", ref, ev.Digest, ev.Repository)
	case ev.Tag != "":
		v.Reason, v.File, v.Line = TagMismatch, w.file, w.line
		switch a.reason {
		case Child:
			v.Parent = w.digest
			v.Detail = fmt.Sprintf("tag %s on %s, a child of %s (%s): no manifest gives it that tag", ev.Tag, ev.Digest, w.digest, w.where())
		case Referrer:
			v.Parent = a.subject
			v.Detail = fmt.Sprintf("tag %s on %s, a referrer of %s (%s): no manifest gives it that tag", ev.Tag, ev.Digest, a.subject, w.where())
		default:
			v.Detail = fmt.Sprintf("tag %s on %s: %s gives it %s", ev.Tag, ev.Digest, w.where(), tagList(w.tags))
		}
	case a.reason == Child:
		v.Verdict, v.Reason, v.Parent, v.File, v.Line = Verified, Child, w.digest, w.file, w.line
		v.Detail = fmt.Sprintf("%s is a child of %s, promoted at %s", ref, w.digest, w.where())
	case a.reason == Referrer:
		v.Verdict, v.Reason, v.Parent, v.File, v.Line = Verified, Referrer, a.subject, w.file, w.line
		v.Detail = referDetail(ref, a.subject, w)
	default:
		v.Verdict, v.Reason, v.File, v.Line = Verified, Promoted, w.file, w.line
		v.Detail = fmt.Sprintf("%s agrees with %s", ref, w.where())
	}
	return v, nil
}

// referDetail says what a referrer refers to and which manifest entry
// accounts for that.
func referDetail(ref, subject string, w wanted) string {
	if subject == w.digest {
		return fmt.Sprintf("%s refers to %s, promoted at %s", ref, subject, w.where())
	}
	return fmt.Sprintf("%s refers to %s, which belongs through %s, promoted at %s", ref, subject, w.digest, w.where())
}

func tagList(tags []string) string {
	if len(tags) == 0 {
		return "no tag"
	}
	return "the tags " + strings.Join(tags, ", ")
}

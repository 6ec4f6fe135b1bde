package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	gosync "sync"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
)

// Inventory is what the online checks read: the inventory, brought up to
// date for exactly the source repositories of the digests the change adds.
// It is shared by SourcePresence and ImageSize so that one run syncs once.
type Inventory struct {
	DB     *inventory.DB
	Client *registry.Client
	Jobs   int
	// Progress receives sync progress (stderr); nil for none.
	Progress io.Writer

	once    gosync.Once
	present map[repoDigest]bool
	err     error
}

type repoDigest struct{ repo, digest string }

// newDigest is a digest the head promotes somewhere the base does not,
// with where the head says so.
type newDigest struct {
	repoDigest
	image string
	file  string
	line  int
}

// newDigests lists the (source repository, digest) pairs of head entries
// that promote into a destination the base does not promote them into.
func newDigests(c *Change) []newDigest {
	base, head := c.Base.index(), c.Head.index()
	seen := map[repoDigest]bool{}
	var out []newDigest
	for k, es := range head.byDigest {
		bd := byDestination(base.byDigest[k])
		for _, e := range es {
			isNew := false
			for _, d := range e.m.Destinations {
				if len(bd[d]) == 0 {
					isNew = true
					break
				}
			}
			rd := repoDigest{e.m.Source + "/" + k.image, k.digest}
			if !isNew || e.m.Source == "" || seen[rd] {
				continue
			}
			seen[rd] = true
			out = append(out, newDigest{repoDigest: rd, image: k.image, file: e.m.ImagesFile, line: e.line})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].repo != out[j].repo {
			return out[i].repo < out[j].repo
		}
		return out[i].digest < out[j].digest
	})
	return out
}

// load syncs the source repositories of ds (exact targets: no catalog),
// then fetches by digest what the tag listing could not show (an untagged
// digest on a registry without GCR's listing extension) and records it, so
// its size is known too. It returns which of ds the source holds.
func (inv *Inventory) load(ctx context.Context, ds []newDigest) (map[repoDigest]bool, error) {
	inv.once.Do(func() { inv.present, inv.err = inv.doLoad(ctx, ds) })
	return inv.present, inv.err
}

func (inv *Inventory) doLoad(ctx context.Context, ds []newDigest) (map[repoDigest]bool, error) {
	present := map[repoDigest]bool{}
	if len(ds) == 0 {
		return present, nil
	}
	var targets []cipsync.Target
	for i, d := range ds {
		if i == 0 || d.repo != ds[i-1].repo {
			targets = append(targets, cipsync.Target{Ref: d.repo, Exact: true})
		}
	}
	// A repository that fails to sync is tried again below, digest by
	// digest, where a missing one is a finding and any other failure an
	// error.
	if _, err := cipsync.Run(ctx, inv.DB, inv.Client, targets, cipsync.Options{Jobs: inv.Jobs, Progress: inv.Progress}); err != nil && inv.Progress != nil {
		fmt.Fprintf(inv.Progress, "warning: %v\n", err)
	}
	for _, d := range ds {
		held, err := inv.DB.HasDigest(ctx, d.repo, d.digest)
		if err != nil {
			return nil, err
		}
		if held {
			present[d.repoDigest] = true
			continue
		}
		ok, err := inv.fetch(ctx, d.repo, d.digest)
		if err != nil {
			return nil, err
		}
		present[d.repoDigest] = ok
	}
	return present, nil
}

// fetch GETs repo@digest and the children it names that the inventory lacks,
// then records them in one transaction. It reports false when the source
// has no such manifest.
func (inv *Inventory) fetch(ctx context.Context, repoName, digest string) (bool, error) {
	repo, err := inv.Client.ParseRepository(repoName)
	if err != nil {
		return false, err
	}
	var ms []*inventory.Manifest
	todo := []string{digest}
	for len(todo) > 0 {
		dg := todo[0]
		todo = todo[1:]
		known, err := inv.DB.KnownDigests(ctx, []string{dg})
		if err != nil {
			return false, err
		}
		if known[dg] && dg != digest {
			continue
		}
		raw, err := inv.Client.GetManifest(ctx, repo, dg)
		if errors.Is(err, registry.ErrNotFound) {
			if dg == digest {
				return false, nil
			}
			continue // a dangling child: the size stays unknown
		}
		if err != nil {
			return false, err
		}
		m, err := inventory.ParseManifest(raw.Digest, raw.MediaType, raw.Raw)
		if err != nil {
			return false, err
		}
		ms = append(ms, m)
		for _, ch := range m.Children {
			todo = append(todo, ch.Digest)
		}
	}
	return true, inv.DB.InsertManifests(ctx, ms)
}

// SourcePresence refuses a digest the head adds that its source repository
// does not hold: the promotion could never happen. It syncs exactly the
// source repositories concerned into the inventory.
type SourcePresence struct {
	Inventory *Inventory // nil: offline, the check does not apply
}

func (SourcePresence) Name() string { return "source-presence" }
func (SourcePresence) Description() string {
	return "a digest new in the head is not in its source repository (online)"
}
func (s SourcePresence) Applies(*Change) bool { return s.Inventory != nil }

func (s SourcePresence) Run(ctx context.Context, c *Change) ([]Finding, error) {
	ds := newDigests(c)
	present, err := s.Inventory.load(ctx, ds)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, d := range ds {
		if !present[d.repoDigest] {
			out = append(out, Finding{Severity: Error, File: d.file, Line: d.line,
				Message: fmt.Sprintf("image %q: digest %s is not in the source repository %s", d.image, d.digest, d.repo)})
		}
	}
	return out, nil
}

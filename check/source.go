package check

import (
	"context"
	"fmt"
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
	// Progress follows the sync (a live status line); nil for none.
	Progress cipsync.Progress

	// Synced is the sync the online checks ran (nil before, or when there
	// was nothing to sync), and SyncErr its failure: the repositories that
	// failed are looked up digest by digest instead, so it is only a
	// warning. The caller reports both.
	Synced  *cipsync.Result
	SyncErr error

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
// then looks up by digest what the tag listing could not show (an untagged
// digest on a registry without GCR's listing extension; sync.Digests) and
// records it, so its size is known too. It returns which of ds the source
// holds.
func (inv *Inventory) load(ctx context.Context, ds []newDigest) (map[repoDigest]bool, error) {
	inv.once.Do(func() { inv.present, inv.err = inv.doLoad(ctx, ds) })
	return inv.present, inv.err
}

func (inv *Inventory) doLoad(ctx context.Context, ds []newDigest) (map[repoDigest]bool, error) {
	present := map[repoDigest]bool{}
	if len(ds) == 0 {
		return present, nil
	}
	repos := make([]string, len(ds))
	for i, d := range ds {
		repos[i] = d.repo
	}
	// A repository that fails to sync is tried again below, digest by
	// digest, where a missing one is a finding and any other failure an
	// error.
	inv.Synced, inv.SyncErr = cipsync.Run(ctx, inv.DB, inv.Client, cipsync.Exact(repos), cipsync.Options{Jobs: inv.Jobs, Progress: inv.Progress})
	var lookup []cipsync.Ref
	for _, d := range ds {
		held, err := inv.DB.HasDigest(ctx, d.repo, d.digest)
		if err != nil {
			return nil, err
		}
		if held {
			present[d.repoDigest] = true
			continue
		}
		lookup = append(lookup, cipsync.Ref{Repository: d.repo, Digest: d.digest})
	}
	found, err := cipsync.Digests(ctx, inv.DB, inv.Client, lookup, cipsync.Options{Jobs: inv.Jobs})
	if err != nil {
		return nil, err
	}
	// A broken index (a child missing) is in the source all the same: its
	// size is what can be known.
	for _, r := range append(found.Present, found.Incomplete...) {
		present[repoDigest{r.Repository, r.Digest}] = true
	}
	return present, nil
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

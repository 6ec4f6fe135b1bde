package promote

import (
	"context"
	"sort"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
)

// syncDestinations crawls, incrementally, every destination repository the
// manifests name, so that D is current before planning.
func syncDestinations(ctx context.Context, db *inventory.DB, client *registry.Client, set *manifest.Set, opts Options) error {
	seen := map[string]bool{}
	for _, p := range set.Promotions() {
		seen[p.Dst+"/"+p.Image] = true
	}
	return syncRepositories(ctx, db, client, seen, opts)
}

// syncSources crawls the source repositories of the rows a plan made
// with destinations alone current: those whose digest no destination
// repository holds (copy or lost). A run with nothing to copy never reads
// the source. It reports whether it crawled anything (the plan is then
// read again).
func syncSources(ctx context.Context, db *inventory.DB, client *registry.Client, rows []inventory.PlanRow, opts Options) (bool, error) {
	seen := map[string]bool{}
	for _, r := range rows {
		if r.Action == inventory.ActionCopy || r.Action == inventory.ActionLost {
			seen[r.Src+"/"+r.Image] = true
		}
	}
	if len(seen) == 0 {
		return false, nil
	}
	return true, syncRepositories(ctx, db, client, seen, opts)
}

func syncRepositories(ctx context.Context, db *inventory.DB, client *registry.Client, repos map[string]bool, opts Options) error {
	targets := make([]cipsync.Target, 0, len(repos))
	for r := range repos {
		targets = append(targets, cipsync.Target{Ref: r, Exact: true})
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].Ref < targets[j].Ref })
	_, err := cipsync.Run(ctx, db, client, targets, cipsync.Options{Jobs: opts.Jobs, Progress: opts.Progress, Live: opts.Live, TagTTL: opts.TagTTL})
	return err
}

package promote

import (
	"context"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
)

// syncSources crawls the source repositories of the rows a plan made
// with destinations alone current: those whose digest no destination
// repository holds (copy or lost). A run with nothing to copy never reads
// the source. It returns nil when there was nothing to crawl (otherwise
// the plan is read again).
func syncSources(ctx context.Context, db *inventory.DB, client *registry.Client, rows []inventory.PlanRow, opts Options) (*cipsync.Result, error) {
	var repos []string
	for _, r := range rows {
		if r.Action == inventory.ActionCopy || r.Action == inventory.ActionLost {
			repos = append(repos, r.Src+"/"+r.Image)
		}
	}
	if len(repos) == 0 {
		return nil, nil
	}
	return syncRepositories(ctx, db, client, repos, opts, false)
}

// syncRepositories crawls repos; trustReferrerTags is for destinations
// (sync.Options.TrustReferrerTags).
func syncRepositories(ctx context.Context, db *inventory.DB, client *registry.Client, repos []string, opts Options, trustReferrerTags bool) (*cipsync.Result, error) {
	return cipsync.Run(ctx, db, client, cipsync.Exact(repos), cipsync.Options{Jobs: opts.Jobs, Progress: opts.SyncProgress, ConfirmTTL: opts.confirmTTL(), TrustReferrerTags: trustReferrerTags})
}

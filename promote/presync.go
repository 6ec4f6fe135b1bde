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
// the plan is read again), and adds the repositories it crawls to crawled.
func syncSources(ctx context.Context, db *inventory.DB, client *registry.Client, p *Plan, opts Options, crawled map[string]bool) (*cipsync.Result, error) {
	seen := map[string]bool{}
	var repos []string
	if err := p.Each(ctx, db, func(r inventory.PlanRow) error {
		if repo := r.Src + "/" + r.Image; (r.Action == inventory.ActionCopy || r.Action == inventory.ActionLost) && !seen[repo] {
			seen[repo] = true
			repos = append(repos, repo)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if len(repos) == 0 {
		return nil, nil
	}
	for _, r := range repos {
		crawled[r] = true
	}
	return syncRepositories(ctx, db, client, repos, opts, false)
}

// syncRepositories crawls repos; trustReferrerTags is for destinations
// (sync.Options.TrustReferrerTags).
func syncRepositories(ctx context.Context, db *inventory.DB, client *registry.Client, repos []string, opts Options, trustReferrerTags bool) (*cipsync.Result, error) {
	return cipsync.Run(ctx, db, client, cipsync.Exact(repos), cipsync.Options{Jobs: opts.Jobs, Progress: opts.SyncProgress, ConfirmTTL: opts.confirmTTL(), TrustReferrerTags: trustReferrerTags})
}

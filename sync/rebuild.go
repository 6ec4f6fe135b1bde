package sync

import (
	"context"
	"fmt"
	"os"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/registry"
)

// RebuildResult is what Rebuild did.
type RebuildResult struct {
	// Salvaged is what was carried over from the damaged inventory.
	Salvaged *inventory.Salvaged
	// Skipped names the repositories of the old inventory not crawled
	// again: names a damaged file no longer holds intact (those cip
	// validate refuses).
	Skipped []string
	// Sync is the fresh crawl of the old inventory's repositories.
	Sync *Result
	// Backup is where the damaged file was kept ("" when it was not
	// replaced), and Rebuilt where the new one is.
	Backup, Rebuilt string
}

// Rebuild makes a new inventory from what the damaged one at path knew,
// then puts it in its place: the manifests whose bytes still verify are
// carried over (inventory.Salvage; a crawl need not fetch them again) and
// every repository it named is crawled afresh into a new file (path +
// ".rebuild"), which then replaces path; the damaged file is kept beside
// it. Tag history, sync runs and loaded promoter manifests are not carried
// over (the next promote loads its manifests again). When the crawl fails
// for some repository, nothing is replaced: the new file stays at
// Rebuilt, the error says which, and a rerun (registries answering) tries
// again. Nothing else may use the inventory meanwhile.
func Rebuild(ctx context.Context, path string, client *registry.Client, opts Options) (*RebuildResult, error) {
	res := &RebuildResult{Rebuilt: path + ".rebuild"}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(res.Rebuilt + suffix); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("rebuild inventory %s: %w", path, err)
		}
	}
	db, err := inventory.Open(ctx, res.Rebuilt)
	if err != nil {
		return nil, fmt.Errorf("rebuild inventory %s: %w", path, err)
	}
	closed := false
	defer func() {
		if !closed {
			db.Close()
		}
	}()
	if res.Salvaged, err = inventory.Salvage(ctx, path, db); err != nil {
		return nil, fmt.Errorf("rebuild inventory %s: %w", path, err)
	}
	var repos []string
	for _, r := range res.Salvaged.Repositories {
		if _, p := inventory.SplitRepository(r); p == "" || manifest.ValidateRegistryName(r) != nil {
			res.Skipped = append(res.Skipped, r)
			continue
		}
		repos = append(repos, r)
	}
	res.Sync, err = Run(ctx, db, client, Exact(repos), opts)
	if err != nil {
		return res, fmt.Errorf("rebuild inventory %s: the crawl failed, so %s is left as it is and the new inventory stays at %s: %w", path, path, res.Rebuilt, err)
	}
	closed = true
	if err := db.Close(); err != nil {
		return res, fmt.Errorf("rebuild inventory %s: %w", path, err)
	}
	if res.Backup, err = inventory.Replace(path, res.Rebuilt, db.Now()); err != nil {
		return res, err
	}
	return res, nil
}

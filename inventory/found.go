package inventory

import (
	"context"
	"fmt"
)

// RecordFound records what a look-up of single digests found, in one
// transaction: manifests (as InsertManifests does) and, for each of held,
// that the repository holds the digest (as RecordDigest does; Tag is
// ignored). sync.Digests writes with it.
func (d *DB) RecordFound(ctx context.Context, ms []*Manifest, held []Copy) error {
	if len(ms) == 0 && len(held) == 0 {
		return nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record found digests: %w", err)
	}
	defer tx.Rollback()
	if err := insertManifests(ctx, tx, ms, d.now()); err != nil {
		return fmt.Errorf("record manifests: %w", err)
	}
	ids := map[string]int64{}
	for _, c := range held {
		repoID, ok := ids[c.Repository]
		if !ok {
			if repoID, err = upsertRepository(ctx, tx, c.Repository); err != nil {
				return fmt.Errorf("record %s@%s: %w", c.Repository, c.Digest, err)
			}
			ids[c.Repository] = repoID
		}
		if err := recordDigest(ctx, tx, repoID, c); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record found digests: %w", err)
	}
	return nil
}

package inventory

import (
	"context"
	"database/sql"
	"fmt"
)

// HasRepository reports whether the inventory knows repo (a sync found it,
// or cip copied into it).
func (d *DB) HasRepository(ctx context.Context, repo string) (bool, error) {
	var n int
	if err := d.cached().QueryRowContext(ctx, `SELECT COUNT(*) FROM repositories WHERE name = ?`, repo).Scan(&n); err != nil {
		return false, fmt.Errorf("look up repository %s: %w", repo, err)
	}
	return n > 0, nil
}

// HasDigest reports whether the inventory records digest in repo.
func (d *DB) HasDigest(ctx context.Context, repo, digest string) (bool, error) {
	var n int
	err := d.cached().QueryRowContext(ctx, `SELECT COUNT(*) FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id
		WHERE r.name = ? AND rm.digest = ?`, repo, digest).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up %s@%s: %w", repo, digest, err)
	}
	return n > 0, nil
}

// RecordDigest records, in one transaction, that repo holds digest (a
// manifest the inventory knows) and, for an index, every child reachable
// from it that the inventory knows. Promotion calls it after a live HEAD
// finds a digest that a tag listing cannot show.
func (d *DB) RecordDigest(ctx context.Context, repo, digest string) error {
	_, err := d.RecordCopies(ctx, 0, []Copy{{Repository: repo, Digest: digest}})
	return err
}

// Copy is one finished write of a promotion: Repository holds Digest
// (complete, with its children and blobs), and, when Tag is set, Tag points
// at it.
type Copy struct {
	Repository, Digest, Tag string
}

// RecordCopies records finished copies and tags in order, in one
// transaction: a digest as RecordDigest does, a tag as now pointing at its
// digest (which the repository holds) with its tag history under run runID
// (0: none). It returns the tag changes. Promotion batches what its copies finish into
// one call every few milliseconds: SQLite takes one writer at a time, and a
// transaction per record made copies queue on the write lock. A copy is
// recorded after it happened, so a batch lost to a crash only means a
// rerun redoes (idempotently) what it held.
func (d *DB) RecordCopies(ctx context.Context, runID int64, cs []Copy) ([]TagChange, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("record %s@%s: %w", cs[0].Repository, cs[0].Digest, err)
	}
	defer tx.Rollback()
	ids := map[string]int64{}
	recorded := map[heldDigest]bool{}
	now := d.now()
	var changes []TagChange
	for _, c := range cs {
		repoID, ok := ids[c.Repository]
		if !ok {
			if repoID, err = upsertRepository(ctx, tx, c.Repository); err != nil {
				return nil, fmt.Errorf("record %s@%s: %w", c.Repository, c.Digest, err)
			}
			ids[c.Repository] = repoID
		}
		// A tag's digest is held too (the plan relies on it); a batch
		// usually holds the digest's own record just before its tags.
		if k := (heldDigest{repoID, c.Digest}); !recorded[k] {
			err = recordDigest(ctx, tx, repoID, c)
			recorded[k] = true
		}
		if err == nil && c.Tag != "" {
			var tc TagChange
			tc, err = recordTag(ctx, tx, runID, repoID, c, now)
			if tc.Change != "" {
				changes = append(changes, tc)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("record %s@%s: %w", cs[0].Repository, cs[0].Digest, err)
	}
	return changes, nil
}

// heldDigest is a (repository, digest) pair RecordCopies recorded.
type heldDigest struct {
	repo   int64
	digest string
}

func recordDigest(ctx context.Context, tx *sql.Tx, repoID int64, c Copy) error {
	if _, err := tx.ExecContext(ctx, `
		WITH RECURSIVE reach(digest) AS (
			SELECT ?2
			UNION
			SELECT c.child_digest FROM manifest_children c JOIN reach r ON c.parent_digest = r.digest
		)
		INSERT OR IGNORE INTO repository_manifests(repository_id, digest)
		SELECT ?1, r.digest FROM reach r JOIN manifests m ON m.digest = r.digest`, repoID, c.Digest); err != nil {
		return fmt.Errorf("record %s@%s: %w", c.Repository, c.Digest, err)
	}
	return nil
}

func recordTag(ctx context.Context, tx *sql.Tx, runID, repoID int64, c Copy, now string) (TagChange, error) {
	var old string
	err := tx.QueryRowContext(ctx, `SELECT digest FROM tags WHERE repository_id = ? AND tag = ?`, repoID, c.Tag).Scan(&old)
	if err != nil && err != sql.ErrNoRows {
		return TagChange{}, fmt.Errorf("record tag %s:%s: %w", c.Repository, c.Tag, err)
	}
	if old == c.Digest {
		// Put again (or found) at the same digest: confirmed now.
		if _, err := tx.ExecContext(ctx, `UPDATE tags SET checked_at = ? WHERE repository_id = ? AND tag = ?`, now, repoID, c.Tag); err != nil {
			return TagChange{}, fmt.Errorf("record tag %s:%s: %w", c.Repository, c.Tag, err)
		}
		return TagChange{}, nil
	}
	tc := TagChange{Repository: c.Repository, Tag: c.Tag, Old: old, New: c.Digest, Change: "added"}
	if old != "" {
		tc.Change = "moved"
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO tags(repository_id, tag, digest, updated_at, checked_at) VALUES (?, ?, ?, ?, ?4)
		ON CONFLICT(repository_id, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at, checked_at = excluded.checked_at`,
		repoID, c.Tag, c.Digest, now); err != nil {
		return TagChange{}, fmt.Errorf("record tag %s:%s: %w", c.Repository, c.Tag, err)
	}
	if err := insertHistory(ctx, tx, runID, tc, now); err != nil {
		return TagChange{}, err
	}
	return tc, nil
}

// BlobRepository names a repository of registry host that holds blob, as
// far as the inventory knows (a manifest there references it), preferring
// repositories equal to or below prefix; "" when none does. Promotion
// mounts from it instead of sending the blob again.
func (d *DB) BlobRepository(ctx context.Context, host, prefix, blob string) (string, error) {
	var name string
	err := d.cached().QueryRowContext(ctx, `
		SELECT r.name FROM manifest_blobs b
		JOIN repository_manifests rm ON rm.digest = b.manifest_digest
		JOIN repositories r ON r.id = rm.repository_id
		WHERE b.blob_digest = ? AND r.registry = ?
		ORDER BY NOT `+underSQL("r.name")+`, r.name LIMIT 1`, append([]any{blob, host}, underArgs(prefix)...)...).Scan(&name)
	if err == sql.ErrNoRows {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up blob %s in %s: %w", blob, host, err)
	}
	return name, nil
}

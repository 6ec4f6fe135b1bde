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
	if err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM repositories WHERE name = ?`, repo).Scan(&n); err != nil {
		return false, fmt.Errorf("look up repository %s: %w", repo, err)
	}
	return n > 0, nil
}

// HasDigest reports whether the inventory records digest in repo.
func (d *DB) HasDigest(ctx context.Context, repo, digest string) (bool, error) {
	var n int
	err := d.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id
		WHERE r.name = ? AND rm.digest = ?`, repo, digest).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up %s@%s: %w", repo, digest, err)
	}
	return n > 0, nil
}

// RecordDigest records, in one transaction, that repo holds digest (a
// manifest the inventory knows) and, for an index, every child reachable
// from it that the inventory knows. Promotion calls it after each complete
// copy, and after a live HEAD finds a digest that a tag listing cannot show.
func (d *DB) RecordDigest(ctx context.Context, repo, digest string) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record %s@%s: %w", repo, digest, err)
	}
	defer tx.Rollback()
	repoID, err := upsertRepository(ctx, tx, repo)
	if err != nil {
		return fmt.Errorf("record %s@%s: %w", repo, digest, err)
	}
	if _, err := tx.ExecContext(ctx, `
		WITH RECURSIVE reach(digest) AS (
			SELECT ?2
			UNION
			SELECT c.child_digest FROM manifest_children c JOIN reach r ON c.parent_digest = r.digest
		)
		INSERT OR IGNORE INTO repository_manifests(repository_id, digest)
		SELECT ?1, r.digest FROM reach r JOIN manifests m ON m.digest = r.digest`, repoID, digest); err != nil {
		return fmt.Errorf("record %s@%s: %w", repo, digest, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record %s@%s: %w", repo, digest, err)
	}
	return nil
}

// RecordTag records, in one transaction, that repo's tag now points at
// digest (which repo holds), with its tag history under run runID (0: none).
func (d *DB) RecordTag(ctx context.Context, runID int64, repo, tag, digest string) (TagChange, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return TagChange{}, fmt.Errorf("record tag %s:%s: %w", repo, tag, err)
	}
	defer tx.Rollback()
	repoID, err := upsertRepository(ctx, tx, repo)
	if err != nil {
		return TagChange{}, fmt.Errorf("record tag %s:%s: %w", repo, tag, err)
	}
	var old string
	err = tx.QueryRowContext(ctx, `SELECT digest FROM tags WHERE repository_id = ? AND tag = ?`, repoID, tag).Scan(&old)
	if err != nil && err != sql.ErrNoRows {
		return TagChange{}, fmt.Errorf("record tag %s:%s: %w", repo, tag, err)
	}
	c := TagChange{Repository: repo, Tag: tag, Old: old, New: digest, Change: "added"}
	if old == digest {
		return TagChange{}, tx.Commit()
	}
	if old != "" {
		c.Change = "moved"
	}
	now := d.now()
	if _, err := tx.ExecContext(ctx, `INSERT INTO tags(repository_id, tag, digest, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(repository_id, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
		repoID, tag, digest, now); err != nil {
		return TagChange{}, fmt.Errorf("record tag %s:%s: %w", repo, tag, err)
	}
	if err := insertHistory(ctx, tx, runID, c, now); err != nil {
		return TagChange{}, err
	}
	if err := tx.Commit(); err != nil {
		return TagChange{}, fmt.Errorf("record tag %s:%s: %w", repo, tag, err)
	}
	return c, nil
}

// BlobRepository names a repository of registry host that holds blob, as
// far as the inventory knows (a manifest there references it), preferring
// repositories equal to or below prefix; "" when none does. Promotion
// mounts from it instead of sending the blob again.
func (d *DB) BlobRepository(ctx context.Context, host, prefix, blob string) (string, error) {
	var name string
	err := d.db.QueryRowContext(ctx, `
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

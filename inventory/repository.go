package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// RepositoryState is what one crawl of a repository found.
type RepositoryState struct {
	Name string            // full name: host[:port]/path
	Tags map[string]string // tag -> digest
	// Untagged are digests the repository holds without a tag: those GCR's
	// listing names, or (elsewhere) those the inventory knew untagged and
	// a HEAD by digest confirmed (UntaggedDigests).
	Untagged []string
	// New holds every manifest reachable from Tags and Untagged that is not
	// yet in the inventory (children included).
	New []*Manifest
	// Trusted names the tags of Tags the crawl took from the inventory
	// (FreshTags) instead of confirming them live; the write keeps their
	// checked_at, and sets every other tag's to now.
	Trusted map[string]bool
}

// TagChange is one change to a tag found by a write.
type TagChange struct {
	Repository string
	Tag        string
	Old, New   string // empty when added / removed
	Change     string // added, moved, removed
}

// KnownDigests returns which of digests are already in the inventory.
func (d *DB) KnownDigests(ctx context.Context, digests []string) (map[string]bool, error) {
	known := map[string]bool{}
	if len(digests) == 0 {
		return known, nil
	}
	// The list as one JSON parameter: one statement text whatever the
	// count, prepared once (d.cached), where a list of placeholders was
	// parsed again for every call (a crawl asks once per repository).
	list, err := json.Marshal(digests)
	if err != nil {
		return nil, fmt.Errorf("look up digests: %w", err)
	}
	rows, err := d.cached().QueryContext(ctx, `SELECT digest FROM manifests WHERE digest IN (SELECT value FROM json_each(?))`, string(list))
	if err != nil {
		return nil, fmt.Errorf("look up digests: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("look up digests: %w", err)
		}
		known[s] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up digests: %w", err)
	}
	return known, nil
}

// Tags returns a repository's tags (tag -> digest); empty when unknown.
func (d *DB) Tags(ctx context.Context, repo string) (map[string]string, error) {
	return queryTags(ctx, d.cached(), repo)
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func queryTags(ctx context.Context, q querier, repo string) (map[string]string, error) {
	return tagMap(ctx, q, "read tags of "+repo, `SELECT t.tag, t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = ?`, repo)
}

// tagMap reads a (tag, digest) query into a map; what names the read in
// errors.
func tagMap(ctx context.Context, q querier, what, query string, args ...any) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var t, dg string
		if err := rows.Scan(&t, &dg); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out[t] = dg
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// Repositories returns the names of known repositories equal to or below
// prefix, sorted.
func (d *DB) Repositories(ctx context.Context, prefix string) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name FROM repositories WHERE `+underSQL("name")+` ORDER BY name`, underArgs(prefix)...)
	if err != nil {
		return nil, fmt.Errorf("list repositories under %s: %w", prefix, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// WriteRepository records one crawl of a repository in one transaction:
// new manifests, the repository's digests and tags, and tag history. A
// crawl that found the repository as the inventory has it (same tags, no
// new manifest, the digests it holds exactly those its tags reach) only
// updates synced_at (and the tags' checked_at).
func (d *DB) WriteRepository(ctx context.Context, runID int64, st RepositoryState) ([]TagChange, error) {
	res, err := d.WriteRepositories(ctx, runID, []RepositoryState{st})
	if err != nil {
		return nil, err
	}
	return res[0].Changes, res[0].Err
}

// WriteResult is what WriteRepositories did with one repository.
type WriteResult struct {
	Changes []TagChange
	Err     error // this repository's write failed and left nothing
}

// WriteRepositories records several crawls in one transaction, each
// repository inside its own savepoint: a repository whose write fails is
// rolled back alone (its WriteResult.Err), the others commit together.
// A crawl writes what finished while its previous batch committed, so a
// registry of many small repositories costs a few commits, not one each.
// The returned error is the transaction's (every repository failed).
func (d *DB) WriteRepositories(ctx context.Context, runID int64, sts []RepositoryState) ([]WriteResult, error) {
	res := make([]WriteResult, len(sts))
	if len(sts) == 0 {
		return res, nil
	}
	tx, err := d.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("write repository %s: %w", sts[0].Name, err)
	}
	defer tx.Rollback()
	now := d.now()
	for i, st := range sts {
		if _, err := tx.ExecContext(ctx, `SAVEPOINT repository`); err != nil {
			return nil, fmt.Errorf("write repository %s: %w", st.Name, err)
		}
		changes, err := d.writeOne(ctx, tx, runID, st, now)
		if err != nil {
			res[i].Err = fmt.Errorf("write repository %s: %w", st.Name, err)
			if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO repository`); rerr != nil {
				// SQLite rolled the whole transaction back itself (a full
				// disk, an I/O error): the savepoint went with it, and so
				// did the batch. The cause is err; the failed ROLLBACK TO
				// ("no such savepoint") would hide it.
				return nil, res[i].Err
			}
		} else {
			res[i].Changes = changes
		}
		if _, err := tx.ExecContext(ctx, `RELEASE repository`); err != nil {
			return nil, fmt.Errorf("write repository %s: %w", st.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("write repository %s: %w", sts[0].Name, err)
	}
	return res, nil
}

// writeOne writes one crawl inside tx: only synced_at and checked_at when
// the inventory already holds the repository as st has it.
func (d *DB) writeOne(ctx context.Context, tx *cachedTx, runID int64, st RepositoryState, now string) ([]TagChange, error) {
	if len(st.New) == 0 {
		id, same, err := unchanged(ctx, tx, st)
		if err != nil {
			return nil, err
		}
		if same {
			if _, err := tx.ExecContext(ctx, `UPDATE repositories SET synced_at = ? WHERE id = ?`, now, id); err != nil {
				return nil, err
			}
			return nil, markChecked(ctx, tx, id, st, now)
		}
	}
	return writeRepository(ctx, tx, runID, st, now)
}

// unchanged reports whether the inventory already holds repository
// st.Name exactly as a full write of st (which has no new manifest) would
// leave it.
func unchanged(ctx context.Context, tx *cachedTx, st RepositoryState) (int64, bool, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM repositories WHERE name = ?`, st.Name).Scan(&id)
	if err == sql.ErrNoRows {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	old, err := queryTags(ctx, tx, st.Name)
	if err != nil {
		return 0, false, err
	}
	if len(old) != len(st.Tags) {
		return id, false, nil
	}
	for t, dg := range st.Tags {
		if old[t] != dg {
			return id, false, nil
		}
	}
	// The digests held are exactly those the tags and the untagged digests
	// reach (as the full write would record them): nothing left over from
	// before, nothing missing.
	untagged, err := json.Marshal(append([]string{}, st.Untagged...)) // [] rather than null
	if err != nil {
		return 0, false, err
	}
	var same bool
	err = tx.QueryRowContext(ctx, `
		WITH RECURSIVE reach(digest) AS (
			SELECT digest FROM tags WHERE repository_id = ?1
			UNION
			SELECT value FROM json_each(?2)
			UNION
			SELECT c.child_digest FROM manifest_children c JOIN reach r ON c.parent_digest = r.digest
		), want AS (SELECT r.digest FROM reach r JOIN manifests m ON m.digest = r.digest)
		SELECT (SELECT COUNT(*) FROM want) = (SELECT COUNT(*) FROM repository_manifests WHERE repository_id = ?1)
			AND NOT EXISTS (SELECT 1 FROM want w WHERE NOT EXISTS (
				SELECT 1 FROM repository_manifests rm WHERE rm.repository_id = ?1 AND rm.digest = w.digest))`, id, string(untagged)).Scan(&same)
	if err != nil {
		return 0, false, err
	}
	return id, same, nil
}

func writeRepository(ctx context.Context, tx *cachedTx, runID int64, st RepositoryState, now string) ([]TagChange, error) {
	if err := insertManifests(ctx, tx, st.New, now); err != nil {
		return nil, err
	}
	repoID, err := upsertRepository(ctx, tx, st.Name)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM repository_manifests WHERE repository_id = ?`, repoID); err != nil {
		return nil, err
	}
	roots := make([]string, 0, len(st.Tags)+len(st.Untagged))
	for _, dg := range st.Tags {
		roots = append(roots, dg)
	}
	roots = append(roots, st.Untagged...)
	for _, dg := range roots {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO repository_manifests(repository_id, digest) VALUES (?, ?)`, repoID, dg); err != nil {
			return nil, fmt.Errorf("record digest %s: %w", dg, err)
		}
	}
	// Children of every index the repository holds, however deeply nested.
	if _, err := tx.ExecContext(ctx, `
		WITH RECURSIVE reach(digest) AS (
			SELECT digest FROM repository_manifests WHERE repository_id = ?1
			UNION
			SELECT c.child_digest FROM manifest_children c JOIN reach r ON c.parent_digest = r.digest
		)
		INSERT OR IGNORE INTO repository_manifests(repository_id, digest)
		SELECT ?1, r.digest FROM reach r JOIN manifests m ON m.digest = r.digest`, repoID); err != nil {
		return nil, fmt.Errorf("record children: %w", err)
	}
	old, err := queryTags(ctx, tx, st.Name)
	if err != nil {
		return nil, err
	}
	changes := diffTags(st.Name, old, st.Tags)
	for _, c := range changes {
		switch c.Change {
		case "removed":
			_, err = tx.ExecContext(ctx, `DELETE FROM tags WHERE repository_id = ? AND tag = ?`, repoID, c.Tag)
		default:
			_, err = tx.ExecContext(ctx, `INSERT INTO tags(repository_id, tag, digest, updated_at) VALUES (?, ?, ?, ?)
				ON CONFLICT(repository_id, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
				repoID, c.Tag, c.New, now)
		}
		if err != nil {
			return nil, fmt.Errorf("record tag %s: %w", c.Tag, err)
		}
		if err := insertHistory(ctx, tx, runID, c, now); err != nil {
			return nil, err
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE repositories SET synced_at = ? WHERE id = ?`, now, repoID); err != nil {
		return nil, err
	}
	if err := markChecked(ctx, tx, repoID, st, now); err != nil {
		return nil, err
	}
	if err := deriveReferrersOf(ctx, tx.Tx, repoID); err != nil {
		return nil, err
	}
	return changes, nil
}

// markChecked sets checked_at to now for the tags of st the crawl
// confirmed live (all but st.Trusted).
func markChecked(ctx context.Context, tx txn, repoID int64, st RepositoryState, now string) error {
	if len(st.Trusted) == 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE tags SET checked_at = ? WHERE repository_id = ?`, now, repoID); err != nil {
			return fmt.Errorf("mark tags checked: %w", err)
		}
		return nil
	}
	for tag := range st.Tags {
		if st.Trusted[tag] {
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tags SET checked_at = ? WHERE repository_id = ? AND tag = ?`, now, repoID, tag); err != nil {
			return fmt.Errorf("mark tag %s checked: %w", tag, err)
		}
	}
	return nil
}

// FreshTags returns the tags of repo (tag -> digest) that cip confirmed
// live at or after since: what a crawl with a tag TTL may take from the
// inventory for tags the registry still lists.
func (d *DB) FreshTags(ctx context.Context, repo string, since time.Time) (map[string]string, error) {
	return tagMap(ctx, d.cached(), "read fresh tags of "+repo, `SELECT t.tag, t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id
		WHERE r.name = ? AND julianday(t.checked_at) >= julianday(?)`, repo, since.UTC().Format(time.RFC3339Nano))
}

func insertHistory(ctx context.Context, tx txn, runID int64, c TagChange, now string) error {
	var run any
	if runID > 0 {
		run = runID
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO tag_history(repository, tag, old_digest, new_digest, change, at, sync_run_id)
		VALUES (?, ?, NULLIF(?, ''), NULLIF(?, ''), ?, ?, ?)`, c.Repository, c.Tag, c.Old, c.New, c.Change, now, run)
	if err != nil {
		return fmt.Errorf("record tag history %s:%s: %w", c.Repository, c.Tag, err)
	}
	return nil
}

func diffTags(repo string, old, cur map[string]string) []TagChange {
	var out []TagChange
	for t, dg := range cur {
		switch was, ok := old[t]; {
		case !ok:
			out = append(out, TagChange{Repository: repo, Tag: t, New: dg, Change: "added"})
		case was != dg:
			out = append(out, TagChange{Repository: repo, Tag: t, Old: was, New: dg, Change: "moved"})
		}
	}
	for t, was := range old {
		if _, ok := cur[t]; !ok {
			out = append(out, TagChange{Repository: repo, Tag: t, Old: was, Change: "removed"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out
}

func upsertRepository(ctx context.Context, tx txn, name string) (int64, error) {
	reg, path := SplitRepository(name)
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO repositories(registry, path, name) VALUES (?, ?, ?)`, reg, path, name); err != nil {
		return 0, fmt.Errorf("record repository: %w", err)
	}
	var id int64
	if err := tx.QueryRowContext(ctx, `SELECT id FROM repositories WHERE name = ?`, name).Scan(&id); err != nil {
		return 0, fmt.Errorf("record repository: %w", err)
	}
	return id, nil
}

// InsertManifests records manifests (already-known digests are left as they
// are) in one transaction.
func (d *DB) InsertManifests(ctx context.Context, ms []*Manifest) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record manifests: %w", err)
	}
	defer tx.Rollback()
	if err := insertManifests(ctx, tx, ms, d.now()); err != nil {
		return fmt.Errorf("record manifests: %w", err)
	}
	return tx.Commit()
}

func insertManifests(ctx context.Context, tx txn, ms []*Manifest, now string) error {
	if len(ms) == 0 {
		return nil
	}
	ins, err := prepareInserts(ctx, tx)
	if err != nil {
		return err
	}
	defer ins.close()
	for _, m := range ms {
		res, err := ins.manifest.ExecContext(ctx, m.Digest, m.MediaType, len(m.Raw), m.IsIndex, m.ConfigDigest, m.Raw, now, m.Subject, m.ArtifactType)
		if err != nil {
			return fmt.Errorf("record manifest %s: %w", m.Digest, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // already known: content-addressed, nothing to add
		}
		if err := ins.derived(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// inserts are the prepared statements that record manifests.
type inserts struct {
	manifest, child, blob *sql.Stmt
}

func prepareInserts(ctx context.Context, tx txn) (*inserts, error) {
	ins := &inserts{}
	var err error
	if ins.manifest, err = tx.PrepareContext(ctx, `INSERT OR IGNORE INTO manifests(digest, media_type, size, is_index, config_digest, raw, fetched_at, subject_digest, artifact_type)
		VALUES (?, ?, ?, ?, NULLIF(?, ''), ?, ?, NULLIF(?, ''), NULLIF(?, ''))`); err != nil {
		return nil, err
	}
	if ins.child, err = tx.PrepareContext(ctx, `INSERT OR IGNORE INTO manifest_children(parent_digest, position, child_digest, media_type, size, os, architecture, variant) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`); err != nil {
		ins.close()
		return nil, err
	}
	if ins.blob, err = tx.PrepareContext(ctx, `INSERT OR IGNORE INTO manifest_blobs(manifest_digest, position, kind, blob_digest, media_type, size) VALUES (?, ?, ?, ?, ?, ?)`); err != nil {
		ins.close()
		return nil, err
	}
	return ins, nil
}

func (ins *inserts) close() {
	for _, st := range []*sql.Stmt{ins.manifest, ins.child, ins.blob} {
		if st != nil {
			st.Close()
		}
	}
}

// derived records what the inventory reads out of m's bytes: its children
// (an index) or its config and layers (an image).
func (ins *inserts) derived(ctx context.Context, m *Manifest) error {
	for i, c := range m.Children {
		if _, err := ins.child.ExecContext(ctx, m.Digest, i, c.Digest, c.MediaType, c.Size, c.OS, c.Architecture, c.Variant); err != nil {
			return fmt.Errorf("record child %s of %s: %w", c.Digest, m.Digest, err)
		}
	}
	for i, b := range m.Blobs {
		if _, err := ins.blob.ExecContext(ctx, m.Digest, i, b.Kind, b.Digest, b.MediaType, b.Size); err != nil {
			return fmt.Errorf("record blob %s of %s: %w", b.Digest, m.Digest, err)
		}
	}
	return nil
}

// RemoveRepository forgets a repository that no longer exists, recording
// the removal of each of its tags.
func (d *DB) RemoveRepository(ctx context.Context, runID int64, name string) ([]TagChange, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("remove repository %s: %w", name, err)
	}
	defer tx.Rollback()
	old, err := queryTags(ctx, tx, name)
	if err != nil {
		return nil, err
	}
	changes := diffTags(name, old, nil)
	now := d.now()
	for _, c := range changes {
		if err := insertHistory(ctx, tx, runID, c, now); err != nil {
			return nil, err
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM repositories WHERE name = ?`, name); err != nil {
		return nil, fmt.Errorf("remove repository %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("remove repository %s: %w", name, err)
	}
	return changes, nil
}

// Manifest returns a manifest by digest, with its children and blobs,
// after checking its stored bytes: they must still verify as the digest,
// and its recorded children, blobs, size and kind must be what they say
// (the manifest is read from the bytes). A damaged row is a *CorruptError
// (errors.Is ErrCorrupt), never returned: fetch the manifest again and
// RepairManifest.
func (d *DB) Manifest(ctx context.Context, digest string) (*Manifest, error) {
	return readManifest(ctx, d.cached(), digest)
}

// LargestImage returns the largest image digest stands for, with its size
// (manifest, config and layers, the manifest_sizes view): digest itself
// when it is an image manifest, else the largest of its children (ties go
// to the smaller digest). It returns ErrNotFound when the inventory has no
// size for it: the digest is unknown, or an index none of whose children
// is recorded.
func (d *DB) LargestImage(ctx context.Context, digest string) (string, int64, error) {
	var which string
	var size int64
	err := d.db.QueryRowContext(ctx, `
		SELECT s.digest, s.total_size FROM manifest_sizes s
		WHERE s.digest = ? AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = s.digest AND m.is_index = 1)
		   OR s.digest IN (SELECT child_digest FROM manifest_children WHERE parent_digest = ?)
		ORDER BY s.total_size DESC, s.digest LIMIT 1`, digest, digest).Scan(&which, &size)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, fmt.Errorf("read size of %s: %w", digest, ErrNotFound)
	}
	if err != nil {
		return "", 0, fmt.Errorf("read size of %s: %w", digest, err)
	}
	return which, size, nil
}

// Content is one digest held by a repository, with its tags.
type Content struct {
	Repository string
	Digest     string
	MediaType  string
	Tags       []string // sorted
	// Child is true when the digest is untagged and is a child of an index
	// the same repository holds (what --minimal snapshots drop).
	Child bool
	// Referrer is true when the repository holds the digest as a referrer
	// of another (a signature, attestation, SBOM) or as a sha256-<hex>
	// index of referrers.
	Referrer bool
}

// Contents lists every digest held by repositories equal to or below
// prefix, ordered by repository and digest.
func (d *DB) Contents(ctx context.Context, prefix string) ([]Content, error) {
	rows, err := d.db.QueryContext(ctx, `
		SELECT r.name, rm.digest, m.media_type,
			(SELECT json_group_array(tag) FROM (SELECT t.tag FROM tags t WHERE t.repository_id = r.id AND t.digest = rm.digest ORDER BY t.tag)),
			EXISTS (SELECT 1 FROM manifest_children c JOIN repository_manifests p ON p.digest = c.parent_digest AND p.repository_id = r.id
				WHERE c.child_digest = rm.digest),
			EXISTS (SELECT 1 FROM referrers f WHERE f.repository_id = r.id AND f.referrer_digest = rm.digest)
			OR EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = r.id AND t.digest = rm.digest
				AND substr(t.tag, 1, 7) = 'sha256-' AND length(t.tag) = 71)
		FROM repository_manifests rm
		JOIN repositories r ON r.id = rm.repository_id
		JOIN manifests m ON m.digest = rm.digest
		WHERE `+underSQL("r.name")+`
		ORDER BY r.name, rm.digest`, underArgs(prefix)...)
	if err != nil {
		return nil, fmt.Errorf("read contents of %s: %w", prefix, err)
	}
	defer rows.Close()
	var out []Content
	for rows.Next() {
		var c Content
		var tags string
		var isChild bool
		if err := rows.Scan(&c.Repository, &c.Digest, &c.MediaType, &tags, &isChild, &c.Referrer); err != nil {
			return nil, err
		}
		// A JSON array: a tag is whatever the registry sent (a space in it
		// must not split it).
		if err := json.Unmarshal([]byte(tags), &c.Tags); err != nil {
			return nil, fmt.Errorf("read contents of %s: tags of %s@%s: %w", prefix, c.Repository, c.Digest, err)
		}
		if len(c.Tags) == 0 {
			c.Tags = nil
		}
		sort.Strings(c.Tags)
		c.Child = isChild && len(c.Tags) == 0
		out = append(out, c)
	}
	return out, rows.Err()
}

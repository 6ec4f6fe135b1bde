package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/cipdev/cip/internal/digest"
)

// ErrCorrupt is wrapped by the errors for inventory content that is
// damaged: a manifest whose stored bytes no longer verify as its digest,
// or whose recorded children, blobs or media type disagree with its bytes.
// SQLite keeps no page checksums, so a flipped bit in a manifest's bytes
// passes PRAGMA integrity_check; only re-hashing finds it.
var ErrCorrupt = errors.New("corrupt inventory")

// CorruptError names a damaged manifest row and what is wrong with it.
type CorruptError struct {
	Digest string
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("manifest %s in the inventory is corrupt: %s", e.Digest, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// storedManifest is a manifests row as read, before it is trusted.
type storedManifest struct {
	mediaType, config     string
	subject, artifactType string
	raw                   []byte
	size                  int64
	isIndex               bool
}

// readManifest reads digest's row and checks it against its own bytes:
// the bytes verify as the digest (internal/digest, the rule they were
// recorded by), the media type is one cip accepts, and size, is_index,
// config_digest, children and blobs are what the bytes say. It returns
// the manifest parsed from the verified bytes, so that nothing a damaged
// row says is used; a damaged row is a *CorruptError.
func readManifest(ctx context.Context, q interface {
	querier
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}, dg string) (*Manifest, error) {
	var st storedManifest
	var cfg, subject, artifactType sql.NullString
	err := q.QueryRowContext(ctx, `SELECT media_type, raw, size, is_index, config_digest, subject_digest, artifact_type FROM manifests WHERE digest = ?`, dg).
		Scan(&st.mediaType, &st.raw, &st.size, &st.isIndex, &cfg, &subject, &artifactType)
	if err == sql.ErrNoRows {
		return nil, fmt.Errorf("read manifest %s: %w", dg, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", dg, err)
	}
	st.config, st.subject, st.artifactType = cfg.String, subject.String, artifactType.String
	corrupt := func(format string, args ...any) error {
		return &CorruptError{Digest: dg, Reason: fmt.Sprintf(format, args...)}
	}
	if err := digest.VerifyManifest(dg, st.mediaType, st.raw); err != nil {
		return nil, corrupt("its stored bytes do not verify: %v", err)
	}
	// The media type is what the registry said, which its bytes cannot
	// confirm; a damaged one shows as an is_index, config, children or
	// blobs that the bytes read under it do not give.
	m, err := ParseManifest(dg, st.mediaType, st.raw)
	if err != nil {
		return nil, corrupt("%v", err)
	}
	if st.size != int64(len(st.raw)) || st.isIndex != m.IsIndex || st.config != m.ConfigDigest {
		return nil, corrupt("size %d, is_index %v, config %q, but its bytes give %d, %v, %q", st.size, st.isIndex, st.config, len(st.raw), m.IsIndex, m.ConfigDigest)
	}
	if st.subject != m.Subject || st.artifactType != m.ArtifactType {
		return nil, corrupt("subject %q, artifact type %q, but its bytes give %q, %q", st.subject, st.artifactType, m.Subject, m.ArtifactType)
	}
	var children []Child
	rows, err := q.QueryContext(ctx, `SELECT child_digest, media_type, size, os, architecture, variant FROM manifest_children WHERE parent_digest = ? ORDER BY position`, dg)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", dg, err)
	}
	for rows.Next() {
		var c Child
		if err := rows.Scan(&c.Digest, &c.MediaType, &c.Size, &c.OS, &c.Architecture, &c.Variant); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read manifest %s: %w", dg, err)
		}
		children = append(children, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", dg, err)
	}
	if !slices.Equal(children, m.Children) {
		return nil, corrupt("its recorded children differ from those its bytes list")
	}
	var blobs []Blob
	rows, err = q.QueryContext(ctx, `SELECT blob_digest, media_type, kind, size FROM manifest_blobs WHERE manifest_digest = ? ORDER BY position`, dg)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", dg, err)
	}
	defer rows.Close()
	for rows.Next() {
		var b Blob
		if err := rows.Scan(&b.Digest, &b.MediaType, &b.Kind, &b.Size); err != nil {
			return nil, fmt.Errorf("read manifest %s: %w", dg, err)
		}
		blobs = append(blobs, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", dg, err)
	}
	if !slices.Equal(blobs, m.Blobs) {
		return nil, corrupt("its recorded blobs differ from those its bytes list")
	}
	return m, nil
}

// RepairManifest replaces digest m.Digest's row, and its children and
// blobs, with m: bytes fetched again from a registry after the inventory's
// copy was found corrupt. m must verify as its digest; in one transaction.
func (d *DB) RepairManifest(ctx context.Context, m *Manifest) error {
	if err := digest.VerifyManifest(m.Digest, m.MediaType, m.Raw); err != nil {
		return fmt.Errorf("repair manifest %s: %w", m.Digest, err)
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("repair manifest %s: %w", m.Digest, err)
	}
	defer tx.Rollback()
	for _, q := range []string{`DELETE FROM manifest_children WHERE parent_digest = ?`, `DELETE FROM manifest_blobs WHERE manifest_digest = ?`} {
		if _, err := tx.ExecContext(ctx, q, m.Digest); err != nil {
			return fmt.Errorf("repair manifest %s: %w", m.Digest, err)
		}
	}
	// The row stays (repository_manifests and tags refer to it): its
	// content is replaced, then the children and blobs are added again.
	if _, err := tx.ExecContext(ctx, `UPDATE manifests SET media_type = ?, size = ?, is_index = ?, config_digest = NULLIF(?, ''), raw = ?, fetched_at = ?,
		subject_digest = NULLIF(?, ''), artifact_type = NULLIF(?, '') WHERE digest = ?`,
		m.MediaType, len(m.Raw), m.IsIndex, m.ConfigDigest, m.Raw, d.now(), m.Subject, m.ArtifactType, m.Digest); err != nil {
		return fmt.Errorf("repair manifest %s: %w", m.Digest, err)
	}
	ins, err := prepareInserts(ctx, tx)
	if err != nil {
		return fmt.Errorf("repair manifest %s: %w", m.Digest, err)
	}
	defer ins.close()
	if err := ins.derived(ctx, m); err != nil {
		return fmt.Errorf("repair manifest %s: %w", m.Digest, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("repair manifest %s: %w", m.Digest, err)
	}
	return nil
}

// verified returns the manifest raw is, when it verifies as digest dg
// (read from its bytes, as ParseManifest does).
func verified(dg, mediaType string, raw []byte) (*Manifest, error) {
	if err := digest.VerifyManifest(dg, mediaType, raw); err != nil {
		return nil, err
	}
	return ParseManifest(dg, mediaType, raw)
}

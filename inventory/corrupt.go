package inventory

import (
	"cmp"
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
func readManifest(ctx context.Context, q querier, dg string) (*Manifest, error) {
	// One statement, so one read transaction: the row (kind 0), its
	// children (1) and its blobs (2), in columns of one type each (c4-c6
	// are NULL where a kind has nothing there), put in position order here
	// (an ORDER BY on the compound sorts in a temporary b-tree). A warm run
	// reads every wanted source digest and child this way.
	rows, err := q.QueryContext(ctx, `
		SELECT 0, media_type, raw, size, config_digest, subject_digest, artifact_type, is_index FROM manifests WHERE digest = ?1
		UNION ALL
		SELECT 1, child_digest, media_type, size, os, architecture, variant, position FROM manifest_children WHERE parent_digest = ?1
		UNION ALL
		SELECT 2, blob_digest, media_type, size, kind, NULL, NULL, position FROM manifest_blobs WHERE manifest_digest = ?1`, dg)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", dg, err)
	}
	defer rows.Close()
	var st storedManifest
	type at[T any] struct {
		pos int64
		v   T
	}
	var children []at[Child]
	var blobs []at[Blob]
	found := false
	for rows.Next() {
		var kind int
		var c1 string
		var c2 []byte
		var c3, c7 int64
		var c4, c5, c6 sql.NullString
		if err := rows.Scan(&kind, &c1, &c2, &c3, &c4, &c5, &c6, &c7); err != nil {
			return nil, fmt.Errorf("read manifest %s: %w", dg, err)
		}
		switch kind {
		case 0:
			found = true
			st = storedManifest{mediaType: c1, raw: c2, size: c3, config: c4.String, subject: c5.String, artifactType: c6.String, isIndex: c7 != 0}
		case 1:
			children = append(children, at[Child]{c7, Child{Digest: c1, MediaType: string(c2), Size: c3, OS: c4.String, Architecture: c5.String, Variant: c6.String}})
		case 2:
			blobs = append(blobs, at[Blob]{c7, Blob{Digest: c1, MediaType: string(c2), Size: c3, Kind: c4.String}})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", dg, err)
	}
	if !found {
		return nil, fmt.Errorf("read manifest %s: %w", dg, ErrNotFound)
	}
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
	if !inOrder(children, m.Children, func(c at[Child]) (int64, Child) { return c.pos, c.v }) {
		return nil, corrupt("its recorded children differ from those its bytes list")
	}
	if !inOrder(blobs, m.Blobs, func(b at[Blob]) (int64, Blob) { return b.pos, b.v }) {
		return nil, corrupt("its recorded blobs differ from those its bytes list")
	}
	return m, nil
}

// inOrder reports whether the recorded rows, put in position order, are
// want.
func inOrder[R any, T comparable](rows []R, want []T, get func(R) (int64, T)) bool {
	if len(rows) != len(want) {
		return false
	}
	slices.SortFunc(rows, func(a, b R) int {
		pa, _ := get(a)
		pb, _ := get(b)
		return cmp.Compare(pa, pb)
	})
	for i, r := range rows {
		if _, v := get(r); v != want[i] {
			return false
		}
	}
	return true
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

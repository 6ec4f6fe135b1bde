package inventory_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	cipdigest "github.com/cipdev/cip/internal/digest"
	"github.com/cipdev/cip/inventory"
)

// realImage and realIndex are manifests whose digests are their bytes'.
func realImage(t *testing.T, n int) *inventory.Manifest {
	t.Helper()
	raw := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%064x","size":7},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%064x","size":%d}]}`, n, n+100, 1000+n)
	m, err := inventory.ParseManifest(cipdigest.SHA256(raw), "application/vnd.oci.image.manifest.v1+json", raw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func realIndex(t *testing.T, children ...*inventory.Manifest) *inventory.Manifest {
	t.Helper()
	var parts []string
	for i, c := range children {
		parts = append(parts, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d,"platform":{"os":"linux","architecture":"a%d"}}`, c.MediaType, c.Digest, len(c.Raw), i))
	}
	raw := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}`, strings.Join(parts, ","))
	m, err := inventory.ParseManifest(cipdigest.SHA256(raw), "application/vnd.oci.image.index.v1+json", raw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tamper runs a statement on the inventory file through a connection of
// the test's own, as damage on disk would change it behind cip's back.
func tamper(t *testing.T, path, stmt string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// Manifest re-hashes the stored bytes and checks the rows read out of
// them; a damaged row is a CorruptError naming the digest, and
// RepairManifest puts the verified bytes back.
func TestManifestFindsDamage(t *testing.T) {
	ctx := context.Background()
	a, b := realImage(t, 1), realImage(t, 2)
	idx := realIndex(t, a, b)
	for _, tt := range []struct {
		name, digest, stmt, want string
	}{
		{"a flipped byte", a.Digest, `UPDATE manifests SET raw = CAST(replace(CAST(raw AS TEXT), '"size":1001', '"size":1011') AS BLOB) WHERE digest = ?`, "do not verify"},
		{"a child row", idx.Digest, `UPDATE manifest_children SET architecture = 'x' WHERE parent_digest = ? AND position = 1`, "children differ"},
		{"a missing child row", idx.Digest, `DELETE FROM manifest_children WHERE parent_digest = ? AND position = 0`, "children differ"},
		{"a blob row", a.Digest, `UPDATE manifest_blobs SET size = 5 WHERE manifest_digest = ? AND kind = 'layer'`, "blobs differ"},
		{"the size", b.Digest, `UPDATE manifests SET size = 3 WHERE digest = ?`, "size 3"},
		{"is_index", idx.Digest, `UPDATE manifests SET is_index = 0 WHERE digest = ?`, "is_index false"},
		{"the media type", idx.Digest, `UPDATE manifests SET media_type = 'application/vnd.oci.image.manifest.v1+json' WHERE digest = ?`, "is_index true"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db, path := mustOpen(t)
			if err := db.InsertManifests(ctx, []*inventory.Manifest{a, b, idx}); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Manifest(ctx, tt.digest); err != nil {
				t.Fatalf("Manifest before any damage = %v", err)
			}
			tamper(t, path, tt.stmt, tt.digest)
			_, err := db.Manifest(ctx, tt.digest)
			var ce *inventory.CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, inventory.ErrCorrupt) || ce.Digest != tt.digest || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Manifest after damage = %v, want a CorruptError for %s saying %q", err, tt.digest, tt.want)
			}
			orig := map[string]*inventory.Manifest{a.Digest: a, b.Digest: b, idx.Digest: idx}[tt.digest]
			if err := db.RepairManifest(ctx, orig); err != nil {
				t.Fatal(err)
			}
			m, err := db.Manifest(ctx, tt.digest)
			if err != nil || string(m.Raw) != string(orig.Raw) {
				t.Fatalf("Manifest after the repair = %v, want the original bytes", err)
			}
		})
	}
	db, _ := mustOpen(t)
	bad := *a
	bad.Raw = append([]byte(nil), a.Raw...)
	bad.Raw[10] ^= 1
	if err := db.RepairManifest(ctx, &bad); !errors.Is(err, cipdigest.ErrMismatch) {
		t.Errorf("RepairManifest(bytes that do not verify) = %v, want ErrMismatch", err)
	}
}

// Salvage carries over the manifests that verify, but never an index
// without all its children: a crawl takes a known manifest as complete,
// so an index whose child was dropped is dropped too, and the indexes
// above it.
func TestSalvageDropsIncompleteIndexes(t *testing.T) {
	ctx := context.Background()
	a, b, c := realImage(t, 1), realImage(t, 2), realImage(t, 3)
	idx := realIndex(t, a, b)
	top := realIndex(t, idx, c)
	other := realIndex(t, c)
	old, path := mustOpen(t)
	if err := old.InsertManifests(ctx, []*inventory.Manifest{a, b, c, idx, top, other}); err != nil {
		t.Fatal(err)
	}
	tamper(t, path, `UPDATE manifests SET raw = CAST(replace(CAST(raw AS TEXT), '"size":1001', '"size":1011') AS BLOB) WHERE digest = ?`, a.Digest)
	fresh, _ := mustOpen(t)
	s, err := inventory.Salvage(ctx, path, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if s.Kept != 3 || s.Dropped != 3 {
		t.Errorf("Salvage kept %d, dropped %d; want 3 (b, c, the index of c) and 3 (a, the index of a and b, the index above it)", s.Kept, s.Dropped)
	}
	known, err := fresh.KnownDigests(ctx, []string{a.Digest, b.Digest, c.Digest, idx.Digest, top.Digest, other.Digest})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{b.Digest: true, c.Digest: true, other.Digest: true}
	for _, m := range []*inventory.Manifest{a, b, c, idx, top, other} {
		if known[m.Digest] != want[m.Digest] {
			t.Errorf("after Salvage, %s known = %v, want %v", m.Digest, known[m.Digest], want[m.Digest])
		}
	}
}

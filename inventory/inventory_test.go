package inventory_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipdev/cip/inventory"
)

func mustOpen(t *testing.T) (*inventory.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sub", "inv.db")
	db, err := inventory.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.Now = func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }
	return db, path
}

// queryRows reads a statement's rows through OpenReadOnly, as cip query
// does, on the inventory at path.
func queryRows(t *testing.T, path, q string, args ...any) [][]any {
	t.Helper()
	ctx := context.Background()
	r, err := inventory.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, err := r.Query(ctx, q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		out = append(out, rows.Row())
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// queryInt reads a statement's one number.
func queryInt(t *testing.T, path, q string, args ...any) int64 {
	t.Helper()
	rows := queryRows(t, path, q, args...)
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("%s = %v, want one number", q, rows)
	}
	n, ok := rows[0][0].(int64)
	if !ok {
		t.Fatalf("%s = %#v, want a number", q, rows[0][0])
	}
	return n
}

func digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

func image(c byte) *inventory.Manifest {
	return &inventory.Manifest{Digest: digest(c), MediaType: string(types.OCIManifestSchema1), Raw: []byte(`{"x":"` + string(c) + `"}`),
		Blobs: []inventory.Blob{{Digest: digest('c'), Kind: "config", Size: 10}, {Digest: digest('l'), Kind: "layer", Size: 100}}}
}

func TestOpenCreatesPrivateFileAndMigratesOnce(t *testing.T) {
	db, path := mustOpen(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("inventory mode = %v, want 0600", st.Mode().Perm())
	}
	db.Close()
	// Reopening applies nothing twice.
	db2, err := inventory.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if n := queryInt(t, path, `SELECT COUNT(*) FROM schema_migrations WHERE version = 1`); n != 1 {
		t.Errorf("migration 1 recorded %d times, want 1", n)
	}
	if mode := queryRows(t, path, `PRAGMA journal_mode`)[0][0]; mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

func TestWriteRepositoryIndexChildrenAndTags(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	idx := &inventory.Manifest{Digest: digest('i'), MediaType: string(types.OCIImageIndex), IsIndex: true, Raw: []byte(`{}`),
		Children: []inventory.Child{{Digest: digest('a'), OS: "linux", Architecture: "amd64"}, {Digest: digest('b'), OS: "linux", Architecture: "arm64"}}}
	st := inventory.RepositoryState{Name: "r.example/p/app", Tags: map[string]string{"v1": digest('i'), "solo": digest('d')},
		New: []*inventory.Manifest{idx, image('a'), image('b'), image('d')}}
	changes, err := db.WriteRepository(ctx, 0, st)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 {
		t.Errorf("changes = %v, want 2 added", changes)
	}
	got, err := db.Contents(ctx, "r.example/p")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range got {
		lines = append(lines, c.Digest[7:8]+" "+strings.Join(c.Tags, ",")+" child="+map[bool]string{true: "y", false: "n"}[c.Child])
	}
	want := []string{"a  child=y", "b  child=y", "d solo child=n", "i v1 child=n"}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("contents (-want +got):\n%s", diff)
	}
	// r.example/pp is not below r.example/p.
	if got, _ := db.Contents(ctx, "r.example/pp"); len(got) != 0 {
		t.Errorf("Contents(r.example/pp) = %v, want none", got)
	}
	// Moving and removing tags.
	st.Tags = map[string]string{"v1": digest('d')}
	st.New = nil
	changes, err = db.WriteRepository(ctx, 0, st)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, c := range changes {
		kinds = append(kinds, c.Tag+" "+c.Change)
	}
	if diff := cmp.Diff([]string{"solo removed", "v1 moved"}, kinds); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	// The index is no longer held, nor its children.
	got, _ = db.Contents(ctx, "r.example/p/app")
	if len(got) != 1 || got[0].Digest != digest('d') {
		t.Errorf("contents after move = %+v, want only d", got)
	}
}

func TestWriteRepositoryIsAtomic(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	// A tag pointing at a digest whose manifest is missing violates a
	// foreign key: nothing of the repository may be written.
	_, err := db.WriteRepository(ctx, 0, inventory.RepositoryState{Name: "r.example/x",
		Tags: map[string]string{"ok": digest('a'), "bad": digest('z')}, New: []*inventory.Manifest{image('a')}})
	if err == nil || !strings.Contains(err.Error(), "r.example/x") {
		t.Fatalf("err = %v, want a failure naming the repository", err)
	}
	for _, q := range []string{`SELECT COUNT(*) FROM repositories`, `SELECT COUNT(*) FROM manifests`, `SELECT COUNT(*) FROM tags`} {
		if n := queryInt(t, db.Path(), q); n != 0 {
			t.Errorf("%s = %d after a failed write, want 0", q, n)
		}
	}
}

func TestParseManifest(t *testing.T) {
	tests := []struct {
		name, mt, raw string
		wantIndex     bool
		wantChildren  int
		wantBlobs     int
		wantErr       string
	}{
		{name: "oci index", mt: string(types.OCIImageIndex), raw: `{"manifests":[{"digest":"` + digest('a') + `","platform":{"os":"linux","architecture":"amd64"}}]}`, wantIndex: true, wantChildren: 1},
		{name: "sha512 child", mt: string(types.OCIImageIndex), raw: `{"manifests":[{"digest":"sha512:` + strings.Repeat("ab", 64) + `"}]}`, wantIndex: true, wantChildren: 1},
		{name: "docker image", mt: string(types.DockerManifestSchema2), raw: `{"config":{"digest":"` + digest('c') + `","size":3},"layers":[{"digest":"` + digest('1') + `","size":5},{"digest":"` + digest('2') + `","size":6}]}`, wantBlobs: 3},
		{name: "sniffed index", mt: "", raw: `{"manifests":[]}`, wantIndex: true},
		{name: "schema1", mt: "application/vnd.docker.distribution.manifest.v1+prettyjws", raw: `{"schemaVersion":1,"fsLayers":[{"blobSum":"` + digest('1') + `"}]}`, wantBlobs: 1},
		{name: "not json", mt: string(types.OCIManifestSchema1), raw: `{`, wantErr: "parse manifest"},
		{name: "bad child digest", mt: string(types.OCIImageIndex), raw: `{"manifests":[{"digest":"nope"}]}`, wantErr: "manifests[0]"},
		{name: "md5 child", mt: string(types.OCIImageIndex), raw: `{"manifests":[{"digest":"md5:` + strings.Repeat("0", 32) + `"}]}`, wantErr: `algorithm "md5"`},
		{name: "short layer digest", mt: string(types.OCIManifestSchema1), raw: `{"config":{"digest":"` + digest('c') + `"},"layers":[{"digest":"sha256:11"}]}`, wantErr: "layers[0]"},
		{name: "md5 fsLayer", mt: "application/vnd.docker.distribution.manifest.v1+prettyjws", raw: `{"schemaVersion":1,"fsLayers":[{"blobSum":"md5:` + strings.Repeat("0", 32) + `"}]}`, wantErr: "fsLayers[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := inventory.ParseManifest("sha256:x", tt.mt, []byte(tt.raw))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, inventory.ErrBadManifest) {
					t.Fatalf("ParseManifest(%s) error = %v, want an ErrBadManifest naming %q", tt.raw, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.IsIndex != tt.wantIndex || len(m.Children) != tt.wantChildren || len(m.Blobs) != tt.wantBlobs {
				t.Errorf("ParseManifest(%s) = index %v, %d children, %d blobs; want %v, %d, %d", tt.raw, m.IsIndex, len(m.Children), len(m.Blobs), tt.wantIndex, tt.wantChildren, tt.wantBlobs)
			}
		})
	}
}

func TestUnder(t *testing.T) {
	tests := []struct {
		name, prefix string
		want         bool
	}{
		{"gcr.io/foo", "gcr.io/foo", true},
		{"gcr.io/foo/bar", "gcr.io/foo", true},
		{"gcr.io/foobar", "gcr.io/foo", false},
		{"gcr.io/foo/bar", "gcr.io/foo/", true},
		{"gcr.io", "gcr.io/foo", false},
	}
	for _, tt := range tests {
		if got := inventory.Under(tt.name, tt.prefix); got != tt.want {
			t.Errorf("Under(%q, %q) = %v, want %v", tt.name, tt.prefix, got, tt.want)
		}
	}
}

// A batch of crawls commits together, but a repository whose write fails is
// rolled back alone.
func TestWriteRepositoriesIsolatesFailures(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	res, err := db.WriteRepositories(ctx, 0, []inventory.RepositoryState{
		{Name: "r.example/a", Tags: map[string]string{"v1": digest('a')}, New: []*inventory.Manifest{image('a')}},
		{Name: "r.example/bad", Tags: map[string]string{"v1": digest('b'), "bad": digest('f')}, New: []*inventory.Manifest{image('b')}},
		{Name: "r.example/c", Tags: map[string]string{"v1": digest('c')}, New: []*inventory.Manifest{image('c')}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[2].Err != nil || res[1].Err == nil || !strings.Contains(res[1].Err.Error(), "r.example/bad") {
		t.Fatalf("results = %+v, want only r.example/bad failed, named", res)
	}
	if len(res[0].Changes) != 1 || len(res[2].Changes) != 1 {
		t.Errorf("changes = %v, %v; want v1 added in each", res[0].Changes, res[2].Changes)
	}
	for q, want := range map[string]int{
		`SELECT COUNT(*) FROM repositories`:                  2,
		`SELECT COUNT(*) FROM manifests`:                     2, // b's manifest went with its repository
		`SELECT COUNT(*) FROM tags`:                          2,
		`SELECT COUNT(*) FROM tag_history`:                   2,
		`SELECT COUNT(*) FROM repository_manifests`:          2,
		`SELECT COUNT(*) FROM tags WHERE checked_at IS NULL`: 0,
	} {
		if n := queryInt(t, db.Path(), q); n != int64(want) {
			t.Errorf("%s = %d, want %d", q, n, want)
		}
	}
}

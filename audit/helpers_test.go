package audit_test

import (
	"context"
	"fmt"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
)

// dg is a digest made of one repeated hex character (or letter, for
// digests that only need to be told apart).
func dg(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

// Digests of the fixture: a and b are images of app, i an index of app2
// with children 1 and 2, n an index of indexes (child m, an index with
// child 3), t a tagless image; x is in no manifest.
var (
	dA, dB, dI, dN, dM, dT, dX = dg('a'), dg('b'), dg('e'), dg('f'), dg('d'), dg('c'), dg('9')
	d1, d2, d3                 = dg('1'), dg('2'), dg('3')
)

// fixture is a plain manifest promoting into two destinations.
var fixture = fmt.Sprintf(`registries:
- name: src.example/staging
  src: true
- name: prod.example/prod
- name: mirror.example:5000/m
images:
- name: app
  dmap:
    %q: ["latest", "v1"]
    %q: ["v0.9"]
- name: multi
  dmap:
    %q: ["v2"]
- name: nested
  dmap:
    %q: ["v3"]
- name: tagless
  dmap:
    %q: []
`, dA, dB, dI, dN, dT)

// loadSet writes a plain manifest and loads it, as cip does.
func loadSet(t testing.TB, yaml string) (*manifest.Set, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "promoter-manifest.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := manifest.LoadFile(path, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return set, path
}

// openDB opens a fresh inventory that knows the fixture's indexes.
func openDB(t testing.TB) *inventory.DB {
	t.Helper()
	db, err := inventory.Open(context.Background(), filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.Now = func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }
	index := func(d string, children ...string) *inventory.Manifest {
		m := &inventory.Manifest{Digest: d, MediaType: string(types.OCIImageIndex), IsIndex: true, Raw: []byte(`{"` + d + `":1}`)}
		for _, c := range children {
			m.Children = append(m.Children, inventory.Child{Digest: c, MediaType: string(types.OCIManifestSchema1)})
		}
		return m
	}
	if err := db.InsertManifests(context.Background(), []*inventory.Manifest{
		index(dI, d1, d2), index(dN, dM), index(dM, d3),
		image(d1), image(d2), image(d3),
	}); err != nil {
		t.Fatal(err)
	}
	return db
}

func image(d string) *inventory.Manifest {
	return &inventory.Manifest{Digest: d, MediaType: string(types.OCIManifestSchema1), Raw: []byte(`{"` + d + `":0}`)}
}

package snapshot_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/snapshot"
)

var update = flag.Bool("update", false, "rewrite golden files")

func digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

func img(c byte) *inventory.Manifest {
	return &inventory.Manifest{Digest: digest(c), MediaType: string(types.DockerManifestSchema2), Raw: []byte(`{"` + string(c) + `":1}`)}
}

// fixture: reg.example/prod/{app,tools/kit} and reg.example/prodx (outside).
func fixture(t *testing.T) *inventory.DB {
	t.Helper()
	ctx := context.Background()
	db, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	idx := &inventory.Manifest{Digest: digest('9'), MediaType: string(types.OCIImageIndex), IsIndex: true, Raw: []byte(`{"i":1}`),
		Children: []inventory.Child{{Digest: digest('1')}, {Digest: digest('2')}}}
	writes := []inventory.RepositoryState{
		{Name: "reg.example/prod/app", Tags: map[string]string{"v1.0": digest('a'), "latest": digest('9'), "v2.0": digest('9'), "arm": digest('2')},
			New: []*inventory.Manifest{img('a'), idx, img('1'), img('2')}},
		{Name: "reg.example/prod/tools/kit", Tags: map[string]string{"1.0": digest('b')}, Untagged: []string{digest('c')},
			New: []*inventory.Manifest{img('b'), img('c')}},
		{Name: "reg.example/prodx", Tags: map[string]string{"x": digest('a')}},
	}
	for _, w := range writes {
		if _, err := db.WriteRepository(ctx, 0, w); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestFromInventoryGolden(t *testing.T) {
	db := fixture(t)
	for _, tt := range []struct {
		name    string
		ref     string
		minimal bool
		format  snapshot.Format
	}{
		{"prod.yaml", "reg.example/prod", false, snapshot.YAML},
		{"prod.csv", "reg.example/prod", false, snapshot.CSV},
		{"prod-minimal.yaml", "reg.example/prod", true, snapshot.YAML},
		{"app-exact.csv", "reg.example/prod/app", false, snapshot.CSV},
	} {
		t.Run(tt.name, func(t *testing.T) {
			images, skipped, err := snapshot.FromInventory(context.Background(), db, tt.ref, tt.minimal, false)
			if len(skipped) > 0 {
				t.Errorf("skipped = %q, want nothing skipped", skipped)
			}
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := snapshot.Write(&b, tt.format, images); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, b.Bytes())
		})
	}
}

func TestFromManifestsGolden(t *testing.T) {
	set := &manifest.Set{Manifests: []manifest.Manifest{
		{ImagesFile: "a/images.yaml", Registries: []manifest.Registry{{Name: "gcr.io/staging-a", Src: true}, {Name: "us.gcr.io/prod/a"}, {Name: "eu.gcr.io/prod/a"}},
			Images: []manifest.Image{{Name: "app", Digests: []manifest.Digest{{Digest: digest('a'), Tags: []string{"v1"}}, {Digest: digest('b')}}}}},
		{ImagesFile: "b/images.yaml", Registries: []manifest.Registry{{Name: "gcr.io/staging-b", Src: true}, {Name: "us.gcr.io/prod"}},
			Images: []manifest.Image{{Name: "tool", Digests: []manifest.Digest{{Digest: digest('c'), Tags: []string{"2.0", "1.0"}}}}}},
		{ImagesFile: "c/images.yaml", Registries: []manifest.Registry{{Name: "gcr.io/staging-c", Src: true}, {Name: "us.gcr.io/production"}},
			Images: []manifest.Image{{Name: "not-below", Digests: []manifest.Digest{{Digest: digest('d')}}}}},
	}}
	var b bytes.Buffer
	if err := snapshot.Write(&b, snapshot.YAML, snapshot.FromManifests(set, "us.gcr.io/prod")); err != nil {
		t.Fatal(err)
	}
	golden(t, "manifest-based.yaml", b.Bytes())
	b.Reset()
	snapshot.Write(&b, snapshot.CSV, snapshot.FromManifests(set, "us.gcr.io/prod/"))
	golden(t, "manifest-based.csv", b.Bytes())
}

// WithTag is the Kubernetes promoter's --snapshot-tag: only the digests
// carrying the tag, each with that tag alone.
func TestWithTag(t *testing.T) {
	images, _, err := snapshot.FromInventory(context.Background(), fixture(t), "reg.example/prod", false, false)
	if err != nil {
		t.Fatal(err)
	}
	got := snapshot.WithTag(images, "latest")
	want := []manifest.Image{{Name: "app", Digests: []manifest.Digest{{Digest: digest('9'), Tags: []string{"latest"}}}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithTag(latest) (-want +got):\n%s", diff)
	}
	if got := snapshot.WithTag(images, "1.0"); len(got) != 1 || got[0].Name != "tools/kit" || got[0].Digests[0].Digest != digest('b') {
		t.Errorf("WithTag(1.0) = %+v, want tools/kit@b", got)
	}
	if got := snapshot.WithTag(images, "nope"); len(got) != 0 {
		t.Errorf("WithTag(nope) = %+v, want nothing", got)
	}
	if got := snapshot.WithTag(images, ""); !cmp.Equal(got, images) {
		t.Errorf("WithTag(\"\") changed the images")
	}
	var b bytes.Buffer
	if err := snapshot.WriteCSV(&b, snapshot.WithTag(images, "v2.0")); err != nil {
		t.Fatal(err)
	}
	if want := "app@" + digest('9') + ",app:v2.0\n"; b.String() != want {
		t.Errorf("CSV = %q, want %q", b.String(), want)
	}
}

// Referrer tags, and digests held only as referrers, are left out unless
// asked for; a digest that has a tag of its own stays.
func TestFromInventoryReferrers(t *testing.T) {
	ctx := context.Background()
	db, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hex := strings.Repeat("a", 64)
	fallback := &inventory.Manifest{Digest: digest('f'), MediaType: string(types.OCIImageIndex), IsIndex: true, Raw: []byte(`{"f":1}`),
		Children: []inventory.Child{{Digest: digest('e')}}}
	sbom := img('e')
	sbom.Subject = digest('a')
	if _, err := db.WriteRepository(ctx, 0, inventory.RepositoryState{Name: "reg.example/prod/app",
		Tags: map[string]string{"v1": digest('a'), "sha256-" + hex + ".sig": digest('c'), "sha256-" + hex: digest('f'), "kept": digest('d'), "sha256-" + hex + ".att": digest('d')},
		New:  []*inventory.Manifest{img('a'), img('c'), img('d'), fallback, sbom}}); err != nil {
		t.Fatal(err)
	}
	render := func(referrers bool) string {
		images, _, err := snapshot.FromInventory(ctx, db, "reg.example/prod", false, referrers)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := snapshot.WriteCSV(&b, images); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	want := "app@" + digest('a') + ",app:v1\napp@" + digest('d') + ",app:kept\n"
	if diff := cmp.Diff(want, render(false)); diff != "" {
		t.Errorf("snapshot without referrers (-want +got):\n%s", diff)
	}
	got := render(true)
	for _, s := range []string{"app:sha256-" + hex + ".sig", "app:sha256-" + hex + ".att", "app:sha256-" + hex + "\n", "app@" + digest('e') + ",-"} {
		if !strings.Contains(got, s) {
			t.Errorf("snapshot --include-referrers lacks %q:\n%s", s, got)
		}
	}
}

// What an inventory holds that cip validate would refuse (written before
// crawls checked names, or a sha512 child) is left out of a snapshot and
// named; a tag with a space stays one tag, never two.
func TestFromInventoryLeavesOutInvalid(t *testing.T) {
	ctx := context.Background()
	db, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sha512 := "sha512:" + strings.Repeat("ab", 64)
	for _, w := range []inventory.RepositoryState{
		{Name: "reg.example/prod/app", Tags: map[string]string{"v1 latest": digest('a'), "ok": digest('b'), "x\ny": digest('b')},
			New: []*inventory.Manifest{img('a'), img('b')}},
		{Name: "reg.example/prod/Bad", Tags: map[string]string{"v1": digest('a')}},
		{Name: "reg.example/prod/five", Tags: map[string]string{"v5": sha512},
			New: []*inventory.Manifest{{Digest: sha512, MediaType: string(types.OCIManifestSchema1), Raw: []byte(`{}`)}}},
	} {
		if _, err := db.WriteRepository(ctx, 0, w); err != nil {
			t.Fatal(err)
		}
	}
	images, skipped, err := snapshot.FromInventory(ctx, db, "reg.example/prod", false, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []manifest.Image{{Name: "app", Digests: []manifest.Digest{{Digest: digest('a')}, {Digest: digest('b'), Tags: []string{"ok"}}}}}
	if diff := cmp.Diff(want, images, cmpopts.IgnoreFields(manifest.Digest{}, "Line"), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
	for _, w := range []string{`tag "v1 latest"`, `tag "x\ny"`, `"Bad"`, sha512} {
		if !strings.Contains(strings.Join(skipped, "\n"), w) {
			t.Errorf("skipped = %q, want %s named", skipped, w)
		}
	}
}

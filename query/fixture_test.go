package query

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
)

// dg is a fixed fake digest named after s, so golden files are stable.
func dg(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

func image(name string, layers ...string) *inventory.Manifest {
	m := &inventory.Manifest{Digest: dg(name), MediaType: string(types.OCIManifestSchema1), Raw: []byte(`{"schemaVersion":2,"name":"` + name + `"}`),
		ConfigDigest: dg(name + "-config")}
	m.Blobs = append(m.Blobs, inventory.Blob{Digest: m.ConfigDigest, MediaType: "application/vnd.oci.image.config.v1+json", Kind: "config", Size: 100})
	for i, l := range layers {
		m.Blobs = append(m.Blobs, inventory.Blob{Digest: dg(l), MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Kind: "layer", Size: int64(1000 * (i + 1) * len(l))})
	}
	return m
}

func index(name string, children ...*inventory.Manifest) *inventory.Manifest {
	m := &inventory.Manifest{Digest: dg(name), MediaType: string(types.OCIImageIndex), IsIndex: true, Raw: []byte(`{"schemaVersion":2,"index":"` + name + `"}`)}
	plats := [][3]string{{"linux", "amd64", ""}, {"linux", "arm64", "v8"}, {"linux", "s390x", ""}}
	for i, c := range children {
		m.Children = append(m.Children, inventory.Child{Digest: c.Digest, MediaType: c.MediaType, Size: int64(len(c.Raw)), OS: plats[i][0], Architecture: plats[i][1], Variant: plats[i][2]})
	}
	return m
}

// Fixture content.
var (
	imgA   = image("imgA", "base", "app-a")
	imgB   = image("imgB", "base", "app-b")
	imgL1  = image("multi-amd64", "base", "multi-amd64-layer")
	imgL2  = image("multi-arm64", "multi-arm64-layer")
	idxM   = index("multi-index", imgL1, imgL2)
	imgOld = image("imgOld", "old-layer")
	imgNew = image("imgNew", "new-layer")         // in the manifest, not yet promoted
	imgDev = image("imgDev", "base", "dev-layer") // untagged in staging, in no manifest
	allFix = []*inventory.Manifest{imgA, imgB, imgL1, imgL2, idxM, imgOld, imgDev}

	// signed.example/release/signedapp: imgS signed (cosign's .sig) with an
	// SBOM in its sha256-<hex> index; imgU unsigned.
	imgS = image("imgS", "signed-layer")
	imgU = image("imgU", "unsigned-layer")
	sigA = &inventory.Manifest{Digest: dg("sigA"), MediaType: string(types.OCIManifestSchema1), Raw: []byte(`{"schemaVersion":2,"sig":"A"}`),
		ConfigDigest: dg("sigA-config"), ArtifactType: "application/vnd.oci.image.config.v1+json",
		Blobs: []inventory.Blob{{Digest: dg("sigA-config"), Kind: "config", Size: 200, MediaType: "application/vnd.oci.image.config.v1+json"},
			{Digest: dg("sigA-layer"), Kind: "layer", Size: 300, MediaType: referrer.CosignSimpleSigning}}}
	sbomA = &inventory.Manifest{Digest: dg("sbomA"), MediaType: string(types.OCIManifestSchema1), Raw: []byte(`{"schemaVersion":2,"sbom":"A"}`),
		Subject: imgS.Digest, ArtifactType: "application/spdx+json",
		Blobs: []inventory.Blob{{Digest: dg("empty"), Kind: "config", Size: 2, MediaType: "application/vnd.oci.empty.v1+json"},
			{Digest: dg("sbomA-layer"), Kind: "layer", Size: 400, MediaType: "application/spdx+json"}}}
	fallbackA = &inventory.Manifest{Digest: dg("fallbackA"), MediaType: string(types.OCIImageIndex), IsIndex: true, Raw: []byte(`{"schemaVersion":2,"fallback":"A"}`),
		Children: []inventory.Child{{Digest: sbomA.Digest, MediaType: sbomA.MediaType, Size: int64(len(sbomA.Raw))}}}
)

// fixtureTime is the fixed clock of the first sync; the second is a day
// later.
var fixtureTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// buildFixture writes the fixture inventory: a sync of registry.example
// (staging and prod) and one of empty.example (which holds nothing), and a
// day later a sync of registry.example/prod (with an error) that moves
// prod/app:latest and removes prod/old:rc, then a promotion run that tags
// prod/app:v2.
func buildFixture(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "inventory.db")
	db, err := inventory.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := fixtureTime
	db.Now = func() time.Time { return now }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	start := func(refs ...string) int64 {
		t.Helper()
		id, err := db.StartRun(ctx, refs)
		must(err)
		return id
	}
	var run int64
	write := func(st inventory.RepositoryState) {
		t.Helper()
		st.New = allFix
		_, err := db.WriteRepository(ctx, run, st)
		must(err)
	}
	run = start("registry.example")
	write(inventory.RepositoryState{Name: "registry.example/staging/app", Tags: map[string]string{"v1": imgA.Digest, "v2": imgB.Digest}, Untagged: []string{imgDev.Digest}})
	write(inventory.RepositoryState{Name: "registry.example/staging/multi", Tags: map[string]string{"v2": idxM.Digest}})
	write(inventory.RepositoryState{Name: "registry.example/prod/app", Tags: map[string]string{"v1": imgA.Digest, "latest": imgA.Digest}})
	write(inventory.RepositoryState{Name: "registry.example/prod/multi", Tags: map[string]string{"v2": idxM.Digest}})
	write(inventory.RepositoryState{Name: "registry.example/prod/old", Tags: map[string]string{"v0": imgOld.Digest, "rc": imgOld.Digest}, Untagged: []string{imgL2.Digest}})
	write(inventory.RepositoryState{Name: "registry.example/prod/scratch", Untagged: []string{imgDev.Digest}})
	write(inventory.RepositoryState{Name: "registry.example/prod_x/app", Tags: map[string]string{"v9": imgOld.Digest}}) // not under prod: '_' is no wildcard
	_, err = db.WriteRepository(ctx, run, inventory.RepositoryState{Name: "signed.example/release/signedapp", Tags: map[string]string{
		"v1": imgS.Digest, "v2": imgU.Digest,
		referrer.Tag(imgS.Digest, referrer.CosignSignature): sigA.Digest, referrer.Tag(imgS.Digest, referrer.TagSchema): fallbackA.Digest,
	}, New: []*inventory.Manifest{imgS, imgU, sigA, sbomA, fallbackA}})
	must(err)
	must(db.FinishRun(ctx, run, inventory.RunStats{Repositories: 7, Tags: 10, ManifestsFetched: len(allFix), Requests: 40}))
	now = fixtureTime.Add(time.Hour)
	run = start("empty.example/")
	must(db.FinishRun(ctx, run, inventory.RunStats{Requests: 1}))

	now = fixtureTime.Add(24 * time.Hour)
	run = start("registry.example/prod")
	write(inventory.RepositoryState{Name: "registry.example/prod/app", Tags: map[string]string{"v1": imgA.Digest, "latest": imgB.Digest}})
	write(inventory.RepositoryState{Name: "registry.example/prod/old", Tags: map[string]string{"v0": imgOld.Digest}, Untagged: []string{imgL2.Digest}})
	must(db.FinishRun(ctx, run, inventory.RunStats{Repositories: 4, Tags: 3, Requests: 12,
		Errors: []string{"sync registry.example/prod/broken: 500 Internal Server Error"}}))
	now = fixtureTime.Add(25 * time.Hour)
	run = start("promote", "load:1")
	_, err = db.RecordCopies(ctx, run, []inventory.Copy{{Repository: "registry.example/prod/app", Digest: imgB.Digest, Tag: "v2"}})
	must(err)
	must(db.FinishRun(ctx, run, inventory.RunStats{Tags: 1, Requests: 3}))
	return path
}

// fixtureManifest writes a plain promoter manifest promoting staging into
// registry.example/prod and mirror.example/prod (never synced).
func fixtureManifest(t testing.TB) *manifest.Set {
	t.Helper()
	body := fmt.Sprintf(`registries:
- name: registry.example/staging
  src: true
- name: registry.example/prod
- name: mirror.example/prod
images:
- name: app
  dmap:
    "%s": ["v1", "latest"]
    "%s": ["v2"]
- name: multi
  dmap:
    "%s": ["v2"]
- name: newimg
  dmap:
    "%s": ["v1"]
`, imgA.Digest, imgB.Digest, idxM.Digest, imgNew.Digest)
	p := filepath.Join(t.TempDir(), "promoter-manifest.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := manifest.Load(p, "", manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

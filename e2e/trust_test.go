package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipdev/cip/internal/dockerregistry"
	"github.com/cipdev/cip/internal/regtest"
)

// schema1Registry starts docker-registry with schema 1 manifests enabled
// (distribution 2.8 refuses them otherwise).
func schema1Registry(t *testing.T) *dockerregistry.Server {
	t.Helper()
	s, err := dockerregistry.Start(context.Background(), dockerregistry.Options{Extra: "compatibility:\n  schema1:\n    enabled: true\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// pushSchema1 uploads a layer to host/repo and puts a signed schema 1
// manifest naming it at tag; it returns the digest docker-registry named
// it by.
func pushSchema1(t *testing.T, host, repo, tag string) (got, payloadDigest string) {
	t.Helper()
	r, err := name.NewRepository(host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := random.Layer(512, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(r, layer); err != nil {
		t.Fatal(err)
	}
	ld, _ := layer.Digest()
	raw, payloadDigest := regtest.Schema1(t, repo, tag, []string{ld.String()})
	req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("http://%s/v2/%s/manifests/%s", host, repo, tag), bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		t.Fatalf("PUT schema 1 manifest: %s: %s", resp.Status, b.String())
	}
	return resp.Header.Get("Docker-Content-Digest"), payloadDigest
}

// A signed schema 1 tag in a real distribution registry: distribution
// names it by its payload, as cip computes it; it syncs with the rest of
// its repository, and promotes, digest preserved, into another
// distribution registry, where cip verify passes.
func TestSchema1DockerRegistry(t *testing.T) {
	src, dst := schema1Registry(t), schema1Registry(t)
	got, payloadDigest := pushSchema1(t, src.Host, "old/app", "v1")
	if got != payloadDigest {
		t.Fatalf("docker-registry named the schema 1 manifest %s, cip computes %s", got, payloadDigest)
	}
	reg := &regtest.Registry{Host: src.Host}
	v2 := reg.Push(t, "old/app", "v2", regtest.Image(t, 1024, 1, true))

	db := filepath.Join(t.TempDir(), "inv.db")
	_, stderr := Cip(t, 0, "--db", db, "sync", src.Host+"/old/app")
	if strings.Contains(stderr, "warning") {
		t.Errorf("sync warned:\n%s", stderr)
	}
	if n := queryInt(t, db, `SELECT COUNT(*) FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.path = 'old/app' AND t.tag = 'v1' AND t.digest = ?`, payloadDigest); n != 1 {
		t.Fatalf("old/app:v1 is not recorded at %s", payloadDigest)
	}

	mf := filepath.Join(t.TempDir(), "promoter-manifest.yaml")
	writeFile(t, mf, fmt.Sprintf("registries:\n- name: %s/old\n  src: true\n- name: %s/prod\nimages:\n- name: app\n  dmap:\n    %q: [v1]\n    %q: [v2]\n",
		src.Host, dst.Host, payloadDigest, v2.String()))
	Cip(t, 0, "--db", db, "promote", "--manifest", mf, "--confirm")
	if d := Crane(t, "digest", dst.Host+"/prod/app:v1"); d != payloadDigest {
		t.Errorf("prod/app:v1 = %s, want %s", d, payloadDigest)
	}
	if d := Crane(t, "digest", dst.Host+"/prod/app:v2"); d != v2.String() {
		t.Errorf("prod/app:v2 = %s, want %s", d, v2)
	}
	Cip(t, 0, "--db", db, "verify", "--manifest", mf)
}

// One byte of a stored manifest changed in the file (integrity_check
// still passes): promote --confirm never sends those bytes; it fetches the
// manifest again from the source, says so, and the destination gets the
// right digest under every tag.
func TestPromoteDamagedManifest(t *testing.T) {
	src, dst := StartRegistry(t), StartRegistry(t)
	reg := &regtest.Registry{Host: src.Host}
	d := reg.Push(t, "staging/app", "v1", regtest.Image(t, 1024, 1, true))
	other := reg.Push(t, "staging/other", "v1", regtest.Image(t, 1024, 1, false))
	db := filepath.Join(t.TempDir(), "inv.db")
	Cip(t, 0, "--db", db, "sync", src.Host+"/staging")
	flipManifestByte(t, db, d.String())
	checkIntegrity(t, db)

	mf := filepath.Join(t.TempDir(), "promoter-manifest.yaml")
	writeFile(t, mf, fmt.Sprintf("registries:\n- name: %s/staging\n  src: true\n- name: %s/prod\nimages:\n- name: app\n  dmap:\n    %q: [v1, latest]\n- name: other\n  dmap:\n    %q: [v1]\n",
		src.Host, dst.Host, d, other))
	_, stderr := Cip(t, 0, "--db", db, "promote", "--manifest", mf, "--confirm")
	if !strings.Contains(stderr, "warning: manifest "+d.String()+" in the inventory is corrupt") || !strings.Contains(stderr, "fetched again from "+src.Host+"/staging/app") {
		t.Errorf("stderr:\n%s\nwant a warning naming %s and where it was fetched from", stderr, d)
	}
	for _, tag := range []string{"v1", "latest"} {
		if got := Crane(t, "digest", dst.Host+"/prod/app:"+tag); got != d.String() {
			t.Errorf("prod/app:%s = %s, want %s", tag, got, d)
		}
	}
	Cip(t, 0, "--db", db, "inventory", "check")
	Cip(t, 0, "--db", db, "verify", "--manifest", mf)
}

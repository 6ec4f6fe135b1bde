package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipdev/cip/internal/regtest"
)

func TestGenerateDeterministic(t *testing.T) {
	s := Shape{Name: "t", Repos: 2, Images: 10, IndexPercent: 30, Children: 3, Layers: 2, LayerSize: 4 << 10, Dests: 1}
	a, err := Generate(s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(s)
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string]bool{}
	indexes, oci := 0, 0
	for i := range a.Items {
		if a.Items[i].Digest != b.Items[i].Digest {
			t.Errorf("item %d: digest %s, then %s", i, a.Items[i].Digest, b.Items[i].Digest)
		}
		digests[a.Items[i].Digest] = true
		if a.Items[i].Index {
			indexes++
		}
		mt, err := a.Items[i].Value.(interface {
			MediaType() (types.MediaType, error)
		}).MediaType()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(mt), "oci") {
			oci++
		}
	}
	if len(digests) != 20 {
		t.Errorf("Generate: %d distinct digests, want 20", len(digests))
	}
	if indexes != 6 {
		t.Errorf("Generate: %d indexes, want 6 (30%% of 20)", indexes)
	}
	if oci != 10 {
		t.Errorf("Generate: %d OCI items, want 10 (half)", oci)
	}
	if got := a.Tags(); got != 22 {
		t.Errorf("Tags() = %d, want 22 (10 versions and latest per repository)", got)
	}
}

// TestProxyCounts pushes a small workload through the proxy and checks
// what it counted against the registry's own counts.
func TestProxyCounts(t *testing.T) {
	reg := regtest.New(t)
	p, err := StartProxy(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	w, err := Generate(Shape{Name: "t", Repos: 1, Images: 3, IndexPercent: 30, Children: 3, Layers: 2, LayerSize: 4 << 10, Dests: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := Push(context.Background(), w, p.Host, "staging", 2, http.DefaultTransport); err != nil {
		t.Fatal(err)
	}
	c := p.Take()
	for k, want := range reg.Counts() {
		if got := c.ByKind[k]; got != int64(want) {
			t.Errorf("proxy counted %d %q, registry saw %d", got, k, want)
		}
	}
	// 1 image + 1 index of 3 children + 1 image: 5 images × 2 layers of 4 KiB.
	if c.BytesIn < 10*4<<10 {
		t.Errorf("proxy counted %d bytes in, want at least %d", c.BytesIn, 10*4<<10)
	}
	if again := p.Take(); again.Total() != 0 {
		t.Errorf("Take after Take = %d requests, want 0", again.Total())
	}
	ref, err := name.ParseReference(p.Host + "/staging/r000:latest")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != w.Items[2].Digest {
		t.Errorf("latest = %s, want %s", desc.Digest, w.Items[2].Digest)
	}
}

func TestManifestNamesEveryTag(t *testing.T) {
	w, err := Generate(Shape{Name: "t", Repos: 2, Images: 2, Layers: 1, LayerSize: 16, Dests: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := w.Manifest("src.example/staging", []string{"a.example/prod", "b.example/prod"})
	for _, it := range w.Items {
		if !strings.Contains(m, it.Digest) {
			t.Errorf("manifest lacks %s", it.Digest)
		}
	}
	if !strings.Contains(m, "[v1.1.0, latest]") || !strings.Contains(m, "- name: b.example/prod\n") {
		t.Errorf("manifest:\n%s", m)
	}
}

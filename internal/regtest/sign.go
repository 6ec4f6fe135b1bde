package regtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of the referrers tests make.
const (
	CosignSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	SigstoreBundle      = "application/vnd.dev.sigstore.bundle.v0.3+json"
	emptyMediaType      = "application/vnd.oci.empty.v1+json"
)

// CosignImage returns an image as cosign writes at sha256-<hex>.sig (or
// .att): an OCI manifest with one uncompressed layer of layerType per
// payload, each annotated as cosign annotates its signatures.
func CosignImage(t testing.TB, layerType string, payloads ...string) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, p := range payloads {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:       static.NewLayer([]byte(p), types.MediaType(layerType)),
			Annotations: map[string]string{"dev.cosignproject.cosign/signature": "sig-of-" + p},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// Sign pushes a cosign-style signature of subject into path, at the tag
// sha256-<hex>.sig, and returns its digest.
func (r *Registry) Sign(t testing.TB, path string, subject v1.Hash, payloads ...string) v1.Hash {
	t.Helper()
	return r.Push(t, path, "sha256-"+subject.Hex+".sig", CosignImage(t, CosignSimpleSigning, payloads...))
}

// rawManifest is a manifest pushed as it is.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// Attach pushes into path an OCI artifact referring to subject (path's
// manifest subject, of subjectSize bytes and media type subjectType):
// artifactType, the empty config and payload as its one layer. A registry
// without the referrers API gets the sha256-<hex> index updated, as
// go-containerregistry's writer does. It returns the artifact's digest.
func (r *Registry) Attach(t testing.TB, path string, subject v1.Descriptor, artifactType, payload string) v1.Hash {
	t.Helper()
	repo, err := name.NewRepository(r.Host + "/" + path)
	if err != nil {
		t.Fatal(err)
	}
	layer := static.NewLayer([]byte(payload), types.MediaType(artifactType))
	cfg := static.NewLayer([]byte("{}"), emptyMediaType)
	for _, l := range []v1.Layer{layer, cfg} {
		if err := remote.WriteLayer(repo, l); err != nil {
			t.Fatal(err)
		}
	}
	desc := func(l v1.Layer) map[string]any {
		d, _ := l.Digest()
		n, _ := l.Size()
		mt, _ := l.MediaType()
		return map[string]any{"mediaType": mt, "digest": d.String(), "size": n}
	}
	m := map[string]any{
		"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "artifactType": artifactType,
		"config": desc(cfg), "layers": []any{desc(layer)},
		"subject":     map[string]any{"mediaType": subject.MediaType, "digest": subject.Digest.String(), "size": subject.Size},
		"annotations": map[string]string{"org.opencontainers.image.created": "2026-12-01T00:00:00Z"},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := v1.SHA256(bytesReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(repo.Digest(h.String()), rawManifest{raw, types.OCIManifestSchema1}); err != nil {
		t.Fatalf("attach %s to %s@%s: %v", artifactType, path, subject.Digest, err)
	}
	return h
}

// Descriptor returns the descriptor of path@digest.
func (r *Registry) Descriptor(t testing.TB, path string, digest v1.Hash) v1.Descriptor {
	t.Helper()
	ref, err := name.NewDigest(fmt.Sprintf("%s/%s@%s", r.Host, path, digest))
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	return *d
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// PushBlob uploads data into path.
func (r *Registry) PushBlob(t testing.TB, path string, data []byte, mediaType string) {
	t.Helper()
	repo, err := name.NewRepository(r.Host + "/" + path)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(repo, static.NewLayer(data, types.MediaType(mediaType))); err != nil {
		t.Fatal(err)
	}
}

// PushManifest puts raw (of mediaType) into path at ref (a tag or its
// digest) as it is; a manifest with a subject gets the sha256-<hex> index
// updated on a registry without the referrers API (go-containerregistry's
// writer). It returns the digest.
func (r *Registry) PushManifest(t testing.TB, path, ref string, raw []byte, mediaType string) v1.Hash {
	t.Helper()
	h, _, err := v1.SHA256(bytesReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if ref == "" {
		ref = h.String()
	}
	sep := ":"
	if strings.HasPrefix(ref, "sha256:") {
		sep = "@"
	}
	dst, err := name.ParseReference(r.Host + "/" + path + sep + ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(dst, rawManifest{raw, types.MediaType(mediaType)}); err != nil {
		t.Fatalf("put %s: %v", dst, err)
	}
	return h
}

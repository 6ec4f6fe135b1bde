package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// W200signed is W200 with every image signed the two ways cosign signs
// (issue 15): a cosign-style sha256-<hex>.sig image (one simple-signing
// layer) and a sigstore bundle referrer with a subject, which
// docker-registry (no referrers API) lists in the sha256-<hex> index. They
// are generated here, deterministically, so seeding needs no cosign.
const signedWorkload = "W200signed"

func init() {
	s := shapes["W200"]
	s.Name = signedWorkload
	shapes[signedWorkload] = s
	defaultTools[signedWorkload] = []string{"cip", "cip-ttl", "regsync"}
}

// signed reports whether a workload's images carry signatures.
func signed(w *Workload) bool { return w.Shape.Name == signedWorkload }

const (
	simpleSigning  = "application/vnd.dev.cosign.simplesigning.v1+json"
	sigstoreBundle = "application/vnd.dev.sigstore.bundle.v0.3+json"
)

// sigTag and fallbackTag are the referrer tags of digest.
func sigTag(digest string) string      { return "sha256-" + strings.TrimPrefix(digest, "sha256:") + ".sig" }
func fallbackTag(digest string) string { return "sha256-" + strings.TrimPrefix(digest, "sha256:") }

// rawTaggable is a manifest pushed as it is.
type rawTaggable struct{ raw []byte }

func (r rawTaggable) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawTaggable) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// Sign pushes each item's two signatures into host/prefix: the .sig image,
// then the bundle referrer (go-containerregistry's writer updates the
// sha256-<hex> index on a registry without the API).
func Sign(ctx context.Context, w *Workload, host, prefix string, jobs int, rt http.RoundTripper) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, it := range w.Items {
		g.Go(func() error {
			repo, err := name.NewRepository(fmt.Sprintf("%s/%s/%s", host, prefix, it.Repo))
			if err != nil {
				return err
			}
			opts := []remote.Option{remote.WithContext(gctx), remote.WithTransport(rt)}
			sig, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), mutate.Addendum{
				Layer:       static.NewLayer([]byte(`{"critical":{"image":{"docker-manifest-digest":"`+it.Digest+`"}}}`), simpleSigning),
				Annotations: map[string]string{"dev.cosignproject.cosign/signature": "bench-signature-of-" + it.Digest},
			})
			if err != nil {
				return err
			}
			if err := remote.Write(repo.Tag(sigTag(it.Digest)), sig, opts...); err != nil {
				return fmt.Errorf("sign %s@%s: %w", repo, it.Digest, err)
			}
			raw, err := bundleManifest(gctx, repo, it, opts)
			if err != nil {
				return err
			}
			h, _, err := v1.SHA256(bytes.NewReader(raw))
			if err != nil {
				return err
			}
			if err := remote.Put(repo.Digest(h.String()), rawTaggable{raw}, opts...); err != nil {
				return fmt.Errorf("attach a bundle to %s@%s: %w", repo, it.Digest, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// bundleManifest uploads a bundle's blobs and returns its manifest: an OCI
// artifact of type sigstoreBundle, the empty config, one bundle layer, and
// the item as its subject.
func bundleManifest(ctx context.Context, repo name.Repository, it Item, opts []remote.Option) ([]byte, error) {
	subject, err := it.Value.(interface {
		RawManifest() ([]byte, error)
		MediaType() (types.MediaType, error)
	}).RawManifest()
	if err != nil {
		return nil, err
	}
	mt, err := it.Value.(interface {
		MediaType() (types.MediaType, error)
	}).MediaType()
	if err != nil {
		return nil, err
	}
	layer := static.NewLayer([]byte(`{"mediaType":"`+sigstoreBundle+`","bench":"`+it.Digest+`"}`), sigstoreBundle)
	cfg := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	desc := func(l v1.Layer) (map[string]any, error) {
		if err := remote.WriteLayer(repo, l, opts...); err != nil {
			return nil, fmt.Errorf("upload to %s: %w", repo, err)
		}
		d, _ := l.Digest()
		n, _ := l.Size()
		lmt, _ := l.MediaType()
		return map[string]any{"mediaType": lmt, "digest": d.String(), "size": n}, nil
	}
	ld, err := desc(layer)
	if err != nil {
		return nil, err
	}
	cd, err := desc(cfg)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "artifactType": sigstoreBundle,
		"config": cd, "layers": []any{ld},
		"subject": map[string]any{"mediaType": mt, "digest": it.Digest, "size": len(subject)},
	})
}

// verifySigned checks that dst holds each item's signatures as the source
// does: the same .sig digest, and a sha256-<hex> index listing the same
// referrers.
func verifySigned(ctx context.Context, w *Workload, src, dst string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, it := range w.Items {
		g.Go(func() error {
			for _, tag := range []string{sigTag(it.Digest), fallbackTag(it.Digest)} {
				want, err := listing(gctx, fmt.Sprintf("%s/%s:%s", src, it.Repo, tag))
				if err != nil {
					return err
				}
				got, err := listing(gctx, fmt.Sprintf("%s/%s:%s", dst, it.Repo, tag))
				if err != nil {
					return fmt.Errorf("verify signatures: %w", err)
				}
				if got != want {
					return fmt.Errorf("verify signatures %s/%s:%s = %s, want %s", dst, it.Repo, tag, got, want)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// listing reads ref: an index's entries (digests, in order), else the
// manifest's digest.
func listing(ctx context.Context, ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	desc, err := remote.Get(r, remote.WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("get %s: %w", ref, err)
	}
	if !desc.MediaType.IsIndex() {
		return desc.Digest.String(), nil
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(desc.Manifest, &idx); err != nil {
		return "", err
	}
	var ds []string
	for _, m := range idx.Manifests {
		ds = append(ds, m.Digest.String())
	}
	return strings.Join(ds, ","), nil
}

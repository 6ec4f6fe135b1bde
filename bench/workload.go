package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Shape describes a deterministic workload: Repos repositories of Images
// images each, tagged v1.0.0 … v1.<Images-1>.0 and latest on the newest.
// IndexPercent of the images are multi-arch indexes of Children images.
// Every image has Layers layers of LayerSize random bytes. Media types
// alternate between OCI and Docker.
type Shape struct {
	Name         string
	Repos        int
	Images       int
	IndexPercent int
	Children     int
	Layers       int
	LayerSize    int64
	// Dests is how many destination registries the workload is promoted
	// into at once.
	Dests int
}

// The workloads of issue 6.
var shapes = map[string]Shape{
	"W200":   {Name: "W200", Repos: 20, Images: 10, IndexPercent: 30, Children: 3, Layers: 2, LayerSize: 4 << 10, Dests: 1},
	"W200x3": {Name: "W200x3", Repos: 20, Images: 10, IndexPercent: 30, Children: 3, Layers: 2, LayerSize: 4 << 10, Dests: 3},
	"W2000":  {Name: "W2000", Repos: 200, Images: 10, IndexPercent: 30, Children: 3, Layers: 2, LayerSize: 4 << 10, Dests: 1},
	"Wbig":   {Name: "Wbig", Repos: 5, Images: 4, IndexPercent: 0, Children: 0, Layers: 3, LayerSize: 16 << 20, Dests: 1},
}

// Item is one pushed image or index and the tags it carries.
type Item struct {
	Repo   string // relative repository name, e.g. r07
	Tags   []string
	Digest string
	Index  bool
	Value  remote.Taggable // v1.Image or v1.ImageIndex
}

// Workload is a generated shape.
type Workload struct {
	Shape Shape
	Items []Item // by repository, then image number
}

// Tags counts the tags of the workload.
func (w *Workload) Tags() int {
	n := 0
	for _, it := range w.Items {
		n += len(it.Tags)
	}
	return n
}

// Repos lists the relative repository names, sorted.
func (w *Workload) Repos() []string {
	seen := map[string]bool{}
	var out []string
	for _, it := range w.Items {
		if !seen[it.Repo] {
			seen[it.Repo] = true
			out = append(out, it.Repo)
		}
	}
	sort.Strings(out)
	return out
}

// Generate builds the workload's images. The same shape always yields the
// same digests: every layer's bytes come from a ChaCha8 stream seeded with
// its position (repository, image, child, layer) and size.
func Generate(s Shape) (*Workload, error) {
	w := &Workload{Shape: s}
	for r := range s.Repos {
		repo := fmt.Sprintf("r%03d", r)
		for i := range s.Images {
			n := r*s.Images + i
			oci := n%2 == 0
			// n·p mod 100 < p picks p of every 100 images, spread out.
			index := s.Children > 0 && (n*s.IndexPercent)%100 < s.IndexPercent
			it := Item{Repo: repo, Tags: []string{fmt.Sprintf("v1.%d.0", i)}, Index: index}
			if i == s.Images-1 {
				it.Tags = append(it.Tags, "latest")
			}
			var err error
			if index {
				it.Value, it.Digest, err = makeIndex(s, r, i, oci)
			} else {
				var img v1.Image
				img, err = makeImage(s, r, i, -1, oci, platforms[0])
				if err == nil {
					var h v1.Hash
					h, err = img.Digest()
					it.Value, it.Digest = img, h.String()
				}
			}
			if err != nil {
				return nil, fmt.Errorf("generate %s %s image %d: %w", s.Name, repo, i, err)
			}
			w.Items = append(w.Items, it)
		}
	}
	return w, nil
}

var platforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "s390x"},
	{OS: "linux", Architecture: "ppc64le"},
}

func makeImage(s Shape, r, i, child int, oci bool, p v1.Platform) (v1.Image, error) {
	mt, cmt, lmt := types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer
	if oci {
		mt, cmt, lmt = types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, mt), cmt)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Config.Labels = map[string]string{"bench": fmt.Sprintf("%s r%d i%d c%d", s.Name, r, i, child)}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	adds := make([]mutate.Addendum, s.Layers)
	for l := range s.Layers {
		layer, err := newSeededLayer(seedOf(r, i, child, l, s.LayerSize), s.LayerSize, lmt)
		if err != nil {
			return nil, err
		}
		adds[l] = mutate.Addendum{Layer: layer, MediaType: lmt}
	}
	return mutate.Append(img, adds...)
}

func makeIndex(s Shape, r, i int, oci bool) (v1.ImageIndex, string, error) {
	mt := types.DockerManifestList
	if oci {
		mt = types.OCIImageIndex
	}
	idx := mutate.IndexMediaType(empty.Index, mt)
	for c := range s.Children {
		p := platforms[c%len(platforms)]
		img, err := makeImage(s, r, i, c, oci, p)
		if err != nil {
			return nil, "", err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	h, err := idx.Digest()
	if err != nil {
		return nil, "", err
	}
	return idx, h.String(), nil
}

func seedOf(vals ...any) [32]byte {
	return sha256.Sum256([]byte(fmt.Sprint(vals...)))
}

// seededLayer is a layer whose bytes are regenerated from a seed on every
// read, so that Wbig's 16 MiB layers need not sit in memory. The bytes are
// random, not a gzipped tar: registries and copy tools never look inside,
// so the digest doubles as the diff ID.
type seededLayer struct {
	seed   [32]byte
	size   int64
	mt     types.MediaType
	digest v1.Hash
}

func newSeededLayer(seed [32]byte, size int64, mt types.MediaType) (*seededLayer, error) {
	l := &seededLayer{seed: seed, size: size, mt: mt}
	h, n, err := v1.SHA256(l.reader())
	if err != nil {
		return nil, err
	}
	if n != size {
		return nil, fmt.Errorf("seeded layer: read %d bytes, want %d", n, size)
	}
	l.digest = h
	return l, nil
}

func (l *seededLayer) reader() io.ReadCloser {
	return io.NopCloser(io.LimitReader(rand.NewChaCha8(l.seed), l.size))
}

func (l *seededLayer) Digest() (v1.Hash, error)             { return l.digest, nil }
func (l *seededLayer) DiffID() (v1.Hash, error)             { return l.digest, nil }
func (l *seededLayer) Compressed() (io.ReadCloser, error)   { return l.reader(), nil }
func (l *seededLayer) Uncompressed() (io.ReadCloser, error) { return l.reader(), nil }
func (l *seededLayer) Size() (int64, error)                 { return l.size, nil }
func (l *seededLayer) MediaType() (types.MediaType, error)  { return l.mt, nil }
func (l *seededLayer) String() string                       { return "seeded:" + l.digest.String() }

var _ v1.Layer = (*seededLayer)(nil)

// Push writes every item of w into host/prefix/<repo> with jobs items in
// flight (go-containerregistry's remote.Write: HEAD, POST, PATCH, PUT per
// new blob, then the manifests), then adds the extra tags.
func Push(ctx context.Context, w *Workload, host, prefix string, jobs int, rt http.RoundTripper) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	var mu sync.Mutex
	var extra []func(context.Context) error
	for _, it := range w.Items {
		g.Go(func() error {
			ref, err := name.ParseReference(fmt.Sprintf("%s/%s/%s:%s", host, prefix, it.Repo, it.Tags[0]))
			if err != nil {
				return err
			}
			opts := []remote.Option{remote.WithContext(gctx), remote.WithTransport(rt)}
			switch v := it.Value.(type) {
			case v1.Image:
				err = remote.Write(ref, v, opts...)
			case v1.ImageIndex:
				err = remote.WriteIndex(ref, v, opts...)
			}
			if err != nil {
				return fmt.Errorf("push %s: %w", ref, err)
			}
			for _, t := range it.Tags[1:] {
				tag := ref.Context().Tag(t)
				mu.Lock()
				extra = append(extra, func(ctx context.Context) error {
					return remote.Tag(tag, it.Value, remote.WithContext(ctx), remote.WithTransport(rt))
				})
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, f := range extra {
		g.Go(func() error { return f(gctx) })
	}
	return g.Wait()
}

// Manifest renders the plain promoter manifest that promotes w from
// src/<prefix> into each of dsts (registry names host/path).
func (w *Workload) Manifest(src string, dsts []string) string {
	var b strings.Builder
	b.WriteString("registries:\n")
	fmt.Fprintf(&b, "- name: %s\n  src: true\n", src)
	for _, d := range dsts {
		fmt.Fprintf(&b, "- name: %s\n", d)
	}
	b.WriteString("images:\n")
	byRepo := map[string][]Item{}
	for _, it := range w.Items {
		byRepo[it.Repo] = append(byRepo[it.Repo], it)
	}
	for _, repo := range w.Repos() {
		fmt.Fprintf(&b, "- name: %s\n  dmap:\n", repo)
		items := byRepo[repo]
		sort.Slice(items, func(i, j int) bool { return items[i].Digest < items[j].Digest })
		for _, it := range items {
			fmt.Fprintf(&b, "    %q: [%s]\n", it.Digest, strings.Join(it.Tags, ", "))
		}
	}
	return b.String()
}

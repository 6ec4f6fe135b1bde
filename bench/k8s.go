package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The shape of the registry.k8s.io promotion tree, for the WAN benchmark
// (issue 17): 75 subprojects, each promoting its images from a staging
// repository into 22 regional Artifact Registry mirrors, some into two or
// three paths of each mirror (445 repositories per mirror, 20,017
// digests, nearly every digest with one tag).

// K8sTree is the shape: subprojects, their destination paths, and per image
// the tag count of each digest of its history.
type K8sTree struct {
	// From says where the shape came from: the real thin manifests (a
	// directory) or the built-in constants.
	From        string
	Mirrors     int // distinct destination hosts
	Subprojects []K8sSubproject
}

// K8sSubproject is one thin manifest: a staging source promoted into every
// mirror under each of Paths.
type K8sSubproject struct {
	Name   string   // k8s-staging-foo
	Paths  []string // destination paths below each mirror host, sorted
	Images []K8sImage
}

// K8sImage is one image name of a subproject.
type K8sImage struct {
	Name string
	// Arch is true for a per-architecture image (a name ending in -amd64,
	// -arm64, …): its digests are single-platform images. Images without
	// the suffix are multi-arch manifest lists.
	Arch bool
	// Tags holds, per digest of the history (oldest first), its number of
	// tags.
	Tags []int
}

// archSuffix marks per-architecture image names: in the real tree 67% of
// the digests belong to such names (kube-apiserver-amd64, …), the rest to
// the multi-arch names that carry manifest lists.
var archSuffix = regexp.MustCompile(`-(amd64|arm64|arm|ppc64le|s390x|386)$`)

// Repos is the number of destination repositories per mirror (images with
// at least one digest, times their subproject's paths).
func (t *K8sTree) Repos() int {
	n := 0
	for _, s := range t.Subprojects {
		for _, im := range s.Images {
			if len(im.Tags) > 0 {
				n += len(s.Paths)
			}
		}
	}
	return n
}

// Images counts the image names with at least one digest.
func (t *K8sTree) Images() int {
	n := 0
	for _, s := range t.Subprojects {
		for _, im := range s.Images {
			if len(im.Tags) > 0 {
				n++
			}
		}
	}
	return n
}

// Digests counts the digests of every image (once, however many paths).
func (t *K8sTree) Digests() int {
	n := 0
	for _, s := range t.Subprojects {
		for _, im := range s.Images {
			n += len(im.Tags)
		}
	}
	return n
}

// K8sTreeFrom reads the shape from a registry.k8s.io thin-manifest
// directory (manifests/<x>/promoter-manifest.yaml, images/<x>/images.yaml).
// Image entries repeated within one images.yaml (kops lists its images per
// release) are merged by name, as the promoter does.
func K8sTreeFrom(dir string) (*K8sTree, error) {
	subs, err := os.ReadDir(filepath.Join(dir, "manifests"))
	if err != nil {
		return nil, fmt.Errorf("read k8s manifests: %w", err)
	}
	t := &K8sTree{From: dir}
	hosts := map[string]bool{}
	for _, e := range subs {
		if !e.IsDir() {
			continue
		}
		mf := filepath.Join(dir, "manifests", e.Name(), "promoter-manifest.yaml")
		b, err := os.ReadFile(mf)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", mf, err)
		}
		var pm struct {
			Registries []struct {
				Name string `yaml:"name"`
				Src  bool   `yaml:"src"`
			} `yaml:"registries"`
		}
		if err := yaml.Unmarshal(b, &pm); err != nil {
			return nil, fmt.Errorf("parse %s: %w", mf, err)
		}
		sub := K8sSubproject{Name: e.Name()}
		paths := map[string]bool{}
		for _, r := range pm.Registries {
			if r.Src {
				continue
			}
			host, path, ok := strings.Cut(r.Name, "/")
			if !ok {
				return nil, fmt.Errorf("parse %s: destination %q has no path", mf, r.Name)
			}
			hosts[host] = true
			paths[path] = true
		}
		for p := range paths {
			sub.Paths = append(sub.Paths, p)
		}
		slices.Sort(sub.Paths)
		imf := filepath.Join(dir, "images", e.Name(), "images.yaml")
		b, err = os.ReadFile(imf)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", imf, err)
		}
		var entries []struct {
			Name string              `yaml:"name"`
			Dmap map[string][]string `yaml:"dmap"`
		}
		if err := yaml.Unmarshal(b, &entries); err != nil {
			return nil, fmt.Errorf("parse %s: %w", imf, err)
		}
		byName := map[string]map[string]map[string]bool{}
		for _, en := range entries {
			dm := byName[en.Name]
			if dm == nil {
				dm = map[string]map[string]bool{}
				byName[en.Name] = dm
			}
			for d, tags := range en.Dmap {
				if dm[d] == nil {
					dm[d] = map[string]bool{}
				}
				for _, tg := range tags {
					dm[d][tg] = true
				}
			}
		}
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			dm := byName[n]
			digests := make([]string, 0, len(dm))
			for d := range dm {
				digests = append(digests, d)
			}
			// The YAML map has no order; digest order is as good as any
			// for a shape.
			slices.Sort(digests)
			im := K8sImage{Name: n, Arch: archSuffix.MatchString(n)}
			for _, d := range digests {
				im.Tags = append(im.Tags, len(dm[d]))
			}
			sub.Images = append(sub.Images, im)
		}
		t.Subprojects = append(t.Subprojects, sub)
	}
	t.Mirrors = len(hosts)
	if len(t.Subprojects) == 0 || t.Mirrors == 0 {
		return nil, fmt.Errorf("read k8s manifests in %s: no subprojects or no destinations", dir)
	}
	return t, nil
}

// builtinK8s is the shape of registry.k8s.io as of kubernetes/k8s.io
// 576d58a (2024-06-06), one line per subproject in name order: the number
// of destination paths per mirror, then per image (in name order) its
// digest count, prefixed by "a" for a per-architecture image, with
// "/NxM" when M of its digests carry N tags (all others carry one).
// TestBuiltinK8sMatchesRealData checks it against the real manifests when
// they are at hand.
var builtinK8s = []struct {
	paths  int
	images string
}{
	{1, "5 a5 a5 a5 a5 a5"},
	{1, "2 2"},
	{1, "18/2x2 9/2x2 40 31 5"},
	{1, "12 a12 a12 a12 a12 a12 68/2x1 a53/2x1 a53/2x1 a17 13 a11 a11 a11 a11 a11 13 a11 a11 a11 a11 a11 13 a11 a11 a11 a11 a11"},
	{1, "6"},
	{1, "30/2x1 a30/2x1 a30/2x1 a30/2x1 a30/2x1 a30/2x1 9/2x1 a9/2x1 a9/2x1 a9/2x1 a9/2x1 a9/2x1 33/2x1 a33/2x1 a33/2x1 a33/2x1 a33/2x1 a33/2x1 32 a27 a27 a27 a27 a27 1 129 a74 a74 a74 a74 a74 250/2x1 a141 a141 a141 a137 16 a13 a13 a13 a13 a13"},
	{1, "1"},
	{1, "1"},
	{1, "18"},
	{1, "2"},
	{1, "38"},
	{1, "16"},
	{1, "55"},
	{1, "3 112 83"},
	{1, "10 11"},
	{1, "1"},
	{1, "4"},
	{1, "158/2x2 a1 a1 a1 a1 a1 76 141 142 1"},
	{1, "76 a1 a1 a1 a1 a1 11 10"},
	{1, "114"},
	{1, "22"},
	{1, "21"},
	{1, "13"},
	{1, "8 a1 a1 a1 a1 a1"},
	{1, "1 1"},
	{1, "16"},
	{1, "8 a4 a4 a4 a4 1 a2 a2 a2 a2"},
	{1, "37 25"},
	{1, "24 a21 a20 a21"},
	{1, "40 a40 a40 a40 a40 a40 40 a40 a40 a40 a40 a40 47 a47 a47 a47 a47 a47 40 a40 a40 a40 a40 a40"},
	{1, "28 4 4 4 3 2 8 2 5 3 2 3 8/2x3 2 2 3 2 3 1 1 1 1 3 1 6 6 4 2 5 3 3"},
	{2, "24 1"},
	{1, "18/2x1 18/2x1 20 4"},
	{1, "2 a3 a2 a2 a2 a2 2 a2 a2 a2 a2 a2"},
	{1, "25 a18 18 18"},
	{1, "12"},
	{1, "34"},
	{1, "5"},
	{1, "10/2x1 4"},
	{1, "1"},
	{1, "68 31 10 17 9 5 4 50 17 47 2 12 16"},
	{1, "15"},
	{1, "57 57"},
	{1, "113 a4 a4 113 a4 a4 23 113 a4 a4"},
	{1, "30 a30 a30 a30 a28 a28"},
	{1, "15"},
	{2, "409 a409 a348 a409 a409 a409 48 a48 a48 a48 a48 a48 410 a410 a349 a410 a410 a410 410 a410 a349 a410 a410 a410 410 a410 a349 a410 a410 a410 410 a410 a349 a410 a410 a410 42 a42 a42 a42 a42 9 a2 a2 a2 a2 a2"},
	{1, "19/2x1"},
	{1, "42"},
	{1, "60/3x6 11"},
	{1, "3"},
	{1, "17"},
	{1, "1"},
	{1, "a1 23 a2 a2 a2 a2 2"},
	{1, "75/2x20 15"},
	{1, "16"},
	{1, "8"},
	{1, "89 76"},
	{1, "16 16 16 16 16 16 16"},
	{1, "1"},
	{1, "1/2x1 1/2x1 97"},
	{1, "3 3"},
	{1, "14 a14 a14 15 a14 a14"},
	{1, "a22"},
	{1, "3"},
	{1, "25 2 13 23 36 23 39 6 15 1 13 2 4 6 4 3 8 0 0 8 34 27 6"},
	{1, "1 1 1 1 1"},
	{3, "16 a14 a14 11 11"},
	{1, "1 1 1"},
	{1, "3"},
	{1, ""},
	{1, ""},
	{1, ""},
	{1, ""},
	{1, "2 2"},
}

// builtinMirrors is the number of regional mirrors registry.k8s.io
// promotes into (Artifact Registry regions in the manifests above).
const builtinMirrors = 22

// BuiltinK8sTree returns the built-in shape, with synthetic names.
func BuiltinK8sTree() *K8sTree {
	t := &K8sTree{From: "built-in constants (the real registry.k8s.io manifests were not found)", Mirrors: builtinMirrors}
	for si, s := range builtinK8s {
		sub := K8sSubproject{Name: fmt.Sprintf("k8s-staging-sub%02d", si)}
		base := fmt.Sprintf("k8s-artifacts-prod/images/sub%02d", si)
		sub.Paths = append(sub.Paths, base)
		for p := 1; p < s.paths; p++ {
			sub.Paths = append(sub.Paths, fmt.Sprintf("%s-alt%d", base, p))
		}
		for ii, f := range strings.Fields(s.images) {
			im := K8sImage{Name: fmt.Sprintf("img%02d", ii)}
			if rest, ok := strings.CutPrefix(f, "a"); ok {
				im.Arch, f = true, rest
				im.Name += "-amd64"
			}
			parts := strings.Split(f, "/")
			n, err := strconv.Atoi(parts[0])
			if err != nil {
				panic(fmt.Sprintf("builtinK8s line %d: %q", si, f))
			}
			im.Tags = make([]int, n)
			for i := range im.Tags {
				im.Tags[i] = 1
			}
			// Spread the multi-tag digests over the history.
			pos := 0
			for _, p := range parts[1:] {
				tags, count, ok := strings.Cut(p, "x")
				nt, err1 := strconv.Atoi(tags)
				c, err2 := strconv.Atoi(count)
				if !ok || err1 != nil || err2 != nil {
					panic(fmt.Sprintf("builtinK8s line %d: %q", si, f))
				}
				for range c {
					im.Tags[(pos*7919)%n] = nt
					pos++
				}
			}
			sub.Images = append(sub.Images, im)
		}
		t.Subprojects = append(t.Subprojects, sub)
	}
	return t
}

// LoadK8sTree reads the real shape from dir when it is there, else returns
// the built-in one (its From says which).
func LoadK8sTree(dir string) *K8sTree {
	if dir != "" {
		if t, err := K8sTreeFrom(dir); err == nil {
			return t
		} else if !errors.Is(err, os.ErrNotExist) {
			b := BuiltinK8sTree()
			b.From = fmt.Sprintf("built-in constants (%v)", err)
			return b
		}
	}
	return BuiltinK8sTree()
}

// Scaled keeps a fraction of each image's history (at least one digest of
// every image that has any; the kept digests are spread over the history)
// and, with maxImages > 0, only that many images spread over the tree.
func (t *K8sTree) Scaled(scale float64, maxImages int) *K8sTree {
	out := &K8sTree{From: t.From, Mirrors: t.Mirrors}
	total := t.Images()
	seen := 0
	for _, s := range t.Subprojects {
		ns := K8sSubproject{Name: s.Name, Paths: s.Paths}
		for _, im := range s.Images {
			if len(im.Tags) == 0 {
				continue
			}
			seen++
			// Keep image number seen when it starts a new one of
			// maxImages equal strides.
			if maxImages > 0 && maxImages < total && (seen-1)*maxImages/total == seen*maxImages/total {
				continue
			}
			n := len(im.Tags)
			k := int(math.Ceil(float64(n) * scale))
			k = max(1, min(k, n))
			ni := K8sImage{Name: im.Name, Arch: im.Arch, Tags: make([]int, k)}
			for i := range k {
				ni.Tags[i] = im.Tags[i*n/k]
			}
			ns.Images = append(ns.Images, ni)
		}
		if len(ns.Images) > 0 {
			out.Subprojects = append(out.Subprojects, ns)
		}
	}
	return out
}

// ParseScale reads a scale: "1/16", "0.25" or "1".
func ParseScale(s string) (float64, error) {
	if a, b, ok := strings.Cut(s, "/"); ok {
		x, err1 := strconv.ParseFloat(a, 64)
		y, err2 := strconv.ParseFloat(b, 64)
		if err1 != nil || err2 != nil || y == 0 || x <= 0 || x > y {
			return 0, fmt.Errorf("parse scale %q: want a fraction like 1/16", s)
		}
		return x / y, nil
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x <= 0 || x > 1 {
		return 0, fmt.Errorf("parse scale %q: want a number in (0, 1] or a fraction like 1/16", s)
	}
	return x, nil
}

// Content: every manifest is real JSON whose digest is the sha256 of its
// bytes, every blob has the digest of its bytes. Blobs are tiny: the WAN
// benchmark counts requests and latency, not bandwidth.

// Blob is one blob (a config or a layer).
type Blob struct {
	Digest string
	Data   []byte
}

// Manifest is one manifest with what it references.
type Manifest struct {
	Digest    string
	MediaType string
	Data      []byte
	Blobs     []*Blob     // an image's config and layers
	Children  []*Manifest // an index's images
}

// K8sItem is one (image, digest) of the tree with its tags.
type K8sItem struct {
	Sub      int // index into the tree's subprojects
	Image    string
	Tags     []string
	Manifest *Manifest
}

// ContentOptions shapes the generated content.
type ContentOptions struct {
	// Children is the number of platform images per manifest list.
	Children int
	// Layers per image, of LayerSize bytes each.
	Layers    int
	LayerSize int
}

// DefaultContent: four platforms per manifest list (the kube components
// ship five, many subprojects two: four is in between), two layers of 256
// bytes per image.
var DefaultContent = ContentOptions{Children: 4, Layers: 2, LayerSize: 256}

// K8sContent is a tree's generated content.
type K8sContent struct {
	Tree  *K8sTree
	Items []K8sItem // by subproject, image, history
	// PR is the one-pull-request change: a new digest with two tags for
	// one image, pushed to the source but not in the base manifests.
	PR K8sItem
}

var wanPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "ppc64le"},
	{OS: "linux", Architecture: "s390x"},
	{OS: "linux", Architecture: "arm", Variant: "v7"},
}

// GenerateK8s builds the content of t. The same tree and options always
// give the same digests: every byte comes from a ChaCha8 stream seeded
// with the item's position.
func GenerateK8s(t *K8sTree, o ContentOptions) (*K8sContent, error) {
	if o.Children < 1 || o.Layers < 1 || o.LayerSize < 1 {
		return nil, fmt.Errorf("generate content: children, layers and layer size must be at least 1")
	}
	c := &K8sContent{Tree: t}
	prSub, prImage := -1, ""
	for si, s := range t.Subprojects {
		for _, im := range s.Images {
			for j, nt := range im.Tags {
				m, err := makeK8sManifest(o, s.Name, im, j)
				if err != nil {
					return nil, err
				}
				c.Items = append(c.Items, K8sItem{Sub: si, Image: im.Name, Tags: k8sTags(j, nt), Manifest: m})
			}
			// The change goes to the multi-arch image of a one-path
			// subproject with the longest history: a release of a
			// busy image, promoted to one repository per mirror.
			if len(s.Paths) == 1 && !im.Arch && (prSub < 0 || len(im.Tags) > prLen(t, prSub, prImage)) {
				prSub, prImage = si, im.Name
			}
		}
	}
	if prSub < 0 {
		// Only per-architecture images or multi-path subprojects: take
		// the first image.
		if len(c.Items) == 0 {
			return nil, fmt.Errorf("generate content: the tree has no digests")
		}
		prSub, prImage = c.Items[0].Sub, c.Items[0].Image
	}
	var prImg K8sImage
	for _, im := range t.Subprojects[prSub].Images {
		if im.Name == prImage {
			prImg = im
		}
	}
	j := len(prImg.Tags)
	m, err := makeK8sManifest(o, t.Subprojects[prSub].Name, prImg, j)
	if err != nil {
		return nil, err
	}
	c.PR = K8sItem{Sub: prSub, Image: prImage, Tags: k8sTags(j, 2), Manifest: m}
	return c, nil
}

func prLen(t *K8sTree, si int, name string) int {
	for _, im := range t.Subprojects[si].Images {
		if im.Name == name {
			return len(im.Tags)
		}
	}
	return 0
}

// k8sTags names digest j's n tags: v1.<j>.0, then v1.<j>.0-r1, ….
func k8sTags(j, n int) []string {
	tags := []string{fmt.Sprintf("v1.%d.0", j)}
	for k := 1; k < n; k++ {
		tags = append(tags, fmt.Sprintf("v1.%d.0-r%d", j, k))
	}
	return tags
}

func k8sSeed(parts ...any) [32]byte { return sha256.Sum256([]byte(fmt.Sprint(parts...))) }

func newBlob(b []byte) *Blob {
	h := sha256.Sum256(b)
	return &Blob{Digest: "sha256:" + hex.EncodeToString(h[:]), Data: b}
}

func newManifest(mt types.MediaType, v any) (*Manifest, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(b)
	return &Manifest{Digest: "sha256:" + hex.EncodeToString(h[:]), MediaType: string(mt), Data: b}, nil
}

// makeK8sManifest builds digest j of image im: a manifest list of
// o.Children images for a multi-arch name, one image for a
// per-architecture name. Docker and OCI media types alternate by digest,
// as in a registry that has seen both eras.
func makeK8sManifest(o ContentOptions, sub string, im K8sImage, j int) (*Manifest, error) {
	seed := k8sSeed(sub, im.Name, j)
	oci := binary.BigEndian.Uint32(seed[:4])%2 == 0
	if im.Arch {
		return makeK8sImage(o, seed, oci, wanPlatforms[0])
	}
	var children []*Manifest
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.DockerManifestList}
	if oci {
		idx.MediaType = types.OCIImageIndex
	}
	for c := range o.Children {
		p := wanPlatforms[c%len(wanPlatforms)]
		child, err := makeK8sImage(o, k8sSeed(seed, c), oci, p)
		if err != nil {
			return nil, err
		}
		children = append(children, child)
		h, _ := v1.NewHash(child.Digest)
		idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: types.MediaType(child.MediaType), Size: int64(len(child.Data)), Digest: h, Platform: &p})
	}
	m, err := newManifest(idx.MediaType, idx)
	if err != nil {
		return nil, err
	}
	m.Children = children
	return m, nil
}

func makeK8sImage(o ContentOptions, seed [32]byte, oci bool, p v1.Platform) (*Manifest, error) {
	mt, cmt, lmt := types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer
	if oci {
		mt, cmt, lmt = types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer
	}
	rng := rand.NewChaCha8(seed)
	var layers []*Blob
	cf := v1.ConfigFile{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, RootFS: v1.RootFS{Type: "layers"}}
	for range o.Layers {
		b := make([]byte, o.LayerSize)
		rng.Read(b)
		l := newBlob(b)
		layers = append(layers, l)
		// The layer bytes are random, not a gzipped tar: no registry
		// looks inside, so the digest doubles as the diff ID.
		h, _ := v1.NewHash(l.Digest)
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, h)
	}
	cb, err := json.Marshal(cf)
	if err != nil {
		return nil, err
	}
	config := newBlob(cb)
	ch, _ := v1.NewHash(config.Digest)
	man := v1.Manifest{SchemaVersion: 2, MediaType: mt, Config: v1.Descriptor{MediaType: cmt, Size: int64(len(cb)), Digest: ch}}
	for _, l := range layers {
		h, _ := v1.NewHash(l.Digest)
		man.Layers = append(man.Layers, v1.Descriptor{MediaType: lmt, Size: int64(len(l.Data)), Digest: h})
	}
	m, err := newManifest(mt, man)
	if err != nil {
		return nil, err
	}
	m.Blobs = append([]*Blob{config}, layers...)
	return m, nil
}

// SourceRepo is item's repository in the source registry (host[:port]).
func (c *K8sContent) SourceRepo(source string, it K8sItem) string {
	return source + "/" + c.Tree.Subprojects[it.Sub].Name + "/" + it.Image
}

// MirrorRepos are item's repositories in one mirror: one per path of its
// subproject.
func (c *K8sContent) MirrorRepos(mirror string, it K8sItem) []string {
	var out []string
	for _, p := range c.Tree.Subprojects[it.Sub].Paths {
		out = append(out, mirror+"/"+p+"/"+it.Image)
	}
	return out
}

// items returns the base items, plus the change when withPR.
func (c *K8sContent) items(withPR bool) []K8sItem {
	if !withPR {
		return c.Items
	}
	return append(slices.Clip(c.Items), c.PR)
}

// WriteThin writes the thin-manifest directory that promotes the content
// (with the change when withPR) from source into every mirror:
// manifests/<x>/promoter-manifest.yaml and images/<x>/images.yaml per
// subproject, as in kubernetes/k8s.io.
func (c *K8sContent) WriteThin(dir, source string, mirrors []string, withPR bool) error {
	bySub := map[int]map[string][]K8sItem{}
	for _, it := range c.items(withPR) {
		if bySub[it.Sub] == nil {
			bySub[it.Sub] = map[string][]K8sItem{}
		}
		bySub[it.Sub][it.Image] = append(bySub[it.Sub][it.Image], it)
	}
	for si, s := range c.Tree.Subprojects {
		var b strings.Builder
		b.WriteString("registries:\n")
		fmt.Fprintf(&b, "- name: %s/%s\n  src: true\n", source, s.Name)
		for _, m := range mirrors {
			for _, p := range s.Paths {
				fmt.Fprintf(&b, "- name: %s/%s\n", m, p)
			}
		}
		if err := writeFile(filepath.Join(dir, "manifests", s.Name, "promoter-manifest.yaml"), b.String()); err != nil {
			return err
		}
		b.Reset()
		images := bySub[si]
		names := make([]string, 0, len(images))
		for n := range images {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			fmt.Fprintf(&b, "- name: %s\n  dmap:\n", n)
			its := slices.Clone(images[n])
			slices.SortFunc(its, func(a, b K8sItem) int { return strings.Compare(a.Manifest.Digest, b.Manifest.Digest) })
			for _, it := range its {
				q := make([]string, len(it.Tags))
				for i, t := range it.Tags {
					q[i] = strconv.Quote(t)
				}
				fmt.Fprintf(&b, "    %q: [%s]\n", it.Manifest.Digest, strings.Join(q, ", "))
			}
		}
		if err := writeFile(filepath.Join(dir, "images", s.Name, "images.yaml"), b.String()); err != nil {
			return err
		}
	}
	return nil
}

// WriteRegsync writes a regsync configuration equivalent to WriteThin's
// manifests: one repository entry per (mirror, destination repository)
// allowing exactly the tags the manifests name, parallel jobs at once.
func (c *K8sContent) WriteRegsync(file, source string, mirrors []string, withPR bool, parallel int) error {
	type key struct {
		sub   int
		image string
	}
	tags := map[key][]string{}
	var order []key
	for _, it := range c.items(withPR) {
		k := key{it.Sub, it.Image}
		if _, ok := tags[k]; !ok {
			order = append(order, k)
		}
		tags[k] = append(tags[k], it.Tags...)
	}
	var b strings.Builder
	b.WriteString("version: 1\ncreds:\n")
	for _, h := range append([]string{source}, mirrors...) {
		fmt.Fprintf(&b, "  - registry: %s\n    tls: disabled\n", h)
	}
	fmt.Fprintf(&b, "defaults:\n  parallel: %d\n  skipDockerConfig: true\nsync:\n", parallel)
	for _, m := range mirrors {
		for _, k := range order {
			src := source + "/" + c.Tree.Subprojects[k.sub].Name + "/" + k.image
			for _, p := range c.Tree.Subprojects[k.sub].Paths {
				fmt.Fprintf(&b, "  - source: %s\n    target: %s/%s/%s\n    type: repository\n    tags:\n      allow:\n", src, m, p, k.image)
				// regsync anchors each pattern (^…$).
				for _, t := range tags[k] {
					fmt.Fprintf(&b, "        - %s\n", strconv.Quote(regexp.QuoteMeta(t)))
				}
			}
		}
	}
	return writeFile(file, b.String())
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

package check

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cipdev/cip/manifest"
)

// Source names one version of the manifests: a plain manifest File or a
// thin-manifest Dir.
type Source struct {
	File string
	Dir  string
}

func (s Source) root() string {
	if s.Dir != "" {
		return s.Dir
	}
	return s.File
}

// State is one version of the manifests.
type State struct {
	// Root is the plain manifest or the thin directory as read; Display is
	// how findings name it (they differ for a base read from git into a
	// temporary directory).
	Root, Display string
	Thin          bool
	Manifests     []*Manifest // sorted by Rel
	// Problems are the validation errors of `cip validate`.
	Problems []*manifest.Error
	// Notices are what `cip validate` warns about but accepts (a stale
	// imagesPath, a service account cip will not use).
	Notices []*manifest.Error

	idx *index
}

// Manifest is one promoter manifest of a State, with every image entry that
// parses as YAML: also those validation rejects (a digest on a conflicting
// tag, say), so that comparing two versions is not confused by what the
// validator drops.
type Manifest struct {
	Rel              string // promoter manifest path relative to the thin directory ("" for a plain manifest)
	File, ImagesFile string // as read
	Source           string
	Destinations     []string
	Images           []manifest.Image // canonical: merged and sorted
}

// LoadState reads src. Invalid entries do not stop it: they become
// Problems, which the validation check reports. A file that cannot be read
// at all is an error.
func LoadState(src Source) (*State, error) {
	if (src.File == "") == (src.Dir == "") {
		return nil, errors.New("load manifests: want a manifest file or a thin manifest directory")
	}
	set, err := manifest.Load(src.File, src.Dir, manifest.Options{SkipInvalid: true})
	if err != nil {
		return nil, err
	}
	st := &State{Root: src.root(), Display: src.root(), Thin: src.Dir != "", Problems: set.Warnings, Notices: set.Notices}
	for _, m := range set.Manifests {
		x := &Manifest{File: m.File, ImagesFile: m.ImagesFile, Source: m.Source().Name}
		if st.Thin {
			x.Rel = st.rel(m.File)
		}
		for _, d := range m.Destinations() {
			x.Destinations = append(x.Destinations, d.Name)
		}
		imgs, err := readImages(m.ImagesFile, !st.Thin)
		if err != nil {
			return nil, err
		}
		x.Images = manifest.Canonical(imgs)
		st.Manifests = append(st.Manifests, x)
	}
	sort.Slice(st.Manifests, func(i, j int) bool { return st.Manifests[i].Rel < st.Manifests[j].Rel })
	return st, nil
}

// rel returns path relative to the state's root ("" for the plain manifest
// itself), with forward slashes.
func (s *State) rel(path string) string {
	if !s.Thin {
		if path == s.Root {
			return ""
		}
	}
	r, err := filepath.Rel(s.Root, path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(r)
}

// display names path, a file of this state, as findings show it.
func (s *State) display(path string) string {
	if s.Root == s.Display || path == "" {
		return path
	}
	if path == s.Root {
		return s.Display
	}
	if strings.HasPrefix(path, s.Root+string(filepath.Separator)) {
		return filepath.Join(s.Display, path[len(s.Root)+1:])
	}
	return path
}

// readImages reads the image entries of an images file (plain: the images
// field of a plain manifest) leniently: any list item with a name and a
// dmap mapping of digests to tag lists, whatever their content. The
// validator has already said what is wrong with them.
func readImages(path string, plain bool) ([]manifest.Image, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read images %s: %w", path, err)
	}
	return parseImages(data, plain), nil
}

// parseImages is readImages on the file's content.
func parseImages(data []byte, plain bool) []manifest.Image {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return nil // reported by validation
	}
	list := doc.Content[0]
	if plain {
		list = mapValue(list, "images")
	}
	if list == nil || list.Kind != yaml.SequenceNode {
		return nil
	}
	var out []manifest.Image
	for _, item := range list.Content {
		nameNode, dmap := mapValue(item, "name"), mapValue(item, "dmap")
		if nameNode == nil || nameNode.Kind != yaml.ScalarNode {
			continue
		}
		img := manifest.Image{Name: nameNode.Value, Line: item.Line}
		if dmap != nil && dmap.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(dmap.Content); i += 2 {
				k, v := dmap.Content[i], dmap.Content[i+1]
				if k.Kind != yaml.ScalarNode {
					continue
				}
				d := manifest.Digest{Digest: k.Value, Line: k.Line, Tags: []string{}}
				if v.Kind == yaml.SequenceNode {
					for _, t := range v.Content {
						if t.Kind == yaml.ScalarNode {
							d.Tags = append(d.Tags, t.Value)
						}
					}
				}
				img.Digests = append(img.Digests, d)
			}
		}
		out = append(out, img)
	}
	return out
}

// mapValue returns the value of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Change is a base version and a head version. Base is nil for a change
// that adds the manifests (everything is new).
type Change struct {
	Base, Head *State
}

// entry is one digest of one image in one manifest.
type entry struct {
	m      *Manifest
	image  string
	digest string
	line   int
	tags   []string
}

type imageDigest struct{ image, digest string }
type imageTag struct{ image, tag string }

// index is a State's entries by (image, digest) and (image, tag). All
// destinations of a manifest receive the same images, so entries are kept
// once per manifest, not once per destination repository.
type index struct {
	byDigest map[imageDigest][]*entry
	byTag    map[imageTag][]*entry
	dsts     map[string]bool
}

func (s *State) index() *index {
	if s == nil {
		return &index{byDigest: map[imageDigest][]*entry{}, byTag: map[imageTag][]*entry{}, dsts: map[string]bool{}}
	}
	if s.idx != nil {
		return s.idx
	}
	x := &index{byDigest: map[imageDigest][]*entry{}, byTag: map[imageTag][]*entry{}, dsts: map[string]bool{}}
	for _, m := range s.Manifests {
		for _, d := range m.Destinations {
			x.dsts[d] = true
		}
		for _, img := range m.Images {
			for _, d := range img.Digests {
				e := &entry{m: m, image: img.Name, digest: d.Digest, line: d.Line, tags: d.Tags}
				k := imageDigest{img.Name, d.Digest}
				x.byDigest[k] = append(x.byDigest[k], e)
				for _, t := range d.Tags {
					tk := imageTag{img.Name, t}
					x.byTag[tk] = append(x.byTag[tk], e)
				}
			}
		}
	}
	s.idx = x
	return x
}

// byDestination maps each destination registry of the entries' manifests
// to the entries it receives.
func byDestination(es []*entry) map[string][]*entry {
	out := map[string][]*entry{}
	for _, e := range es {
		for _, d := range e.m.Destinations {
			out[d] = append(out[d], e)
		}
	}
	return out
}

// digestsOf returns the distinct digests of es, sorted.
func digestsOf(es []*entry) []string {
	seen := map[string]bool{}
	var out []string
	for _, e := range es {
		if !seen[e.digest] {
			seen[e.digest] = true
			out = append(out, e.digest)
		}
	}
	sort.Strings(out)
	return out
}

// headFile returns the head's images file for base manifest m (by its
// relative path), or m's own images file named as the base displays it
// when the head has no such manifest.
func (c *Change) headFile(m *Manifest) string {
	for _, h := range c.Head.Manifests {
		if h.Rel == m.Rel {
			return h.ImagesFile
		}
	}
	return c.Base.display(m.ImagesFile)
}

// headLine returns the line of image in the head's images file f, or 0.
func (c *Change) headLine(f, image string) int {
	for _, h := range c.Head.Manifests {
		if h.ImagesFile != f {
			continue
		}
		for _, img := range h.Images {
			if img.Name == image {
				return img.Line
			}
		}
	}
	return 0
}

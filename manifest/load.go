package manifest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultMaxFileSize bounds the size of one manifest or images file. The
// largest real images.yaml (kubernetes/k8s.io,
// k8s.gcr.io/archived/images/DO-NOT-MODIFY-legacy-backfill) is about 3 MB;
// 16 MiB leaves room for growth while keeping a stray huge file from being
// read into memory and parsed.
const DefaultMaxFileSize = 16 << 20

// Options controls loading.
type Options struct {
	// SkipInvalid drops invalid entries and files, reporting them as
	// Set.Warnings, instead of failing.
	SkipInvalid bool
	// MaxFileSize is the largest file read, in bytes; 0 means
	// DefaultMaxFileSize.
	MaxFileSize int64
}

func (o Options) maxFileSize() int64 {
	if o.MaxFileSize > 0 {
		return o.MaxFileSize
	}
	return DefaultMaxFileSize
}

// Load loads a plain manifest when file is not empty, otherwise the thin
// manifest directory thinDir. Exactly one of them must be given.
func Load(file, thinDir string, opts Options) (*Set, error) {
	switch {
	case file != "" && thinDir != "":
		return nil, errors.New("load manifests: got both a manifest file and a thin manifest directory, want one")
	case file != "":
		return LoadFile(file, opts)
	case thinDir != "":
		return LoadThinDir(thinDir, opts)
	}
	return nil, errors.New("load manifests: want a manifest file or a thin manifest directory")
}

// LoadFile loads one plain manifest: registries and images in one YAML file.
// Problems with the content are reported as a *ValidationError (or, with
// opts.SkipInvalid, as Set.Warnings); a file that cannot be read is a plain
// error.
func LoadFile(path string, opts Options) (*Set, error) {
	c := &fileCheck{file: path}
	data, err := readFile(c, opts.maxFileSize())
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	return loadPlain(c, data, opts)
}

// loadPlain checks and loads the plain manifest data read from c.file.
func loadPlain(c *fileCheck, data []byte, opts Options) (*Set, error) {
	l := &loader{opts: opts}
	if !c.fatal {
		if m := decodePlain(c, data); m != nil {
			l.manifests = append(l.manifests, m)
		}
	}
	l.errs = append(l.errs, c.errs...)
	l.notes = append(l.notes, c.notes...)
	return l.finish()
}

func decodePlain(c *fileCheck, data []byte) *loaded {
	root, kind := parseYAML(c, data)
	switch kind {
	case docInvalid:
		return nil
	case docBlank:
		c.fail(0, "empty file: want registries and images")
		return nil
	case docComments:
		c.fail(0, "no registries: the file holds only comments")
		return nil
	}
	if root.Kind != yaml.MappingNode {
		c.fail(root.Line, "want a mapping with registries and images, got %s", kindName(root))
		return nil
	}
	fs, ok := c.fields(root, "manifest", "registries", "images")
	if !ok {
		return nil
	}
	rf := fs["registries"]
	keyLine := 0
	if rf.key != nil {
		keyLine = rf.key.Line
	}
	m := &loaded{file: c.file, imagesFile: c.file, images: map[string]*image{}}
	m.regs = c.decodeRegistries(rf.val, keyLine)
	if f, has := fs["images"]; has {
		c.decodeImages(f.val, m.images)
	}
	if c.fatal {
		return nil
	}
	return m
}

// loader accumulates the manifests and problems of one Load call.
type loader struct {
	opts      Options
	errs      []*Error
	notes     []*Error
	manifests []*loaded // usable manifests (no fatal problem)
}

// loaded is one manifest in the loader's working form.
type loaded struct {
	file, imagesFile string
	regs             []Registry
	images           map[string]*image
}

// finish checks tag conflicts across all manifests and returns the set, or
// the *ValidationError when there are problems and SkipInvalid is off.
func (l *loader) finish() (*Set, error) {
	sort.Slice(l.manifests, func(i, j int) bool { return l.manifests[i].file < l.manifests[j].file })
	l.errs = append(l.errs, l.checkTagConflicts()...)
	sortErrors(l.errs)
	if len(l.errs) > 0 && !l.opts.SkipInvalid {
		return nil, &ValidationError{Errors: l.errs}
	}
	sortErrors(l.notes)
	s := &Set{Warnings: l.errs, Notices: l.notes}
	for _, m := range l.manifests {
		s.Manifests = append(s.Manifests, m.export())
	}
	return s, nil
}

func sortErrors(errs []*Error) {
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i], errs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Msg < b.Msg
	})
}

func (m *loaded) sortedImages() []*image {
	out := make([]*image, 0, len(m.images))
	for _, img := range m.images {
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func (img *image) sortedDigests() []*digest {
	out := make([]*digest, 0, len(img.digests))
	for _, d := range img.digests {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].digest < out[j].digest })
	return out
}

func (m *loaded) export() Manifest {
	out := Manifest{File: m.file, ImagesFile: m.imagesFile, Registries: m.regs}
	for _, img := range m.sortedImages() {
		x := Image{Name: img.name, Line: img.line}
		for _, d := range img.sortedDigests() {
			if d.excluded {
				continue
			}
			tags := make([]string, 0, len(d.tags))
			for t := range d.tags {
				tags = append(tags, t)
			}
			sort.Strings(tags)
			x.Digests = append(x.Digests, Digest{Digest: d.digest, Tags: tags, Line: d.line})
		}
		out.Images = append(out.Images, x)
	}
	return out
}

// site is where one tag is given to one digest.
type site struct {
	m     *loaded
	image string
	d     *digest
	line  int // line of the tag
}

func (s site) before(t site) bool {
	if s.m.imagesFile != t.m.imagesFile {
		return s.m.imagesFile < t.m.imagesFile
	}
	return s.line < t.line
}

// checkTagConflicts finds a tag that would point at two digests in one
// destination repository, across all manifests. It reports one problem per
// pair of tag sites, however many destinations they share, at the later
// site, naming the earlier one. With SkipInvalid both digest entries are
// excluded.
//
// A destination repository is a destination registry joined with an image
// name, so "r/a" + "b/c" and "r/a/b" + "c" are the same repository. Most
// repositories receive exactly the images of one manifest entry, and every
// destination of that manifest receives the same ones: the check runs once
// per distinct set of contributing image entries, not once per repository.
func (l *loader) checkTagConflicts() []*Error {
	type contrib struct {
		m   *loaded
		img *image
	}
	var contribs []contrib
	byRepo := map[string][]int{} // repo -> indexes into contribs
	for _, m := range l.manifests {
		var dsts []string
		for _, r := range m.regs {
			if !r.Src {
				dsts = append(dsts, r.Name)
			}
		}
		if len(dsts) == 0 {
			continue
		}
		for _, img := range m.sortedImages() {
			contribs = append(contribs, contrib{m, img})
			for _, d := range dsts {
				repo := d + "/" + img.name
				byRepo[repo] = append(byRepo[repo], len(contribs)-1)
			}
		}
	}
	// Group repositories by their contributors.
	type group struct {
		contribs []int
		repo     string   // the first repository, by name
		repos    []string // every repository, by name
	}
	groups := map[string]*group{}
	var order []*group
	var sig []byte
	for _, repo := range slices.Sorted(maps.Keys(byRepo)) {
		cs := byRepo[repo]
		sig = sig[:0]
		for _, c := range cs {
			sig = strconv.AppendInt(sig, int64(c), 10)
			sig = append(sig, ',')
		}
		g := groups[string(sig)]
		if g == nil {
			g = &group{contribs: cs, repo: repo}
			groups[string(sig)] = g
			order = append(order, g)
		}
		g.repos = append(g.repos, repo)
	}

	type pairKey struct {
		first, second *digest
		tag           string
	}
	type conflict struct {
		first, second site
		tag, repo     string   // repo: the first shared destination, by name
		repos         []string // every shared destination repository
	}
	pairs := map[pairKey]*conflict{}
	var found []*conflict
	for _, g := range order {
		seen := map[string]site{} // tag -> earliest site
		for _, ci := range g.contribs {
			c := contribs[ci]
			for _, d := range c.img.sortedDigests() {
				for tag, line := range d.tags {
					s := site{m: c.m, image: c.img.name, d: d, line: line}
					prev, ok := seen[tag]
					if !ok {
						seen[tag] = s
						continue
					}
					if prev.d.digest == d.digest {
						continue
					}
					first, second := prev, s
					if second.before(first) {
						first, second = second, first
						seen[tag] = s
					}
					pk := pairKey{first.d, second.d, tag}
					x := pairs[pk]
					if x == nil {
						x = &conflict{first: first, second: second, tag: tag, repo: g.repo}
						pairs[pk] = x
						found = append(found, x)
					}
					x.repos = append(x.repos, g.repos...)
					if g.repo < x.repo {
						x.repo = g.repo
					}
				}
			}
		}
	}
	var errs []*Error
	for _, c := range found {
		var b strings.Builder
		fmt.Fprintf(&b, "image %q: digest %q: tag %q is also on digest %q at ",
			c.second.image, c.second.d.digest, c.tag, c.first.d.digest)
		if c.first.m.imagesFile == c.second.m.imagesFile {
			fmt.Fprintf(&b, "line %d", c.first.line)
		} else {
			fmt.Fprintf(&b, "%s:%d", c.first.m.imagesFile, c.first.line)
		}
		if c.first.image != c.second.image {
			fmt.Fprintf(&b, " (image %q)", c.first.image)
		}
		fmt.Fprintf(&b, "; a tag can name only one digest in %s", c.repo)
		if len(c.repos) > 1 {
			fmt.Fprintf(&b, " and %d other destinations", len(c.repos)-1)
		}
		if l.opts.SkipInvalid {
			b.WriteString("; skipped both digest entries")
			c.first.d.excluded = true
			c.second.d.excluded = true
		}
		tc := &TagConflict{
			Tag: c.tag, Image: c.second.image, Digest: c.second.d.digest, Line: c.second.d.line,
			OtherImage: c.first.image, Other: c.first.d.digest, OtherFile: c.first.m.imagesFile, OtherLine: c.first.d.line,
		}
		for _, repo := range c.repos {
			tc.Destinations = append(tc.Destinations, strings.TrimSuffix(repo, "/"+c.second.image))
		}
		slices.Sort(tc.Destinations)
		tc.Destinations = slices.Compact(tc.Destinations)
		errs = append(errs, &Error{File: c.second.m.imagesFile, Line: c.second.line, Msg: b.String(), Conflict: tc})
	}
	return errs
}

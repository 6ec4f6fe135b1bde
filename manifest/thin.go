package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// The fixed names of a thin manifest directory.
const (
	manifestsDir = "manifests"
	imagesDir    = "images"
	manifestFile = "promoter-manifest.yaml"
	imagesFile   = "images.yaml"
)

// maxNestedDepth bounds the search for nested manifests below
// manifests/<name>/. Real thin directories have no subfolders there at all;
// the bound only keeps a pathological tree from costing much.
const maxNestedDepth = 16

// LoadThinDir loads the thin manifest directory dir: every
// dir/manifests/<name>/promoter-manifest.yaml (its registries) with its
// dir/images/<name>/images.yaml (its images). The deprecated imagesPath is
// ignored, with a notice in Set.Notices when it names another file.
// Folders beside images and manifests are ignored. A dir that cannot be read or has no manifests folder is a plain
// error; problems with the files in it are reported as a *ValidationError
// (or, with opts.SkipInvalid, as Set.Warnings).
func LoadThinDir(dir string, opts Options) (*Set, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("load thin manifests: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("load thin manifests: %s is not a directory", dir)
	}
	mdir := filepath.Join(dir, manifestsDir)
	entries, err := os.ReadDir(mdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load thin manifests: %s has no %s folder; want %s/<name>/%s", dir, manifestsDir, mdir, manifestFile)
	}
	if err != nil {
		return nil, fmt.Errorf("load thin manifests: %w", err)
	}
	t := &thinDir{
		loader:  loader{opts: opts},
		root:    dir,
		claimed: map[string]bool{},
		images:  map[string]*imagesResult{},
	}
	var manifests []string // promoter-manifest.yaml paths
	for _, e := range entries {
		p := filepath.Join(mdir, e.Name())
		isDir, isFile, err := entryType(p, e, true)
		switch {
		case err != nil:
			t.problem(p, err)
		case isFile && isYAML(e.Name()):
			t.errs = append(t.errs, &Error{File: p, Msg: fmt.Sprintf("misplaced manifest file: want %s/<name>/%s", mdir, manifestFile)})
		case isDir:
			if m := t.scanManifestDir(p); m != "" {
				manifests = append(manifests, m)
			}
		}
	}
	candidates := t.scanImagesDir()
	for _, m := range manifests {
		t.loadPair(m)
	}
	for _, p := range candidates {
		if !t.claimed[p] {
			name := filepath.Base(filepath.Dir(p))
			t.errs = append(t.errs, &Error{File: p, Msg: fmt.Sprintf("no promoter manifest for these images: want %s", filepath.Join(mdir, name, manifestFile))})
		}
	}
	if len(manifests) == 0 && len(t.errs) == 0 {
		// Most likely the wrong folder: say so rather than validate nothing.
		return nil, fmt.Errorf("load thin manifests: no promoter manifests in %s: want %s/<name>/%s", dir, mdir, manifestFile)
	}
	return t.finish()
}

type thinDir struct {
	loader
	root    string
	claimed map[string]bool          // images files some manifest uses
	images  map[string]*imagesResult // by path
}

type imagesResult struct {
	images map[string]*image
	fatal  bool
}

// problem records an I/O failure on path p.
func (t *thinDir) problem(p string, err error) {
	msg := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		msg = pe.Op + ": " + pe.Err.Error()
	}
	t.errs = append(t.errs, &Error{File: p, Msg: msg})
}

// entryType says whether p (listed as e) is a directory or a regular file.
// With follow, a symbolic link is resolved (once: os.Stat fails on a link
// loop); without it, links are neither.
func entryType(p string, e fs.DirEntry, follow bool) (isDir, isFile bool, err error) {
	mode := e.Type()
	if mode&fs.ModeSymlink != 0 {
		if !follow {
			return false, false, nil
		}
		fi, err := os.Stat(p)
		if err != nil {
			return false, false, err
		}
		mode = fi.Mode()
	}
	return mode.IsDir(), mode.IsRegular(), nil
}

func isYAML(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// scanManifestDir checks manifests/<name>/ and returns the path of its
// promoter-manifest.yaml, or "" if it has none. Other YAML files and nested
// manifests are problems; other files (OWNERS, README.md) are ignored.
// Symbolic links below this level are not followed, so link loops cannot
// make the scan run forever.
func (t *thinDir) scanManifestDir(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.problem(dir, err)
		return ""
	}
	found := ""
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.Name() == manifestFile {
			_, isFile, err := entryType(p, e, true)
			switch {
			case err != nil:
				t.problem(p, err)
			case !isFile:
				t.errs = append(t.errs, &Error{File: p, Msg: "not a regular file"})
			default:
				found = p
			}
			continue
		}
		isDir, isFile, err := entryType(p, e, false)
		switch {
		case err != nil:
			t.problem(p, err)
		case isFile && isYAML(e.Name()):
			t.errs = append(t.errs, &Error{File: p, Msg: fmt.Sprintf("unexpected YAML file: a manifest folder holds only %s", manifestFile)})
		case isDir:
			t.findNested(p, manifestFile, "nested manifest: want "+filepath.Join(t.root, manifestsDir, "<name>", manifestFile)+", one folder deep", 1)
		}
	}
	return found
}

// findNested reports every file called name below dir, without following
// symbolic links.
func (t *thinDir) findNested(dir, name, msg string, depth int) {
	if depth > maxNestedDepth {
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.problem(dir, err)
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.Name() == name {
			t.errs = append(t.errs, &Error{File: p, Msg: msg})
			continue
		}
		if e.IsDir() {
			t.findNested(p, name, msg, depth+1)
		}
	}
}

// scanImagesDir returns the images/<name>/images.yaml files, reporting
// misplaced and nested ones. A missing images/ is reported as each
// manifest's missing images file.
func (t *thinDir) scanImagesDir() []string {
	idir := filepath.Join(t.root, imagesDir)
	entries, err := os.ReadDir(idir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.problem(idir, err)
		return nil
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(idir, e.Name())
		isDir, isFile, err := entryType(p, e, true)
		switch {
		case err != nil:
			t.problem(p, err)
		case isFile && isYAML(e.Name()):
			t.errs = append(t.errs, &Error{File: p, Msg: fmt.Sprintf("misplaced images file: want %s/<name>/%s", idir, imagesFile)})
		case isDir:
			sub, err := os.ReadDir(p)
			if err != nil {
				t.problem(p, err)
				continue
			}
			for _, s := range sub {
				q := filepath.Join(p, s.Name())
				if s.Name() == imagesFile {
					out = append(out, q)
				} else if s.IsDir() {
					t.findNested(q, imagesFile, "nested images file: want "+filepath.Join(idir, "<name>", imagesFile)+", one folder deep", 1)
				}
			}
		}
	}
	return out
}

// escapes reports (recording the problem on c) whether p resolves through
// a symbolic link to somewhere outside the thin directory: a thin dir is
// reviewed as a tree, so what it promotes must live in it.
func (t *thinDir) escapes(c *fileCheck, p string) bool {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return false // a missing or unreadable file is reported where it is read
	}
	root, err := filepath.EvalSymlinks(t.root)
	if err != nil || inside(root, real) {
		return false
	}
	t.errs = append(t.errs, &Error{File: p, Msg: fmt.Sprintf("resolves through a symbolic link to %s, outside the thin manifest directory %s", real, t.root)})
	c.fatal = true
	return true
}

// loadPair loads one thin manifest and its images file, which is always
// images/<name>/images.yaml for manifests/<name>/: like the Kubernetes
// promoter (since January 2020), cip ignores the deprecated imagesPath.
func (t *thinDir) loadPair(mfile string) {
	c := &fileCheck{file: mfile}
	if t.escapes(c, mfile) {
		return
	}
	m, parsed, imagesPath, ipLine := t.decodeThinManifest(c)
	name := filepath.Base(filepath.Dir(mfile))
	ifile := filepath.Join(t.root, imagesDir, name, imagesFile)
	if imagesPath != "" {
		noteImagesPath(c, mfile, ifile, imagesPath, ipLine)
	}
	t.claimed[ifile] = true
	if t.escapes(c, ifile) {
		ifile, m = "", nil
	}
	if ifile != "" {
		// When the manifest could not be read, a missing images file is
		// not reported: the manifest's own problem says enough.
		if r := t.loadImages(c, ifile, parsed); r != nil && m != nil {
			if r.fatal {
				m = nil
			} else {
				m.imagesFile = ifile
				m.images = r.images
			}
		} else {
			m = nil
		}
	}
	t.errs = append(t.errs, c.errs...)
	t.notes = append(t.notes, c.notes...)
	if m != nil && !c.fatal {
		t.manifests = append(t.manifests, m)
	}
}

// noteImagesPath records a notice when the deprecated imagesPath (resolved
// against the manifest's folder) names another file than ifile, the one
// cip reads: a stale value is harmless, but its author may expect other
// images to be promoted than will be.
func noteImagesPath(c *fileCheck, mfile, ifile, imagesPath string, line int) {
	p := filepath.FromSlash(imagesPath)
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(mfile), p)
	}
	want, err1 := filepath.Abs(ifile)
	got, err2 := filepath.Abs(p)
	if err1 == nil && err2 == nil && want == got {
		return
	}
	c.note(line, "imagesPath %q is deprecated and ignored: the images are read from %s (from the folder name), not %s", imagesPath, ifile, p)
}

// decodeThinManifest reads a promoter-manifest.yaml: registries and the
// optional imagesPath. parsed reports whether its top-level fields could be
// read.
func (t *thinDir) decodeThinManifest(c *fileCheck) (m *loaded, parsed bool, imagesPath string, ipLine int) {
	data, err := readFile(c, t.opts.maxFileSize())
	if err != nil {
		t.problem(c.file, err)
		c.fatal = true
		return nil, false, "", 0
	}
	if c.fatal {
		return nil, false, "", 0
	}
	root, kind := parseYAML(c, data)
	switch kind {
	case docInvalid:
		return nil, false, "", 0
	case docBlank:
		c.fail(0, "empty file: no registries")
		return nil, false, "", 0
	case docComments:
		c.fail(0, "no registries: the file holds only comments")
		return nil, false, "", 0
	}
	if root.Kind != yaml.MappingNode {
		c.fail(root.Line, "want a mapping with registries, got %s", kindName(root))
		return nil, false, "", 0
	}
	fs, ok := c.fields(root, "promoter manifest", "registries", "imagesPath")
	if !ok {
		return nil, false, "", 0
	}
	parsed = true
	if f, has := fs["imagesPath"]; has && !isNull(f.val) {
		ipLine = f.key.Line
		if imagesPath, ok = scalar(f.val); !ok {
			// The Kubernetes promoter reads it as a string, so it refuses
			// a list or a mapping too.
			c.fail(f.val.Line, "imagesPath: want a file path, got %s", kindName(f.val))
		}
	}
	rf := fs["registries"]
	keyLine := 0
	if rf.key != nil {
		keyLine = rf.key.Line
	}
	m = &loaded{file: c.file}
	m.regs = c.decodeRegistries(rf.val, keyLine)
	if c.fatal {
		return nil, parsed, imagesPath, ipLine
	}
	return m, parsed, imagesPath, ipLine
}

// inside reports whether p is root or below it, lexically.
func inside(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// loadImages reads an images file once; c is the manifest that needs it and
// receives the problem when the file is missing. It returns nil if the file
// could not be read.
func (t *thinDir) loadImages(c *fileCheck, ifile string, reportMissing bool) *imagesResult {
	if r, ok := t.images[ifile]; ok {
		return r
	}
	if _, err := os.Stat(ifile); errors.Is(err, fs.ErrNotExist) {
		if !reportMissing {
			return nil
		}
		c.fail(0, "missing images file %s: every promoter manifest needs one (for no images, write a comment such as \"# No images yet\")", ifile)
		return nil
	}
	ic := &fileCheck{file: ifile}
	data, err := readFile(ic, t.opts.maxFileSize())
	if err != nil {
		t.problem(ifile, err)
		t.images[ifile] = nil
		return nil
	}
	r := &imagesResult{images: map[string]*image{}}
	if !ic.fatal {
		root, kind := parseYAML(ic, data)
		switch kind {
		case docBlank:
			ic.fail(0, "empty file: want a list of images (for none, write [] or a comment such as \"# No images yet\")")
		case docContent:
			if root.Kind != yaml.SequenceNode {
				ic.fail(root.Line, "want a list of images, got %s", kindName(root))
			} else {
				ic.decodeImages(root, r.images)
			}
		}
	}
	r.fatal = ic.fatal
	t.errs = append(t.errs, ic.errs...)
	t.images[ifile] = r
	return r
}

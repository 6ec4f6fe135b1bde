package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

const testdata = "../testdata/manifests"

// relSet returns s with file names relative to testdata, for golden files.
func relSet(t *testing.T, s *Set) *Set {
	t.Helper()
	rel := func(p string) string {
		r, err := filepath.Rel(testdata, p)
		if err != nil {
			t.Fatalf("relative path of %s: %v", p, err)
		}
		return filepath.ToSlash(r)
	}
	out := &Set{}
	for _, m := range s.Manifests {
		m.File, m.ImagesFile = rel(m.File), rel(m.ImagesFile)
		out.Manifests = append(out.Manifests, m)
	}
	for _, w := range s.Warnings {
		x := *w
		x.File = rel(x.File)
		out.Warnings = append(out.Warnings, &x)
	}
	for _, w := range s.Notices {
		x := *w
		x.File = rel(x.File)
		out.Notices = append(out.Notices, &x)
	}
	return out
}

func checkGolden(t *testing.T, golden string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if *update {
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("output differs from %s (run go test -update to accept):\n%s", golden, b)
	}
}

func TestLoadGood(t *testing.T) {
	tests := []struct {
		name string
		file string
		thin string
	}{
		{name: "plain", file: filepath.Join(testdata, "good", "plain.yaml")},
		{name: "thin", thin: filepath.Join(testdata, "good", "thin")},
		// The Kubernetes promoter's own fixture shape: four thin
		// manifests, one with a stale imagesPath (../../images/a.yaml)
		// that the promoter ignores, and so does cip (with a notice).
		{name: "basic-thin", thin: filepath.Join(testdata, "good", "basic-thin")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(tt.file, tt.thin, Options{})
			if err != nil {
				t.Fatalf("Load(%q, %q) = %v, want no error", tt.file, tt.thin, err)
			}
			got := struct {
				*Set
				Promotions []Promotion
			}{relSet(t, s), relSet(t, &Set{Manifests: s.Manifests}).Promotions()}
			checkGolden(t, filepath.Join(testdata, "good", tt.name+".golden.json"), got)
		})
	}
}

// TestLoadPlainDetails pins the merging rules directly, beside the golden
// file.
func TestLoadPlainDetails(t *testing.T) {
	s, err := LoadFile(filepath.Join(testdata, "good", "plain.yaml"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := s.Manifests[0]
	if got, want := m.Source().Name, "gcr.io/example-staging"; got != want {
		t.Errorf("Source() = %q, want %q", got, want)
	}
	if got := len(m.Destinations()); got != 2 {
		t.Errorf("len(Destinations()) = %d, want 2", got)
	}
	var names []string
	for _, img := range m.Images {
		names = append(names, img.Name)
	}
	if got, want := strings.Join(names, ","), "apple,banana/nested,cherry,damson"; got != want {
		t.Errorf("images = %s, want %s (merged and sorted)", got, want)
	}
	apple := m.Images[0]
	if len(apple.Digests) != 3 {
		t.Fatalf("apple digests = %d, want 3", len(apple.Digests))
	}
	for _, d := range apple.Digests {
		switch d.Digest {
		case "sha256:e8ca4f9ff069d6a35f444832097e6650f6594b3ec0de129109d53a1b760884e9":
			if got, want := strings.Join(d.Tags, ","), "1.1,1.1.1,latest"; got != want {
				t.Errorf("merged tags = %s, want %s", got, want)
			}
		default:
			if len(d.Tags) != 0 {
				t.Errorf("digest %s tags = %v, want none", d.Digest, d.Tags)
			}
		}
	}
	if got, want := strings.Join(m.Images[1].Digests[0].Tags, ","), "1.0,1.10"; got != want {
		t.Errorf("banana tags = %s, want %s (unquoted 1.10 kept as written)", got, want)
	}
}

// TestLoadEncodings checks that line endings and a byte order mark, merely
// unusual, change nothing.
func TestLoadEncodings(t *testing.T) {
	orig := filepath.Join(testdata, "good", "plain.yaml")
	data, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	want, err := LoadFile(orig, Options{})
	if err != nil {
		t.Fatal(err)
	}
	variants := map[string][]byte{
		"crlf": bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n")),
		"bom":  append([]byte("\ufeff"), data...),
	}
	for name, v := range variants {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "plain.yaml")
			if err := os.WriteFile(p, v, 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := LoadFile(p, Options{})
			if err != nil {
				t.Fatalf("LoadFile(%s) = %v", name, err)
			}
			got.Manifests[0].File, got.Manifests[0].ImagesFile = orig, orig
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			if !bytes.Equal(g, w) {
				t.Errorf("LoadFile(%s) = %s\nwant %s", name, g, w)
			}
		})
	}
}

// badCase is one invalid manifest: the single problem it must produce.
type badCase struct {
	name string
	path string // under testdata/bad; a folder is loaded as a thin dir
	file string // the file the problem names, under path ("" = path itself)
	line int
	msg  string // substring of the message
}

var badCases = []badCase{
	{"bad YAML", "yaml-syntax.yaml", "", 7, "invalid YAML: did not find expected ',' or ']'"},
	{"truncated file", "truncated.yaml", "", 9, "invalid YAML: found unexpected end of stream"},
	{"unknown field", "unknown-field.yaml", "", 4, `registry entry: unknown field "srcc"; want name, src or service-account`},
	{"unknown top-level field", "unknown-top-field.yaml", "", 5, `manifest: unknown field "image"; want registries or images`},
	{"duplicate key", "duplicate-key.yaml", "", 9, `image entry: duplicate key "name" (first at line 6)`},
	{"duplicate digest key", "duplicate-digest-key.yaml", "", 10, `image "apple": dmap: duplicate key "sha256:e8ca4f9ff069d6a35f444832097e6650f6594b3ec0de129109d53a1b760884e9" (first at line 8)`},
	{"alias bomb", "alias-bomb.yaml", "", 1, "YAML anchor &a: anchors are not supported"},
	{"alias", "alias.yaml", "", 2, "YAML anchor &staging: anchors are not supported"},
	{"non-UTF-8", "non-utf8.yaml", "", 8, "invalid UTF-8 (byte 0xff at column 84); want UTF-8 text"},
	{"empty file", "empty.yaml", "", 0, "empty file: want registries and images"},
	{"comments only", "comments-only.yaml", "", 0, "no registries: the file holds only comments"},
	{"multiple documents", "multi-document.yaml", "", 6, "second YAML document (after ---); want one document"},
	{"not a mapping", "not-a-mapping.yaml", "", 1, "want a mapping with registries and images, got list"},
	{"no registries", "no-registries.yaml", "", 0, "no registries: want a source registry (src: true) and destinations"},
	{"no src", "no-src.yaml", "", 2, "no source registry: want exactly one registry with src: true"},
	{"two src", "two-src.yaml", "", 4, `registry "us.gcr.io/example-prod": second source registry ("gcr.io/example-staging" at line 2 is src: true too); want exactly one`},
	{"src not a bool", "src-string.yaml", "", 3, `registry "gcr.io/example-staging": src: want true or false, got string "true"`},
	{"bad registry name", "bad-registry-name.yaml", "", 4, `registry "us.gcr.io/Example-Prod": invalid registry name: path component "Example-Prod": want lowercase letters and digits`},
	{"registry with scheme", "bad-registry-scheme.yaml", "", 2, `registry "https://gcr.io/example-staging": invalid registry name: want host[:port]/path without a scheme`},
	{"bad registry port", "bad-registry-port.yaml", "", 4, `registry "localhost:99999/prod": invalid registry name: port "99999": want a number from 1 to 65535`},
	{"duplicate registry", "duplicate-registry.yaml", "", 6, `registry "us.gcr.io/example-prod": listed twice with a different src or service-account (first at line 4)`},
	{"bad image name", "bad-image-name.yaml", "", 6, `image "Apple_Pie": invalid image name: path component "Apple_Pie"`},
	{"image without name", "image-missing-name.yaml", "", 6, "image entry: missing name"},
	{"images not a list", "images-not-list.yaml", "", 6, "images: want a list of images, got mapping"},
	{"bad digest", "bad-digest.yaml", "", 9, `image "apple": digest "sha256:abc": invalid digest: want sha256: followed by 64 lowercase hex characters, got 3`},
	{"bad digest algorithm", "bad-digest-algorithm.yaml", "", 8, `invalid digest: want sha256: followed by 64 lowercase hex characters, got algorithm "sha512"`},
	{"bad tag", "bad-tag.yaml", "", 10, `image "apple": digest "sha256:e8ca4f9ff069d6a35f444832097e6650f6594b3ec0de129109d53a1b760884e9": tag "-v2": invalid tag`},
	{"tags not a list", "tags-not-list.yaml", "", 8, `want a list of tags, got string "v1"`},
	{"tag on two digests in one file", "tag-conflict.yaml", "", 14, `image "apple": digest "sha256:c3d310f4741b3642497da8826e0986db5e02afc9777a2b8e668c8e41034128c1": tag "latest" is also on digest "sha256:e8ca4f9ff069d6a35f444832097e6650f6594b3ec0de129109d53a1b760884e9" at line 8; a tag can name only one digest in us.gcr.io/example-prod/apple`},

	{"thin: tag on two digests across manifests", "thin-tag-conflict", "images/b/images.yaml", 4, `image "widget": digest "sha256:c3d310f4741b3642497da8826e0986db5e02afc9777a2b8e668c8e41034128c1": tag "v1.0.0" is also on digest "sha256:e8ca4f9ff069d6a35f444832097e6650f6594b3ec0de129109d53a1b760884e9" at ` + filepath.Join(testdata, "bad", "thin-tag-conflict", "images", "a", "images.yaml") + `:3; a tag can name only one digest in us.gcr.io/example-prod/widget`},
	{"thin: manifest without images", "thin-missing-images", "manifests/a/promoter-manifest.yaml", 0, "missing images file " + filepath.Join(testdata, "bad", "thin-missing-images", "images", "a", "images.yaml")},
	{"thin: images without manifest", "thin-orphan-images", "images/b/images.yaml", 0, "no promoter manifest for these images: want " + filepath.Join(testdata, "bad", "thin-orphan-images", "manifests", "b", "promoter-manifest.yaml")},
	{"thin: nested manifest", "thin-nested", "manifests/a/b/promoter-manifest.yaml", 0, "nested manifest: want"},
	{"thin: misplaced manifest", "thin-misplaced", "manifests/promoter-manifest.yaml", 0, "misplaced manifest file: want"},
	{"thin: stray YAML beside the manifest", "thin-stray-yaml", "manifests/a/promoter-manifest.yml", 0, "unexpected YAML file: a manifest folder holds only promoter-manifest.yaml"},
	{"thin: empty promoter manifest", "thin-empty-manifest", "manifests/a/promoter-manifest.yaml", 0, "empty file: no registries"},
	{"thin: empty images file", "thin-empty-images", "images/a/images.yaml", 0, "empty file: want a list of images"},
	{"thin: images in the manifest", "thin-images-in-manifest", "manifests/a/promoter-manifest.yaml", 5, `promoter manifest: unknown field "images"; want registries or imagesPath (images belong in images/<name>/images.yaml)`},
	{"thin: images file not a list", "thin-images-not-list", "images/a/images.yaml", 1, "want a list of images, got mapping"},
}

// loadBad loads a plain file or a thin dir.
func loadBad(path string, opts Options) (*Set, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return LoadThinDir(path, opts)
	}
	return LoadFile(path, opts)
}

// checkOneProblem asserts that err is a *ValidationError with exactly the
// one problem of c.
func checkOneProblem(t *testing.T, path string, c badCase, err error) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Load(%s) = %v, want *ValidationError", path, err)
	}
	if len(ve.Errors) != 1 {
		t.Fatalf("Load(%s) = %d problems, want 1:\n%v", path, len(ve.Errors), err)
	}
	got := ve.Errors[0]
	wantFile := path
	if c.file != "" {
		wantFile = filepath.Join(path, filepath.FromSlash(c.file))
	}
	if got.File != wantFile || got.Line != c.line || !strings.Contains(got.Msg, c.msg) {
		t.Errorf("Load(%s) = %s:%d: %s\nwant %s:%d: ...%s...", path, got.File, got.Line, got.Msg, wantFile, c.line, c.msg)
	}
}

func TestLoadBad(t *testing.T) {
	for _, c := range badCases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(testdata, "bad", c.path)
			set, err := loadBad(path, Options{})
			if set != nil {
				t.Errorf("Load(%s) returned a set with an error", path)
			}
			checkOneProblem(t, path, c, err)

			// With SkipInvalid the same problem is a warning.
			set, err = loadBad(path, Options{SkipInvalid: true})
			if err != nil {
				t.Fatalf("Load(%s, SkipInvalid) = %v, want no error", path, err)
			}
			checkOneProblem(t, path, c, &ValidationError{Errors: set.Warnings})
		})
	}
}

func TestCorpusCovered(t *testing.T) {
	used := map[string]bool{}
	for _, c := range badCases {
		used[c.path] = true
	}
	ents, err := os.ReadDir(filepath.Join(testdata, "bad"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !used[e.Name()] {
			t.Errorf("testdata/manifests/bad/%s has no case in badCases", e.Name())
		}
	}
}

// TestLoadGenerated covers cases built in a temporary directory: a huge
// file, symbolic link loops and escapes.
func TestLoadGenerated(t *testing.T) {
	const manifest = "registries:\n- name: gcr.io/example-a\n  src: true\n- name: us.gcr.io/example-prod\n"
	write := func(t *testing.T, p, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	symlink := func(t *testing.T, target, p string) {
		t.Helper()
		if err := os.Symlink(target, p); err != nil {
			t.Skipf("symlinks not supported: %v", err)
		}
	}
	// thin makes a valid thin dir with manifest a.
	thin := func(t *testing.T) string {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "manifests", "a", "promoter-manifest.yaml"), manifest)
		write(t, filepath.Join(dir, "images", "a", "images.yaml"), "[]\n")
		return dir
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) (path string, opts Options)
		file  string // relative to path, "" = path
		line  int
		msg   string
	}{
		{
			name: "file over the default size limit",
			setup: func(t *testing.T) (string, Options) {
				p := filepath.Join(t.TempDir(), "huge.yaml")
				f, err := os.Create(p)
				if err != nil {
					t.Fatal(err)
				}
				// Sparse: the size check must not read the file.
				if err := f.Truncate(DefaultMaxFileSize + 1); err != nil {
					t.Fatal(err)
				}
				f.Close()
				return p, Options{}
			},
			msg: "file is 16777217 bytes, over the limit of 16777216 bytes",
		},
		{
			name: "images file over MaxFileSize",
			setup: func(t *testing.T) (string, Options) {
				dir := thin(t)
				write(t, filepath.Join(dir, "images", "a", "images.yaml"), strings.Repeat("# padding\n", 200))
				return dir, Options{MaxFileSize: 1000}
			},
			file: "images/a/images.yaml",
			msg:  "file is 2000 bytes, over the limit of 1000 bytes",
		},
		{
			name: "symlink loop as a manifest folder",
			setup: func(t *testing.T) (string, Options) {
				dir := thin(t)
				symlink(t, "loop", filepath.Join(dir, "manifests", "loop"))
				return dir, Options{}
			},
			file: "manifests/loop",
			msg:  "stat: too many levels of symbolic links",
		},
		{
			name: "symlink loop as an images file",
			setup: func(t *testing.T) (string, Options) {
				dir := thin(t)
				p := filepath.Join(dir, "images", "a", "images.yaml")
				os.Remove(p)
				symlink(t, "images.yaml", p)
				return dir, Options{}
			},
			file: "images/a/images.yaml",
			msg:  "too many levels of symbolic links",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, opts := tt.setup(t)
			_, err := loadBad(path, opts)
			checkOneProblem(t, path, badCase{file: tt.file, line: tt.line, msg: tt.msg}, err)
		})
	}
}

// TestSymlinkLoopsTerminate builds link loops below manifests/<name>/ and
// images/<name>/, which are not followed: the load must finish and find
// nothing wrong.
func TestSymlinkLoopsTerminate(t *testing.T) {
	dir := t.TempDir()
	mdir := filepath.Join(dir, "manifests", "a")
	idir := filepath.Join(dir, "images", "a")
	for _, d := range []string{mdir, idir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(mdir, "promoter-manifest.yaml"), []byte("registries:\n- name: gcr.io/a\n  src: true\n"), 0o644)
	os.WriteFile(filepath.Join(idir, "images.yaml"), []byte("[]\n"), 0o644)
	for _, l := range [][2]string{{"..", filepath.Join(mdir, "up")}, {"../..", filepath.Join(idir, "root")}, {".", filepath.Join(mdir, "self")}} {
		if err := os.Symlink(l[0], l[1]); err != nil {
			t.Skipf("symlinks not supported: %v", err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := LoadThinDir(dir, Options{})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("LoadThinDir = %v, want no error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LoadThinDir did not finish: symlink loop followed")
	}
}

func TestSkipInvalid(t *testing.T) {
	dir := t.TempDir()
	const (
		d1 = "sha256:e8ca4f9ff069d6a35f444832097e6650f6594b3ec0de129109d53a1b760884e9"
		d2 = "sha256:c3d310f4741b3642497da8826e0986db5e02afc9777a2b8e668c8e41034128c1"
		d3 = "sha256:ec22e8de4b8d40252518147adfb76877cb5e1fa10293e52db26a9623c6a4e92b"
	)
	files := map[string]string{
		// good keeps what is valid.
		"manifests/good/promoter-manifest.yaml": "registries:\n- name: gcr.io/good\n  src: true\n- name: us.gcr.io/prod\n- name: us.gcr.io/prod\n",
		"images/good/images.yaml": "- name: ok\n  dmap:\n    \"" + d1 + "\": [v1]\n" +
			"- name: Bad\n  dmap:\n    \"" + d1 + "\": [v1]\n" +
			"- name: partly\n  dmap:\n    \"sha256:0\": [v1]\n    \"" + d2 + "\": [\"bad tag!\"]\n    \"" + d3 + "\": [v3]\n" +
			"- name: clash\n  dmap:\n    \"" + d1 + "\": [x]\n",
		// other clashes with good on clash:x, and loses a broken file.
		"manifests/other/promoter-manifest.yaml":  "registries:\n- name: gcr.io/other\n  src: true\n- name: us.gcr.io/prod\n",
		"images/other/images.yaml":                "- name: clash\n  dmap:\n    \"" + d2 + "\": [x]\n    \"" + d3 + "\": [y]\n",
		"manifests/broken/promoter-manifest.yaml": "registries:\n- name: gcr.io/broken\n  src: true\n  bogus: 1\n",
		"images/broken/images.yaml":               "[]\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadThinDir(dir, Options{}); err == nil {
		t.Fatal("LoadThinDir without SkipInvalid = nil error, want problems")
	}
	s, err := LoadThinDir(dir, Options{SkipInvalid: true})
	if err != nil {
		t.Fatalf("LoadThinDir(SkipInvalid) = %v", err)
	}
	var warnings []string
	for _, w := range s.Warnings {
		r, _ := filepath.Rel(dir, w.File)
		warnings = append(warnings, filepath.ToSlash(r)+":"+itoa(w.Line)+": "+truncate(w.Msg, 60))
	}
	wantWarnings := []string{
		`images/good/images.yaml:4: image "Bad": invalid image name: path component "Bad": want ...`,
		`images/good/images.yaml:9: image "partly": digest "sha256:0": invalid digest: want sha2...`,
		`images/good/images.yaml:10: image "partly": digest "sha256:c3d310f4741b3642497da8826e098...`,
		`images/other/images.yaml:3: image "clash": digest "sha256:c3d310f4741b3642497da8826e0986...`,
		`manifests/broken/promoter-manifest.yaml:4: registry entry: unknown field "bogus"; want name, src or ser...`,
		`manifests/good/promoter-manifest.yaml:5: registry "us.gcr.io/prod": listed twice (first at line 4)`,
	}
	if got, want := strings.Join(warnings, "\n"), strings.Join(wantWarnings, "\n"); got != want {
		t.Errorf("warnings:\n%s\nwant:\n%s", got, want)
	}
	var kept []string
	for _, p := range s.Promotions() {
		kept = append(kept, p.Src+" "+p.Dst+" "+p.Image+" "+p.Digest[:12]+" "+strings.Join(p.Tags, ","))
	}
	// clash:x is on d1 in good and on d2 in other: both are skipped.
	wantKept := []string{
		"gcr.io/other us.gcr.io/prod clash sha256:ec22e y",
		"gcr.io/good us.gcr.io/prod ok sha256:e8ca4 v1",
		"gcr.io/good us.gcr.io/prod partly sha256:ec22e v3",
	}
	if got, want := strings.Join(kept, "\n"), strings.Join(wantKept, "\n"); got != want {
		t.Errorf("promotions:\n%s\nwant:\n%s", got, want)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestLoadArguments(t *testing.T) {
	tests := []struct {
		name, file, thin, msg string
	}{
		{"neither", "", "", "load manifests: want a manifest file or a thin manifest directory"},
		{"both", "a.yaml", "dir", "load manifests: got both a manifest file and a thin manifest directory, want one"},
		{"missing file", filepath.Join(testdata, "nope.yaml"), "", "load manifest: open " + filepath.Join(testdata, "nope.yaml") + ": no such file or directory"},
		{"missing dir", "", filepath.Join(testdata, "nope"), "load thin manifests: stat " + filepath.Join(testdata, "nope") + ": no such file or directory"},
		{"not a thin dir", "", testdata, "has no manifests folder"},
		{"file as thin dir", "", filepath.Join(testdata, "good", "plain.yaml"), "is not a directory"},
		{"dir as file", filepath.Join(testdata, "good"), "", "load manifest: open " + filepath.Join(testdata, "good") + ": not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.file, tt.thin, Options{SkipInvalid: true})
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Load(%q, %q) = %v, want error containing %q", tt.file, tt.thin, err, tt.msg)
			}
			var ve *ValidationError
			if errors.As(err, &ve) {
				t.Errorf("Load(%q, %q) = *ValidationError, want a plain error", tt.file, tt.thin)
			}
		})
	}
}

func TestValidators(t *testing.T) {
	tests := []struct {
		fn    func(string) error
		name  string
		in    string
		valid bool
	}{
		{ValidateRegistryName, "registry", "gcr.io/k8s-staging-foo", true},
		{ValidateRegistryName, "registry", "us-central1-docker.pkg.dev/k8s-artifacts-prod/images/foo", true},
		{ValidateRegistryName, "registry", "localhost:5000", true},
		{ValidateRegistryName, "registry", "127.0.0.1:5000/a/b", true},
		{ValidateRegistryName, "registry", "[::1]:5000/a", true},
		{ValidateRegistryName, "registry", "registry.k8s.io", true},
		{ValidateRegistryName, "registry", "", false},
		{ValidateRegistryName, "registry", "gcr.io/", false},
		{ValidateRegistryName, "registry", "gcr.io//a", false},
		{ValidateRegistryName, "registry", "-gcr.io/a", false},
		{ValidateRegistryName, "registry", "gcr.io:/a", false},
		{ValidateRegistryName, "registry", "gcr.io:0/a", false},
		{ValidateRegistryName, "registry", "[::1/a", false},
		{ValidateRegistryName, "registry", "[1.2.3.4]/a", false},
		{ValidateRegistryName, "registry", "gcr.io/a b", false},
		{ValidateImageName, "image", "foo", true},
		{ValidateImageName, "image", "foo/bar-baz.qux_1", true},
		{ValidateImageName, "image", "a__b/c--d", true},
		{ValidateImageName, "image", "", false},
		{ValidateImageName, "image", "/foo", false},
		{ValidateImageName, "image", "foo/", false},
		{ValidateImageName, "image", "foo.", false},
		{ValidateImageName, "image", "a___b", false},
		{ValidateImageName, "image", "Foo", false},
		{ValidateImageName, "image", "foo:v1", false},
		{ValidateDigest, "digest", "sha256:" + strings.Repeat("0a", 32), true},
		{ValidateDigest, "digest", "sha256:" + strings.Repeat("0A", 32), false},
		{ValidateDigest, "digest", "sha256:" + strings.Repeat("0a", 33), false},
		{ValidateDigest, "digest", strings.Repeat("0a", 32), false},
		{ValidateDigest, "digest", "", false},
		{ValidateTag, "tag", "v1.0.0-rc.1", true},
		{ValidateTag, "tag", "_x", true},
		{ValidateTag, "tag", strings.Repeat("a", 128), true},
		{ValidateTag, "tag", strings.Repeat("a", 129), false},
		{ValidateTag, "tag", ".x", false},
		{ValidateTag, "tag", "", false},
		{ValidateTag, "tag", "a+b", false},
		{ValidateTag, "tag", "é", false},
	}
	for _, tt := range tests {
		err := tt.fn(tt.in)
		if (err == nil) != tt.valid {
			t.Errorf("Validate %s(%q) = %v, want valid=%v", tt.name, tt.in, err, tt.valid)
		}
	}
}

// TestImagesPathIgnored: the deprecated imagesPath never changes which
// images file is read (images/<name>/images.yaml, as the Kubernetes
// promoter does since January 2020); a value naming another file is a
// notice at its line, never a problem, whatever it points at.
func TestImagesPathIgnored(t *testing.T) {
	const regs = "registries:\n- name: gcr.io/example-a\n  src: true\n- name: us.gcr.io/example-prod\n"
	const d = "sha256:e8ca4f9ff069d6a35f444832097e6650f6594b3ec0de129109d53a1b760884e9"
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "images.yaml"), []byte("- name: other\n  dmap:\n    \""+d+"\": [v9]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		value  string // the imagesPath line, "" for none
		notice string // "" when none is wanted
	}{
		{"absent", "", ""},
		{"the derived file", `imagesPath: "../../images/a/images.yaml"`, ""},
		{"the derived file, spelled otherwise", `imagesPath: ./../../images/a/../a/images.yaml`, ""},
		{"empty", `imagesPath: ""`, ""},
		{"null", `imagesPath:`, ""},
		{"stale, as in the promoter's basic-thin fixture", `imagesPath: ../../images/a.yaml`, `imagesPath "../../images/a.yaml" is deprecated and ignored`},
		{"another valid images file", `imagesPath: ../../images/b/images.yaml`, string(filepath.Separator) + filepath.Join("images", "b", "images.yaml")},
		{"absolute", `imagesPath: /etc/passwd`, `imagesPath "/etc/passwd" is deprecated and ignored`},
		{"outside the tree", `imagesPath: ` + filepath.Join(outside, "images.yaml"), `is deprecated and ignored`},
		{"escaping the root", `imagesPath: ../../../../elsewhere/images.yaml`, `is deprecated and ignored`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{
				"manifests/a/promoter-manifest.yaml": regs + tt.value + "\n",
				"images/a/images.yaml":               "- name: app\n  dmap:\n    \"" + d + "\": [v1]\n",
				// b's images, which a's imagesPath may name: they must
				// still be b's only.
				"manifests/b/promoter-manifest.yaml": "registries:\n- name: gcr.io/example-b\n  src: true\n- name: us.gcr.io/example-prod\n",
				"images/b/images.yaml":               "- name: bee\n  dmap:\n    \"" + d + "\": [v2]\n",
			}
			for p, data := range files {
				p = filepath.Join(dir, filepath.FromSlash(p))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			set, err := LoadThinDir(dir, Options{})
			if err != nil {
				t.Fatalf("LoadThinDir = %v, want no error", err)
			}
			var got []string
			for _, p := range set.Promotions() {
				got = append(got, p.Src+" "+p.Image+" "+strings.Join(p.Tags, ","))
			}
			if want := []string{"gcr.io/example-a app v1", "gcr.io/example-b bee v2"}; !slices.Equal(got, want) {
				t.Errorf("promotions = %q, want %q (imagesPath must not change what is read)", got, want)
			}
			if tt.notice == "" {
				if len(set.Notices) != 0 {
					t.Errorf("Notices = %v, want none", set.Notices)
				}
				return
			}
			if len(set.Notices) != 1 {
				t.Fatalf("Notices = %v, want one", set.Notices)
			}
			n := set.Notices[0]
			if n.File != filepath.Join(dir, "manifests", "a", "promoter-manifest.yaml") || n.Line != 5 || !strings.Contains(n.Msg, tt.notice) {
				t.Errorf("notice = %s, want manifests/a/promoter-manifest.yaml:5: ...%s...", n, tt.notice)
			}
			if want := filepath.Join(dir, "images", "a", "images.yaml"); !strings.Contains(n.Msg, "read from "+want) {
				t.Errorf("notice = %s, want it to name the file read, %s", n, want)
			}
		})
	}
}

// TestImagesPathNotAString: imagesPath is still a string field (the
// Kubernetes promoter decodes it as one), so a list is refused.
func TestImagesPathNotAString(t *testing.T) {
	dir := t.TempDir()
	for p, data := range map[string]string{
		"manifests/a/promoter-manifest.yaml": "registries:\n- name: gcr.io/example-a\n  src: true\nimagesPath: [a, b]\n",
		"images/a/images.yaml":               "[]\n",
	} {
		p = filepath.Join(dir, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := LoadThinDir(dir, Options{})
	checkOneProblem(t, dir, badCase{file: "manifests/a/promoter-manifest.yaml", line: 4, msg: "imagesPath: want a file path, got list"}, err)
}

// TestServiceAccountNotice: a service account on a registry that is not
// Google's is kept as written but noticed (cip never uses it there); on a
// Google registry it says nothing.
func TestServiceAccountNotice(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.yaml")
	data := "registries:\n" +
		"- name: gcr.io/example-staging\n  src: true\n  service-account: reader@example.iam.gserviceaccount.com\n" +
		"- name: us-docker.pkg.dev/example/prod\n  service-account: writer@example.iam.gserviceaccount.com\n" +
		"- name: registry.example.com/prod\n  service-account: writer@example.iam.gserviceaccount.com\n" +
		"- name: 127.0.0.1:5000/prod\n" +
		"images: []\n"
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := LoadFile(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Notices) != 1 {
		t.Fatalf("Notices = %v, want one", set.Notices)
	}
	n := set.Notices[0]
	want := `registry "registry.example.com/prod": service-account writer@example.iam.gserviceaccount.com is ignored: service accounts are used only for Google registries`
	if n.File != p || n.Line != 8 || !strings.Contains(n.Msg, want) {
		t.Errorf("notice = %s, want %s:8: %s...", n, p, want)
	}
	if got := set.Manifests[0].Registries[2].ServiceAccount; got != "writer@example.iam.gserviceaccount.com" {
		t.Errorf("ServiceAccount = %q, want it kept as written", got)
	}
}

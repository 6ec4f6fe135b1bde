package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadThinDir builds a thin-manifest directory from the fuzz input —
// two manifest folders a and b sharing one promoter-manifest.yaml (whose
// imagesPath the fuzzer may set), each with its own images.yaml — and loads
// it. The directory is made once per fuzzing process and its four files
// rewritten for each input (a fresh t.TempDir per input costs more than the
// load). The loader must not panic, must fail only with a
// *ValidationError whose problems name files inside the directory, must
// never fail with SkipInvalid, and must return only valid, sorted entries.
func FuzzLoadThinDir(f *testing.F) {
	good := filepath.Join(testdata, "good", "thin")
	for _, name := range []string{"a", "b", "c"} {
		m, _ := os.ReadFile(filepath.Join(good, "manifests", name, "promoter-manifest.yaml"))
		img, _ := os.ReadFile(filepath.Join(good, "images", name, "images.yaml"))
		f.Add(m, img, img)
	}
	bad, _ := filepath.Glob(filepath.Join(testdata, "bad", "thin-*"))
	for _, dir := range bad {
		m, _ := os.ReadFile(filepath.Join(dir, "manifests", "a", "promoter-manifest.yaml"))
		a, _ := os.ReadFile(filepath.Join(dir, "images", "a", "images.yaml"))
		b, _ := os.ReadFile(filepath.Join(dir, "images", "b", "images.yaml"))
		f.Add(m, a, b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, manifestYAML, imagesA, imagesB []byte) {
		for _, x := range []struct {
			path string
			data []byte
		}{
			{"manifests/a/promoter-manifest.yaml", manifestYAML},
			{"manifests/b/promoter-manifest.yaml", manifestYAML},
			{"images/a/images.yaml", imagesA},
			{"images/b/images.yaml", imagesB},
		} {
			p := filepath.Join(dir, filepath.FromSlash(x.path))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, x.data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, skip := range []bool{false, true} {
			s, err := LoadThinDir(dir, Options{SkipInvalid: skip})
			if err != nil {
				var ve *ValidationError
				if skip || !errors.As(err, &ve) || len(ve.Errors) == 0 {
					t.Fatalf("LoadThinDir(skip=%v) = %v, want a non-empty *ValidationError only without SkipInvalid", skip, err)
				}
				checkThinProblems(t, dir, ve.Errors)
				continue
			}
			checkThinProblems(t, dir, s.Warnings)
			checkSet(t, s)
			for _, m := range s.Manifests {
				if !inside(dir, m.File) || !inside(dir, m.ImagesFile) {
					t.Fatalf("manifest %s with images %s: outside %s", m.File, m.ImagesFile, dir)
				}
			}
		}
	})
}

func checkThinProblems(t *testing.T, dir string, errs []*Error) {
	t.Helper()
	for _, e := range errs {
		if !strings.HasPrefix(e.File, dir) || e.Line < 0 || e.Msg == "" {
			t.Fatalf("bad problem %#v", e)
		}
		if strings.Contains(e.Msg, "parser panic") {
			t.Fatalf("yaml.v3 panicked: %v", e)
		}
	}
}

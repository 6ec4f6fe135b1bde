package manifest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// realData is the Kubernetes production data set (kubernetes/k8s.io, see
// its SOURCE.md), kept outside the module.
const realData = "../../shared/realdata"

// thinRoots returns every folder under root that has a manifests folder.
func thinRoots(t testing.TB, root string) []string {
	t.Helper()
	if _, err := os.Stat(root); err != nil {
		t.Skipf("../shared/realdata not found: %v", err)
	}
	var roots []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == manifestsDir {
			roots = append(roots, filepath.Dir(p))
			return filepath.SkipDir
		}
		if d.IsDir() && d.Name() == imagesDir {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatalf("find thin roots: %v", err)
	}
	return roots
}

// TestRealData loads every thin root of the real data. Each must load with
// SkipInvalid; what the validator says is logged. Known history cases pin
// the tag conflicts.
func TestRealData(t *testing.T) {
	roots := thinRoots(t, realData)
	if len(roots) == 0 {
		t.Fatalf("no thin roots under %s", realData)
	}
	for _, root := range roots {
		name, _ := filepath.Rel(realData, root)
		t.Run(name, func(t *testing.T) {
			_, strictErr := LoadThinDir(root, Options{})
			set, err := LoadThinDir(root, Options{SkipInvalid: true})
			if err != nil {
				t.Fatalf("LoadThinDir(%s, SkipInvalid) = %v", root, err)
			}
			var ve *ValidationError
			if strictErr != nil && !errors.As(strictErr, &ve) {
				t.Fatalf("LoadThinDir(%s) = %v, want nil or *ValidationError", root, strictErr)
			}
			images, digests := 0, 0
			for _, m := range set.Manifests {
				images += len(m.Images)
				for _, img := range m.Images {
					digests += len(img.Digests)
				}
			}
			t.Logf("%s: %d manifests, %d images, %d digests, %d promotions, %d warnings",
				name, len(set.Manifests), images, digests, len(set.Promotions()), len(set.Warnings))
			for _, w := range set.Warnings {
				rel := *w
				rel.File, _ = filepath.Rel(realData, w.File)
				t.Logf("  warning: %v", &rel)
			}
			// Every real imagesPath names the file cip derives, and every
			// real service account is on a Google registry: nothing to say.
			for _, n := range set.Notices {
				t.Errorf("notice on real data: %v", n)
			}
			if (ve == nil) != (len(set.Warnings) == 0) {
				t.Errorf("strict load error %v but %d warnings with SkipInvalid", strictErr, len(set.Warnings))
			}
			// The history cases named after a tag conflict pin it.
			if strings.Contains(name, "tag-conflict-introduced") && strings.Contains(name, "/after/") {
				if !hasWarning(set.Warnings, "tag ") {
					t.Errorf("%s: no tag conflict reported", name)
				}
			}
		})
	}
}

func hasWarning(ws []*Error, substr string) bool {
	for _, w := range ws {
		if strings.Contains(w.Msg, substr) {
			return true
		}
	}
	return false
}

func BenchmarkLoadRealThinDir(b *testing.B) {
	root := filepath.Join(realData, "k8s.io", "registry.k8s.io")
	if _, err := os.Stat(root); err != nil {
		b.Skipf("../shared/realdata not found: %v", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadThinDir(root, Options{SkipInvalid: true}); err != nil {
			b.Fatal(err)
		}
	}
}

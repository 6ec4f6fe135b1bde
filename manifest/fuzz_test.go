package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// FuzzLoadFile feeds arbitrary bytes to the plain manifest parser: it must
// not panic, must fail with a *ValidationError or return only valid,
// sorted entries, and with SkipInvalid must never fail.
func FuzzLoadFile(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(testdata, "*", "*.yaml"))
	for _, p := range seeds {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("registries: [{name: a.b/c, src: true}, {name: d.e/f}]\nimages: [{name: x, dmap: {\"sha256:" + strings.Repeat("a", 64) + "\": [t]}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, skip := range []bool{false, true} {
			c := &fileCheck{file: "fuzz.yaml"}
			s, err := loadPlain(c, data, Options{SkipInvalid: skip})
			if err != nil {
				var ve *ValidationError
				if skip || !errors.As(err, &ve) || len(ve.Errors) == 0 {
					t.Fatalf("loadPlain(skip=%v) = %v, want a non-empty *ValidationError only without SkipInvalid", skip, err)
				}
				checkProblems(t, ve.Errors)
				continue
			}
			checkProblems(t, s.Warnings)
			checkSet(t, s)
		}
	})
}

func checkProblems(t *testing.T, errs []*Error) {
	for _, e := range errs {
		if e.File != "fuzz.yaml" || e.Line < 0 || e.Msg == "" {
			t.Fatalf("bad problem %#v", e)
		}
		if strings.Contains(e.Msg, "parser panic") {
			t.Fatalf("yaml.v3 panicked: %v", e)
		}
	}
}

func checkSet(t *testing.T, s *Set) {
	for _, m := range s.Manifests {
		srcs := 0
		for _, r := range m.Registries {
			if err := ValidateRegistryName(r.Name); err != nil {
				t.Fatalf("registry %q loaded: %v", r.Name, err)
			}
			if r.Src {
				srcs++
			}
		}
		if srcs != 1 {
			t.Fatalf("%d source registries loaded", srcs)
		}
		if !sort.SliceIsSorted(m.Images, func(i, j int) bool { return m.Images[i].Name < m.Images[j].Name }) {
			t.Fatal("images not sorted")
		}
		for _, img := range m.Images {
			if err := ValidateImageName(img.Name); err != nil {
				t.Fatalf("image %q loaded: %v", img.Name, err)
			}
			for i, d := range img.Digests {
				if i > 0 && img.Digests[i-1].Digest >= d.Digest {
					t.Fatal("digests not sorted and unique")
				}
				if err := ValidateDigest(d.Digest); err != nil {
					t.Fatalf("digest %q loaded: %v", d.Digest, err)
				}
				for j, tag := range d.Tags {
					if j > 0 && d.Tags[j-1] >= tag {
						t.Fatal("tags not sorted and unique")
					}
					if err := ValidateTag(tag); err != nil {
						t.Fatalf("tag %q loaded: %v", tag, err)
					}
				}
			}
		}
	}
}

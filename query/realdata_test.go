package query

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cipdev/cip/manifest"
)

const realThinDir = "../../shared/realdata/k8s.io/registry.k8s.io"

// The unique-digest count Ask gives for a destination of the real
// registry.k8s.io manifests equals one computed here by reading the YAML
// directly: every digest of every images.yaml whose promoter manifest
// names a destination below REG.
func TestRealDataUniqueDigests(t *testing.T) {
	if _, err := os.Stat(realThinDir); err != nil {
		t.Skipf("real manifests not present at %s (they live in the shared workspace): %v", realThinDir, err)
	}
	const reg = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"
	set, err := manifest.Load("", realThinDir, manifest.Options{SkipInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := askAll(context.Background(), filepath.Join(t.TempDir(), "none.db"), "how many unique digests in "+reg, Options{Manifests: set})
	if err != nil {
		t.Fatal(err)
	}
	got := res.Rows[0][0].(int64)

	digestRE := regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	want := map[string]bool{}
	dirs, err := filepath.Glob(filepath.Join(realThinDir, "manifests", "*", "promoter-manifest.yaml"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no thin manifests under %s: %v", realThinDir, err)
	}
	for _, mf := range dirs {
		var pm struct {
			Registries []struct {
				Name string `yaml:"name"`
				Src  bool   `yaml:"src"`
			} `yaml:"registries"`
		}
		readYAML(t, mf, &pm)
		covered := false
		for _, r := range pm.Registries {
			if !r.Src && (r.Name == reg || strings.HasPrefix(r.Name, reg+"/")) {
				covered = true
			}
		}
		if !covered {
			continue
		}
		var imgs []struct {
			Name string              `yaml:"name"`
			Dmap map[string][]string `yaml:"dmap"`
		}
		readYAML(t, filepath.Join(realThinDir, "images", filepath.Base(filepath.Dir(mf)), "images.yaml"), &imgs)
		for _, img := range imgs {
			for d := range img.Dmap {
				if digestRE.MatchString(d) {
					want[d] = true
				}
			}
		}
	}
	if got != int64(len(want)) {
		t.Errorf("how many unique digests in %s = %d, want %d (counted from the YAML)", reg, got, len(want))
	}
	if len(want) < 1000 {
		t.Errorf("only %d digests counted: is the realdata layout what this test expects?", len(want))
	}
	t.Logf("%s: %d unique digests (Ask) vs %d (YAML)", reg, got, len(want))
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
}

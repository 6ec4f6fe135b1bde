package packaging

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/krew/pkg/constants"
	"sigs.k8s.io/krew/pkg/index"
	"sigs.k8s.io/yaml"
)

const root = ".."

// platforms are the release targets: scripts/dist.sh's default PLATFORMS.
var platforms = []string{"darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"}

var (
	// As krew v0.4.3's internal/index/validation (not importable).
	safePluginName = regexp.MustCompile(`^[\w-]+$`)
	validSHA256    = regexp.MustCompile(`^[a-f0-9]{64}$`)
	// krew parses spec.version with a semver library that wants the v.
	semver = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
)

// readPlugin decodes a krew manifest with krew's types, strictly: a field
// krew does not know (a typo krew itself would silently ignore) is an error.
func readPlugin(t *testing.T, path string) index.Plugin {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p index.Plugin
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		t.Fatalf("decode %s as a krew Plugin: %v", path, err)
	}
	return p
}

// problems checks p as krew v0.4.3's validation.ValidatePlugin does, plus
// cip's own rules (the release URI, the binary's name, the files shipped).
func problems(p index.Plugin) []string {
	var out []string
	bad := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	if p.APIVersion != constants.CurrentAPIVersion {
		bad("apiVersion = %q, want %q", p.APIVersion, constants.CurrentAPIVersion)
	}
	if p.Kind != constants.PluginKind {
		bad("kind = %q, want %q", p.Kind, constants.PluginKind)
	}
	if p.Name != "cip" || !safePluginName.MatchString(p.Name) {
		bad("metadata.name = %q, want cip", p.Name)
	}
	s := p.Spec
	if s.ShortDescription == "" || strings.ContainsAny(s.ShortDescription, "\r\n") {
		bad("spec.shortDescription = %q, want one non-empty line", s.ShortDescription)
	}
	if strings.TrimSpace(s.Description) == "" {
		bad("spec.description is empty")
	}
	if s.Homepage != "https://github.com/cipdev/cip" {
		bad("spec.homepage = %q", s.Homepage)
	}
	if !semver.MatchString(s.Version) {
		bad("spec.version = %q, want a semantic version with a v", s.Version)
	}
	if len(s.Platforms) == 0 {
		bad("spec.platforms is empty")
	}
	for i, pl := range s.Platforms {
		where := fmt.Sprintf("spec.platforms[%d]", i)
		if pl.Selector == nil || len(pl.Selector.MatchExpressions) != 0 || len(pl.Selector.MatchLabels) != 2 ||
			pl.Selector.MatchLabels["os"] == "" || pl.Selector.MatchLabels["arch"] == "" {
			bad("%s.selector = %v, want matchLabels os and arch only", where, pl.Selector)
			continue
		}
		goos, goarch := pl.Selector.MatchLabels["os"], pl.Selector.MatchLabels["arch"]
		if want := fmt.Sprintf("https://github.com/cipdev/cip/releases/download/%s/cip_%s_%s.tar.gz", s.Version, goos, goarch); pl.URI != want {
			bad("%s.uri = %q, want %q", where, pl.URI, want)
		}
		if !validSHA256.MatchString(pl.Sha256) {
			bad("%s.sha256 = %q, want 64 lowercase hex digits", where, pl.Sha256)
		}
		if pl.Bin != "kubectl-cip" {
			bad("%s.bin = %q, want kubectl-cip", where, pl.Bin)
		}
		want := []index.FileOperation{{From: "kubectl-cip", To: "."}, {From: "kubectl_complete-cip", To: "."}, {From: "LICENSE", To: "."}}
		if diff := cmp.Diff(want, pl.Files); diff != "" {
			bad("%s.files (-want +got):\n%s", where, diff)
		}
	}
	return out
}

func platformsOf(p index.Plugin) []string {
	var out []string
	for _, pl := range p.Spec.Platforms {
		if pl.Selector != nil {
			out = append(out, pl.Selector.MatchLabels["os"]+"/"+pl.Selector.MatchLabels["arch"])
		}
	}
	return out
}

// TestCommittedManifest checks the committed plugins.yaml.
func TestCommittedManifest(t *testing.T) {
	p := readPlugin(t, filepath.Join(root, "plugins.yaml"))
	for _, msg := range problems(p) {
		t.Error(msg)
	}
	got := platformsOf(p)
	sort.Strings(got)
	if diff := cmp.Diff(platforms, got); diff != "" {
		t.Errorf("plugins.yaml platforms (-want +got):\n%s", diff)
	}
}

// TestProblems shows that the checks catch what krew refuses.
func TestProblems(t *testing.T) {
	good := readPlugin(t, filepath.Join(root, "plugins.yaml"))
	if len(good.Spec.Platforms) == 0 {
		t.Fatal("plugins.yaml has no platforms")
	}
	for name, spoil := range map[string]func(p *index.Plugin){
		"apiVersion":        func(p *index.Plugin) { p.APIVersion = "krew.googlecontainertools.github.com/v1alpha1" },
		"version without v": func(p *index.Plugin) { p.Spec.Version = strings.TrimPrefix(p.Spec.Version, "v") },
		"two-line short":    func(p *index.Plugin) { p.Spec.ShortDescription += "\nmore" },
		"short sha256":      func(p *index.Plugin) { p.Spec.Platforms[0].Sha256 = p.Spec.Platforms[0].Sha256[1:] },
		"no selector":       func(p *index.Plugin) { p.Spec.Platforms[0].Selector = nil },
		"no bin":            func(p *index.Plugin) { p.Spec.Platforms[0].Bin = "" },
		"uri of a release":  func(p *index.Plugin) { p.Spec.Version = "v99.0.0" },
	} {
		p := readPlugin(t, filepath.Join(root, "plugins.yaml"))
		spoil(&p)
		if len(problems(p)) == 0 {
			t.Errorf("%s: problems() found nothing", name)
		}
	}
}

// dist runs scripts/dist.sh from dir (a source tree) for one platform into
// out, with umask, and returns the archive's bytes and the manifest path.
func dist(t *testing.T, dir, out, platform, umask string) ([]byte, string) {
	t.Helper()
	manifest := filepath.Join(out, "plugins.yaml")
	cmd := exec.Command("sh", "-c", "umask "+umask+" && exec scripts/dist.sh")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PLATFORMS="+platform, "DIST_DIR="+out, "PLUGINS_YAML="+manifest,
		// The version is the committed one even when dir is a copy.
		"VERSION="+readPlugin(t, filepath.Join(root, "plugins.yaml")).Spec.Version)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/dist.sh in %s: %v\n%s", dir, err, b)
	}
	goos, goarch, _ := strings.Cut(platform, "/")
	b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("cip_%s_%s.tar.gz", goos, goarch)))
	if err != nil {
		t.Fatal(err)
	}
	return b, manifest
}

// copyTree copies the source tree at src into dst, leaving out VCS data
// and build outputs.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	skip := map[string]bool{".git": true, "bin": true, "dist": true, "bench": true}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if rel == ".git" && !d.IsDir() {
			return nil // a worktree's .git file names the real repository: never copy it
		}
		if d.IsDir() {
			if skip[rel] {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() || strings.HasSuffix(rel, ".test") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy source tree: %v", err)
	}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestDistReproducible builds the linux/amd64 archive twice: from this tree
// and from a copy elsewhere under another umask. Reproducibility is what
// makes the sha256 in plugins.yaml checkable, so the two must be identical;
// the test then checks the manifest dist.sh wrote and the archive's layout.
// (The other three platforms differ only in GOOS/GOARCH; `make dist` builds
// them.)
func TestDistReproducible(t *testing.T) {
	const platform = "linux/amd64"
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	first, manifest := dist(t, abs, t.TempDir(), platform, "022")
	copyDir := t.TempDir()
	copyTree(t, abs, copyDir)
	second, _ := dist(t, copyDir, t.TempDir(), platform, "077")
	if sum(first) != sum(second) {
		t.Fatalf("two builds of the %s archive differ: sha256 %s (in %s) and %s (in a copy at %s)", platform, sum(first), abs, sum(second), copyDir)
	}

	// The manifest dist.sh wrote: valid, the archive's sha256, and the same
	// text as the committed plugins.yaml but for the sha256 values and the
	// platforms left out.
	p := readPlugin(t, manifest)
	for _, msg := range problems(p) {
		t.Error(msg)
	}
	if got := platformsOf(p); len(got) != 1 || got[0] != platform || p.Spec.Platforms[0].Sha256 != sum(first) {
		t.Errorf("dist.sh manifest: platforms %v, sha256 %s; want %s with %s", got, p.Spec.Platforms[0].Sha256, platform, sum(first))
	}
	committed := readPlugin(t, filepath.Join(root, "plugins.yaml"))
	for i := range committed.Spec.Platforms {
		committed.Spec.Platforms[i].Sha256 = ""
	}
	written := p
	written.Spec.Platforms = nil
	var want index.Platform
	for _, pl := range committed.Spec.Platforms {
		if pl.Selector.MatchLabels["os"]+"/"+pl.Selector.MatchLabels["arch"] == platform {
			want = pl
		}
	}
	gotPl := p.Spec.Platforms[0]
	gotPl.Sha256 = ""
	committed.Spec.Platforms = nil
	if diff := cmp.Diff(committed, written); diff != "" {
		t.Errorf("plugins.yaml differs from what scripts/dist.sh writes (-committed +dist.sh); run make dist:\n%s", diff)
	}
	if diff := cmp.Diff(want, gotPl); diff != "" {
		t.Errorf("plugins.yaml %s entry differs from what scripts/dist.sh writes (-committed +dist.sh):\n%s", platform, diff)
	}

	checkArchive(t, first)
}

// checkArchive checks the layout krew unpacks: kubectl-cip (0755) and
// LICENSE (0644), owned by 0:0, at a fixed mtime, in a gzip stream without
// name or time.
func checkArchive(t *testing.T, b []byte) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header: name %q, mtime %v; want neither", zr.Name, zr.ModTime)
	}
	license, err := os.ReadFile(filepath.Join(root, "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		Name       string
		Mode       int64
		UID, GID   int
		Uname      string
		ModTime    int64
		Executable bool
	}
	var got []entry
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch h.Name {
		case "LICENSE":
			if !bytes.Equal(body, license) {
				t.Errorf("archive LICENSE differs from ../LICENSE")
			}
		case "kubectl-cip":
			// An ELF executable for linux/amd64.
			if len(body) < 20 || string(body[:4]) != "\x7fELF" || body[18] != 0x3e {
				t.Errorf("archive kubectl-cip is not an x86-64 ELF executable")
			}
		case "kubectl_complete-cip":
			if want, _ := os.ReadFile(filepath.Join(root, "packaging", "kubectl_complete-cip")); !bytes.Equal(body, want) {
				t.Errorf("archive kubectl_complete-cip differs from packaging/kubectl_complete-cip")
			}
		}
		got = append(got, entry{h.Name, h.Mode, h.Uid, h.Gid, h.Uname, h.ModTime.Unix(), h.Typeflag == tar.TypeReg})
	}
	want := []entry{
		{"kubectl-cip", 0o755, 0, 0, "", 0, true},
		{"kubectl_complete-cip", 0o755, 0, 0, "", 0, true},
		{"LICENSE", 0o644, 0, 0, "", 0, true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("archive entries (-want +got):\n%s", diff)
	}
}

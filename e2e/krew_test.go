package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// krewVersion is the krew release the plugin is installed with: the last
// release, and the one the Go module proxy serves.
const krewVersion = "v0.4.3"

// buildKrew builds krew from its module, with its own go.mod (inside cip's
// module its k8s.io/klog v2.8.0 does not compile against the newer
// go-logr/logr that go-containerregistry brings).
func buildKrew(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("go", "install", "sigs.k8s.io/krew/cmd/krew@"+krewVersion)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build krew %s from the Go module proxy: %v\n%s", krewVersion, err, out)
	}
	return filepath.Join(bin, "krew")
}

// dist runs scripts/dist.sh for this machine's platform into dir and returns
// the archive and the manifest it wrote.
func dist(t *testing.T, dir string) (archive, manifest string) {
	t.Helper()
	platform := runtime.GOOS + "/" + runtime.GOARCH
	manifest = filepath.Join(dir, "plugins.yaml")
	cmd := exec.Command("../scripts/dist.sh")
	cmd.Env = append(os.Environ(), "PLATFORMS="+platform, "DIST_DIR="+dir, "PLUGINS_YAML="+manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/dist.sh for %s: %v\n%s", platform, err, out)
	}
	return filepath.Join(dir, fmt.Sprintf("cip_%s_%s.tar.gz", runtime.GOOS, runtime.GOARCH)), manifest
}

// committedVersion reads spec.version of the committed plugins.yaml.
func committedVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../plugins.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^  version: (v\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("../plugins.yaml has no spec.version")
	}
	return string(m[1])
}

func krew(t *testing.T, krewBin, root string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(krewBin, args...)
	// HOME too: krew must not touch the user's ~/.krew.
	cmd.Env = append(os.Environ(), "KREW_ROOT="+root, "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestKrewInstall installs the plugin the way users do, with krew itself,
// offline: the manifest dist.sh writes and the archive it builds. krew
// validates the manifest with its own rules and checks the sha256.
func TestKrewInstall(t *testing.T) {
	krewBin := buildKrew(t)
	dir := t.TempDir()
	archive, manifest := dist(t, dir)
	version := committedVersion(t)

	// A wrong sha256 is refused, and nothing is installed.
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	bad := regexp.MustCompile(`sha256: "[0-9a-f]{64}"`).ReplaceAll(b, []byte(`sha256: "`+strings.Repeat("ab", 32)+`"`))
	if bytes.Equal(bad, b) {
		t.Fatalf("no sha256 to spoil in %s:\n%s", manifest, b)
	}
	badManifest := filepath.Join(t.TempDir(), "plugins.yaml")
	if err := os.WriteFile(badManifest, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	badRoot := t.TempDir()
	if out, err := krew(t, krewBin, badRoot, "install", "--manifest="+badManifest, "--archive="+archive); err == nil {
		t.Errorf("krew install with a wrong sha256 succeeded:\n%s", out)
	} else if !strings.Contains(out, "checksum does not match") {
		t.Errorf("krew install with a wrong sha256 failed, but not on the checksum:\n%s", out)
	}
	if _, err := os.Lstat(filepath.Join(badRoot, "bin", "kubectl-cip")); err == nil {
		t.Errorf("krew linked kubectl-cip although the sha256 did not match")
	}

	root := t.TempDir()
	out, err := krew(t, krewBin, root, "install", "--manifest="+manifest, "--archive="+archive)
	if err != nil {
		t.Fatalf("krew install --manifest=%s --archive=%s: %v\n%s", manifest, archive, err, out)
	}
	if !strings.Contains(out, "Installed plugin: cip") {
		t.Errorf("krew install output lacks %q:\n%s", "Installed plugin: cip", out)
	}
	plugin := filepath.Join(root, "bin", "kubectl-cip")

	// What krew unpacked: the binary and the licence, under the version.
	store, err := os.ReadDir(filepath.Join(root, "store", "cip", version))
	if err != nil {
		t.Fatalf("krew store: %v", err)
	}
	var files []string
	for _, e := range store {
		files = append(files, e.Name())
	}
	sort.Strings(files)
	if diff := cmp.Diff([]string{"LICENSE", "kubectl-cip", "kubectl_complete-cip"}, files); diff != "" {
		t.Errorf("krew store/cip/%s (-want +got):\n%s", version, diff)
	}
	receipt, err := os.ReadFile(filepath.Join(root, "receipts", "cip.yaml"))
	if err != nil || !strings.Contains(string(receipt), "version: "+version+"\n") {
		t.Errorf("krew receipt for cip = %q, %v; want version %s", receipt, err, version)
	}

	run := func(want int, args ...string) (string, string) {
		t.Helper()
		return runBin(t, plugin, want, args...)
	}
	if got, _ := run(0, "version"); got != "kubectl cip "+version+"\n" {
		t.Errorf("installed kubectl-cip version = %q, want %q", got, "kubectl cip "+version+"\n")
	}
	if got, _ := run(0, "--version"); got != "kubectl cip "+version+"\n" {
		t.Errorf("installed kubectl-cip --version = %q, want %q (what version prints)", got, "kubectl cip "+version+"\n")
	}
	if _, stderr := run(2, "nosuchcommand"); !strings.Contains(stderr, "see 'kubectl cip --help'") {
		t.Errorf("installed kubectl-cip nosuchcommand: stderr %q does not say `kubectl cip`", stderr)
	}

	// The installed plugin does the job: a snapshot of a real registry.
	srv := StartRegistry(t)
	seed(t, srv.Host)
	db := filepath.Join(t.TempDir(), "inv.db")
	snap, _ := run(0, "--db", db, "snapshot", srv.Host+"/staging", "-o", "csv")
	got := strings.Split(strings.TrimSpace(snap), "\n")
	sort.Strings(got)
	if diff := cmp.Diff(craneSnapshot(t, srv.Host, "staging"), got); diff != "" {
		t.Errorf("kubectl cip snapshot vs crane (-crane +kubectl cip):\n%s", diff)
	}
}

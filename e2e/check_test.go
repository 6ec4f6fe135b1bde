package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipdev/cip/internal/regtest"
)

type finding struct {
	Check, Severity, File, Message string
	Line                           int
}

func parseFindings(t *testing.T, out string) []finding {
	t.Helper()
	var fs []finding
	if err := json.Unmarshal([]byte(out), &fs); err != nil {
		t.Fatalf("parse findings: %v\n%s", err, out)
	}
	return fs
}

func hasFinding(fs []finding, check, severity, contains string) bool {
	for _, f := range fs {
		if f.Check == check && f.Severity == severity && strings.Contains(f.Message, contains) {
			return true
		}
	}
	return false
}

// copyDir copies the fixture directory src to dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestCheckBaseRef commits testdata/check/base then head in a new git
// repository and checks the head against HEAD~1, as a CI job on a pull
// request would.
func TestCheckBaseRef(t *testing.T) {
	repo := t.TempDir()
	thin := filepath.Join(repo, "registry.example")
	git(t, repo, "init", "-q", "-b", "main")
	copyDir(t, "../testdata/check/base", thin)
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "base")
	if err := os.RemoveAll(thin); err != nil {
		t.Fatal(err)
	}
	copyDir(t, "../testdata/check/head", thin)
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "head")

	out, _ := Cip(t, 1, "check", "--thin-manifest-dir", thin, "--base-ref", "HEAD~1", "--offline", "--output", "json")
	fs := parseFindings(t, out)
	for _, w := range [][3]string{
		{"image-removal", "error", "digest sha256:bbbb"},
		{"tag-move", "error", `tag "v1.1" moves`},
		{"tag-conflict", "error", `tag "v1" names 2 digests`},
		{"floating-tags", "error", `tag "latest" is floating`},
	} {
		if !hasFinding(fs, w[0], w[1], w[2]) {
			t.Errorf("no %s %s finding containing %q in %+v", w[1], w[0], w[2], fs)
		}
	}
	for _, f := range fs {
		if f.File != filepath.Join(thin, "images/foo/images.yaml") || f.Line == 0 {
			t.Errorf("finding %+v: want file %s and a line", f, filepath.Join(thin, "images/foo/images.yaml"))
		}
	}

	// GitHub annotations, run from the repository root with a relative path.
	cmd := exec.Command(cipBin, "check", "--thin-manifest-dir", "registry.example", "--base-ref", "main~1", "--offline", "--output", "github", "--checks", "tag-move")
	cmd.Dir = repo
	gh, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("cip check --output github: %v, want exit 1", err)
	}
	if want := "::error file=registry.example/images/foo/images.yaml,line=8,title=cip check tag-move::image \"app\": tag \"v1.1\" moves"; !strings.HasPrefix(string(gh), want) {
		t.Errorf("github output = %q, want prefix %q", gh, want)
	}

	// Against itself, nothing is introduced; the problems of the head are
	// in the base too, so they are warnings and the exit code is 0.
	out, _ = Cip(t, 0, "check", "--thin-manifest-dir", thin, "--base-ref", "HEAD", "--offline", "--output", "json")
	for _, f := range parseFindings(t, out) {
		if f.Severity != "warning" {
			t.Errorf("check against itself: %+v, want only warnings", f)
		}
	}
	// --strict turns those warnings into errors.
	Cip(t, 1, "check", "--thin-manifest-dir", thin, "--base-ref", "HEAD", "--offline", "--strict", "--output", "json")
}

func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{
		{"check"},
		{"check", "--head", "../testdata/check/head", "--checks", "no-such-check", "--offline"},
		{"check", "--head", "../testdata/check/head", "--output", "xml", "--offline"},
		{"check", "--head", "../testdata/check/head", "--base", "../testdata/check/base", "--base-ref", "HEAD"},
		{"check", "--thin-manifest-dir", "../testdata/check/head", "--base-ref", "no-such-ref-anywhere", "--offline"},
	} {
		Cip(t, 2, args...)
	}
	out, _ := Cip(t, 0, "check", "--list")
	for _, name := range []string{"validation", "image-removal", "tag-move", "tag-conflict", "destination-removal", "source-presence", "image-size", "floating-tags", "format"} {
		if !strings.Contains(out, name) {
			t.Errorf("cip check --list lacks %s:\n%s", name, out)
		}
	}
}

// TestCheckSourcePresence runs the online checks against docker-registry.
func TestCheckSourcePresence(t *testing.T) {
	s := StartRegistry(t)
	reg := &regtest.Registry{Host: s.Host}
	present := reg.Push(t, "staging/app", "v1", regtest.Image(t, 2048, 2, false)).String()
	missing := "sha256:" + strings.Repeat("e", 64)
	dir := t.TempDir()
	regs := "registries:\n- name: " + s.Host + "/staging\n  src: true\n- name: " + s.Host + "/prod\n"
	write := func(images string) {
		for p, data := range map[string]string{"manifests/foo/promoter-manifest.yaml": regs, "images/foo/images.yaml": images} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, p), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	db := filepath.Join(t.TempDir(), "inventory.db")
	write("- name: app\n  dmap:\n    \"" + present + "\": [\"v1\"]\n")
	Cip(t, 0, "--db", db, "check", "--head", dir, "--output", "json")
	// Digests in canonical (sorted) order, so that the format check has
	// nothing to say whatever the random digest is.
	lines := []string{"    \"" + present + "\": [\"v1\"]\n", "    \"" + missing + "\": [\"v2\"]\n"}
	if missing < present {
		lines[0], lines[1] = lines[1], lines[0]
	}
	write("- name: app\n  dmap:\n" + lines[0] + lines[1])
	out, _ := Cip(t, 1, "--db", db, "check", "--head", dir, "--output", "json")
	if fs := parseFindings(t, out); len(fs) != 1 || !hasFinding(fs, "source-presence", "error", missing+" is not in the source repository "+s.Host+"/staging/app") {
		t.Errorf("findings = %+v, want one source-presence error for %s", fs, missing)
	}
	out, _ = Cip(t, 1, "--db", db, "check", "--head", dir, "--output", "json", "--checks", "image-size", "--max-image-size", "1KiB")
	if fs := parseFindings(t, out); len(fs) != 1 || !hasFinding(fs, "image-size", "error", present) {
		t.Errorf("findings = %+v, want one image-size error for %s", fs, present)
	}
}

func TestFmt(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, "../testdata/check/base", dir)
	images := filepath.Join(dir, "images/foo/images.yaml")
	messy, err := os.ReadFile("../testdata/check/messy-images.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(images, messy, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(images, 0o640); err != nil {
		t.Fatal(err)
	}
	out, _ := Cip(t, 1, "fmt", "--check", "--thin-manifest-dir", dir)
	if strings.TrimSpace(out) != images {
		t.Errorf("cip fmt --check listed %q, want %s", out, images)
	}
	if got, _ := os.ReadFile(images); string(got) != string(messy) {
		t.Error("cip fmt --check changed the file")
	}
	Cip(t, 0, "fmt", "--thin-manifest-dir", dir)
	got, _ := os.ReadFile(images)
	a, b, c := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64), "sha256:"+strings.Repeat("c", 64)
	want := "# Images promoted for sig-foo.\n# Keep sorted (cip fmt does).\n\n" +
		"- name: app\n  dmap:\n    \"" + a + "\": [\"v1\"]\n    \"" + b + "\": [\"v2\", \"v2.0\"]\n" +
		"- name: web\n  dmap:\n    \"" + c + "\": []\n"
	if string(got) != want {
		t.Errorf("cip fmt wrote:\n%s\nwant:\n%s", got, want)
	}
	if fi, _ := os.Stat(images); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode after fmt = %v, want 0640", fi.Mode().Perm())
	}
	Cip(t, 0, "fmt", "--check", "--thin-manifest-dir", dir)

	// An invalid file is refused and left as it is.
	bad := "- name: app\n  dmap:\n    \"sha256:123\": [\"v1\"]\n    \"" + b + "\": [v2]\n"
	if err := os.WriteFile(images, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	Cip(t, 2, "fmt", "--thin-manifest-dir", dir)
	if got, _ := os.ReadFile(images); string(got) != bad {
		t.Errorf("cip fmt changed an invalid file:\n%s", got)
	}
	entries, _ := os.ReadDir(filepath.Dir(images))
	if len(entries) != 1 {
		t.Errorf("files beside images.yaml after fmt: %d, want 1 (no temporary file left)", len(entries))
	}
}

// TestCheckIgnoresServiceAccountOffGoogle: a service account on a registry
// that is not Google's is never used (a gcloud token is good only at
// Google): the online checks read the source with ambient credentials and
// find the digest missing, and nothing runs gcloud. cip runs with a PATH
// whose only gcloud fails loudly when called.
func TestCheckIgnoresServiceAccountOffGoogle(t *testing.T) {
	s := StartRegistry(t)
	dir := t.TempDir()
	regs := "registries:\n- name: " + s.Host + "/staging\n  src: true\n  service-account: reader@example.iam.gserviceaccount.com\n- name: " + s.Host + "/prod\n"
	images := "- name: app\n  dmap:\n    \"sha256:" + strings.Repeat("a", 64) + "\": [\"v1\"]\n"
	bin := t.TempDir()
	for p, data := range map[string]string{"manifests/foo/promoter-manifest.yaml": regs, "images/foo/images.yaml": images} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "gcloud"), []byte("#!/bin/sh\necho gcloud was called >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--use-service-account"}} {
		args := append([]string{"--db", filepath.Join(t.TempDir(), "inv.db"), "check", "--head", dir, "--checks", "source-presence"}, extra...)
		cmd := exec.Command(cipBin, args...)
		cmd.Env = append(os.Environ(), "PATH="+bin)
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 1 {
			t.Fatalf("cip check %v: %v, want exit 1\n%s", extra, err, out)
		}
		if !strings.Contains(string(out), "is not in the source repository") || strings.Contains(string(out), "gcloud") {
			t.Errorf("cip check %v: output = %q, want the missing digest found without gcloud", extra, out)
		}
	}
}

package packaging

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// git runs git in dir and returns its trimmed output.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// releaseSource says which commit the plugins.yaml of the repository at
// dir describes: the tag named by its spec.version when there is one,
// else the commit that last wrote plugins.yaml (make release commits it
// alone, on top of the tree its archives are built from). It returns ""
// when the work tree's plugins.yaml is not the committed one (then it
// describes the work tree, as a local make dist leaves it).
func releaseSource(t *testing.T, dir, version string) (rev, why string) {
	t.Helper()
	if out, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--", "plugins.yaml").Output(); err != nil {
		t.Fatalf("git status in %s: %v", dir, err)
	} else if len(bytes.TrimSpace(out)) > 0 {
		return "", "the work tree (plugins.yaml is not committed)"
	}
	if err := exec.Command("git", "-C", dir, "rev-parse", "-q", "--verify", "refs/tags/"+version).Run(); err == nil {
		return version, "the tag " + version
	}
	c := git(t, dir, "log", "-1", "--format=%H", "--", "plugins.yaml")
	return c, "commit " + c[:12] + ", which last wrote plugins.yaml (no tag " + version + " yet)"
}

// checkMatchesDist builds, with scripts/dist.sh, the archives of the
// platforms dir's plugins.yaml names, from the source it describes (see
// releaseSource) and for the version it names, and compares the manifest
// dist.sh writes with plugins.yaml byte for byte: the sha256 values are
// those of the archives anyone can rebuild. It returns the differences.
func checkMatchesDist(t *testing.T, dir string) string {
	t.Helper()
	p := readPlugin(t, filepath.Join(dir, "plugins.yaml"))
	rev, why := releaseSource(t, dir, p.Spec.Version)
	src := dir
	if rev != "" {
		src = t.TempDir()
		archive := exec.Command("sh", "-c", "git archive --format=tar "+rev+" | tar -x -C "+src)
		archive.Dir = dir
		if out, err := archive.CombinedOutput(); err != nil {
			t.Fatalf("git archive %s: %v\n%s", rev, err, out)
		}
	}
	out := t.TempDir()
	manifest := filepath.Join(out, "plugins.yaml")
	cmd := exec.Command("scripts/dist.sh")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "VERSION="+p.Spec.Version, "PLATFORMS="+strings.Join(platformsOf(p), " "),
		"DIST_DIR="+out, "PLUGINS_YAML="+manifest)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/dist.sh of %s: %v\n%s", why, err, b)
	}
	want, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "plugins.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("plugins.yaml (%s) checked against make dist of %s", p.Spec.Version, why)
	if !bytes.Equal(got, want) {
		return fmt.Sprintf("plugins.yaml differs from what make dist of %s writes for %s; run make release (or make dist):\n--- plugins.yaml\n%s\n--- make dist\n%s", why, p.Spec.Version, got, want)
	}
	return ""
}

// TestPluginsYAMLMatchesDist: the committed plugins.yaml is what make dist
// produces for the version it names, from the source it was released from:
// every platform's archive rebuilt, every sha256 compared.
func TestPluginsYAMLMatchesDist(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release archives of every platform")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("git", "-C", abs, "rev-parse", "--git-dir").Run(); err != nil {
		t.Skipf("%s is not a git repository (a source archive): the release commit cannot be found", abs)
	}
	if diff := checkMatchesDist(t, abs); diff != "" {
		t.Error(diff)
	}
}

// TestRelease runs make release in a scratch repository holding this
// tree: it builds the archives and SHA256SUMS, commits plugins.yaml naming
// them and tags the commit; the result passes the check above, and a
// plugins.yaml edited by hand fails it. It refuses a bad version, a dirty
// work tree and an existing tag.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a release archive")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	copyTree(t, abs, repo)
	git(t, repo, "init", "-q")
	// Everything below commits and tags: in the scratch repository only.
	if top, dir := git(t, repo, "rev-parse", "--show-toplevel"), git(t, repo, "rev-parse", "--absolute-git-dir"); top != repo || dir != filepath.Join(repo, ".git") {
		t.Fatalf("scratch repository at %s resolves to work tree %s, git dir %s", repo, top, dir)
	}
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "the tree under test")
	dist := filepath.Join(repo, "dist")
	release := func(want int, env ...string) string {
		t.Helper()
		cmd := exec.Command("make", "-s", "release")
		cmd.Dir = repo
		cmd.Env = append(append(os.Environ(), "PLATFORMS=linux/amd64", "DIST_DIR="+dist,
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com"), env...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if (code == 0) != (want == 0) {
			t.Fatalf("make release %v: exit %d, want %d\n%s", env, code, want, out)
		}
		return string(out)
	}
	if out := release(2, "VERSION=9.8.7"); !strings.Contains(out, "VERSION=vMAJOR.MINOR.PATCH") {
		t.Errorf("make release VERSION=9.8.7: %s", out)
	}
	release(0, "VERSION=v9.8.7")

	// The tag names the commit that wrote plugins.yaml, for v9.8.7, with
	// the archive's sha256, also in SHA256SUMS.
	if got, want := git(t, repo, "rev-parse", "v9.8.7^{commit}"), git(t, repo, "rev-parse", "HEAD"); got != want {
		t.Errorf("tag v9.8.7 = %s, want HEAD %s", got, want)
	}
	if msg := git(t, repo, "log", "-1", "--format=%s"); msg != "release v9.8.7: plugins.yaml for its archives" {
		t.Errorf("release commit message %q", msg)
	}
	if files := git(t, repo, "show", "--name-only", "--format=", "HEAD"); files != "plugins.yaml" {
		t.Errorf("release commit touches %q, want plugins.yaml alone", files)
	}
	p := readPlugin(t, filepath.Join(repo, "plugins.yaml"))
	archive, err := os.ReadFile(filepath.Join(dist, "cip_linux_amd64.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.Version != "v9.8.7" || len(p.Spec.Platforms) != 1 || p.Spec.Platforms[0].Sha256 != sum(archive) {
		t.Errorf("released plugins.yaml: version %s, platforms %v; want v9.8.7 with the archive's sha256 %s", p.Spec.Version, platformsOf(p), sum(archive))
	}
	for _, msg := range problems(p) {
		t.Error(msg)
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil || string(sums) != sum(archive)+"  cip_linux_amd64.tar.gz\n" {
		t.Errorf("SHA256SUMS = %q, %v; want the archive's sha256", sums, err)
	}
	if diff := checkMatchesDist(t, repo); diff != "" {
		t.Error(diff)
	}

	// Refusals: an existing tag, a dirty tree.
	if out := release(1, "VERSION=v9.8.7"); !strings.Contains(out, "tag v9.8.7 exists") {
		t.Errorf("make release of an existing tag: %s", out)
	}
	if err := os.WriteFile(filepath.Join(repo, "LICENSE"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := release(1, "VERSION=v9.8.8"); !strings.Contains(out, "uncommitted changes") {
		t.Errorf("make release in a dirty tree: %s", out)
	}
	git(t, repo, "checkout", "--", "LICENSE")

	// TAG=no: committed, not tagged.
	release(0, "VERSION=v9.8.9", "TAG=no")
	if err := exec.Command("git", "-C", repo, "rev-parse", "-q", "--verify", "refs/tags/v9.8.9").Run(); err == nil {
		t.Errorf("TAG=no made the tag v9.8.9")
	}
	if v := readPlugin(t, filepath.Join(repo, "plugins.yaml")).Spec.Version; v != "v9.8.9" {
		t.Errorf("TAG=no: plugins.yaml names %s, want v9.8.9", v)
	}

	// A plugins.yaml changed by hand no longer matches.
	b, _ := os.ReadFile(filepath.Join(repo, "plugins.yaml"))
	sha := readPlugin(t, filepath.Join(repo, "plugins.yaml")).Spec.Platforms[0].Sha256
	spoilt := bytes.Replace(b, []byte(sha[:8]), []byte("00000000"), 1)
	if err := os.WriteFile(filepath.Join(repo, "plugins.yaml"), spoilt, 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "commit", "-q", "-am", "a hand edit")
	if checkMatchesDist(t, repo) == "" {
		t.Error("a plugins.yaml with a changed sha256 matched make dist")
	}
}

// TestKubectlCompletion completes `kubectl cip …` with a real kubectl,
// which runs kubectl_complete-cip from the PATH (kubectl 1.26 and later):
// the script shipped in the archive, beside a kubectl-cip built from this
// tree. cmd/app's TestCompleteWords checks the protocol itself without
// kubectl.
func TestKubectlCompletion(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed: cmd/app's TestCompleteWords checks kubectl-cip's side of the protocol")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "kubectl-cip"), "./cmd/kubectl-cip")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build kubectl-cip: %v\n%s", err, out)
	}
	script, err := os.ReadFile(filepath.Join(root, "packaging", "kubectl_complete-cip"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "kubectl_complete-cip"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		cmd := exec.Command(kubectl, append([]string{"__complete", "cip"}, words...)...)
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "HOME="+t.TempDir())
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl __complete cip %q: %v\n%s", words, err, out.String())
		}
		return out.String()
	}
	if out := complete("sy"); !strings.HasPrefix(out, "sync\t") || !strings.HasSuffix(out, "\n:4\n") {
		t.Errorf("kubectl __complete cip sy = %q, want sync and :4", out)
	}
	if out := complete("promote", "--conf"); !strings.HasPrefix(out, "--confirm\t") {
		t.Errorf("kubectl __complete cip promote --conf = %q, want --confirm", out)
	}
	if out := complete("sync", "127.0.0.1:5000", ""); !strings.HasSuffix(out, ":0\n") {
		t.Errorf("kubectl __complete cip sync REF \"\" = %q, want file completion (:0)", out)
	}
}

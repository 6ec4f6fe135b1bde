package check

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitRepo makes a repository in a temporary directory with one commit of
// base (a thin directory below reg/) and the working tree changed to head.
func gitRepo(t *testing.T, base, head map[string]string) (repo, thin string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed: %v", err)
	}
	repo = t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(cmd.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	thin = filepath.Join(repo, "reg")
	put := func(m map[string]string) {
		for name, images := range m {
			write(t, filepath.Join(thin, "manifests", name, "promoter-manifest.yaml"), regs)
			write(t, filepath.Join(thin, "images", name, "images.yaml"), images)
		}
	}
	run("init", "-q", "-b", "main")
	put(base)
	run("add", ".")
	run("commit", "-q", "-m", "base")
	put(head)
	run("add", ".")
	run("commit", "-q", "-m", "head")
	return repo, thin
}

func TestLoadGitState(t *testing.T) {
	_, thin := gitRepo(t,
		map[string]string{"foo": img("app", dig(dA, "v1"), dig(dB, "v2"))},
		map[string]string{"foo": img("app", dig(dA, "v1")), "bar": img("web", dig(dC, "v1"))})
	base, cleanup, err := LoadGitState(context.Background(), Source{Dir: thin}, "HEAD~1")
	defer cleanup()
	if err != nil {
		t.Fatal(err)
	}
	if len(base.Manifests) != 1 || base.Manifests[0].Rel != "manifests/foo/promoter-manifest.yaml" || len(base.Manifests[0].Images[0].Digests) != 2 {
		t.Fatalf("LoadGitState(HEAD~1) manifests = %+v, want foo with 2 digests", base.Manifests)
	}
	head := mustState(t, thin)
	fs, err := Run(context.Background(), &Change{Base: base, Head: head}, []Check{ImageRemoval{}}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(thin, "images/foo/images.yaml")
	if len(fs) != 1 || fs[0].File != want || !strings.Contains(fs[0].Message, dB) {
		t.Errorf("findings = %+v, want one removal of %s in %s", fs, dB, want)
	}

	// A file that did not exist at the revision: no base.
	if st, c2, err := LoadGitState(context.Background(), Source{File: filepath.Join(thin, "images/bar/images.yaml")}, "HEAD~1"); err != nil || st != nil {
		t.Errorf("LoadGitState of a new file = %v, %v; want nil, nil", st, err)
	} else {
		c2()
	}
	if _, c3, err := LoadGitState(context.Background(), Source{Dir: thin}, "no-such-ref"); err == nil || !strings.Contains(err.Error(), "no commit") {
		t.Errorf("LoadGitState(no-such-ref) error = %v, want no commit", err)
	} else {
		c3()
	}
}

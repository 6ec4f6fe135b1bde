package check

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// LoadGitState reads src as it is at the git revision ref of the repository
// holding it, without a checkout: the files are listed with `git ls-tree`
// and read with `git cat-file --batch` into a temporary directory, which
// cleanup removes. Findings name the files as src does. When src does not
// exist at ref (the change adds it), the State is nil.
func LoadGitState(ctx context.Context, src Source, ref string) (st *State, cleanup func(), err error) {
	cleanup = func() {}
	if (src.File == "") == (src.Dir == "") {
		return nil, cleanup, fmt.Errorf("read base from git: want a manifest file or a thin manifest directory")
	}
	cwd, spec := src.Dir, "."
	if src.File != "" {
		cwd, spec = filepath.Dir(src.File), filepath.Base(src.File)
	}
	git := func(stdin io.Reader, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", cwd}, args...)...)
		cmd.Stdin = stdin
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	if _, err := git(nil, "rev-parse", "--verify", "--quiet", ref+"^{commit}"); err != nil {
		return nil, cleanup, fmt.Errorf("read base from git: no commit %q in the repository of %s", ref, cwd)
	}
	prefix, err := git(nil, "rev-parse", "--show-prefix")
	if err != nil {
		return nil, cleanup, fmt.Errorf("read base from git: %w", err)
	}
	list, err := git(nil, "ls-tree", "-r", "-z", "--full-name", ref, "--", spec)
	if err != nil {
		return nil, cleanup, fmt.Errorf("read base from git: %w", err)
	}
	type blob struct{ sha, rel string }
	var blobs []blob
	pre := strings.TrimSpace(string(prefix))
	for _, rec := range strings.Split(string(list), "\x00") {
		meta, path, ok := strings.Cut(rec, "\t")
		if !ok {
			continue
		}
		f := strings.Fields(meta) // mode type sha
		if len(f) != 3 || f[1] != "blob" || f[0] == "120000" {
			continue // symbolic links and submodules are not manifests
		}
		blobs = append(blobs, blob{f[2], strings.TrimPrefix(path, pre)})
	}
	if len(blobs) == 0 {
		return nil, cleanup, nil
	}
	tmp, err := os.MkdirTemp("", "cip-check-base-")
	if err != nil {
		return nil, cleanup, fmt.Errorf("read base from git: %w", err)
	}
	cleanup = func() { os.RemoveAll(tmp) }
	var in bytes.Buffer
	for _, b := range blobs {
		in.WriteString(b.sha + "\n")
	}
	out, err := git(&in, "cat-file", "--batch")
	if err != nil {
		return nil, cleanup, fmt.Errorf("read base from git: %w", err)
	}
	r := bufio.NewReader(bytes.NewReader(out))
	for _, b := range blobs {
		header, err := r.ReadString('\n')
		if err != nil {
			return nil, cleanup, fmt.Errorf("read base from git: %s: %w", b.rel, err)
		}
		f := strings.Fields(header)
		if len(f) != 3 {
			return nil, cleanup, fmt.Errorf("read base from git: %s: unexpected cat-file header %q", b.rel, header)
		}
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, cleanup, fmt.Errorf("read base from git: %s: %w", b.rel, err)
		}
		data := make([]byte, n+1) // content and a newline
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, cleanup, fmt.Errorf("read base from git: %s: %w", b.rel, err)
		}
		p := filepath.Join(tmp, filepath.FromSlash(b.rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, cleanup, fmt.Errorf("read base from git: %w", err)
		}
		if err := os.WriteFile(p, data[:n], 0o644); err != nil {
			return nil, cleanup, fmt.Errorf("read base from git: %w", err)
		}
	}
	local := Source{Dir: tmp}
	if src.File != "" {
		local = Source{File: filepath.Join(tmp, spec)}
	}
	st, err = LoadState(local)
	if err != nil {
		return nil, cleanup, fmt.Errorf("read base from git %s: %w", ref, err)
	}
	st.Display = src.root()
	return st, cleanup, nil
}

// Package e2e runs the built cip binary against the real docker-registry
// server (distribution 2.8) and checks what it reports with crane, built
// from the go-containerregistry module cip depends on.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cipdev/cip/internal/dockerregistry"
	"github.com/cipdev/cip/internal/regtest"
)

var (
	cipBin   string
	craneBin string
)

func TestMain(m *testing.M) {
	// Tables are fitted to $COLUMNS; the tests read every cell in full, as
	// a script reading a pipe does.
	os.Unsetenv("COLUMNS")
	dir, err := os.MkdirTemp("", "cip-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cipBin = filepath.Join(dir, "cip")
	craneBin = filepath.Join(dir, "crane")
	for _, b := range [][2]string{{cipBin, "github.com/cipdev/cip/cmd/cip"}, {craneBin, "github.com/google/go-containerregistry/cmd/crane"}} {
		out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b[1], err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// StartRegistry starts docker-registry for one test; a missing server is a
// failure naming the package, never a skip.
func StartRegistry(t *testing.T) *dockerregistry.Server {
	t.Helper()
	s, err := dockerregistry.Start(context.Background(), dockerregistry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Cip runs the cip binary and returns stdout and stderr; it fails the test
// unless the exit code is want.
func Cip(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	return runBin(t, cipBin, want, args...)
}

// runBin runs bin and returns stdout and stderr; it fails the test unless
// the exit code is want.
func runBin(t *testing.T, bin string, want int, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != want {
		t.Fatalf("%s %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// Crane runs crane and returns its trimmed stdout.
func Crane(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(craneBin, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("crane %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	return strings.TrimSpace(string(out))
}

// seed pushes a population: Docker and OCI single images, Docker and OCI
// multi-arch indexes, several tags on one digest.
func seed(t *testing.T, host string) {
	t.Helper()
	reg := &regtest.Registry{Host: host}
	for i := range 4 {
		oci := i%2 == 0
		repo := fmt.Sprintf("staging/app%d", i)
		d := reg.Push(t, repo, "v1.0.0", regtest.Image(t, 2048, 2, oci))
		reg.Tag(t, repo, d, "latest")
		reg.Push(t, repo, "v0.9.0", regtest.Image(t, 1024, 1, !oci))
	}
	reg.Push(t, "staging/multi-oci", "v2", regtest.Index(t, regtest.Platforms, true))
	reg.Push(t, "staging/multi-docker", "v2", regtest.Index(t, regtest.Platforms, false))
	reg.Push(t, "staging/nested/deep", "v3", regtest.Image(t, 512, 1, true))
}

// craneSnapshot computes the CSV snapshot of host/prefix with crane alone.
func craneSnapshot(t *testing.T, host, prefix string) []string {
	t.Helper()
	var lines []string
	for _, repo := range strings.Fields(Crane(t, "catalog", host)) {
		if !strings.HasPrefix(repo, prefix+"/") {
			continue
		}
		img := strings.TrimPrefix(repo, prefix+"/")
		byDigest := map[string][]string{}
		for _, tag := range strings.Fields(Crane(t, "ls", host+"/"+repo)) {
			d := Crane(t, "digest", host+"/"+repo+":"+tag)
			byDigest[d] = append(byDigest[d], tag)
		}
		for d, tags := range byDigest {
			for _, tag := range tags {
				lines = append(lines, fmt.Sprintf("%s@%s,%s:%s", img, d, img, tag))
			}
			var m struct {
				Manifests []struct {
					Digest string `json:"digest"`
				} `json:"manifests"`
			}
			if err := json.Unmarshal([]byte(Crane(t, "manifest", host+"/"+repo+"@"+d)), &m); err != nil {
				t.Fatal(err)
			}
			for _, c := range m.Manifests {
				if _, tagged := byDigest[c.Digest]; !tagged {
					lines = append(lines, fmt.Sprintf("%s@%s,-", img, c.Digest))
				}
			}
		}
	}
	sort.Strings(lines)
	return lines
}

func TestSyncSnapshotMatchesCrane(t *testing.T) {
	srv := StartRegistry(t)
	seed(t, srv.Host)
	db := filepath.Join(t.TempDir(), "inv.db")

	_, stderr := Cip(t, 0, "--db", db, "sync", srv.Host+"/staging")
	if !strings.Contains(stderr, "synced "+srv.Host+": 7 repositories, 15 tags") {
		t.Errorf("sync summary = %q, want 7 repositories and 15 tags", stderr)
	}
	out, _ := Cip(t, 0, "--db", db, "snapshot", srv.Host+"/staging", "--offline", "--output", "csv")
	got := strings.Split(strings.TrimSpace(out), "\n")
	sort.Strings(got)
	want := craneSnapshot(t, srv.Host, "staging")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cip snapshot vs crane (-crane +cip):\n%s", diff)
	}

	// --minimal drops the 6 untagged children of the two indexes.
	out, _ = Cip(t, 0, "--db", db, "snapshot", srv.Host+"/staging", "--offline", "-o", "csv", "--minimal")
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != len(want)-6 {
		t.Errorf("minimal snapshot has %d lines, want %d", n, len(want)-6)
	}

	// The YAML snapshot loads as a thin images.yaml and validates.
	yamlOut, _ := Cip(t, 0, "--db", db, "snapshot", srv.Host+"/staging", "--offline")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "images", "p"), 0o755)
	os.MkdirAll(filepath.Join(dir, "manifests", "p"), 0o755)
	os.WriteFile(filepath.Join(dir, "images", "p", "images.yaml"), []byte(yamlOut), 0o644)
	os.WriteFile(filepath.Join(dir, "manifests", "p", "promoter-manifest.yaml"),
		[]byte(fmt.Sprintf("registries:\n- name: %s/staging\n  src: true\n- name: %s/prod\n", srv.Host, srv.Host)), 0o644)
	vout, _ := Cip(t, 0, "validate", "--thin-manifest-dir", dir)
	if !strings.Contains(vout, "ok: 1 manifests, 7 images") {
		t.Errorf("validate of the snapshot = %q", vout)
	}

	// A re-sync fetches no manifest.
	_, stderr = Cip(t, 0, "--db", db, "sync", srv.Host+"/staging")
	if !strings.Contains(stderr, "0 manifests fetched") {
		t.Errorf("re-sync summary = %q, want 0 manifests fetched", stderr)
	}
}

func TestCLIErrors(t *testing.T) {
	db := filepath.Join(t.TempDir(), "inv.db")
	_, stderr := Cip(t, 2, "--db", db, "snapshot")
	if !strings.Contains(stderr, "exactly one REF") {
		t.Errorf("stderr = %q", stderr)
	}
	_, stderr = Cip(t, 2, "--db", db, "nosuchcommand")
	if !strings.Contains(stderr, "unknown command") {
		t.Errorf("stderr = %q", stderr)
	}
	_, stderr = Cip(t, 2, "validate", "--manifest", "/nonexistent/promoter-manifest.yaml")
	if !strings.Contains(stderr, "/nonexistent/promoter-manifest.yaml") {
		t.Errorf("stderr = %q, want the file named", stderr)
	}
	// A registry that does not answer is a runtime error (exit 1).
	_, stderr = Cip(t, 1, "--db", db, "sync", "127.0.0.1:1/nothing")
	if !strings.Contains(stderr, "127.0.0.1:1") {
		t.Errorf("stderr = %q, want the registry named", stderr)
	}
}

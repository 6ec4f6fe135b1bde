package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cipdev/cip/internal/regtest"
)

// TestUntaggedSurvivesSync (issue 14, point 1): digests promoted without a
// tag stay in the inventory across syncs of the destination on a real
// docker-registry, whose tag listing cannot show them (and which answers
// NAME_UNKNOWN for a repository that holds only untagged manifests).
// Before, any sync dropped them: the offline plan wanted to copy them
// forever (exit 3) and snapshots omitted them.
func TestUntaggedSurvivesSync(t *testing.T) {
	srcSrv, dstSrv := StartRegistry(t), StartRegistry(t)
	src := &regtest.Registry{Host: srcSrv.Host}
	lone := src.Push(t, "staging/lone", "", regtest.Image(t, 512, 1, true)).String()
	multi := src.Push(t, "staging/multi", "", platformIndex(t, true)).String()
	tagged := src.Push(t, "staging/app", "v1", regtest.Image(t, 512, 1, false)).String()
	// app also gets an untagged digest beside its tag.
	side := src.Push(t, "staging/app", "", regtest.Image(t, 256, 1, true)).String()

	dir := t.TempDir()
	mf := filepath.Join(dir, "promoter-manifest.yaml")
	m := fmt.Sprintf(`registries:
- name: %s/staging
  src: true
- name: %s/prod
images:
- name: lone
  dmap:
    %q: []
- name: multi
  dmap:
    %q: []
- name: app
  dmap:
    %q: ["v1"]
    %q: []
`, src.Host, dstSrv.Host, lone, multi, tagged, side)
	if err := os.WriteFile(mf, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "inventory.db")
	Cip(t, 0, "--db", db, "promote", "--manifest", mf, "--confirm")

	// Every way a sync reaches the destination: whole registry (catalog),
	// a path prefix, exact repositories.
	prod := dstSrv.Host + "/prod"
	for _, args := range [][]string{
		{"sync", dstSrv.Host},
		{"sync", prod},
		{"sync", prod + "/lone", prod + "/multi", prod + "/app"},
		{"sync", "--manifest", mf},
	} {
		Cip(t, 0, append([]string{"--db", db}, args...)...)
		out, _ := Cip(t, 0, "--db", db, "promote", "--manifest", mf, "--plan", "--offline", "--exit-code", "-o", "json")
		if strings.Contains(out, `"copy"`) {
			t.Errorf("after cip %s, the offline plan copies again:\n%s", strings.Join(args, " "), out)
		}
	}

	want := []string{
		"app@" + side + ",-",
		"app@" + tagged + ",app:v1",
		"lone@" + lone + ",-",
		"multi@" + multi + ",-",
	}
	sort.Strings(want) // snapshots sort by image, then digest
	for _, offline := range []bool{true, false} {
		args := []string{"--db", db, "snapshot", prod, "-o", "csv", "--minimal"}
		if offline {
			args = append(args, "--offline")
		}
		out, _ := Cip(t, 0, args...)
		got := strings.Split(strings.TrimSpace(out), "\n")
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("cip snapshot (offline %v) =\n%s\nwant\n%s", offline, out, strings.Join(want, "\n"))
		}
	}

	// Deleted behind cip's back: the next sync notices (a 404), and the
	// plan wants it again.
	Crane(t, "delete", prod+"/lone@"+lone)
	Cip(t, 0, "--db", db, "sync", prod)
	out, _ := Cip(t, 3, "--db", db, "promote", "--manifest", mf, "--plan", "--offline", "--exit-code", "-o", "json")
	if strings.Count(out, `"copy"`) != 1 || !strings.Contains(out, lone) {
		t.Errorf("after deleting lone, the offline plan should copy it alone:\n%s", out)
	}
}

package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipdev/cip/internal/regtest"
)

// cip runs the command line in-process and returns its exit code, stdout
// and stderr.
func cip(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), "cip", append([]string{"cip"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func writeManifest(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "promoter-manifest.yaml")
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A promotion CI can trust (issue 14, point 4): a lost row (in neither the
// source nor the destination) makes cip promote exit 1 once the rest is
// done, naming it with its file and line; --allow-lost makes it a warning
// again; cip run keeps the original promoter's warning.
func TestPromoteLostFails(t *testing.T) {
	reg := regtest.New(t)
	here := reg.Push(t, "staging/app", "v1", regtest.Image(t, 64, 1, true)).String()
	gone := "sha256:" + strings.Repeat("0", 63) + "1"
	mf := writeManifest(t, "registries:\n- name: "+reg.Host+"/staging\n  src: true\n- name: "+reg.Host+"/prod\n"+
		"images:\n- name: app\n  dmap:\n    \""+here+"\": [v1]\n    \""+gone+"\": [v2]\n")
	db := filepath.Join(t.TempDir(), "inv.db")
	reg.Reset()
	lostLine := mf + ":9: " + reg.Host + "/prod/app@" + gone + " is not in " + reg.Host + "/staging/app"

	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		lost, warn bool // the error naming it; the warning
	}{
		{name: "dry run", args: []string{"promote", "--manifest", mf}, code: 1, lost: true},
		{name: "plan", args: []string{"promote", "--manifest", mf, "--plan"}, code: 1, lost: true},
		{name: "lost wins over --exit-code", args: []string{"promote", "--manifest", mf, "--plan", "--exit-code"}, code: 1, lost: true},
		{name: "--allow-lost", args: []string{"promote", "--manifest", mf, "--plan", "--exit-code", "--allow-lost"}, code: ExitPending, warn: true},
		{name: "cip run warns", args: []string{"run", "--manifest", mf}, code: 0, warn: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := cip(t, append([]string{"--db", db}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", code, tc.code, errs)
			}
			if !strings.Contains(out, "lost") || !strings.Contains(out, "copy") {
				t.Errorf("stdout lacks the whole plan (a copy and a lost row):\n%s", out)
			}
			if got := strings.Contains(errs, "1 digest(s) lost") && strings.Contains(errs, lostLine); got != tc.lost {
				t.Errorf("error naming %q: %v, want %v\n%s", lostLine, got, tc.lost, errs)
			}
			if got := strings.Contains(errs, "warning: lost: "+reg.Host+"/prod/app@"+gone); got != tc.warn {
				t.Errorf("warning: %v, want %v\n%s", got, tc.warn, errs)
			}
		})
	}
	if got := reg.Count("PUT manifest"); got != 0 {
		t.Fatalf("dry runs wrote %d manifests", got)
	}

	// --confirm copies what it can, verifies it, then fails on the lost row.
	code, _, errs := cip(t, "--db", db, "promote", "--manifest", mf, "--confirm")
	if code != 1 || !strings.Contains(errs, lostLine) {
		t.Fatalf("promote --confirm: exit %d, want 1 naming the lost row\n%s", code, errs)
	}
	if !strings.Contains(errs, "promoted "+reg.Host+"/prod: 1 copied") || !strings.Contains(errs, "references verified") {
		t.Errorf("promote --confirm did not copy and verify the rest first:\n%s", errs)
	}
	if got := reg.Count("PUT manifest"); got != 2 {
		t.Errorf("PUT manifest = %d after --confirm, want 2 (the digest that is there, by digest and then by its tag)", got)
	}
	if code, _, errs := cip(t, "--db", db, "promote", "--manifest", mf, "--confirm", "--allow-lost"); code != 0 {
		t.Errorf("promote --confirm --allow-lost: exit %d, want 0\n%s", code, errs)
	}
}

// One moved tag in one destination no longer hides the plan: the whole
// plan is printed (every destination), the rows whose tags would move are
// marked, every move is named at once, and nothing is written (exit 2).
func TestPromoteTagMovesShowPlan(t *testing.T) {
	src, dst := regtest.New(t), regtest.New(t)
	a := src.Push(t, "staging/a", "v1", regtest.Image(t, 64, 1, true)).String()
	b := src.Push(t, "staging/b", "v1", regtest.Image(t, 64, 1, true)).String()
	// In prod, a:v1 and b:v1 are already elsewhere; mirror has nothing.
	otherA := dst.Push(t, "prod/a", "v1", regtest.Image(t, 32, 1, true)).String()
	otherB := dst.Push(t, "prod/b", "v1", regtest.Image(t, 32, 1, true)).String()
	mf := writeManifest(t, "registries:\n- name: "+src.Host+"/staging\n  src: true\n- name: "+dst.Host+"/prod\n- name: "+dst.Host+"/mirror\n"+
		"images:\n- name: a\n  dmap:\n    \""+a+"\": [v1]\n- name: b\n  dmap:\n    \""+b+"\": [v1]\n")
	db := filepath.Join(t.TempDir(), "inv.db")
	dst.Reset()

	code, out, errs := cip(t, "--db", db, "promote", "--manifest", mf, "--plan", "-o", "json")
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d\n%s", code, ExitUsage, errs)
	}
	var rows []planRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("plan json: %v\n%s", err, out)
	}
	moves := map[string]string{} // destination/image -> digest now
	dsts := map[string]int{}
	for _, r := range rows {
		dsts[r.Destination]++
		for _, m := range r.TagMoves {
			if m.Tag != "v1" {
				t.Errorf("row %+v: moved tag %q, want v1", r, m.Tag)
			}
			moves[r.Destination+"/"+r.Image] = m.DigestNow
		}
	}
	if dsts[dst.Host+"/prod"] != 2 || dsts[dst.Host+"/mirror"] != 2 {
		t.Errorf("plan rows per destination = %v, want 2 each (the whole plan)", dsts)
	}
	want := map[string]string{dst.Host + "/prod/a": otherA, dst.Host + "/prod/b": otherB}
	if len(moves) != 2 || moves[dst.Host+"/prod/a"] != otherA || moves[dst.Host+"/prod/b"] != otherB {
		t.Errorf("marked moves = %v, want %v", moves, want)
	}
	for _, w := range []string{"2 tag move(s) refused", dst.Host + "/prod/a:v1 is at " + otherA + ", manifest wants " + a, dst.Host + "/prod/b:v1 is at " + otherB + ", manifest wants " + b} {
		if !strings.Contains(errs, w) {
			t.Errorf("stderr lacks %q:\n%s", w, errs)
		}
	}

	// The table marks them too.
	_, out, _ = cip(t, "--db", db, "promote", "--manifest", mf, "--plan", "-o", "wide")
	if strings.Count(out, "MOVE REFUSED: v1 is at ") != 2 || !strings.Contains(out, dst.Host+"/mirror") {
		t.Errorf("table does not mark both moves, or lacks the mirror:\n%s", out)
	}

	// --confirm writes nothing, in the mirror either.
	if code, _, errs := cip(t, "--db", db, "promote", "--manifest", mf, "--confirm"); code != ExitUsage {
		t.Errorf("promote --confirm: exit %d, want %d\n%s", code, ExitUsage, errs)
	}
	for _, k := range []string{"PUT manifest", "PUT blob", "POST blob"} {
		if n := dst.Count(k); n != 0 {
			t.Errorf("%s = %d with tag moves, want 0", k, n)
		}
	}
}

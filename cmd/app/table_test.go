package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/olekukonko/tablewriter/pkg/twwidth"
)

// widest is the display width of the widest line of s.
func widest(s string) int {
	w := 0
	for _, line := range strings.Split(s, "\n") {
		w = max(w, twwidth.Width(line))
	}
	return w
}

// TestTablesFitColumns: under COLUMNS=100, the tables of check, promote
// --plan, query (results, --schema, --list) and audit are at most 100
// columns wide (verify's: TestVerifySummary) (check --list,
// narrower, under 60); with -o wide, or with no COLUMNS on a pipe, they
// print every cell in full, and are wider.
func TestTablesFitColumns(t *testing.T) {
	dir := t.TempDir()
	mf := filepath.Join(dir, "promoter-manifest.yaml")
	var b strings.Builder
	b.WriteString("registries:\n- name: registry.example/k8s-staging-cluster-lifecycle-experimental\n  src: true\n")
	b.WriteString("- name: us-central1-docker.pkg.dev/k8s-artifacts-prod/images/cluster-lifecycle-experimental\n")
	b.WriteString("images:\n- name: kube-state-metrics-custom-resource-state\n  dmap:\n")
	for i := range 3 {
		fmt.Fprintf(&b, "    \"sha256:%064x\": [\"v1.%d.0\", \"v1.%d.0-rc.1\", \"v1.%d.0-rc.2\"]\n", i+1, i, i, i)
	}
	if err := os.WriteFile(mf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "inv.db")
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		width int
	}{
		{"check", []string{"check", "--base", "../../testdata/check/base", "--head", "../../testdata/check/head", "--offline"}, 1, 100},
		{"check --list", []string{"check", "--list"}, 0, 60},
		// Every row is lost (an empty inventory): the plan is printed, then
		// the run fails.
		{"plan", []string{"--db", db, "promote", "--manifest", mf, "--plan", "--offline"}, 1, 100},
		{"query --schema", []string{"--db", db, "query", "--schema"}, 0, 100},
		{"query --list", []string{"query", "--list"}, 0, 100},
		{"query", []string{"--db", db, "query", "SELECT * FROM promotions", "--manifest", mf}, 0, 100},
		{"audit", []string{"--db", db, "audit", "--manifest", mf, "--offline"}, 1, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(columns string, extra ...string) string {
				t.Setenv("COLUMNS", columns)
				var out, errb bytes.Buffer
				args := append(append([]string{"cip"}, tc.args...), extra...)
				if code := Run(context.Background(), "cip", args, &out, &errb); code != tc.code {
					t.Fatalf("cip %s: exit %d, want %d\n%s", strings.Join(tc.args, " "), code, tc.code, errb.String())
				}
				if out.Len() == 0 {
					t.Fatalf("cip %s printed no table", strings.Join(tc.args, " "))
				}
				return out.String()
			}
			cols := fmt.Sprint(tc.width)
			narrow := run(cols)
			if w := widest(narrow); w > tc.width {
				t.Errorf("COLUMNS=%d: %d columns wide:\n%s", tc.width, w, narrow)
			}
			full := run("")
			if w := widest(full); w <= tc.width {
				t.Errorf("no COLUMNS, not a terminal: %d columns wide, want the full table (over %d):\n%s", w, tc.width, full)
			}
			if wide := run(cols, "-o", "wide"); wide != full {
				t.Errorf("-o wide under COLUMNS=%d differs from the full table:\n%s\nwant\n%s", tc.width, wide, full)
			}
		})
	}
}

package app

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipdev/cip/internal/regtest"
)

// --snapshot-tag TAG on cip snapshot and cip run (the Kubernetes
// promoter's flag): only the digests carrying TAG, each with TAG alone,
// in a registry snapshot and in a manifest-based one.
func TestSnapshotTag(t *testing.T) {
	reg := regtest.New(t)
	a := reg.Push(t, "prod/app", "v1", regtest.Image(t, 64, 1, true))
	reg.Tag(t, "prod/app", a, "latest")
	b := reg.Push(t, "prod/app", "v2", regtest.Image(t, 64, 1, true))
	reg.Push(t, "prod/tool", "v9", regtest.Image(t, 64, 1, true))
	db := filepath.Join(t.TempDir(), "inv.db")
	want := "app@" + a.String() + ",app:latest\n"
	for _, args := range [][]string{
		{"snapshot", reg.Host + "/prod", "-o", "csv", "--snapshot-tag", "latest"},
		{"snapshot", reg.Host + "/prod", "-o", "csv", "--snapshot-tag", "latest", "--offline"},
		{"run", "--snapshot", reg.Host + "/prod", "-o", "csv", "--snapshot-tag", "latest"},
	} {
		code, out, errs := cip(t, append([]string{"--db", db}, args...)...)
		if code != 0 || out != want {
			t.Errorf("cip %s = exit %d, %q; want 0, %q\n%s", strings.Join(args, " "), code, out, want, errs)
		}
	}
	// Without the flag, everything.
	if _, out, _ := cip(t, "--db", db, "snapshot", reg.Host+"/prod", "-o", "csv", "--offline"); strings.Count(out, "\n") != 4 {
		t.Errorf("snapshot without --snapshot-tag = %q, want 4 lines", out)
	}

	mf := writeManifest(t, "registries:\n- name: gcr.io/staging\n  src: true\n- name: us.gcr.io/prod\nimages:\n"+
		"- name: app\n  dmap:\n    \""+a.String()+"\": [v1, latest]\n    \""+b.String()+"\": [v2]\n")
	for _, args := range [][]string{
		{"snapshot", "--manifest-based-snapshot-of", "us.gcr.io/prod", "--manifest", mf, "-o", "csv", "--snapshot-tag", "v2"},
		{"run", "--manifest-based-snapshot-of", "us.gcr.io/prod", "--manifest", mf, "-o", "csv", "--snapshot-tag", "v2"},
	} {
		code, out, errs := cip(t, args...)
		if want := "app@" + b.String() + ",app:v2\n"; code != 0 || out != want {
			t.Errorf("cip %s = exit %d, %q; want 0, %q\n%s", strings.Join(args, " "), code, out, want, errs)
		}
	}
}

// cip run's modes are one at a time: a flag that would be silently
// ignored is refused (exit 2) before anything is contacted.
func TestRunRefusesIgnoredFlags(t *testing.T) {
	reg := regtest.New(t)
	mf := writeManifest(t, "registries:\n- name: "+reg.Host+"/staging\n  src: true\n- name: "+reg.Host+"/prod\nimages: []\n")
	db := filepath.Join(t.TempDir(), "inv.db")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"run", "--snapshot", reg.Host + "/prod", "--parse-only", "--manifest", mf}, "not --parse-only and --snapshot"},
		{[]string{"run", "--manifest-based-snapshot-of", reg.Host + "/prod", "--parse-only", "--manifest", mf}, "not --parse-only and --manifest-based-snapshot-of"},
		{[]string{"run", "--snapshot", reg.Host + "/prod", "--manifest-based-snapshot-of", reg.Host + "/prod", "--manifest", mf}, "not --snapshot and --manifest-based-snapshot-of"},
		{[]string{"run", "--manifest", mf, "--snapshot-tag", "latest"}, "--snapshot-tag needs --snapshot or --manifest-based-snapshot-of"},
		{[]string{"run", "--snapshot", reg.Host + "/prod", "--snapshot-tag", "-bad"}, `--snapshot-tag "-bad": invalid tag`},
		{[]string{"snapshot", reg.Host + "/prod", "--snapshot-tag", "-bad"}, `--snapshot-tag "-bad": invalid tag`},
	} {
		code, _, errs := cip(t, append([]string{"--db", db}, tc.args...)...)
		if code != ExitUsage || !strings.Contains(errs, tc.msg) {
			t.Errorf("cip %s = exit %d\n%s\nwant %d, %q", strings.Join(tc.args, " "), code, errs, ExitUsage, tc.msg)
		}
	}
	if n := len(reg.Counts()); n != 0 {
		t.Errorf("the registry got requests: %v", reg.Counts())
	}
}

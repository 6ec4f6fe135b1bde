package app

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReorderArgs(t *testing.T) {
	app := newApp("cip", io.Discard, io.Discard)
	for _, tc := range []struct {
		name     string
		in, want []string
	}{
		{"flags after the argument", []string{"cip", "snapshot", "REF", "--output", "csv", "--minimal"},
			[]string{"cip", "snapshot", "--output", "csv", "--minimal", "REF"}},
		{"global after the command", []string{"cip", "sync", "--db", "X", "REF"}, []string{"cip", "--db", "X", "sync", "REF"}},
		{"global last", []string{"cip", "promote", "-m", "m.yaml", "--plan", "-q"}, []string{"cip", "-q", "promote", "-m", "m.yaml", "--plan"}},
		{"global with =", []string{"cip", "sync", "REF", "--db=X", "-j", "4"}, []string{"cip", "--db=X", "sync", "-j", "4", "REF"}},
		{"globals before and after", []string{"cip", "--quiet", "query", "SELECT 1", "--db", "X", "-o", "json"},
			[]string{"cip", "--quiet", "--db", "X", "query", "-o", "json", "SELECT 1"}},
		{"a short cluster split", []string{"cip", "sync", "REF", "-qj", "4"}, []string{"cip", "-q", "sync", "-j", "4", "REF"}},
		{"an unknown flag stays", []string{"cip", "promote", "--confrim", "-m", "m"}, []string{"cip", "promote", "--confrim", "-m", "m"}},
		{"a value that looks like a flag", []string{"cip", "check", "--floating-tags", "-rc", "--offline"}, []string{"cip", "check", "--floating-tags", "-rc", "--offline"}},
		{"after --", []string{"cip", "query", "--", "-o", "--db"}, []string{"cip", "query", "--", "-o", "--db"}},
		{"subcommand flags", []string{"cip", "audit", "serve", "--db", "X", "--listen", "127.0.0.1:0", "-m", "m.yaml"},
			[]string{"cip", "--db", "X", "audit", "serve", "--listen", "127.0.0.1:0", "-m", "m.yaml"}},
		{"parent flags before the subcommand", []string{"cip", "audit", "-o", "json", "serve", "-m", "m"}, []string{"cip", "audit", "-o", "json", "serve", "-m", "m"}},
		{"help stays with the command", []string{"cip", "sync", "--help"}, []string{"cip", "sync", "--help"}},
		{"a global missing its value stays", []string{"cip", "sync", "--db"}, []string{"cip", "sync", "--db"}},
		{"unknown command", []string{"cip", "snc", "--db", "X"}, []string{"cip", "snc", "--db", "X"}},
		{"completion untouched", []string{"cip", "sync", "REF", "--j", "--generate-bash-completion"}, []string{"cip", "sync", "REF", "--j", "--generate-bash-completion"}},
	} {
		if diff := cmp.Diff(tc.want, reorderArgs(app, tc.in)); diff != "" {
			t.Errorf("%s: reorderArgs(%q) (-want +got):\n%s", tc.name, tc.in, diff)
		}
	}
}

// TestGlobalFlagsAnywhere runs commands with --db and -q after the command
// and its arguments: the inventory named is the one used.
func TestGlobalFlagsAnywhere(t *testing.T) {
	dir := t.TempDir()
	mf := writeAuditManifest(t, dir)
	db := filepath.Join(dir, "inv.db")
	code, out, errs := runNamed(t, "cip", "promote", "--manifest", mf, "--plan", "--offline", "--allow-lost", "--db", db, "-q")
	if code != ExitOK {
		t.Fatalf("cip promote … --db %s -q: exit %d, stderr %s", db, code, errs)
	}
	if strings.Contains(errs, "plan ") {
		t.Errorf("-q after the command: stderr %q, want no summary line", errs)
	}
	if !strings.Contains(out, "copy") && !strings.Contains(out, "lost") {
		t.Errorf("plan output lacks its row:\n%s", out)
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("--db after the command: %s not created: %v", db, err)
	}
	code, out, errs = runNamed(t, "cip", "query", "SELECT COUNT(*) AS n FROM manifest_loads", "-o", "csv", "--db", db)
	if code != ExitOK || out != "n\n1\n" {
		t.Errorf("cip query … --db: exit %d, stdout %q, stderr %s; want one load", code, out, errs)
	}
}

func TestUsageMessages(t *testing.T) {
	dir := t.TempDir()
	mf := writeAuditManifest(t, dir)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"promote", "-m", mf, "--confrim"}, nil, "cip: unknown flag --confrim; did you mean --confirm?\n"},
		{[]string{"sync", "--jbos", "2", "REF"}, nil, "cip: unknown flag --jbos; did you mean --jobs?\n"},
		{[]string{"snapshot", "--thin", "d"}, nil, "cip: unknown flag --thin; did you mean --thin-manifest-dir?\n"},
		{[]string{"--dbb", "x", "sync"}, nil, "cip: unknown flag --dbb; did you mean --db?\n"},
		{[]string{"sync", "--frobnicate", "REF"}, nil, "cip: unknown flag --frobnicate\n"},
		{[]string{"snc", "REF"}, nil, "cip: unknown command \"snc\"; did you mean sync? (see 'cip --help')\n"},
		{[]string{"promot"}, nil, "cip: unknown command \"promot\"; did you mean promote? (see 'cip --help')\n"},
		{[]string{"xyzzy"}, nil, "cip: unknown command \"xyzzy\" (see 'cip --help')\n"},
		{[]string{"sync", "--jobs", "abc", "REF"}, nil, "cip: invalid value \"abc\" for flag --jobs: parse error\n"},
		{[]string{"sync", "REF", "--db"}, nil, "cip: flag needs an argument: --db\n"},
		{[]string{"sync", "127.0.0.1:1", "--jobs", "0"}, nil, "cip: --jobs 0: want at least 1\n"},
		{[]string{"sync", "127.0.0.1:1"}, map[string]string{"CIP_JOBS": "0"}, "cip: --jobs 0: want at least 1\n"},
		{[]string{"sync", "127.0.0.1:1", "--qps", "-1"}, nil, "cip: --qps -1: want at least 0\n"},
		{[]string{"promote", "-m", mf, "--tag-ttl", "-1m"}, nil, "cip: --tag-ttl -1m0s: want at least 0s\n"},
		{[]string{"promote", "-m", mf, "--plan"}, map[string]string{"CIP_CONFIRM": "maybe"}, "cip: CIP_CONFIRM=\"maybe\": want true or false (or 1/0, yes/no, on/off)\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, out, errs := runNamed(t, "cip", append([]string{"--db", filepath.Join(dir, "inv.db")}, tc.args...)...)
			if code != ExitUsage || errs != tc.want || out != "" {
				t.Errorf("cip %s: exit %d, stdout %q, stderr %q; want exit 2, stderr %q", strings.Join(tc.args, " "), code, out, errs, tc.want)
			}
		})
	}
}

// TestBooleanEnv: boolean variables take the usual spellings, in any case.
func TestBooleanEnv(t *testing.T) {
	for _, v := range []string{"yes", "YES", "on", "On", "true", "1", "t", "y"} {
		t.Setenv("CIP_QUERY_LIST", v)
		if code, out, errs := runNamed(t, "cip", "query"); code != ExitOK || !strings.Contains(out, "largest") {
			t.Errorf("CIP_QUERY_LIST=%s cip query: exit %d, stderr %q; want the list of forms", v, code, errs)
		}
	}
	for _, v := range []string{"no", "Off", "FALSE", "0", "n"} {
		t.Setenv("CIP_QUERY_LIST", v)
		if code, _, errs := runNamed(t, "cip", "--db", filepath.Join(t.TempDir(), "x.db"), "query"); code != ExitUsage || !strings.Contains(errs, "give a SQL statement") {
			t.Errorf("CIP_QUERY_LIST=%s cip query: exit %d, stderr %q; want exit 2 asking for a statement", v, code, errs)
		}
	}
	// The command line wins over the variable.
	t.Setenv("CIP_QUERY_LIST", "no")
	if code, out, _ := runNamed(t, "cip", "query", "--list"); code != ExitOK || !strings.Contains(out, "largest") {
		t.Errorf("CIP_QUERY_LIST=no cip query --list: exit %d; want the list", code)
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"confirm", "config", "jobs", "sync", "snapshot", "thin-manifest-dir", "manifest"}
	for _, tc := range []struct{ typed, want string }{
		{"confrim", "confirm"},
		{"snc", "sync"},
		{"sycn", "sync"},
		{"jbos", "jobs"},
		{"thin", "thin-manifest-dir"},
		{"manifets", "manifest"},
		{"conf", ""}, // the start of two
		{"q", ""},
		{"xyzzy", ""},
	} {
		if got := suggest(tc.typed, names); got != tc.want {
			t.Errorf("suggest(%q) = %q, want %q", tc.typed, got, tc.want)
		}
	}
}

package app

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// runNamed runs the app as name with args and returns the exit code, stdout and
// stderr.
func runNamed(t *testing.T, name string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	prog := strings.ReplaceAll(name, " ", "-")
	code := Run(context.Background(), name, append([]string{prog}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestCompletionScripts(t *testing.T) {
	for _, tc := range []struct {
		name, shell string
		want        []string
	}{
		{"cip", "bash", []string{"complete -o bashdefault -o default -F _cip_bash_autocomplete cip\n", "--generate-bash-completion"}},
		{"cip", "zsh", []string{"#compdef cip\n", "compdef _cip_zsh_autocomplete cip\n", "--generate-bash-completion"}},
		{"cip", "fish", []string{"complete -c cip ", "-a 'sync'", "-l jobs"}},
		{"kubectl cip", "bash", []string{"-F _kubectl_cip_bash_autocomplete kubectl-cip\n", "source <(kubectl cip completion bash)"}},
		{"kubectl cip", "zsh", []string{"#compdef kubectl-cip\n"}},
		{"kubectl cip", "fish", []string{"complete -c kubectl-cip ", "-a 'snapshot'"}},
	} {
		t.Run(tc.name+"/"+tc.shell, func(t *testing.T) {
			code, out, errs := runNamed(t, tc.name, "completion", tc.shell)
			if code != ExitOK {
				t.Fatalf("%s completion %s: exit %d, want 0; stderr: %s", tc.name, tc.shell, code, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s completion %s: output lacks %q:\n%s", tc.name, tc.shell, w, out)
				}
			}
			// The fish script must not complete a program named "kubectl cip".
			if strings.Contains(out, "complete -c kubectl cip") {
				t.Errorf("%s completion %s names a program with a space:\n%s", tc.name, tc.shell, out)
			}
		})
	}
}

func TestCompletionUsage(t *testing.T) {
	for _, args := range [][]string{{"completion", "nonsense"}, {"completion"}, {"completion", "bash", "zsh"}} {
		code, out, errs := runNamed(t, "cip", args...)
		if code != ExitUsage {
			t.Errorf("cip %s: exit %d, want %d", strings.Join(args, " "), code, ExitUsage)
		}
		if out != "" {
			t.Errorf("cip %s: stdout %q, want nothing", strings.Join(args, " "), out)
		}
		if !strings.Contains(errs, "bash, zsh or fish") {
			t.Errorf("cip %s: stderr %q does not name the shells", strings.Join(args, " "), errs)
		}
	}
}

// TestGenerateBashCompletion runs what the bash and zsh scripts run.
// urfave/cli reads the word before the trailing flag from os.Args, so the
// test sets it.
func TestGenerateBashCompletion(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		want, not []string
	}{
		{[]string{"--generate-bash-completion"}, []string{"sync\n", "snapshot\n", "completion\n"}, nil},
		{[]string{"sync", "--j", "--generate-bash-completion"}, []string{"--jobs\n"}, []string{"--qps"}},
		{[]string{"snapshot", "REF", "-", "--generate-bash-completion"}, []string{"--output\n", "--offline\n", "--minimal\n"}, []string{"--db"}},
		{[]string{"--q", "--generate-bash-completion"}, []string{"--quiet\n"}, []string{"--db"}},
	} {
		saved := os.Args
		os.Args = append([]string{"cip"}, tc.args...)
		code, out, errs := runNamed(t, "cip", tc.args...)
		os.Args = saved
		if code != ExitOK {
			t.Errorf("cip %s: exit %d, want 0; stderr: %s", strings.Join(tc.args, " "), code, errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("cip %s: output lacks %q:\n%s", strings.Join(tc.args, " "), w, out)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(out, n) {
				t.Errorf("cip %s: output has %q:\n%s", strings.Join(tc.args, " "), n, out)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cip", []string{"version"}, "cip " + version() + "\n"},
		{"cip", []string{"--version"}, "cip " + version() + "\n"},
		{"cip", []string{"-v"}, "cip " + version() + "\n"},
		{"kubectl cip", []string{"version"}, "kubectl cip " + version() + "\n"},
		{"kubectl cip", []string{"--version"}, "kubectl cip " + version() + "\n"},
	} {
		code, out, errs := runNamed(t, tc.name, tc.args...)
		if code != ExitOK || out != tc.want {
			t.Errorf("%s %s = exit %d, %q (stderr %q), want exit 0, %q", tc.name, strings.Join(tc.args, " "), code, out, errs, tc.want)
		}
	}
	saved := releaseVersion
	releaseVersion = "v9.8.7"
	defer func() { releaseVersion = saved }()
	if code, out, _ := runNamed(t, "kubectl cip", "version"); code != ExitOK || out != "kubectl cip v9.8.7\n" {
		t.Errorf("kubectl cip version with releaseVersion set = %d, %q, want 0, %q", code, out, "kubectl cip v9.8.7\n")
	}
}

// TestKubectlExamples checks that the help of kubectl-cip shows examples as
// `kubectl cip ...`.
func TestKubectlExamples(t *testing.T) {
	code, out, _ := runNamed(t, "kubectl cip", "sync", "--help")
	if code != ExitOK {
		t.Fatalf("kubectl cip sync --help: exit %d", code)
	}
	if !strings.Contains(out, "\n      kubectl cip sync 127.0.0.1:5000\n") || strings.Contains(out, "\n      cip sync") {
		t.Errorf("kubectl cip sync --help does not show its examples as `kubectl cip sync`:\n%s", out)
	}
}

// TestCompleteWords speaks kubectl's plugin completion protocol (cobra's
// __complete): candidates one a line, then ":DIRECTIVE".
func TestCompleteWords(t *testing.T) {
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"sy"}, "sync\tcrawl registries into the inventory (incrementally)\n:4\n"},
		{[]string{"sync", "--j"}, "--jobs\tregistry requests in flight per registry host (the hosts are worked side by side)\n:4\n"},
		{[]string{"promote", "--conf"}, "--confirm\treally copy (the default is a dry run)\n--confirm-ttl\ttrust what cip confirmed live less than DURATION ago (e.g. 1h; 0, the default, confirms everything): promote plans a destination repository whose wanted images did not change from the inventory, with no request, and a crawl takes a tag the registry still lists from the inventory without a HEAD\n:4\n"},
		{[]string{"--q"}, "--quiet\tprint no progress on stderr\n:4\n"},
		{[]string{"sync", "--db", ""}, ":0\n"},           // a flag's value: files
		{[]string{"sync", "127.0.0.1:5000", ""}, ":0\n"}, // an argument: files
		{[]string{"audit", "se"}, "serve\tjudge registry notifications against the manifests, as they happen\n:0\n"},
		{[]string{"nosuch", ""}, ":4\n"},
		{[]string{"sync", "--metrics-f"}, "--metrics-file\twrite the run's metrics to FILE in Prometheus text format (for node-exporter's textfile collector), atomically\n:4\n"},
	} {
		code, out, errs := runNamed(t, "kubectl cip", append([]string{"__complete"}, tc.words...)...)
		if code != ExitOK || out != tc.want || errs != "" {
			t.Errorf("kubectl-cip __complete %q: exit %d, stdout %q, stderr %q; want %q", tc.words, code, out, errs, tc.want)
		}
	}
	// No word yet: every command.
	_, out, _ := runNamed(t, "kubectl cip", "__complete", "")
	for _, c := range []string{"sync\t", "promote\t", "query\t", "version\t"} {
		if !strings.Contains(out, "\n"+c) && !strings.HasPrefix(out, c) {
			t.Errorf("kubectl-cip __complete \"\": lacks %q:\n%s", c, out)
		}
	}
}

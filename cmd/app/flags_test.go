package app

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// envName is the environment variable of a flag: CIP_ and the flag's name in
// upper case with - as _ (--thin-manifest-dir: CIP_THIN_MANIFEST_DIR).
var envName = regexp.MustCompile(`^CIP_[A-Z0-9_]+$`)

// allFlags lists every flag of the app by command path ("" for the global
// flags), help and version left out.
func allFlags(app *cli.App) map[string][]cli.Flag {
	out := map[string][]cli.Flag{"": app.Flags}
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			out[prefix+c.Name] = c.Flags
			walk(prefix+c.Name+" ", c.Subcommands)
		}
	}
	walk("", app.Commands)
	return out
}

// TestEveryFlagHasEnv: every flag can be set from the environment, with a
// CIP_ variable, and the README lists every variable.
func TestEveryFlagHasEnv(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	app := newApp("cip", io.Discard, io.Discard)
	byEnv := map[string][]string{}
	type flagAt struct {
		flag  cli.Flag
		where string
	}
	seen := map[string]flagAt{}
	for cmd, flags := range allFlags(app) {
		for _, f := range flags {
			name := f.Names()[0]
			if name == "help" || name == "version" {
				continue
			}
			where := strings.Join(strings.Fields("cip "+cmd+" --"+name), " ")
			ef, ok := f.(interface{ GetEnvVars() []string })
			if !ok || len(ef.GetEnvVars()) == 0 {
				t.Errorf("%s has no environment variable", where)
				continue
			}
			for _, e := range ef.GetEnvVars() {
				if !envName.MatchString(e) {
					t.Errorf("%s: environment variable %q does not match %s", where, e, envName)
				}
				byEnv[e] = append(byEnv[e], where)
				if prev, ok := seen[e]; ok && !sameMeaning(prev.flag, f) {
					t.Errorf("%s and %s share %s but differ in type, default or usage; give one of them a %s_ variable", prev.where, where, e, "CIP_"+strings.ToUpper(strings.Fields(cmd + " x")[0]))
				}
				seen[e] = flagAt{f, where}
			}
		}
	}
	var envs []string
	for e := range byEnv {
		envs = append(envs, e)
	}
	sort.Strings(envs)
	for _, e := range envs {
		if !strings.Contains(string(readme), "`"+e+"`") {
			t.Errorf("README.md does not document `%s` (%s)", e, strings.Join(byEnv[e], ", "))
		}
	}
}

// sameMeaning reports whether two flags may share an environment variable:
// one type and one default and, unless boolean, one usage text (one
// variable must not set --output to yaml for one command and to table for
// another).
func sameMeaning(a, b cli.Flag) bool {
	if fmt.Sprintf("%T", a) != fmt.Sprintf("%T", b) {
		return false
	}
	da, db := a.(cli.DocGenerationFlag), b.(cli.DocGenerationFlag)
	if da.GetDefaultText() != db.GetDefaultText() || da.GetValue() != db.GetValue() {
		return false
	}
	if v, ok := a.(interface{ TakesValue() bool }); ok && !v.TakesValue() {
		return true // a boolean
	}
	return da.GetUsage() == db.GetUsage()
}

// TestEveryCommandHasExamples: every command's --help carries an Examples
// block that runs the command.
func TestEveryCommandHasExamples(t *testing.T) {
	app := newApp("cip", io.Discard, io.Discard)
	for _, c := range app.Commands {
		if c.Hidden {
			continue
		}
		_, examples, ok := strings.Cut(c.Description, "Examples:\n")
		if !ok {
			t.Errorf("cip %s --help has no Examples: block", c.Name)
			continue
		}
		if !strings.Contains(examples, "cip "+c.Name) {
			t.Errorf("cip %s --help: the examples do not run `cip %s`:\n%s", c.Name, c.Name, examples)
		}
	}
}

func TestSameMeaning(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b cli.Flag
		want bool
	}{
		{"one shared flag", outputFlag, outputFlag, true},
		{"outputs with other defaults", outputFlag, &cli.StringFlag{Name: "output", Value: "table", Usage: outputFlag.Usage}, false},
		{"outputs with other usage", outputFlag, &cli.StringFlag{Name: "output", Value: "yaml", Usage: "table or json"}, false},
		{"booleans with other usage", &cli.BoolFlag{Name: "offline", Usage: "a"}, &cli.BoolFlag{Name: "offline", Usage: "b"}, true},
		{"bool and string", &cli.BoolFlag{Name: "x"}, &cli.StringFlag{Name: "x"}, false},
	} {
		if got := sameMeaning(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: sameMeaning = %v, want %v", tc.name, got, tc.want)
		}
	}
}

package app

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// This file is how cip reads its command line on top of urfave/cli v2:
// flags anywhere (reorderArgs), "did you mean" suggestions for unknown
// flags and commands, usage errors that name flags as they are typed
// (--jobs, not -jobs), and boolean environment variables in the usual
// spellings (envBool).

// reorderArgs puts args in the order urfave/cli v2 parses, which stops
// at the first positional argument and knows a command's flags only after
// the command: the global flags (--db, --quiet, …) given after the
// command move before it, and the command's flags that follow positional
// arguments move in front of them. So `cip sync REF --db X --jobs 4` runs
// as `cip --db X sync --jobs 4 REF`, as kubectl and crane read it. A
// subcommand (`cip audit serve`) takes its own flags, and a flag's value
// goes with it (`--output csv`, `-o csv`, `--output=csv`). A flag the
// command defines wins over a global flag of the same name; an unknown flag
// stays with the command, whose parser reports it. Everything after a
// literal "--" is left alone.
func reorderArgs(app *cli.App, args []string) []string {
	// Shell completion reads a trailing --generate-bash-completion and the
	// words before it in their order: leave them alone.
	if len(args) < 2 || args[len(args)-1] == "--generate-bash-completion" {
		return args
	}
	// The global flags given before the command.
	i := 1
	for i < len(args) && isFlag(args[i]) && args[i] != "--" {
		if takesValue(app.Flags, args[i]) {
			i++
		}
		i++
	}
	if i >= len(args) {
		return args
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return args // an unknown command: CommandNotFound says so
	}
	globals := slices.Clone(args[1:i])
	path := []string{args[i]} // the command, its subcommands and their flags
	var flags, pos []string   // the current (sub)command's flags; positional arguments
	for j := i + 1; j < len(args); j++ {
		a := args[j]
		if a == "--" {
			pos = append(pos, args[j:]...)
			break
		}
		if isFlag(a) {
			for _, f := range splitShort(a, cmd.Flags, app.Flags) {
				dest, defs := &flags, cmd.Flags
				if !defines(cmd.Flags, flagName(f)) && !isHelp(flagName(f)) && defines(app.Flags, flagName(f)) &&
					(!takesValue(app.Flags, f) || j+1 < len(args)) {
					// (A global flag missing its value stays with the
					// command, whose parser reports it: flagUsageError.)
					dest, defs = &globals, app.Flags
				}
				*dest = append(*dest, f)
				if takesValue(defs, f) && j+1 < len(args) {
					*dest = append(*dest, args[j+1])
					j++
				}
			}
			continue
		}
		if len(pos) == 0 {
			if sub := subcommand(cmd, a); sub != nil {
				path = append(append(path, flags...), a)
				flags, cmd = nil, sub
				continue
			}
		}
		pos = append(pos, a)
	}
	out := append([]string{args[0]}, globals...)
	out = append(out, path...)
	out = append(out, flags...)
	return append(out, pos...)
}

// isFlag reports whether a command-line word is a flag ("-" alone is an
// argument: standard input, by convention).
func isFlag(a string) bool { return strings.HasPrefix(a, "-") && a != "-" }

// isHelp reports whether name is urfave/cli's help flag, which every
// command has.
func isHelp(name string) bool { return name == "help" || name == "h" }

// flagName is the name in a flag word: "output" for "--output=csv", "-o".
func flagName(a string) string {
	n := strings.TrimLeft(a, "-")
	n, _, _ = strings.Cut(n, "=")
	return n
}

// splitShort splits a cluster of one-letter flags ("-qj", as urfave/cli's
// short-option handling reads it) into single flags when every letter is
// a flag of cmd or a global one, so that each goes where it belongs.
// Anything else is returned as it is.
func splitShort(a string, cmdFlags, globalFlags []cli.Flag) []string {
	if strings.HasPrefix(a, "--") || len(a) < 3 || strings.Contains(a, "=") {
		return []string{a}
	}
	var out []string
	for _, r := range a[1:] {
		n := string(r)
		if !defines(cmdFlags, n) && !defines(globalFlags, n) && !isHelp(n) {
			return []string{a}
		}
		out = append(out, "-"+n)
	}
	return out
}

// defines reports whether one of flags is called name.
func defines(flags []cli.Flag, name string) bool { return lookupFlag(flags, name) != nil }

func lookupFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// subcommand returns cmd's subcommand called name, or nil.
func subcommand(cmd *cli.Command, name string) *cli.Command {
	for _, s := range cmd.Subcommands {
		if s.HasName(name) {
			return s
		}
	}
	return nil
}

// takesValue reports whether arg (e.g. "--output", not "--output=csv") is a
// flag of flags that reads the next argument as its value.
func takesValue(flags []cli.Flag, arg string) bool {
	if strings.Contains(arg, "=") {
		return false
	}
	f := lookupFlag(flags, flagName(arg))
	if f == nil {
		return false
	}
	if v, ok := f.(interface{ TakesValue() bool }); ok {
		return v.TakesValue()
	}
	return true
}

// dashed writes a flag's name as it is typed: --name, or -n for a
// one-letter alias.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// flagInError finds the flag named in the Go flag package's messages
// ("flag provided but not defined: -confrim", "invalid value "x" for flag
// -jobs: …", "flag needs an argument: -db").
var flagInError = regexp.MustCompile(`(flag provided but not defined: |for flag |flag needs an argument: |for )-{1,2}([\w.-]+)`)

// flagUsageError turns a parse error of cmd's command line into cip's
// wording: the flag with its dashes as typed, and for an unknown flag the
// closest one cmd (or the global flags) has.
func flagUsageError(c *cli.Context, err error) error {
	msg := err.Error()
	m := flagInError.FindStringSubmatch(msg)
	if m == nil {
		return &usageError{err}
	}
	name := m[2]
	if strings.HasPrefix(m[1], "flag provided but not defined") {
		if takesValue(c.App.Flags, dashed(name)) {
			// A global flag last on the line, without its value.
			return usagef("flag needs an argument: %s", dashed(name))
		}
		var candidates []string
		for _, fs := range [][]cli.Flag{commandFlags(c), c.App.Flags} {
			for _, f := range fs {
				for _, n := range f.Names() {
					if len(n) > 1 {
						candidates = append(candidates, n)
					}
				}
			}
		}
		msg = "unknown flag " + dashed(name)
		if s := suggest(name, candidates); s != "" {
			msg += "; did you mean " + dashed(s) + "?"
		}
		return &usageError{errors.New(msg)}
	}
	return &usageError{errors.New(strings.Replace(msg, m[0], m[1]+dashed(name), 1))}
}

// commandFlags are the flags of the command being parsed (the app's for
// the root), help included.
func commandFlags(c *cli.Context) []cli.Flag {
	if c.Command != nil {
		return c.Command.Flags
	}
	return c.App.Flags
}

// commandNotFound says that cmd is no command of the app, with the
// closest one.
func commandNotFound(name string, app *cli.App, cmd string) string {
	var names []string
	for _, c := range app.Commands {
		if !c.Hidden {
			names = append(names, c.Names()...)
		}
	}
	msg := fmt.Sprintf("unknown command %q", cmd)
	if s := suggest(cmd, names); s != "" {
		msg += "; did you mean " + s + "?"
	}
	return fmt.Sprintf("%s: %s (see '%s --help')", name, msg, name)
}

// suggest returns the candidate closest to typed, when one is close enough
// to be a typo of it (an edit distance of at most a third of its length,
// at least 1, and at most 2) or typed is the start of exactly one
// candidate; "" otherwise. Ties go to the first in sorted order.
func suggest(typed string, candidates []string) string {
	limit := min(max(len(typed)/3, 1), 2)
	best, bestD := "", limit+1
	var prefixed []string
	sorted := slices.Clone(candidates)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	for _, c := range sorted {
		if d := editDistance(typed, c); d < bestD {
			best, bestD = c, d
		}
		if len(typed) >= 2 && strings.HasPrefix(c, typed) {
			prefixed = append(prefixed, c)
		}
	}
	if best != "" {
		return best
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return ""
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// letters (the usual typos) cost one each.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// envBool is a boolean flag whose environment variable takes the usual
// spellings of a boolean: true/false, 1/0, yes/no, on/off, t/f, y/n, in any
// case (urfave/cli's own reading takes only Go's strconv.ParseBool forms
// and fails on CIP_CONFIRM=yes with a parse error). Anything else is a
// usage error naming the variable and the spellings it takes.
type envBool struct{ *cli.BoolFlag }

// Apply defines the flag in set, with its value from the environment when
// a variable is set.
func (f *envBool) Apply(set *flag.FlagSet) error {
	plain := *f.BoolFlag // the flag definitions are shared: never change them
	plain.EnvVars = nil
	for _, e := range f.EnvVars {
		v, ok := os.LookupEnv(e)
		if !ok || strings.TrimSpace(v) == "" {
			continue
		}
		b, err := parseBool(v)
		if err != nil {
			return usagef("%s=%q: want true or false (or 1/0, yes/no, on/off)", e, v)
		}
		plain.Value = b
		break
	}
	return plain.Apply(set)
}

// parseBool reads the usual spellings of a boolean, in any case.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "y", "yes", "on":
		return true, nil
	case "0", "f", "false", "n", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("parse boolean %q", s)
}

// atLeast returns a flag Action refusing values below lo, as a usage error.
func atLeast[T ~int | ~int64 | ~float64](name string, lo T) func(*cli.Context, T) error {
	return func(_ *cli.Context, v T) error {
		if v < lo {
			return usagef("--%s %v: want at least %v", name, v, lo)
		}
		return nil
	}
}

// setupCommands prepares the app's command tree for cip's reading of the
// command line: each app has its own flags (boolean ones envBool), every
// command reports its parse errors in cip's wording (flagUsageError), and
// examples name the program as it was invoked ("kubectl cip").
func setupCommands(app *cli.App, name string) {
	ownFlags(app.Flags)
	var setup func(cmds []*cli.Command)
	setup = func(cmds []*cli.Command) {
		for _, c := range cmds {
			ownFlags(c.Flags)
			c.OnUsageError = app.OnUsageError
			// The command run, for --metrics-file (a subcommand's Before
			// runs after its parent's).
			before := c.Before
			c.Before = func(cc *cli.Context) error {
				state(cc).command = commandName(cc)
				if before != nil {
					return before(cc)
				}
				return nil
			}
			c.Description = strings.ReplaceAll(c.Description, "\n   cip ", "\n   "+name+" ")
			setup(c.Subcommands)
		}
	}
	setup(app.Commands)
}

// ownFlags gives an app its own copy of each flag of flags (a slice each
// command builds afresh, of flag definitions shared by commands), with
// each *cli.BoolFlag wrapped in an envBool. urfave/cli records on a flag
// that the environment set it (HasBeenSet): on a shared definition that
// would leak into the next app run in the same process, and race with it.
func ownFlags(flags []cli.Flag) {
	for i, f := range flags {
		v := reflect.ValueOf(f)
		if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
			continue
		}
		cp := reflect.New(v.Elem().Type())
		cp.Elem().Set(v.Elem())
		flags[i] = cp.Interface().(cli.Flag)
		if b, ok := flags[i].(*cli.BoolFlag); ok {
			flags[i] = &envBool{b}
		}
	}
}

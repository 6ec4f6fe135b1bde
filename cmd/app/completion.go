package app

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// The bash and zsh scripts are urfave/cli's autocomplete/bash_autocomplete
// and zsh_autocomplete with the program name filled in: they run the program
// with the words typed so far and a trailing --generate-bash-completion,
// and offer what it prints.
const bashCompletion = `# bash completion for %[1]s: source <(%[2]s completion bash)
_%[3]s_bash_autocomplete() {
  local cur words cword opts requestComp
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  words=("${COMP_WORDS[@]:0:$COMP_CWORD}")
  if [[ "$cur" == "-"* ]]; then
    requestComp="${words[*]} ${cur} --generate-bash-completion"
  else
    requestComp="${words[*]} --generate-bash-completion"
  fi
  opts=$(eval "${requestComp}" 2>/dev/null)
  COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
  return 0
}
complete -o bashdefault -o default -F _%[3]s_bash_autocomplete %[1]s
`

const zshCompletion = `#compdef %[1]s
# zsh completion for %[1]s: source <(%[2]s completion zsh)
_%[3]s_zsh_autocomplete() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion 2>/dev/null)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
  fi
  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}
compdef _%[3]s_zsh_autocomplete %[1]s
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "bash|zsh|fish",
		Description: `Prints a script that completes commands and flags; load it from your shell's
startup file. As a kubectl plugin the script completes the kubectl-cip
binary.

Examples:
   source <(cip completion bash)                       # in ~/.bashrc
   source <(cip completion zsh)                        # in ~/.zshrc, after compinit
   cip completion fish > ~/.config/fish/completions/cip.fish`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("completion: give one shell: bash, zsh or fish")
			}
			// The executable: "cip", or "kubectl-cip" for "kubectl cip".
			prog := strings.ReplaceAll(c.App.Name, " ", "-")
			fn := strings.ReplaceAll(prog, "-", "_")
			switch sh := c.Args().First(); sh {
			case "bash":
				_, err := fmt.Fprintf(c.App.Writer, bashCompletion, prog, c.App.Name, fn)
				return err
			case "zsh":
				_, err := fmt.Fprintf(c.App.Writer, zshCompletion, prog, c.App.Name, fn)
				return err
			case "fish":
				name := c.App.Name
				c.App.Name = prog
				script, err := c.App.ToFishCompletion()
				c.App.Name = name
				if err != nil {
					return fmt.Errorf("generate fish completion: %w", err)
				}
				_, err = fmt.Fprint(c.App.Writer, script)
				return err
			default:
				return usagef("completion: unknown shell %q (want bash, zsh or fish)", sh)
			}
		},
	}
}

// Cobra's shell completion directives (github.com/spf13/cobra's
// ShellCompDirective), the last line of a __complete answer.
const (
	compDefault    = 0 // the shell may complete file names too
	compNoFileComp = 4 // only the words given
)

// completeWords answers kubectl's plugin completion: kubectl 1.26 and
// later complete `kubectl cip …` by running kubectl_complete-cip with the
// words typed after "kubectl cip" (the last one being completed, "" for a
// new word), and read cobra's protocol from its stdout: one candidate a
// line ("word\tdescription"), then ":DIRECTIVE". The kubectl_complete-cip
// that cip ships runs `kubectl-cip __complete WORDS…`, which lands here.
// Commands, subcommands and flags (the command's and the global ones)
// are candidates; a flag's value or a positional argument is left to the
// shell's file completion.
func completeWords(app *cli.App, words []string, w io.Writer) {
	cur := ""
	if len(words) > 0 {
		cur, words = words[len(words)-1], words[:len(words)-1]
	}
	var cmd *cli.Command
	positional, wantValue := false, false
	for i := 0; i < len(words); i++ {
		a := words[i]
		if a == "--" {
			positional = true
			break
		}
		if isFlag(a) {
			flags := app.Flags
			if cmd != nil && defines(cmd.Flags, flagName(a)) {
				flags = cmd.Flags
			}
			if takesValue(flags, a) {
				if i+1 == len(words) {
					wantValue = true
				}
				i++
			}
			continue
		}
		switch {
		case cmd == nil:
			if cmd = app.Command(a); cmd == nil {
				fmt.Fprintf(w, ":%d\n", compNoFileComp) // an unknown command: nothing to offer
				return
			}
		case !positional && subcommand(cmd, a) != nil:
			cmd = subcommand(cmd, a)
		default:
			positional = true
		}
	}
	if wantValue {
		fmt.Fprintf(w, ":%d\n", compDefault)
		return
	}
	candidate := func(word, desc string) {
		if strings.HasPrefix(word, cur) {
			desc = strings.ReplaceAll(strings.TrimSpace(strings.SplitN(desc, "\n", 2)[0]), "`", "")
			if desc != "" {
				word += "\t" + desc
			}
			fmt.Fprintln(w, word)
		}
	}
	if strings.HasPrefix(cur, "-") {
		var flags []cli.Flag
		if cmd != nil {
			flags = append(flags, cmd.Flags...)
		}
		for _, f := range append(flags, app.Flags...) {
			usage := ""
			if d, ok := f.(cli.DocGenerationFlag); ok {
				usage = d.GetUsage()
			}
			for _, n := range f.Names() {
				if len(n) > 1 {
					candidate("--"+n, usage)
				}
			}
		}
		candidate("--help", "show help")
		fmt.Fprintf(w, ":%d\n", compNoFileComp)
		return
	}
	switch {
	case cmd == nil:
		for _, c := range app.Commands {
			if !c.Hidden {
				candidate(c.Name, c.Usage)
			}
		}
	case len(cmd.Subcommands) > 0 && !positional:
		for _, c := range cmd.Subcommands {
			if !c.Hidden {
				candidate(c.Name, c.Usage)
			}
		}
		fmt.Fprintf(w, ":%d\n", compDefault) // or the command's own argument
		return
	default:
		fmt.Fprintf(w, ":%d\n", compDefault) // a positional argument: a file, a REF
		return
	}
	fmt.Fprintf(w, ":%d\n", compNoFileComp)
}

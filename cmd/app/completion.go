package app

import (
	"fmt"
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

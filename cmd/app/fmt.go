package app

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/cipdev/cip/check"
	"github.com/cipdev/cip/manifest"
)

func fmtCommand() *cli.Command {
	return &cli.Command{
		Name:  "fmt",
		Usage: "rewrite images files in canonical form",
		Description: `Rewrites each images file (thin: images/<x>/images.yaml; plain: the images
field of the manifest) in the form snapshots write: one entry per image name,
images sorted by name, digests sorted and quoted, tags as a sorted flow list.
A thin images file keeps its leading comment block; a plain manifest keeps
everything outside its images field, which moves last. Comments among the
image entries are dropped.

A file with a validation problem (see cip validate) is refused and left as it
is; the others are formatted, and the exit code is 2. Each file is
written to a temporary file beside it and renamed over it, so an interrupted
run leaves the old file or the new one. The files rewritten are listed on
stdout. With --check nothing is written: the files that are not canonical are
listed and the exit code is 1.

Examples:
   cip fmt --thin-manifest-dir ./registry.k8s.io
   cip fmt --check --manifest promoter-manifest.yaml`,
		Flags: []cli.Flag{manifestFlag, thinDirFlag,
			&cli.BoolFlag{Name: "check", EnvVars: []string{"CIP_FMT_CHECK"}, Usage: "write nothing; list files not in canonical form and exit 1 if any"}},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("fmt: unexpected argument %q", c.Args().First())
			}
			file, dir := c.String("manifest"), c.String("thin-manifest-dir")
			if (file == "") == (dir == "") {
				return usagef("fmt: give exactly one of --manifest or --thin-manifest-dir")
			}
			// Load leniently to learn which files are invalid; those are
			// refused, the others formatted.
			set, err := manifest.Load(file, dir, manifest.Options{SkipInvalid: true})
			if err != nil {
				return &usageError{err}
			}
			invalid := map[string]bool{}
			for _, w := range set.Warnings {
				if !invalid[w.File] {
					fmt.Fprintf(c.App.ErrWriter, "fmt: refusing to format an invalid file: %s\n", w)
				}
				invalid[w.File] = true
			}
			done := map[string]bool{}
			var changed []string
			for _, m := range set.Manifests {
				f := m.ImagesFile
				if done[f] || invalid[f] {
					continue
				}
				done[f] = true
				data, err := os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("format %s: %w", f, err)
				}
				want, err := check.FormatImages(data, f == m.File)
				if err != nil {
					return fmt.Errorf("format %s: %w", f, err)
				}
				if bytes.Equal(data, want) {
					continue
				}
				changed = append(changed, f)
				if !c.Bool("check") {
					if err := replaceFile(f, want); err != nil {
						return err
					}
				}
				fmt.Fprintln(c.App.Writer, f)
			}
			if len(invalid) > 0 {
				return usagef("fmt: %d invalid file(s) left as they are; see cip validate", len(invalid))
			}
			if c.Bool("check") && len(changed) > 0 {
				return cli.Exit(fmt.Sprintf("fmt: %d file(s) not in canonical form; run cip fmt", len(changed)), ExitRuntime)
			}
			return nil
		},
	}
}

// replaceFile writes data to a temporary file beside path, with path's
// mode, and renames it over path.
func replaceFile(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("format %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("format %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("format %s: %w", path, err)
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return fmt.Errorf("format %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("format %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("format %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("format %s: %w", path, err)
	}
	return nil
}

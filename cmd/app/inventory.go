package app

import (
	"fmt"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/cipdev/cip/inventory"
	cipsync "github.com/cipdev/cip/sync"
)

func inventoryCommand() *cli.Command {
	return &cli.Command{
		Name:  "inventory",
		Usage: "check the inventory file for damage, or rebuild it from the registries",
		Description: `SQLite keeps no checksums of its pages, and a manifest's bytes can change on
disk without SQLite noticing. Every command makes a cheap check when it
opens the inventory (PRAGMA quick_check, when the file is not the size cip
closed it at, was not closed cleanly, or was last checked a day ago) and
refuses a damaged one; every manifest is re-hashed when it is read.

   check    integrity_check, foreign_key_check and a re-hash of every
            manifest; lists what is damaged on stdout, exit 1 when anything is
   rebuild  a fresh inventory from what the damaged one knew: the manifests
            whose bytes still verify are kept, every repository it named is
            crawled again, and the new file replaces the old (kept beside it
            as PATH.damaged-TIME); tag history, sync runs and loaded
            manifests are dropped (promote loads its manifests again)

Examples:
   cip inventory check
   cip --db ./inventory.db inventory rebuild --jobs 16`,
		Subcommands: []*cli.Command{
			{
				Name:  "check",
				Usage: "check the inventory in full: SQLite's integrity_check and every manifest re-hashed",
				Description: `Exit 0 when nothing is wrong, 1 listing what is (on stdout).

Examples:
   cip inventory check
   cip --db ./inventory.db inventory check`,
				Action: runInventoryCheck,
			},
			{
				Name:  "rebuild",
				Usage: "rebuild a damaged inventory from the registries it names (a fresh sync), then swap it in",
				Description: `Keeps the manifests whose bytes still verify, crawls every repository the
old inventory named into a new file, and puts it in place of the old one,
which is kept beside it. When a repository cannot be crawled, nothing is
replaced (exit 1): rerun once the registries answer. Run it while nothing
else uses the inventory.

Examples:
   cip inventory rebuild
   cip --db ./inventory.db inventory rebuild --jobs 16`,
				Flags:  registryFlags(),
				Action: runInventoryRebuild,
			},
		},
	}
}

func runInventoryCheck(c *cli.Context) error {
	path, err := dbPath(c)
	if err != nil {
		return err
	}
	rep, err := inventory.Check(c.Context, path)
	if err != nil {
		return err
	}
	w := c.App.Writer
	for _, p := range rep.Integrity {
		fmt.Fprintf(w, "integrity: %s\n", p)
	}
	for _, p := range rep.ForeignKeys {
		fmt.Fprintf(w, "foreign key: %s\n", p)
	}
	for _, ce := range rep.Corrupt {
		fmt.Fprintf(w, "manifest %s: %s\n", ce.Digest, ce.Reason)
	}
	if !rep.OK() {
		return fmt.Errorf("inventory %s is damaged (%d integrity problems, %d foreign key problems, %d of %d manifests): run '%s inventory rebuild'",
			path, len(rep.Integrity), len(rep.ForeignKeys), len(rep.Corrupt), rep.Manifests, c.App.Name)
	}
	fmt.Fprintf(w, "ok: %s: integrity_check and foreign_key_check pass, %d manifests verify\n", path, rep.Manifests)
	return nil
}

func runInventoryRebuild(c *cli.Context) error {
	path, err := dbPath(c)
	if err != nil {
		return err
	}
	prog := newProgress(c)
	res, err := cipsync.Rebuild(c.Context, path, newClient(c, nil, prog), cipsync.Options{Jobs: c.Int("jobs"), Progress: prog.sync()})
	if res != nil {
		prog.synced(res.Sync)
		if s := res.Salvaged; s != nil {
			for _, p := range s.Problems {
				prog.warn("unreadable", "could not read: "+p, slog.String("problem", p))
			}
			for _, r := range res.Skipped {
				prog.warn("not crawled", fmt.Sprintf("not crawled again (a damaged name): %q", r), slog.String("repository", r))
			}
			prog.info("rebuild", fmt.Sprintf("rebuild: %d manifests kept (they verify), %d dropped, %d repositories crawled again; tag history, sync runs and loaded manifests dropped",
				s.Kept, s.Dropped, len(s.Repositories)-len(res.Skipped)),
				slog.Int("kept", s.Kept), slog.Int("dropped", s.Dropped), slog.Int("repositories", len(s.Repositories)-len(res.Skipped)))
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "rebuilt %s; the damaged file is kept as %s\n", path, res.Backup)
	return nil
}

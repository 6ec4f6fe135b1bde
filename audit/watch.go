package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// fingerprint sums what the poll compares of the watched paths: each
// path's resolved target (a git-sync checkout swaps a symlink), and every
// file below it with its size, mode and modification time. An unreadable
// path is part of the sum too, so that it changing is seen.
func fingerprint(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	h := sha256.New()
	n := 0
	for _, root := range paths {
		resolved, err := filepath.EvalSymlinks(root)
		if err != nil {
			fmt.Fprintf(h, "%s: %v\n", root, err)
			continue
		}
		fmt.Fprintf(h, "%s -> %s\n", root, resolved)
		err = filepath.WalkDir(resolved, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				fmt.Fprintf(h, "%s: %v\n", p, err)
				return nil
			}
			if n++; n > maxWatchedFiles {
				return fs.SkipAll
			}
			// Stat, not the entry's Lstat: a symlinked file changes when
			// its target does.
			fi, err := os.Stat(p)
			if err != nil {
				fmt.Fprintf(h, "%s: %v\n", p, err)
				return nil
			}
			fmt.Fprintf(h, "%s %d %v %d\n", p, fi.Size(), fi.Mode(), fi.ModTime().UnixNano())
			return nil
		})
		if err != nil {
			fmt.Fprintf(h, "%s: %v\n", resolved, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

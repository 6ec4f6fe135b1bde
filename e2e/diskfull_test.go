package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A sync that fills the disk (a 1 MiB tmpfs) says the disk is full, not
// "no such savepoint", and leaves an inventory that passes integrity_check
// and that a rerun with room completes. Mounting needs root; the same
// failure is covered without it by inventory's TestWriteRepositoriesDiskFull
// (SQLite's max_page_count).
func TestSyncDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs (inventory.TestWriteRepositoriesDiskFull covers the write path without it)")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	// 40 manifests of 64 KiB: 2.5 MiB, more than the disk holds.
	reg := startBigRegistry(t, 40, 64<<10)
	db := filepath.Join(mnt, "inv.db")
	code, stderr := cipCode(t, "--db", db, "sync", reg.host()+"/big/app")
	if code != 1 {
		t.Fatalf("sync on a full disk: exit %d, want 1\n%s", code, stderr)
	}
	t.Logf("sync on a full disk: exit %d: %s", code, lastLine(stderr))
	if !strings.Contains(stderr, "database or disk is full") || strings.Contains(stderr, "savepoint") {
		t.Errorf("stderr = %q, want the disk full error itself", stderr)
	}
	// Copy the inventory out (file and WAL, as they are), check it, and
	// rerun where there is room.
	dir := t.TempDir()
	for _, suffix := range []string{"", "-wal"} {
		if _, err := os.Stat(db + suffix); err == nil {
			copyFile(t, db+suffix, filepath.Join(dir, "inv.db"+suffix))
		}
	}
	moved := filepath.Join(dir, "inv.db")
	checkIntegrity(t, moved)
	Cip(t, 0, "--db", moved, "sync", reg.host()+"/big/app")
	if n := queryInt(t, moved, `SELECT COUNT(*) FROM tags`); n != 40 {
		t.Errorf("tags after the rerun = %d, want 40", n)
	}
	checkInventoryDigests(t, moved, false)
}

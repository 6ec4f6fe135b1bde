package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// flipManifestByte changes one digit inside the stored bytes of manifest
// d (or of one manifest, when d is ""), in the file itself (cip not
// running), and returns the digest whose bytes it changed. SQLite cannot see it: integrity_check passes.
func flipManifestByte(t *testing.T, db, d string) string {
	t.Helper()
	var raw []byte
	if err := openSQL(t, db).QueryRow(`SELECT digest, raw FROM manifests WHERE length(raw) < 2000 AND (digest = ?1 OR ?1 = '') ORDER BY digest LIMIT 1`, d).Scan(&d, &raw); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte(`"size":`)) + len(`"size":`)
	// The file may hold stale copies (freed pages): change the copy the
	// row reads.
	for at := 0; ; at++ {
		j := bytes.Index(data[at:], raw)
		if j < 0 {
			t.Fatalf("manifest %s: no copy of its bytes in the file is the one its row reads", d)
		}
		at += j
		p := at + i
		old := data[p]
		data[p] = '0' + (old-'0'+1)%10
		if err := os.WriteFile(db, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var now []byte
		if err := openSQL(t, db).QueryRow(`SELECT raw FROM manifests WHERE digest = ?`, d).Scan(&now); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("sha256:%x", sha256.Sum256(now)) != d {
			return d
		}
		data[p] = old
	}
}

// breakPages overwrites the page-type byte of n pages picked by a seeded
// RNG (not page 1, the schema, nor the repositories table's pages, so that
// the rebuild can still read what to crawl), as random damage to b-tree
// pages would: integrity_check then fails.
func breakPages(t *testing.T, db string, n int, seed uint64) {
	t.Helper()
	d := openSQL(t, db)
	var pageSize int
	if err := d.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	keep := map[int]bool{1: true}
	rows, err := d.Query(`SELECT rootpage FROM sqlite_schema WHERE tbl_name = 'repositories' AND rootpage > 0`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p int
		rows.Scan(&p)
		keep[p] = true
	}
	rows.Close()
	d.Close()
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	pages := len(data) / pageSize
	rng := rand.New(rand.NewPCG(seed, seed))
	for broken := 0; broken < n; {
		p := 2 + rng.IntN(pages-1)
		off := (p - 1) * pageSize
		// b-tree pages only (a type byte of 2, 5, 10 or 13).
		if keep[p] || !slices.Contains([]byte{2, 5, 10, 13}, data[off]) {
			continue
		}
		data[off] = 0x47
		keep[p] = true
		broken++
	}
	if err := os.WriteFile(db, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Random damage to the inventory file: a changed byte in a manifest (which
// SQLite cannot see) is named by cip inventory check; damaged pages are
// too, and every command refuses the file, naming the way out, until
// cip inventory rebuild makes a fresh one from the registries, which then
// answers as the undamaged one did.
func TestInventoryDamageCheckAndRebuild(t *testing.T) {
	s := StartRegistry(t)
	seed(t, s.Host)
	db := filepath.Join(t.TempDir(), "inv.db")
	Cip(t, 0, "--db", db, "sync", s.Host)
	want := snapshotCSV(t, db, s.Host)
	out, _ := Cip(t, 0, "--db", db, "inventory", "check")
	if !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("check of a sound inventory: %q", out)
	}

	// A manifest's bytes: the check names the digest; the cheap check at
	// open cannot see it (promote re-hashes what it reads).
	flipped := flipManifestByte(t, db, "")
	checkIntegrity(t, db)
	out, _ = Cip(t, 1, "--db", db, "inventory", "check")
	if !strings.Contains(out, "manifest "+flipped+": ") || !strings.Contains(out, "do not verify") {
		t.Errorf("check after a manifest byte changed:\n%s\nwant %s named", out, flipped)
	}

	// Damaged pages, found a day after the last check (the file keeps its
	// size, so only the schedule finds them at open).
	d := openSQL(t, db)
	if _, err := d.Exec(`UPDATE inventory_health SET checked_at = 0`); err != nil {
		t.Fatal(err)
	}
	d.Close()
	breakPages(t, db, 3, 20261201)
	out, _ = Cip(t, 1, "--db", db, "inventory", "check")
	t.Logf("check after damaged pages:\n%s", out)
	if !strings.Contains(out, "integrity: ") {
		t.Errorf("check after damaged pages:\n%s\nwant integrity_check's complaints", out)
	}
	for _, args := range [][]string{
		{"query", "SELECT COUNT(*) FROM tags"},
		{"snapshot", "--offline", "--output", "csv", s.Host},
		{"sync", s.Host},
	} {
		code, stderr := cipCode(t, append([]string{"--db", db}, args...)...)
		t.Logf("cip %s: exit %d: %s", args[0], code, lastLine(stderr))
		if code != 1 || !strings.Contains(stderr, "inventory rebuild") {
			t.Errorf("cip %s on the damaged inventory: exit %d, stderr %q; want exit 1 naming cip inventory rebuild", args[0], code, stderr)
		}
	}

	_, stderr := Cip(t, 0, "--db", db, "inventory", "rebuild")
	t.Logf("rebuild: %s", lastLine(stderr))
	Cip(t, 0, "--db", db, "inventory", "check")
	if got := snapshotCSV(t, db, s.Host); got != want {
		t.Errorf("snapshot after the rebuild:\n%s\nwant (before the damage):\n%s", got, want)
	}
	backups, _ := filepath.Glob(db + ".damaged-*")
	if len(backups) == 0 {
		t.Error("the damaged file was not kept")
	}
}

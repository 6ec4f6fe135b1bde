package inventory

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dueAt says whether Open would check the file at path at time at: the
// health row read as Open reads it, before Open marks the file in use.
func dueAt(t *testing.T, path string, at time.Time) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h, err := readHealth(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return checkDue(h, path, at)
}

// The cheap check at open: quick_check after an unclean close, when the
// file changed size behind cip's back, or a day after the last check;
// nothing otherwise. A damaged file is refused, naming the way out.
func TestCheckAtOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "inv.db")
	d, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// Content on many pages, so that damage has something to hit.
	for i := range 40 {
		m := bigImage(t, i, 3000)
		if _, err := d.WriteRepository(ctx, 0, RepositoryState{Name: "r.example/app" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Tags: map[string]string{"v1": m.Digest}, New: []*Manifest{m}}); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()

	now := time.Now()
	// The first open after the migration checked (closed_size was NULL);
	// a clean close then leaves nothing to check until a day has passed.
	if due := dueAt(t, path, now); due != "" {
		t.Errorf("after a clean close: due (%s), want nothing to check", due)
	}
	if due := dueAt(t, path, now.Add(checkEvery+time.Minute)); !strings.Contains(due, "a day old") {
		t.Errorf("a day later: due = %q, want the schedule", due)
	}
	d, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if due := dueAt(t, path, now); due != "" {
		t.Errorf("after a second clean close: due (%s), want nothing to check", due)
	}

	// A crash: the file is left open.
	d, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if due := dueAt(t, path, now); !strings.Contains(due, "not closed cleanly") {
		t.Errorf("while open (or after a crash): due = %q, want not closed cleanly", due)
	}
	d.Close()

	// Bytes appended by something else: checked (and it passes).
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(make([]byte, 4096))
	f.Close()
	if due := dueAt(t, path, now); !strings.Contains(due, "not the") {
		t.Errorf("after bytes appended: due = %q, want the size named", due)
	}
	d, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("open after bytes appended = %v, want it checked and opened", err)
	}
	h, _ := readHealth(ctx, d.db)
	if !h.checkedAt.Valid || time.Since(time.Unix(h.checkedAt.Int64, 0)) > time.Minute {
		t.Errorf("checked_at = %v after a size change, want now", h.checkedAt)
	}
	d.Close()

	// Cut short: refused, naming the way out, for writers and readers.
	st, _ := os.Stat(path)
	if err := os.Truncate(path, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, path)
	var de *DamagedError
	if !errors.As(err, &de) || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "cip inventory rebuild") {
		t.Fatalf("Open(truncated) = %v, want a DamagedError naming cip inventory rebuild", err)
	}
	if _, err := OpenReadOnly(ctx, path); !errors.As(err, &de) {
		t.Errorf("OpenReadOnly(truncated) = %v, want a DamagedError", err)
	}
}

package inventory_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cipdev/cip/inventory"
)

// An inventory path holding ?, #, % or a space names exactly that file:
// not an in-memory database, not a file cut at the ?, not parameters.
func TestOpenPathIsAFileName(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		relative bool // given relative to the working directory, as --db often is
	}{
		{"inv?x=1.db", false}, {"inv#frag.db", false}, {"inv%3F.db", false}, {"a b.db", false}, {"mode=ro?.db", false},
		{":memory:", true}, {"?.db", true}, {"inv?mode=memory", true},
	} {
		name := tc.name
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			if tc.relative {
				t.Chdir(dir)
				path = name
			}
			db, err := inventory.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.WriteRepository(ctx, 0, inventory.RepositoryState{Name: "r.example/app", Tags: map[string]string{}}); err != nil {
				t.Fatal(err)
			}
			db.Close()
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				if !strings.HasPrefix(e.Name(), name) {
					names = append(names, e.Name())
				}
			}
			if len(names) > 0 {
				t.Errorf("files beside %q: %q, want none (another file was written)", name, names)
			}
			// What was written is in that file, for writers and readers.
			db, err = inventory.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			repos, err := db.Repositories(ctx, "r.example")
			db.Close()
			if err != nil || !slices.Equal(repos, []string{"r.example/app"}) {
				t.Errorf("reopened: repositories = %v, %v; want r.example/app", repos, err)
			}
			if n := queryInt(t, path, `SELECT COUNT(*) FROM repositories`); n != 1 {
				t.Errorf("read-only: %d repositories, want 1", n)
			}
		})
	}
}

func TestOpenRefusesADirectory(t *testing.T) {
	dir := t.TempDir()
	for name, open := range map[string]func() error{
		"Open":         func() error { _, err := inventory.Open(context.Background(), dir); return err },
		"OpenReadOnly": func() error { _, err := inventory.OpenReadOnly(context.Background(), dir); return err },
	} {
		err := open()
		if err == nil || !strings.Contains(err.Error(), "is a directory") || !strings.Contains(err.Error(), filepath.Join(dir, "inventory.db")) {
			t.Errorf("%s(a directory) = %v, want an error saying it is a directory and naming a file to use", name, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the directory got %d entries", len(entries))
	}
}

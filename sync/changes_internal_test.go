package sync

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
)

// A crawl that changes more tags than a Result lists keeps none of them in
// the Result (it says so) and all of them in the inventory's history.
func TestResultChangesBounded(t *testing.T) {
	defer func(n int) { maxChanges = n }(maxChanges)
	maxChanges = 3
	reg := regtest.New(t)
	img := regtest.Image(t, 64, 1, true)
	for _, tag := range []string{"a", "b", "c", "d"} {
		reg.Push(t, "p/app", tag, img)
	}
	ctx := context.Background()
	db, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := registry.New(registry.Options{Insecure: []string{reg.Host}})
	res, err := Run(ctx, db, c, []Target{{Ref: reg.Host + "/p"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Changes != nil || !res.ChangesOmitted || len(res.Registries) != 1 || res.Registries[0].TagChanges != 4 {
		t.Errorf("4 tags added with a bound of 3: changes %v, omitted %v, stats %+v; want none listed, omitted, 4 counted", res.Changes, res.ChangesOmitted, res.Registries)
	}
	r, err := inventory.OpenReadOnly(ctx, db.Path())
	if err != nil {
		t.Fatal(err)
	}
	rows, err := r.Query(ctx, `SELECT COUNT(*) FROM tag_history WHERE change = 'added'`)
	var n int64
	if err == nil {
		for rows.Next() {
			n, _ = rows.Row()[0].(int64)
		}
		err = rows.Err()
		rows.Close()
	}
	r.Close()
	if err != nil || n != 4 {
		t.Errorf("tag_history holds %d additions (%v), want 4", n, err)
	}
	reg.Push(t, "p/app", "e", img)
	if res, err = Run(ctx, db, c, []Target{{Ref: reg.Host + "/p"}}, Options{}); err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 1 || res.ChangesOmitted || res.Changes[0].Tag != "e" {
		t.Errorf("one tag added: changes %v, omitted %v; want e alone", res.Changes, res.ChangesOmitted)
	}
}

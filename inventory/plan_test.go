package inventory_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cipdev/cip/inventory"
)

// Two manifests promoting one digest into a shared destination give one
// plan row there, with the union of their tags and the first file; an
// unchanged reload reuses the stored set.
func TestLoadRoutesMergesAndReuses(t *testing.T) {
	ctx := context.Background()
	db, _ := mustOpen(t)
	if err := db.InsertManifests(ctx, []*inventory.Manifest{image('a'), image('b')}); err != nil {
		t.Fatal(err)
	}
	// d1/app holds a with v1; the source holds both.
	for _, rs := range []inventory.RepositoryState{
		{Name: "src.io/s/app", Tags: map[string]string{"v1": digest('a'), "v2": digest('b')}},
		{Name: "d1.io/p/app", Tags: map[string]string{"v1": digest('a')}},
	} {
		if _, err := db.WriteRepository(ctx, 0, rs); err != nil {
			t.Fatal(err)
		}
	}
	routes := []inventory.Route{
		{Src: "src.io/s", Dsts: []string{"d1.io/p", "d2.io/p"}, File: "a.yaml", Images: []inventory.WantedImage{
			{Name: "app", Digests: []inventory.WantedDigest{{Digest: digest('a'), Tags: []string{"v1"}, Line: 3}}}}},
		{Src: "src.io/s", Dsts: []string{"d1.io/p"}, File: "b.yaml", Images: []inventory.WantedImage{
			{Name: "app", Digests: []inventory.WantedDigest{
				{Digest: digest('a'), Tags: []string{"stable"}, Line: 5},
				{Digest: digest('b'), Tags: []string{"v2"}, Line: 6}}}}},
	}
	id1, err := db.LoadRoutes(ctx, "first", routes)
	if err != nil {
		t.Fatal(err)
	}
	rows, counts, err := db.Plan(ctx, id1, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join([]string{r.Dst, r.Image, r.Digest[7:8], r.Action, strings.Join(r.Tags, ","), strings.Join(r.Missing, ","), r.File}, " "))
	}
	want := []string{
		"d1.io/p app a tag stable,v1 stable a.yaml",
		"d1.io/p app b copy v2 v2 b.yaml",
		"d2.io/p app a copy v1 v1 a.yaml",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Plan rows (-want +got):\n%s", diff)
	}
	wantCounts := []inventory.PlanCount{{Dst: "d1.io/p", Copy: 1, Tag: 1}, {Dst: "d2.io/p", Copy: 1}}
	if diff := cmp.Diff(wantCounts, counts); diff != "" {
		t.Errorf("Plan counts (-want +got):\n%s", diff)
	}
	// Reloading the same manifests adds a load, not a set.
	id2, err := db.LoadRoutes(ctx, "second", routes)
	if err != nil {
		t.Fatal(err)
	}
	var sets, digests int
	db.SQL().QueryRow(`SELECT COUNT(*) FROM wanted_sets`).Scan(&sets)
	db.SQL().QueryRow(`SELECT COUNT(*) FROM wanted_digests`).Scan(&digests)
	if id2 == id1 || sets != 1 || digests != 3 {
		t.Errorf("reload: load %d after %d, %d sets, %d wanted digests; want a new load, 1 set, 3 digests", id2, id1, sets, digests)
	}
	// A tag wanted at two digests in a shared destination is refused.
	routes[1].Images[0].Digests[1].Tags = []string{"v1"}
	if _, err := db.LoadRoutes(ctx, "conflict", routes); err == nil || !strings.Contains(err.Error(), "d1.io/p/app:v1") {
		t.Errorf("LoadRoutes(conflict) = %v, want an error naming d1.io/p/app:v1", err)
	}
}

// Skip rows are counted, and listed only up to the limit.
func TestPlanCountsSkips(t *testing.T) {
	ctx := context.Background()
	db, _ := mustOpen(t)
	if err := db.InsertManifests(ctx, []*inventory.Manifest{image('a')}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.WriteRepository(ctx, 0, inventory.RepositoryState{Name: "d1.io/p/app", Tags: map[string]string{"v1": digest('a')}}); err != nil {
		t.Fatal(err)
	}
	id, err := db.LoadWanted(ctx, "flat", []inventory.Wanted{{Src: "src.io/s", Dst: "d1.io/p", Image: "app", Digest: digest('a'), Tags: []string{"v1"}, File: "x", Line: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, max := range []int{0, 1} {
		rows, counts, err := db.Plan(ctx, id, max)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != max || len(counts) != 1 || counts[0].Skip != 1 {
			t.Errorf("Plan(max %d) = %d rows, counts %+v; want %d rows, 1 skip", max, len(rows), counts, max)
		}
	}
}

package inventory_test

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"sort"
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
	pr, err := db.Plan(ctx, id1, inventory.PlanOptions{MaxSkipRows: 10})
	if err != nil {
		t.Fatal(err)
	}
	rows, counts := pr.Rows, pr.Counts
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
	sets := queryInt(t, db.Path(), `SELECT COUNT(*) FROM wanted_sets`)
	digests := queryInt(t, db.Path(), `SELECT COUNT(*) FROM wanted_digests`)
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
	id, err := db.LoadRoutes(ctx, "one", []inventory.Route{{Src: "src.io/s", Dsts: []string{"d1.io/p"}, File: "x", Images: []inventory.WantedImage{
		{Name: "app", Digests: []inventory.WantedDigest{{Digest: digest('a'), Tags: []string{"v1"}, Line: 1}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, max := range []int{0, 1} {
		pr, err := db.Plan(ctx, id, inventory.PlanOptions{MaxSkipRows: max})
		if err != nil {
			t.Fatal(err)
		}
		rows, counts := pr.Rows, pr.Counts
		if len(rows) != max || len(counts) != 1 || counts[0].Skip != 1 {
			t.Errorf("Plan(max %d) = %d rows, counts %+v; want %d rows, 1 skip", max, len(rows), counts, max)
		}
	}
}

// Plan computes its pending rows and tag moves by set difference
// (pendingQuery); on random inventories and manifests they must equal the
// plan and plan_tag_moves views, which state the plan row by row.
func TestPlanEqualsViews(t *testing.T) {
	ctx := context.Background()
	const hexChars = "0123456789abcdef"
	tagPool := []string{"v1", "v2", "v3", "latest", "stable"}
	srcs := []string{"src.io/s1", "src.io/s2"}
	dsts := []string{"d1.io/p", "d2.io/p", "d3.io/p"}
	images := []string{"app", "lib"}
	checked, moves := 0, 0
	seen := map[string]int{} // actions, and "other source" copies
	for seed := int64(1); checked < 60 || seen["other source"] == 0 && seed < 2000; seed++ {
		rng := rand.New(rand.NewSource(seed))
		db, _ := mustOpen(t)
		var ms []*inventory.Manifest
		for i := range hexChars {
			ms = append(ms, image(hexChars[i]))
		}
		if err := db.InsertManifests(ctx, ms); err != nil {
			t.Fatal(err)
		}
		dg := func() string { return digest(hexChars[rng.Intn(len(hexChars))]) }
		for _, reg := range append(append([]string(nil), srcs...), dsts...) {
			for _, img := range images {
				if rng.Intn(4) == 0 {
					continue // the repository does not exist
				}
				rs := inventory.RepositoryState{Name: reg + "/" + img, Tags: map[string]string{}}
				for _, tag := range tagPool {
					if rng.Intn(2) == 0 {
						rs.Tags[tag] = dg()
					}
				}
				for range rng.Intn(6) {
					rs.Untagged = append(rs.Untagged, dg())
				}
				if _, err := db.WriteRepository(ctx, 0, rs); err != nil {
					t.Fatal(err)
				}
			}
		}
		var routes []inventory.Route
		for r := range 1 + rng.Intn(4) {
			route := inventory.Route{Src: srcs[rng.Intn(len(srcs))], File: fmt.Sprintf("f%d.yaml", r)}
			for _, d := range dsts {
				if rng.Intn(2) == 0 || len(route.Dsts) == 0 && d == dsts[len(dsts)-1] {
					route.Dsts = append(route.Dsts, d)
				}
			}
			for _, img := range images {
				wi := inventory.WantedImage{Name: img}
				used := map[string]bool{}
				for k := range rng.Intn(6) {
					d := digest(hexChars[rng.Intn(8)]) // half the digests: routes overlap
					if used[d] {
						continue
					}
					used[d] = true
					wd := inventory.WantedDigest{Digest: d, Line: 10*r + k + 1}
					for _, tag := range tagPool {
						if rng.Intn(12) == 0 {
							wd.Tags = append(wd.Tags, tag)
						}
					}
					wi.Digests = append(wi.Digests, wd)
				}
				route.Images = append(route.Images, wi)
			}
			routes = append(routes, route)
		}
		id, err := db.LoadRoutes(ctx, "random", routes)
		if err != nil {
			continue // a tag wanted at two digests: not a plan
		}
		pr, err := db.Plan(ctx, id, inventory.PlanOptions{})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		rows, gotMoves := pr.Rows, pr.Moves
		var got []string
		for _, r := range rows {
			got = append(got, fmt.Sprint(r.Dst, r.Image, r.Digest, r.Action, r.Src, r.SrcRepo, r.DstRepo, r.Tags, r.Missing, r.File, r.Line))
		}
		// The streamed reading gives the same rows, in either order, and a
		// bounded Plan holds none beyond its bound.
		for _, order := range []inventory.PlanOrder{inventory.ByDestination, inventory.ByDigest} {
			var streamed []string
			var prev inventory.PlanRow
			if err := db.EachPlanRow(ctx, id, order, func(r inventory.PlanRow) error {
				if order == inventory.ByDigest && len(streamed) > 0 && r.Digest < prev.Digest {
					t.Errorf("seed %d: ByDigest gave %s after %s", seed, r.Digest, prev.Digest)
				}
				prev = r
				streamed = append(streamed, fmt.Sprint(r.Dst, r.Image, r.Digest, r.Action, r.Src, r.SrcRepo, r.DstRepo, r.Tags, r.Missing, r.File, r.Line))
				return nil
			}); err != nil {
				t.Fatalf("seed %d: EachPlanRow: %v", seed, err)
			}
			if order == inventory.ByDigest {
				sort.Strings(streamed)
				sorted := slices.Clone(got)
				sort.Strings(sorted)
				if diff := cmp.Diff(sorted, streamed); diff != "" {
					t.Fatalf("seed %d: EachPlanRow(ByDigest) differs from Plan (-Plan +streamed):\n%s", seed, diff)
				}
			} else if diff := cmp.Diff(got, streamed); diff != "" {
				t.Fatalf("seed %d: EachPlanRow(ByDestination) differs from Plan (-Plan +streamed):\n%s", seed, diff)
			}
		}
		if len(rows) > 1 {
			seen := 0
			bounded, err := db.Plan(ctx, id, inventory.PlanOptions{MaxRows: len(rows) - 1, Each: func(inventory.PlanRow) { seen++ }})
			if err != nil {
				t.Fatal(err)
			}
			if !bounded.Streamed || bounded.Rows != nil || seen != len(rows) || !cmp.Equal(bounded.Counts, pr.Counts) || len(bounded.Moves) != len(pr.Moves) {
				t.Errorf("seed %d: Plan bounded below its %d rows: streamed %v, %d rows held, %d seen, counts %v (want %v)",
					seed, len(rows), bounded.Streamed, len(bounded.Rows), seen, bounded.Counts, pr.Counts)
			}
		}
		want := viewRows(t, db, `SELECT dst, image, digest, action, src, CASE WHEN action = 'copy' THEN src_repo ELSE '' END, dst_repo, tags, tags_missing, file, line
			FROM plan WHERE load_id = ? AND action <> 'skip' ORDER BY dst, image, digest`, id, func(v []string) string {
			return fmt.Sprint(v[0], v[1], v[2], v[3], v[4], v[5], v[6], strings.Fields(v[7]), strings.Fields(v[8]), v[9], v[10])
		})
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("seed %d: Plan rows differ from the plan view (-view +Plan):\n%s", seed, diff)
		}
		got = nil
		for _, m := range gotMoves {
			got = append(got, fmt.Sprint(m.Dst, m.Image, m.Tag, m.DigestNow, m.DigestWanted, m.File, m.Line))
		}
		want = viewRows(t, db, `SELECT dst, image, tag, digest_now, digest_wanted, file, line
			FROM plan_tag_moves WHERE load_id = ? ORDER BY dst, image, tag`, id, func(v []string) string {
			return fmt.Sprint(v[0], v[1], v[2], v[3], v[4], v[5], v[6])
		})
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("seed %d: Plan moves differ from plan_tag_moves (-view +Plan):\n%s", seed, diff)
		}
		checked++
		moves += len(gotMoves)
		for _, r := range rows {
			seen[r.Action]++
			if r.Action == inventory.ActionCopy && !strings.HasPrefix(r.SrcRepo, r.Src+"/") {
				seen["other source"]++
			}
		}
	}
	if moves == 0 {
		t.Errorf("no random case had a tag move")
	}
	for _, k := range []string{inventory.ActionCopy, inventory.ActionTag, inventory.ActionLost, "other source"} {
		if seen[k] == 0 {
			t.Errorf("no random case had a %s row (seen %v)", k, seen)
		}
	}
}

// viewRows reads a query's rows as strings, each formatted by f.
func viewRows(t *testing.T, db *inventory.DB, q string, id int64, f func([]string) string) []string {
	t.Helper()
	var out []string
	for _, row := range queryRows(t, db.Path(), q, id) {
		v := make([]string, len(row))
		for i, x := range row {
			if x == nil {
				t.Fatalf("%s: NULL in column %d", q, i)
			}
			v[i] = fmt.Sprint(x)
		}
		out = append(out, f(v))
	}
	return out
}

package inventory_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cipdev/cip/inventory"
)

// A target is confirmed only when the inventory shows it complete, as of
// the oldest confirmation of its wanted tags; it is trusted while its
// wanted content stays the same and the confirmation is recent enough.
func TestConfirmAndTrustTargets(t *testing.T) {
	ctx := context.Background()
	db, _ := mustOpen(t)
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return t0.Add(d) } }
	if err := db.InsertManifests(ctx, []*inventory.Manifest{image('a'), image('b'), image('u')}); err != nil {
		t.Fatal(err)
	}
	// d1/app: v1 crawled at t0, v2 at t0+10m; d1/untagged holds u; d2/app
	// lacks v2.
	db.Now = at(0)
	write := func(rs inventory.RepositoryState) {
		t.Helper()
		if _, err := db.WriteRepository(ctx, 0, rs); err != nil {
			t.Fatal(err)
		}
	}
	write(inventory.RepositoryState{Name: "d1.io/p/app", Tags: map[string]string{"v1": digest('a')}})
	write(inventory.RepositoryState{Name: "d2.io/p/app", Tags: map[string]string{"v1": digest('a')}})
	db.Now = at(10 * time.Minute)
	write(inventory.RepositoryState{Name: "d1.io/p/app", Tags: map[string]string{"v1": digest('a'), "v2": digest('b')},
		Trusted: map[string]bool{"v1": true}})
	write(inventory.RepositoryState{Name: "d1.io/p/untagged", Untagged: []string{digest('u')}})

	routes := func(extraTag string) []inventory.Route {
		tags := []string{"v2"}
		if extraTag != "" {
			tags = append(tags, extraTag)
		}
		return []inventory.Route{
			{Src: "s.io/s", Dsts: []string{"d1.io/p", "d2.io/p"}, File: "a.yaml", Images: []inventory.WantedImage{
				{Name: "app", Digests: []inventory.WantedDigest{{Digest: digest('a'), Tags: []string{"v1"}, Line: 3}, {Digest: digest('b'), Tags: tags, Line: 4}}},
				{Name: "untagged", Digests: []inventory.WantedDigest{{Digest: digest('u'), Line: 6}}}}},
		}
	}
	load, err := db.LoadRoutes(ctx, "m", routes(""))
	if err != nil {
		t.Fatal(err)
	}
	db.Now = at(20 * time.Minute)
	n, err := db.ConfirmTargets(ctx, load, []string{"d1.io/p/app", "d1.io/p/untagged", "d2.io/p/app", "d2.io/p/untagged", "elsewhere/x"}, t0.Add(20*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("ConfirmTargets recorded %d, want 2 (d1's two; d2/app lacks v2, d2/untagged is unknown)", n)
	}
	trusted, err := db.TrustedTargets(ctx, load, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []inventory.TrustedTarget{
		{Repository: "d1.io/p/app", ConfirmedAt: t0},                            // v1 trusted at the second crawl: confirmed at t0
		{Repository: "d1.io/p/untagged", ConfirmedAt: t0.Add(20 * time.Minute)}, // no tag: the caller's time
	}
	if diff := cmp.Diff(want, trusted); diff != "" {
		t.Errorf("TrustedTargets (-want +got):\n%s", diff)
	}
	// An hour's TTL at t0+70m no longer covers d1/app's confirmation.
	if trusted, _ = db.TrustedTargets(ctx, load, t0.Add(10*time.Minute)); len(trusted) != 1 || trusted[0].Repository != "d1.io/p/untagged" {
		t.Errorf("TrustedTargets since t0+10m = %+v, want only d1.io/p/untagged", trusted)
	}
	// New wanted content (a tag added to app) is not trusted, even where the
	// repository was confirmed; the unchanged image still is.
	changed, err := db.LoadRoutes(ctx, "m", routes("v2.1"))
	if err != nil {
		t.Fatal(err)
	}
	if trusted, _ = db.TrustedTargets(ctx, changed, t0.Add(-time.Hour)); len(trusted) != 1 || trusted[0].Repository != "d1.io/p/untagged" {
		t.Errorf("TrustedTargets after app changed = %+v, want only d1.io/p/untagged", trusted)
	}
	// The same content again is trusted again (the set is stored once).
	again, err := db.LoadRoutes(ctx, "m", routes(""))
	if err != nil {
		t.Fatal(err)
	}
	if trusted, _ = db.TrustedTargets(ctx, again, t0.Add(-time.Hour)); len(trusted) != 2 {
		t.Errorf("TrustedTargets of the first content loaded again = %+v, want 2", trusted)
	}
}

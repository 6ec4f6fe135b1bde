package sync_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/internal/regtest"
	cipsync "github.com/cipdev/cip/sync"
)

// Locate lists each repository once: where the listing has GCR's extension
// (every manifest named, tagged or not), a digest the inventory has and the
// listing names is held with no other request; the rest are looked up as
// Digests does (a HEAD of a known digest, a GET of an unknown one), a
// missing repository holds nothing, and a referrers look-up of the same
// run reads the listings' referrer tags instead of listing again.
func TestLocate(t *testing.T) {
	ctx := context.Background()
	reg := regtest.New(t)
	imgA, imgB, imgD := regtest.Image(t, 64, 1, true), regtest.Image(t, 64, 1, false), regtest.Image(t, 64, 2, true)
	a := reg.Push(t, "s/app", "v1", imgA)
	b := reg.Push(t, "s/app", "", imgB)
	e := reg.Push(t, "s/app", "", regtest.Image(t, 64, 3, true)) // new to the inventory
	sig := reg.Sign(t, "s/app", a, "payload")
	d := reg.Push(t, "s/plain", "v1", imgD)
	sigTag := referrer.Tag(a.String(), referrer.CosignSignature)
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v2/s/app/tags/list" {
			return false
		}
		entry := func(tags ...string) map[string]any { return map[string]any{"tag": append([]string{}, tags...)} }
		json.NewEncoder(w).Encode(map[string]any{
			"name": "s/app", "child": []string{}, "tags": []string{"v1", sigTag},
			"manifest": map[string]any{a.String(): entry("v1"), b.String(): entry(), e.String(): entry(), sig.String(): entry(sigTag)},
		})
		return true
	})
	// The inventory knows A, B and D from a mirror's crawl (not that the
	// source holds them).
	mirror := regtest.New(t)
	mirror.Push(t, "m/app", "v1", imgA)
	mirror.Push(t, "m/app", "b", imgB)
	mirror.Push(t, "m/plain", "v1", imgD)
	db := mustOpen(t)
	c := client()
	run(t, db, c, mirror.Host+"/m/app", mirror.Host+"/m/plain")

	app, plain, none := reg.Host+"/s/app", reg.Host+"/s/plain", reg.Host+"/s/none"
	gone := v1.Hash{Algorithm: "sha256", Hex: "0000000000000000000000000000000000000000000000000000000000000000"}
	refs := []cipsync.Ref{
		{Repository: app, Digest: a.String()}, {Repository: app, Digest: b.String()},
		{Repository: app, Digest: e.String()}, {Repository: app, Digest: gone.String()},
		{Repository: plain, Digest: d.String()}, {Repository: none, Digest: a.String()},
	}
	listings := cipsync.NewListings()
	reg.Reset()
	found, err := cipsync.Locate(ctx, db, c, refs, cipsync.Options{Jobs: 4}, listings)
	if err != nil {
		t.Fatal(err)
	}
	str := func(rs []cipsync.Ref) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Repository+"@"+r.Digest)
		}
		slices.Sort(out)
		return out
	}
	wantPresent := str([]cipsync.Ref{refs[0], refs[1], refs[2], refs[4]})
	wantAbsent := str([]cipsync.Ref{refs[3], refs[5]})
	if diff := cmp.Diff(wantPresent, str(found.Present)); diff != "" {
		t.Errorf("present (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantAbsent, str(found.Absent)); diff != "" {
		t.Errorf("absent (-want +got):\n%s", diff)
	}
	// A and B: the listing; D (plain listing): a HEAD; E: a GET; the
	// digest named nowhere: a GET (404).
	want := map[string]int{"GET tags": 3, "HEAD manifest": 1, "GET manifest": 2}
	got := reg.Counts()
	delete(got, "GET ping") // the client's first request to the host
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	for _, r := range found.Present {
		if ok, err := db.HasDigest(ctx, r.Repository, r.Digest); err != nil || !ok {
			t.Errorf("inventory: %s@%s held = %v, %v; want true", r.Repository, r.Digest, ok, err)
		}
	}
	for _, r := range found.Absent {
		if ok, _ := db.HasDigest(ctx, r.Repository, r.Digest); ok {
			t.Errorf("inventory: %s@%s held, want not", r.Repository, r.Digest)
		}
	}

	// The referrers look-up of the same run: no listing, and no HEAD of the
	// signature's tag (the GCR listing named its digest).
	reg.Reset()
	if _, err := cipsync.Referrers(ctx, db, c, refs[:1], cipsync.ReferrerOptions{Jobs: 4, Listings: listings}); err != nil {
		t.Fatal(err)
	}
	if n := reg.Count("GET tags") + reg.Count("HEAD manifest"); n != 0 {
		t.Errorf("referrers look-up after Locate: %v, want no listing and no HEAD", reg.Counts())
	}
	if diff := cmp.Diff(map[string]string{sig.String(): "cosign-tag"}, referrersOf(t, db, app, a)); diff != "" {
		t.Errorf("referrers of A (-want +got):\n%s", diff)
	}
}

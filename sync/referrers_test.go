package sync_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/inventory"
	cipsync "github.com/cipdev/cip/sync"
)

// referrersOf lists what the inventory records as referrers of subject in
// repo: digest -> found_by.
func referrersOf(t *testing.T, db *inventory.DB, repo string, subject v1.Hash) map[string]string {
	t.Helper()
	rs, err := db.Referrers(context.Background(), repo, subject.String())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rs {
		out[r.Digest] = r.FoundBy
	}
	return out
}

// Without the referrers API (the first 404 marks the host), referrers come
// from tags: cosign's .sig on an index and on one of its children, an SBOM
// listed in the sha256-<hex> index, and a signature on that SBOM; a crawl
// records the same rows as the look-up, which then needs no listing.
func TestReferrersFromTags(t *testing.T) {
	ctx := context.Background()
	reg := regtest.New(t)
	idx := regtest.Index(t, regtest.Platforms, true)
	idxD := reg.Push(t, "s/app", "v1", idx)
	im, _ := idx.IndexManifest()
	child := im.Manifests[0].Digest
	sig := reg.Sign(t, "s/app", idxD, "payload-1")
	childSig := reg.Sign(t, "s/app", child, "payload-2")
	sbom := reg.Attach(t, "s/app", reg.Descriptor(t, "s/app", idxD), "text/spdx+json", "sbom")
	sbomSig := reg.Sign(t, "s/app", sbom, "payload-3")
	repo := reg.Host + "/s/app"

	db := mustOpen(t)
	c := client()
	refs := []cipsync.Ref{{Repository: repo, Digest: idxD.String()}}
	found, err := cipsync.Referrers(ctx, db, c, refs, cipsync.ReferrerOptions{Jobs: 4})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		for _, c := range []struct {
			subject v1.Hash
			want    map[string]string
		}{
			{idxD, map[string]string{sig.String(): "cosign-tag", sbom.String(): "tag-schema"}},
			{child, map[string]string{childSig.String(): "cosign-tag"}},
			{sbom, map[string]string{sbomSig.String(): "cosign-tag"}},
		} {
			if diff := cmp.Diff(c.want, referrersOf(t, db, repo, c.subject)); diff != "" {
				t.Errorf("%s: referrers of %s (-want +got):\n%s", what, c.subject, diff)
			}
		}
	}
	check("look-up")
	if found.APIRequests != 1 || len(found.NoAPI) != 1 || found.NoAPI[0] != reg.Host {
		t.Errorf("API requests %d, hosts without the API %v; want 1 (the 404 marks the host), [%s]", found.APIRequests, found.NoAPI, reg.Host)
	}
	// The index and its three children, their three referrers, the SBOM's
	// signature.
	if found.Subjects != 4+3+1 || found.Referrers != 4 {
		t.Errorf("subjects %d, referrers %d; want 8, 4", found.Subjects, found.Referrers)
	}
	tags, err := db.Tags(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if tags[referrer.Tag(idxD.String(), referrer.CosignSignature)] != sig.String() || tags["v1"] != "" {
		t.Errorf("tags after the look-up = %v: want the referrer tags only (the look-up is no crawl)", tags)
	}

	// A crawl derives the same rows from the tags it lists; a look-up of a
	// repository the run crawled reads its referrer tags from the
	// inventory: no listing, no HEAD.
	db2 := mustOpen(t)
	run(t, db2, c, repo)
	db, db2 = db2, db
	check("crawl")
	reg.Reset()
	found, err = cipsync.Referrers(ctx, db, c, refs, cipsync.ReferrerOptions{Jobs: 4, Listed: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	check("look-up after a crawl")
	if found.TagRequests != 0 || reg.Count("GET tags") != 0 || reg.Count("HEAD manifest") != 0 || found.Fetched != 0 {
		t.Errorf("look-up after a crawl: %d tag requests, %v; want none, and no manifest got", found.TagRequests, reg.Counts())
	}

	// A signature removed from the registry leaves the inventory too.
	reg.Delete(t, "s/app:"+referrer.Tag(child.String(), referrer.CosignSignature))
	if _, err := cipsync.Referrers(ctx, db2, c, refs, cipsync.ReferrerOptions{Jobs: 4}); err != nil {
		t.Fatal(err)
	}
	if got := referrersOf(t, db2, repo, child); len(got) != 0 {
		t.Errorf("referrers of the child after its .sig was deleted = %v, want none", got)
	}
}

// With the referrers API: every subject asked once (pages followed),
// referrers of referrers too, and within the TTL nothing asked again.
func TestReferrersFromAPI(t *testing.T) {
	ctx := context.Background()
	reg := regtest.NewReferrers(t, 2)
	img := reg.Push(t, "s/app", "v1", regtest.Image(t, 64, 1, true))
	desc := reg.Descriptor(t, "s/app", img)
	var bundles []v1.Hash
	for _, p := range []string{"a", "b", "c"} {
		bundles = append(bundles, reg.Attach(t, "s/app", desc, regtest.SigstoreBundle, p))
	}
	nested := reg.Attach(t, "s/app", reg.Descriptor(t, "s/app", bundles[1]), regtest.SigstoreBundle, "on b")
	repo := reg.Host + "/s/app"

	db := mustOpen(t)
	c := client()
	run(t, db, c, repo)
	reg.Reset()
	refs := []cipsync.Ref{{Repository: repo, Digest: img.String()}}
	found, err := cipsync.Referrers(ctx, db, c, refs, cipsync.ReferrerOptions{Jobs: 4, Listed: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, b := range bundles {
		want[b.String()] = "api"
	}
	if diff := cmp.Diff(want, referrersOf(t, db, repo, img)); diff != "" {
		t.Errorf("referrers of the image (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{nested.String(): "api"}, referrersOf(t, db, repo, bundles[1])); diff != "" {
		t.Errorf("referrers of the bundle (-want +got):\n%s", diff)
	}
	// The image (two pages), three bundles, the nested bundle.
	if n := reg.Count("GET referrers"); n != 6 || found.APIRequests != 5 {
		t.Errorf("GET referrers = %d (%d listings); want 6 (5 listings, the image's in 2 pages)", n, found.APIRequests)
	}
	if len(found.NoAPI) != 0 || found.Fetched != 4 {
		t.Errorf("hosts without the API %v, fetched %d; want none, 4", found.NoAPI, found.Fetched)
	}

	// Within the TTL the answers are the inventory's; with depth 1 the
	// bundles' referrers are not asked for.
	reg.Reset()
	if _, err := cipsync.Referrers(ctx, db, c, refs, cipsync.ReferrerOptions{Jobs: 4, ConfirmTTL: time.Hour, Listed: func(string) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	if n := reg.Count("GET referrers"); n != 0 {
		t.Errorf("GET referrers within the TTL = %d, want 0", n)
	}
	reg.Reset()
	if _, err := cipsync.Referrers(ctx, db, c, refs, cipsync.ReferrerOptions{Jobs: 4, Depth: 1, Listed: func(string) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	if n := reg.Count("GET referrers"); n != 2 {
		t.Errorf("GET referrers at depth 1 = %d, want 2 (the image's two pages)", n)
	}
}

// Within the ConfirmTTL a repository whose subjects all had their
// referrer tags listed live (by a look-up or a complete crawl) is not
// listed again: the look-up reads them from the inventory. A subject the
// inventory has not seen listed, or the TTL's end, lists it again, and the
// listing then shows what was pushed meanwhile.
func TestReferrerTagsTrustedWithinTTL(t *testing.T) {
	ctx := context.Background()
	reg := regtest.New(t) // no referrers API: tags only
	idx := regtest.Index(t, regtest.Platforms, true)
	idxD := reg.Push(t, "s/app", "v1", idx)
	im, _ := idx.IndexManifest()
	child0, child1 := im.Manifests[0].Digest, im.Manifests[1].Digest
	sig := reg.Sign(t, "s/app", idxD, "payload-1")
	child0Sig := reg.Sign(t, "s/app", child0, "payload-2")
	repo := reg.Host + "/s/app"

	db := mustOpen(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	c := client()
	refs := []cipsync.Ref{{Repository: repo, Digest: idxD.String()}}
	lookup := func(what string, refs []cipsync.Ref, wantListings int) {
		t.Helper()
		reg.Reset()
		found, err := cipsync.Referrers(ctx, db, c, refs, cipsync.ReferrerOptions{Jobs: 4, ConfirmTTL: time.Hour})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n := reg.Count("GET tags"); n != wantListings {
			t.Errorf("%s: %d tag listings, want %d (%v)", what, n, wantListings, reg.Counts())
		}
		if wantListings == 0 && found.TagRequests != 0 {
			t.Errorf("%s: %d tag requests counted, want 0", what, found.TagRequests)
		}
	}
	lookup("first look-up", refs, 1)
	want := map[v1.Hash]map[string]string{
		idxD:   {sig.String(): "cosign-tag"},
		child0: {child0Sig.String(): "cosign-tag"},
		child1: {},
	}
	check := func(what string) {
		t.Helper()
		for subject, w := range want {
			if diff := cmp.Diff(w, referrersOf(t, db, repo, subject)); diff != "" {
				t.Errorf("%s: referrers of %s (-want +got):\n%s", what, subject, diff)
			}
		}
	}
	check("first look-up")

	// A signature pushed within the TTL onto a subject already listed: the
	// look-up within the TTL takes the inventory's tags (the trust the
	// docs describe: it is found at the TTL's end or with --full).
	child1Sig := reg.Sign(t, "s/app", child1, "payload-3")
	now = now.Add(30 * time.Minute)
	lookup("within the TTL", refs, 0)
	check("within the TTL")
	if n := reg.Count("HEAD manifest") + reg.Count("GET manifest"); n != 0 {
		t.Errorf("within the TTL: %d manifest requests, want 0 (%v)", n, reg.Counts())
	}

	// A subject new to the look-ups: the repository is listed live, for
	// every subject of the call, and the new signature shows.
	other := reg.Push(t, "s/app", "v2", regtest.Image(t, 64, 1, true))
	otherSig := reg.Sign(t, "s/app", other, "payload-4")
	lookup("a new subject", append(refs, cipsync.Ref{Repository: repo, Digest: other.String()}), 1)
	want[child1] = map[string]string{child1Sig.String(): "cosign-tag"}
	want[other] = map[string]string{otherSig.String(): "cosign-tag"}
	check("a new subject")

	// Past the TTL of the last listing the repository is listed again.
	now = now.Add(61 * time.Minute)
	lookup("past the TTL", refs, 1)
	check("past the TTL")

	// Without a TTL nothing is trusted.
	reg.Reset()
	if _, err := cipsync.Referrers(ctx, db, c, refs, cipsync.ReferrerOptions{Jobs: 4}); err != nil {
		t.Fatal(err)
	}
	if n := reg.Count("GET tags"); n != 1 {
		t.Errorf("no TTL: %d tag listings, want 1", n)
	}

	// A complete crawl lists every tag: within the TTL of it, a look-up
	// needs no listing even for subjects no look-up listed.
	db2 := mustOpen(t)
	db2.Now = func() time.Time { return now }
	run(t, db2, c, repo)
	db = db2
	lookup("after a crawl", append(refs, cipsync.Ref{Repository: repo, Digest: other.String()}), 0)
	check("after a crawl")
}

// The walk under the digests looked at reads children from the stored
// bytes, verified: an index whose stored bytes were damaged is fetched
// again, repaired and reported, and its children's referrers are still
// found.
func TestReferrersRepairDamagedIndex(t *testing.T) {
	ctx := context.Background()
	reg := regtest.New(t)
	idx := regtest.Index(t, regtest.Platforms, true)
	idxD := reg.Push(t, "s/app", "v1", idx)
	im, _ := idx.IndexManifest()
	child := im.Manifests[2].Digest
	reg.Sign(t, "s/app", child, "payload")
	repo := reg.Host + "/s/app"
	db := mustOpen(t)
	c := client()
	run(t, db, c, repo)

	raw := db.Path()
	conn, err := sql.Open("sqlite", "file:"+raw)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	if err := conn.QueryRow(`SELECT raw FROM manifests WHERE digest = ?`, idxD.String()).Scan(&b); err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndex(string(b), `"size":`) + len(`"size":`)
	b[i] ^= 1 // a digit becomes another digit
	if _, err := conn.Exec(`UPDATE manifests SET raw = ? WHERE digest = ?`, b, idxD.String()); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	reg.Reset()
	found, err := cipsync.Referrers(ctx, db, c, []cipsync.Ref{{Repository: repo, Digest: idxD.String()}}, cipsync.ReferrerOptions{Jobs: 4, Listed: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	if len(found.Warnings) != 1 || !strings.Contains(found.Warnings[0], idxD.String()) || !strings.Contains(found.Warnings[0], "repaired") {
		t.Errorf("warnings = %q, want one naming the repaired %s", found.Warnings, idxD)
	}
	if n := reg.Count("GET manifest"); n != 1 {
		t.Errorf("manifest GETs = %d, want 1 (the index, fetched again)", n)
	}
	// The walk reached the repaired index's children: the index, its
	// children, and the child's signature were looked at (the referrers
	// rows themselves come from the crawl's tags whatever the walk does).
	if want := 1 + len(im.Manifests) + 1; found.Subjects != want {
		t.Errorf("subjects looked at = %d, want %d (the index, its %d children, the child's signature)", found.Subjects, want, len(im.Manifests))
	}
	if _, err := db.Manifest(ctx, idxD.String()); err != nil {
		t.Errorf("Manifest after the repair = %v", err)
	}
}

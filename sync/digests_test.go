package sync_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/manifest"
	cipsync "github.com/cipdev/cip/sync"
)

// Digests finds digests a tag listing does not show: a GET for a manifest
// new to the inventory (its children too), a HEAD for a known one; a broken
// index is incomplete, a missing digest absent; what it finds is recorded.
func TestDigests(t *testing.T) {
	ctx := context.Background()
	reg := regtest.New(t)
	tagged := reg.Push(t, "s/app", "v1", regtest.Image(t, 64, 1, true))
	untagged := reg.Push(t, "s/app", "", regtest.Image(t, 64, 1, false))
	idx := regtest.Index(t, regtest.Platforms, true)
	idxD := reg.Push(t, "s/multi", "", idx)
	broken := regtest.Index(t, regtest.Platforms, false)
	brokenD := reg.Push(t, "s/broken", "", broken)
	children, _ := broken.IndexManifest()
	reg.Delete(t, "s/broken@"+children.Manifests[1].Digest.String())
	// The untagged image, once more in a repository that lacks it.
	reg.Push(t, "s/other", "v1", regtest.Image(t, 32, 1, true))

	db := mustOpen(t)
	c := client()
	run(t, db, c, reg.Host+"/s/app", reg.Host+"/s/other")
	reg.Reset()
	repo := func(p string) string { return reg.Host + "/" + p }
	missing := "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	refs := []cipsync.Ref{
		{repo("s/app"), tagged.String()},
		{repo("s/app"), untagged.String()},
		{repo("s/app"), untagged.String()}, // asked twice: looked up once
		{repo("s/other"), untagged.String()},
		{repo("s/multi"), idxD.String()},
		{repo("s/broken"), brokenD.String()},
		{repo("s/app"), missing},
	}
	found, err := cipsync.Digests(ctx, db, c, refs, cipsync.Options{Jobs: 4})
	if err != nil {
		t.Fatal(err)
	}
	want := &cipsync.Found{
		Present: []cipsync.Ref{
			{repo("s/app"), tagged.String()},
			{repo("s/app"), untagged.String()},
			{repo("s/multi"), idxD.String()},
		},
		Incomplete: []cipsync.Ref{{repo("s/broken"), brokenD.String()}},
		Absent: []cipsync.Ref{
			{repo("s/app"), missing},
			{repo("s/other"), untagged.String()},
		},
		// The untagged image, the index and its 3 children, the broken
		// index and its 2 remaining children.
		Fetched: 1 + 4 + 3,
	}
	sortRefs := func(rs []cipsync.Ref) {
		// Found's lists come sorted by repository, then digest.
		for i := 1; i < len(rs); i++ {
			for j := i; j > 0 && (rs[j].Repository < rs[j-1].Repository || rs[j].Repository == rs[j-1].Repository && rs[j].Digest < rs[j-1].Digest); j-- {
				rs[j], rs[j-1] = rs[j-1], rs[j]
			}
		}
	}
	sortRefs(want.Present)
	sortRefs(want.Absent)
	if diff := cmp.Diff(want, found); diff != "" {
		t.Errorf("Digests (-want +got):\n%s", diff)
	}
	// A known manifest costs a HEAD; the unknown ones a GET each, and the
	// second repository asking for the untagged image a HEAD.
	if got := reg.Count("HEAD manifest"); got != 2 {
		t.Errorf("HEADs = %d, want 2 (the known tagged image, the untagged one in s/other)", got)
	}
	if got := reg.Count("GET manifest"); got != 1+1+4+4 {
		t.Errorf("GETs = %d, want 10 (the missing digest, the untagged image, the index and its 3 children, the broken index and its 3 children, one gone)", got)
	}
	for _, r := range found.Present {
		if ok, err := db.HasDigest(ctx, r.Repository, r.Digest); err != nil || !ok {
			t.Errorf("HasDigest(%s@%s) = %v, %v; want it recorded", r.Repository, r.Digest, ok, err)
		}
	}
	for _, r := range append(found.Incomplete, found.Absent...) {
		if ok, err := db.HasDigest(ctx, r.Repository, r.Digest); err != nil || ok {
			t.Errorf("HasDigest(%s@%s) = %v, %v; want it not recorded", r.Repository, r.Digest, ok, err)
		}
	}
	// The broken index's manifest is known (its size too, but for the
	// missing child), its children are held by no repository.
	known, err := db.KnownDigests(ctx, []string{brokenD.String(), children.Manifests[0].Digest.String(), children.Manifests[1].Digest.String()})
	if err != nil {
		t.Fatal(err)
	}
	if !known[brokenD.String()] || !known[children.Manifests[0].Digest.String()] || known[children.Manifests[1].Digest.String()] {
		t.Errorf("known after a broken index = %v, want the index and its present children", known)
	}
	// Nothing new: HEADs only, nothing fetched.
	reg.Reset()
	again, err := cipsync.Digests(ctx, db, c, refs[:5], cipsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Fetched != 0 || reg.Count("GET manifest") != 0 || len(again.Present) != 3 {
		t.Errorf("second Digests = %+v with %d GETs, want 3 present and no GET", again, reg.Count("GET manifest"))
	}
}

func TestRepositoriesAndTargets(t *testing.T) {
	dg := "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	set := &manifest.Set{Manifests: []manifest.Manifest{
		{Registries: []manifest.Registry{{Name: "gcr.io/staging", Src: true}, {Name: "us.gcr.io/prod"}, {Name: "eu.gcr.io/prod"}},
			Images: []manifest.Image{
				{Name: "app", Digests: []manifest.Digest{{Digest: dg, Tags: []string{"v1"}}}},
				{Name: "skipped"}, // every entry invalid: promotes nothing
			}},
		{Registries: []manifest.Registry{{Name: "gcr.io/staging2", Src: true}, {Name: "us.gcr.io/prod"}},
			Images: []manifest.Image{{Name: "app", Digests: []manifest.Digest{{Digest: dg}}}}},
		// No destination: nothing to sync.
		{Registries: []manifest.Registry{{Name: "gcr.io/lonely", Src: true}},
			Images: []manifest.Image{{Name: "x", Digests: []manifest.Digest{{Digest: dg}}}}},
	}}
	if diff := cmp.Diff([]string{"eu.gcr.io/prod/app", "us.gcr.io/prod/app"}, cipsync.Repositories(set, cipsync.Destinations)); diff != "" {
		t.Errorf("Repositories(Destinations) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"gcr.io/staging/app", "gcr.io/staging2/app"}, cipsync.Repositories(set, cipsync.Sources)); diff != "" {
		t.Errorf("Repositories(Sources) (-want +got):\n%s", diff)
	}
	want := []cipsync.Target{
		{Ref: "eu.gcr.io/prod/app", Exact: true}, {Ref: "gcr.io/staging/app", Exact: true},
		{Ref: "gcr.io/staging2/app", Exact: true}, {Ref: "us.gcr.io/prod/app", Exact: true},
	}
	if diff := cmp.Diff(want, cipsync.ManifestTargets(set)); diff != "" {
		t.Errorf("ManifestTargets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]cipsync.Target{{Ref: "a/b", Exact: true}, {Ref: "c/d", Exact: true}}, cipsync.Exact([]string{"c/d", "a/b", "c/d"})); diff != "" {
		t.Errorf("Exact (-want +got):\n%s", diff)
	}
}

// statusRecorder keeps the Status a Run reported when it stopped.
type statusRecorder struct {
	starts, stops int
	status        func() cipsync.Status
	last          cipsync.Status
}

func (p *statusRecorder) Start(status func() cipsync.Status) { p.starts++; p.status = status }
func (p *statusRecorder) Stop()                              { p.stops++; p.last = p.status() }

// Run reports its progress to a Progress, and its summary in the Result
// (which cmd/app prints): the two agree.
func TestRunProgress(t *testing.T) {
	reg := regtest.New(t)
	reg.Push(t, "s/app", "v1", regtest.Image(t, 64, 1, true))
	reg.Push(t, "s/app", "v2", regtest.Image(t, 64, 1, false))
	reg.Push(t, "s/multi", "v1", regtest.Index(t, regtest.Platforms, true))
	db := mustOpen(t)
	p := &statusRecorder{}
	res, err := cipsync.Run(context.Background(), db, client(), []cipsync.Target{{Ref: reg.Host + "/s"}}, cipsync.Options{Jobs: 2, Progress: p})
	if err != nil {
		t.Fatal(err)
	}
	if p.starts != 1 || p.stops != 1 {
		t.Errorf("progress started %d, stopped %d times; want once each", p.starts, p.stops)
	}
	if len(res.Registries) != 1 {
		t.Fatalf("Result.Registries = %+v, want one", res.Registries)
	}
	st := res.Registries[0]
	want := cipsync.Status{Repositories: 2, Done: 2, Tags: 3, Fetched: 2 + 4}
	if p.last != want || st.Repositories != 2 || st.Tags != 3 || st.ManifestsFetched != 6 {
		t.Errorf("status at Stop = %+v, want %+v; Result %+v, want 2 repositories, 3 tags, 6 manifests", p.last, want, st)
	}
	if res.Requests == 0 || res.Duration <= 0 {
		t.Errorf("Result = %+v, want requests and a duration", res)
	}
}

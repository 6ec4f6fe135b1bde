package promote_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/promote"
	"github.com/cipdev/cip/registry"
)

func (e *env) planWith(set *manifest.Set, sel referrer.Selection) *promote.Plan {
	e.t.Helper()
	p, err := promote.MakePlan(context.Background(), e.db, e.client, set, "test", promote.Options{Jobs: 4, Referrers: sel})
	if err != nil {
		e.t.Fatalf("plan: %v", err)
	}
	return p
}

func (e *env) promoteWith(set *manifest.Set, sel referrer.Selection) (*promote.Plan, *promote.Report) {
	e.t.Helper()
	p := e.planWith(set, sel)
	rep, err := promote.Promote(context.Background(), e.db, e.client, p, promote.Options{Jobs: 4, Referrers: sel})
	if err != nil {
		e.t.Fatalf("promote: %v", err)
	}
	return p, rep
}

// liveReferrers lists what a registry serves as referrers of repo@subject:
// its API's answer, or its sha256-<hex> index (digest -> artifact type).
func liveReferrers(t *testing.T, reg *regtest.Registry, repo string, subject v1.Hash) map[string]string {
	t.Helper()
	c := newClient()
	r, err := c.ParseRepository(reg.Host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rs, err := c.Referrers(ctx, r, subject.String(), "")
	if errors.Is(err, registry.ErrNoReferrersAPI) {
		m, gerr := c.GetManifest(ctx, r, referrer.Tag(subject.String(), referrer.TagSchema))
		if gerr != nil {
			t.Fatalf("referrers of %s@%s: %v", r, subject, gerr)
		}
		rs, err = registry.ParseReferrers(m.Raw)
	}
	if err != nil {
		t.Fatalf("referrers of %s@%s: %v", r, subject, err)
	}
	out := map[string]string{}
	for _, m := range rs {
		out[m.Digest] = m.ArtifactType
	}
	return out
}

func liveTag(t *testing.T, reg *regtest.Registry, repo, tag string) (v1.Hash, []byte) {
	t.Helper()
	r, err := name.NewTag(reg.Host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatalf("get %s: %v", r, err)
	}
	return desc.Digest, desc.Manifest
}

// Registries without the referrers API (as docker-registry 2.8): a
// multi-arch index signed (and a child signed), an SBOM in the
// sha256-<hex> index, a signature on the SBOM, travel to both
// destinations with their digests; the fallback index is the source's
// bytes; a destination's own signature is kept beside the source's; a
// second run plans nothing; --referrers signatures leaves the SBOM.
func TestPromoteReferrersByTags(t *testing.T) {
	e := newEnv(t)
	idx := regtest.Index(t, regtest.Platforms, true)
	idxD := e.src.Push(t, "staging/app", "v1", idx)
	im, _ := idx.IndexManifest()
	child := im.Manifests[1].Digest
	sig := e.src.Sign(t, "staging/app", idxD, "staging-signature")
	childSig := e.src.Sign(t, "staging/app", child, "child-signature")
	sbom := e.src.Attach(t, "staging/app", e.src.Descriptor(t, "staging/app", idxD), "text/spdx+json", "sbom")
	sbomSig := e.src.Sign(t, "staging/app", sbom, "sbom-signature")
	set := e.manifestSet(entry{"app", idxD, []string{"v1"}})

	// d2 already holds the image with a signature of its own.
	e.d2.Push(t, "mirror/prod/app", "v1", idx)
	own := e.d2.Sign(t, "mirror/prod/app", idxD, "prod-signature")

	sigs, _ := referrer.ParseSelection("signatures")
	p := e.planWith(set, sigs)
	// d1: the image's .sig, the child's .sig; d2 the same (the merge). The
	// SBOM is no signature, and the signature on it stays with it.
	if got := len(p.Refers); got != 4 {
		t.Fatalf("plan with --referrers signatures: %d refer rows %+v, want 4", got, p.Refers)
	}
	for _, r := range p.Refers {
		if r.Referrer == sbom.String() || r.Referrer == sbomSig.String() {
			t.Errorf("refer row %+v: the SBOM and its signature are not selected", r)
		}
	}

	_, rep := e.promoteWith(set, referrer.All)
	for _, d := range rep.Destinations {
		if len(d.Errors) > 0 {
			t.Fatalf("%s: %v", d.Destination, d.Errors)
		}
	}
	if rep.ReferrersVerified == 0 || len(rep.ReferrerMismatches) != 0 {
		t.Errorf("referrers verified %d, mismatches %v", rep.ReferrersVerified, rep.ReferrerMismatches)
	}
	sigTag := referrer.Tag(idxD.String(), referrer.CosignSignature)
	fallbackTag := referrer.Tag(idxD.String(), referrer.TagSchema)
	srcFallback, _ := liveTag(t, e.src, "staging/app", fallbackTag)
	for _, c := range []struct {
		reg  *regtest.Registry
		repo string
	}{{e.d1, "prod/app"}, {e.d2, "mirror/prod/app"}} {
		if got, _ := liveTag(t, c.reg, c.repo, referrer.Tag(child.String(), referrer.CosignSignature)); got != childSig {
			t.Errorf("%s: the child's .sig is %s, want %s (digest kept)", c.repo, got, childSig)
		}
		if got, _ := liveTag(t, c.reg, c.repo, referrer.Tag(sbom.String(), referrer.CosignSignature)); got != sbomSig {
			t.Errorf("%s: the SBOM's .sig is %s, want %s", c.repo, got, sbomSig)
		}
		if got, _ := liveTag(t, c.reg, c.repo, fallbackTag); got != srcFallback {
			t.Errorf("%s: %s is %s, want the source's index %s", c.repo, fallbackTag, got, srcFallback)
		}
		if diff := cmp.Diff(map[string]string{sbom.String(): "text/spdx+json"}, liveReferrers(t, c.reg, c.repo, idxD)); diff != "" {
			t.Errorf("%s: referrers of the index (-want +got):\n%s", c.repo, diff)
		}
	}
	if got, _ := liveTag(t, e.d1, "prod/app", sigTag); got != sig {
		t.Errorf("d1: the index's .sig is %s, want the source's %s", got, sig)
	}
	// d2 keeps its own signature and gets the source's: a merged .sig.
	merged, raw := liveTag(t, e.d2, "mirror/prod/app", sigTag)
	if merged == own || merged == sig {
		t.Fatalf("d2: the index's .sig is %s: want a merge of its own %s and the source's %s", merged, own, sig)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var layers []string
	for _, l := range m.Layers {
		layers = append(layers, l.Annotations["dev.cosignproject.cosign/signature"])
	}
	if diff := cmp.Diff([]string{"sig-of-prod-signature", "sig-of-staging-signature"}, layers); diff != "" {
		t.Errorf("d2: merged .sig's signatures (-want +got):\n%s", diff)
	}

	// Nothing left: the merged .sig holds the source's layers.
	e.d1.Reset()
	e.d2.Reset()
	if p := e.planWith(set, referrer.All); p.Pending() != 0 {
		t.Errorf("second plan: %d pending, refer rows %+v; want none", p.Pending(), p.Refers)
	}
	if n := writes(e.d1) + writes(e.d2); n != 0 {
		t.Errorf("second plan wrote %d times", n)
	}
	// Referrer tags in the destinations are taken from the inventory.
	if n := e.d1.Count("HEAD manifest") + e.d2.Count("HEAD manifest"); n != 2 {
		t.Errorf("second plan: %d HEADs in the destinations, want 2 (the v1 tags; the referrer tags are the inventory's): d1 %v, d2 %v", n, e.d1.Counts(), e.d2.Counts())
	}
}

// Registries with the referrers API: bundles travel by digest, the PUT's
// OCI-Subject is enough (no sha256-<hex> tag), a signature on a bundle
// follows it, and the second run neither copies nor asks the destination.
func TestPromoteReferrersByAPI(t *testing.T) {
	e := newEnv(t)
	e.oneDst = true
	e.src, e.d1 = regtest.NewReferrers(t, 2), regtest.NewReferrers(t, 2)
	img := e.src.Push(t, "staging/app", "v1", regtest.Image(t, 256, 2, true))
	desc := e.src.Descriptor(t, "staging/app", img)
	b1 := e.src.Attach(t, "staging/app", desc, regtest.SigstoreBundle, "bundle-1")
	b2 := e.src.Attach(t, "staging/app", desc, regtest.SigstoreBundle, "bundle-2")
	sbom := e.src.Attach(t, "staging/app", desc, "application/spdx+json", "sbom")
	nested := e.src.Attach(t, "staging/app", e.src.Descriptor(t, "staging/app", b1), regtest.SigstoreBundle, "on bundle 1")
	set := e.manifestSet(entry{"app", img, []string{"v1"}})

	p, rep := e.promoteWith(set, referrer.All)
	if len(p.Refers) != 4 || rep.Destinations[0].Referred != 4 || rep.Totals.Referred != 4 {
		t.Fatalf("refer rows %d, referred %d, totals.referred %d; want 4", len(p.Refers), rep.Destinations[0].Referred, rep.Totals.Referred)
	}
	want := map[string]string{b1.String(): regtest.SigstoreBundle, b2.String(): regtest.SigstoreBundle, sbom.String(): "application/spdx+json"}
	if diff := cmp.Diff(want, liveReferrers(t, e.d1, "prod/app", img)); diff != "" {
		t.Errorf("referrers of the image in d1 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{nested.String(): regtest.SigstoreBundle}, liveReferrers(t, e.d1, "prod/app", b1)); diff != "" {
		t.Errorf("referrers of bundle 1 in d1 (-want +got):\n%s", diff)
	}
	r, _ := name.NewRepository(e.d1.Host + "/prod/app")
	tags, err := remote.List(r)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("d1 tags = %v, want only v1 (the API indexes referrers; no sha256-<hex> tag)", tags)
	}
	e.d1.Reset()
	if p := e.planWith(set, referrer.All); p.Pending() != 0 {
		t.Errorf("second plan: %d pending %+v, want none", p.Pending(), p.Refers)
	}
	if n := e.d1.Count("GET referrers"); n != 0 || writes(e.d1) != 0 {
		t.Errorf("second plan: %d referrers requests and %d writes to the destination, want none", n, writes(e.d1))
	}
	// The bundles are untagged there: the crawl keeps them without a HEAD
	// each (TrustReferrerTags), HEADing only the v1 tag.
	if n := e.d1.Count("HEAD manifest"); n != 1 {
		t.Errorf("second plan: %d HEADs in the destination, want 1: %v", n, e.d1.Counts())
	}

	// verify finds a referrer deleted from the destination.
	e.d1.Delete(t, "prod/app@"+b2.String())
	n, ms, err := promote.VerifyReferrers(context.Background(), e.db, e.client, p.LoadID, promote.Options{Referrers: referrer.All})
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 || len(ms) != 1 || ms[0].Referrer != b2.String() || ms[0].Got != "not listed" {
		t.Errorf("VerifyReferrers = %d, %+v; want 4 checked, %s not listed", n, ms, b2)
	}
}

// --referrers none copies none and asks no referrers API.
func TestPromoteReferrersNone(t *testing.T) {
	e := newEnv(t)
	e.oneDst = true
	img := e.src.Push(t, "staging/app", "v1", regtest.Image(t, 256, 1, true))
	e.src.Sign(t, "staging/app", img, "sig")
	set := e.manifestSet(entry{"app", img, []string{"v1"}})
	p, _ := e.promoteWith(set, referrer.Selection{})
	if len(p.Refers) != 0 || e.src.Count("GET referrers") != 0 {
		t.Errorf("--referrers none: %d refer rows, %d referrers requests", len(p.Refers), e.src.Count("GET referrers"))
	}
	r, _ := name.NewRepository(e.d1.Host + "/prod/app")
	tags, _ := remote.List(r)
	if !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("d1 tags = %v, want only v1", tags)
	}
}

// A destination that already holds the image (promoted before signatures
// travelled) gets its signature: the source is looked up although no copy
// made cip crawl it; a second plan asks the source no digest again.
func TestPromoteReferrersOfHeldImage(t *testing.T) {
	e := newEnv(t)
	e.oneDst = true
	img := regtest.Image(t, 256, 1, true)
	d := e.src.Push(t, "staging/app", "v1", img)
	sig := e.src.Sign(t, "staging/app", d, "sig")
	e.d1.Push(t, "prod/app", "v1", img)
	set := e.manifestSet(entry{"app", d, []string{"v1"}})
	p, _ := e.promoteWith(set, referrer.All)
	if len(p.Refers) != 1 || p.Refers[0].Referrer != sig.String() {
		t.Fatalf("refer rows = %+v, want the source's .sig", p.Refers)
	}
	if got, _ := liveTag(t, e.d1, "prod/app", referrer.Tag(d.String(), referrer.CosignSignature)); got != sig {
		t.Errorf("d1's .sig is %s, want %s", got, sig)
	}
	e.src.Reset()
	if p := e.planWith(set, referrer.All); p.Pending() != 0 {
		t.Errorf("second plan: %d pending", p.Pending())
	}
	if n := e.src.Count("HEAD manifest") + e.src.Count("GET manifest"); n != 1 {
		t.Errorf("second plan: %d manifest requests to the source, want 1 (the .sig tag's HEAD)", n)
	}
}

// Within --confirm-ttl a rerun with referrers sends no request at all,
// the sources included: their referrer tags were listed by the promotion
// less than the TTL ago. A pull request adding a signed digest to one
// image lists that image's source repository only (the crawl of the copy's
// source; the look-up reads its referrer tags from it), and the new
// digest's signature is planned.
func TestWarmReferrersWithConfirmTTL(t *testing.T) {
	e := newEnv(t)
	app := e.src.Push(t, "staging/app", "v1", regtest.Image(t, 256, 1, true))
	e.src.Sign(t, "staging/app", app, "app-signature")
	other := e.src.Push(t, "staging/other", "v1", regtest.Image(t, 256, 1, false))
	e.src.Sign(t, "staging/other", other, "other-signature")
	entries := []entry{{"app", app, []string{"v1"}}, {"other", other, []string{"v1"}}}
	set := e.manifestSet(entries...)
	if _, rep := e.promoteWith(set, referrer.All); rep.Totals.Referred != 4 {
		t.Fatalf("promotion copied %d referrers, want 4 (2 signatures into 2 destinations)", rep.Totals.Referred)
	}
	opts := promote.Options{Jobs: 4, ConfirmTTL: time.Hour, Referrers: referrer.All}
	for _, r := range []*regtest.Registry{e.src, e.d1, e.d2} {
		r.Reset()
	}
	p, err := promote.MakePlan(context.Background(), e.db, e.client, set, "test", opts)
	if err != nil {
		t.Fatal(err)
	}
	if p.Pending() != 0 || len(p.Refers) != 0 {
		t.Errorf("warm plan: %d pending, %d refer rows; want none", p.Pending(), len(p.Refers))
	}
	for i, r := range []*regtest.Registry{e.src, e.d1, e.d2} {
		if n := len(r.Counts()); n != 0 {
			t.Errorf("warm plan with a confirm TTL sent requests to registry %d (0: the source): %v, want none", i, r.Counts())
		}
	}

	next := e.src.Push(t, "staging/other", "v2", regtest.Image(t, 256, 1, false))
	nextSig := e.src.Sign(t, "staging/other", next, "next-signature")
	set = e.manifestSet(append(entries, entry{"other", next, []string{"v2"}})...)
	e.src.Reset()
	p, err = promote.MakePlan(context.Background(), e.db, e.client, set, "test", opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.src.Count("GET tags"); n != 1 {
		t.Errorf("one-change plan: %d tag listings of the source, want 1 (staging/other): %v", n, e.src.Counts())
	}
	var refers []string
	for _, r := range p.Refers {
		refers = append(refers, r.DstRepo+" "+r.Referrer)
	}
	want := []string{e.d1Name() + "/other " + nextSig.String(), e.d2Name() + "/other " + nextSig.String()}
	slices.Sort(refers)
	slices.Sort(want)
	if diff := cmp.Diff(want, refers); diff != "" {
		t.Errorf("refer rows (-want +got):\n%s", diff)
	}
}

// holdListingUntilAsked makes d1 hold each tag listing whose path ends in
// listing until the source has been asked for subject's referrers, for
// at most 10 s; the flag it returns is set when a listing waited that
// long (the source was not asked during the crawl).
func holdListingUntilAsked(e *env, listing string, subject v1.Hash) *atomic.Bool {
	asked := make(chan struct{})
	var once gosync.Once
	e.src.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/referrers/"+subject.String()) {
			once.Do(func() { close(asked) })
		}
		return false
	})
	waited := &atomic.Bool{}
	e.d1.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, listing) {
			select {
			case <-asked:
			case <-time.After(10 * time.Second):
				waited.Store(true)
			}
		}
		return false
	})
	return waited
}

// A plan with a fresh inventory asks the source's referrers API while the
// destinations are crawled, not after: here a destination's tag listing
// waits until the source has been asked about the wanted digest, which
// the old order (crawl, then look-ups) never did. The answer asked ahead
// serves the look-up: the source is asked about the digest once, and the
// referrers travel as before.
func TestPlanAsksSourceReferrersBesideCrawl(t *testing.T) {
	e := newEnv(t)
	e.oneDst = true
	e.src, e.d1 = regtest.NewReferrers(t, 2), regtest.NewReferrers(t, 2)
	img := e.src.Push(t, "staging/app", "v1", regtest.Image(t, 256, 2, true))
	desc := e.src.Descriptor(t, "staging/app", img)
	bundle := e.src.Attach(t, "staging/app", desc, regtest.SigstoreBundle, "bundle")
	set := e.manifestSet(entry{"app", img, []string{"v1"}})
	e.src.Reset()

	waited := holdListingUntilAsked(e, "/tags/list", img)
	p := e.planWith(set, referrer.All)
	if waited.Load() {
		t.Error("the destination's listing waited 10 s: the source's referrers were not asked during the crawl")
	}
	if n := e.src.Count("GET referrers"); n != 2 {
		// The image and its bundle (a referrer's referrers), once each.
		t.Errorf("%d referrers requests to the source, want 2 (the image once, its bundle once): %v", n, e.src.Counts())
	}
	if len(p.Refers) != 1 || p.Refers[0].Referrer != bundle.String() {
		t.Errorf("refer rows %+v, want the bundle %s", p.Refers, bundle)
	}
}

// The index children's referrers are asked during the crawl too, as soon
// as the crawl has stored the index: here the index is already promoted to
// one destination repository, and the listing of another waits until the
// source has been asked about one of the index's children. Asking only
// the wanted digests early (or nothing, as before) leaves it waiting.
func TestPlanAsksChildrenReferrersBesideCrawl(t *testing.T) {
	e := newEnv(t)
	e.oneDst = true
	e.src, e.d1 = regtest.NewReferrers(t, 2), regtest.NewReferrers(t, 2)
	ii := regtest.Index(t, regtest.Platforms, true)
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	child := im.Manifests[0].Digest
	idx := e.src.Push(t, "staging/app", "v1", ii)
	other := e.src.Push(t, "staging/other", "v1", regtest.Image(t, 256, 1, true))
	e.promoteWith(e.manifestSet(entry{"app", idx, []string{"v1"}}), referrer.All)

	fresh, err := inventory.Open(context.Background(), filepath.Join(t.TempDir(), "fresh.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	e.db = fresh
	waited := holdListingUntilAsked(e, "/prod/other/tags/list", child)
	e.src.Reset()
	p := e.planWith(e.manifestSet(entry{"app", idx, []string{"v1"}}, entry{"other", other, []string{"v1"}}), referrer.All)
	if waited.Load() {
		t.Error("the other repository's listing waited 10 s: the index child's referrers were not asked during the crawl")
	}
	if n, want := e.src.Count("GET referrers"), 2+len(im.Manifests); n != want {
		t.Errorf("%d referrers requests to the source, want %d (the index, its %d children and the other image, once each): %v", n, want, len(im.Manifests), e.src.Counts())
	}
	if p.Pending() != 1 {
		t.Errorf("%d pending rows, want 1 (the other image's copy)", p.Pending())
	}
}

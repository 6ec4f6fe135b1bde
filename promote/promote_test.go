package promote_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipdev/cip/internal/apipath"
	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/promote"
	"github.com/cipdev/cip/registry"
)

// env is a source registry, two destination registries and an inventory.
type env struct {
	t           testing.TB
	db          *inventory.DB
	client      *registry.Client
	src, d1, d2 *regtest.Registry
	dir         string
	oneDst      bool // manifests name d1 only
}

func newEnv(t testing.TB) *env {
	t.Helper()
	db, err := inventory.Open(context.Background(), filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &env{
		t: t, db: db, client: newClient(),
		src: regtest.New(t), d1: regtest.New(t), d2: regtest.New(t), dir: t.TempDir(),
	}
}

func newClient() *registry.Client {
	return registry.New(registry.Options{Transport: registry.NewTransport(registry.TransportOptions{Backoff: time.Millisecond})})
}

func (e *env) srcName() string { return e.src.Host + "/staging" }
func (e *env) d1Name() string  { return e.d1.Host + "/prod" }
func (e *env) d2Name() string  { return e.d2.Host + "/mirror/prod" }

type entry struct {
	image  string
	digest v1.Hash
	tags   []string
}

// manifestSet writes a plain manifest promoting entries from the source to
// both destinations (d1 only with oneDst) and loads it.
func (e *env) manifestSet(entries ...entry) *manifest.Set {
	e.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "registries:\n- name: %s\n  src: true\n- name: %s\n", e.srcName(), e.d1Name())
	if !e.oneDst {
		fmt.Fprintf(&b, "- name: %s\n", e.d2Name())
	}
	b.WriteString("images:\n")
	for _, en := range entries {
		quoted := make([]string, len(en.tags))
		for i, t := range en.tags {
			quoted[i] = fmt.Sprintf("%q", t)
		}
		fmt.Fprintf(&b, "- name: %s\n  dmap:\n    %q: [%s]\n", en.image, en.digest.String(), strings.Join(quoted, ", "))
	}
	f := filepath.Join(e.dir, "promoter-manifest.yaml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		e.t.Fatal(err)
	}
	set, err := manifest.Load(f, "", manifest.Options{})
	if err != nil {
		e.t.Fatalf("load manifest:\n%s\n%v", b.String(), err)
	}
	return set
}

// plan syncs what the set needs and plans (MakePlan does both).
func (e *env) plan(ctx context.Context, set *manifest.Set) (*promote.Plan, error) {
	e.t.Helper()
	return promote.MakePlan(ctx, e.db, e.client, set, "test", promote.Options{Jobs: 4})
}

func (e *env) mustPlan(set *manifest.Set) *promote.Plan {
	e.t.Helper()
	p, err := e.plan(context.Background(), set)
	if err != nil {
		e.t.Fatalf("plan: %v", err)
	}
	return p
}

func (e *env) mustPromote(set *manifest.Set) *promote.Report {
	e.t.Helper()
	p := e.mustPlan(set)
	rep, err := promote.Promote(context.Background(), e.db, e.client, p, promote.Options{Jobs: 4})
	if err != nil {
		e.t.Fatalf("promote: %v", err)
	}
	return rep
}

// writes counts requests that change a registry.
func writes(r *regtest.Registry) int {
	n := 0
	for k, v := range r.Counts() {
		if strings.HasPrefix(k, "PUT ") || strings.HasPrefix(k, "POST ") || strings.HasPrefix(k, "PATCH ") || strings.HasPrefix(k, "DELETE ") {
			n += v
		}
	}
	return n
}

// liveTags returns repo's tags and their digests as "tag digest" lines.
func liveTags(t testing.TB, reg *regtest.Registry, repo string) []string {
	t.Helper()
	r, err := name.NewRepository(reg.Host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(r)
	if err != nil {
		t.Fatalf("list %s: %v", r, err)
	}
	var out []string
	for _, tag := range tags {
		d, err := remote.Head(r.Tag(tag))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tag+" "+d.Digest.String())
	}
	sort.Strings(out)
	return out
}

type planLine struct{ Dst, Image, Action, Tags, Missing string }

func planLines(p *promote.Plan) []planLine {
	var out []planLine
	for _, r := range p.Rows {
		out = append(out, planLine{r.Dst, r.Image, r.Action, strings.Join(r.Tags, ","), strings.Join(r.Missing, ",")})
	}
	return out
}

func TestPlanCategories(t *testing.T) {
	e := newEnv(t)
	copyD := e.src.Push(t, "staging/copy", "v1", regtest.Image(t, 256, 1, true))
	skipD := e.src.Push(t, "staging/skip", "v1", regtest.Image(t, 256, 1, false))
	tagImg := regtest.Image(t, 256, 1, true)
	tagD := e.src.Push(t, "staging/tag", "v1", tagImg)
	lostD := regtest.Image(t, 64, 1, true)
	lostDigest, _ := lostD.Digest()
	// d1 already holds skip (all tags) and tag (one of two tags).
	e.d1.Push(t, "prod/skip", "v1", mustImage(t, e.src, "staging/skip@"+skipD.String()))
	e.d1.Push(t, "prod/tag", "v1", tagImg)

	set := e.manifestSet(
		entry{"copy", copyD, []string{"v1"}},
		entry{"lost", lostDigest, []string{"v1"}},
		entry{"skip", skipD, []string{"v1"}},
		entry{"tag", tagD, []string{"v1", "v2"}},
	)
	e.d1.Reset()
	e.d2.Reset()
	p := e.mustPlan(set)
	want := []planLine{
		{e.d2Name(), "copy", "copy", "v1", "v1"},
		{e.d2Name(), "lost", "lost", "v1", "v1"},
		{e.d2Name(), "skip", "copy", "v1", "v1"},
		{e.d2Name(), "tag", "copy", "v1,v2", "v1,v2"},
		{e.d1Name(), "copy", "copy", "v1", "v1"},
		{e.d1Name(), "lost", "lost", "v1", "v1"},
		{e.d1Name(), "skip", "skip", "v1", ""},
		{e.d1Name(), "tag", "tag", "v1,v2", "v2"},
	}
	sort.SliceStable(want, func(i, j int) bool { return want[i].Dst < want[j].Dst })
	if diff := cmp.Diff(want, planLines(p)); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	if got := p.Pending(); got != 5 {
		t.Errorf("Pending() = %d, want 5", got)
	}
	if n := writes(e.d1) + writes(e.d2); n != 0 {
		t.Errorf("planning wrote %d requests to destinations, want 0", n)
	}

	rep, err := promote.Promote(context.Background(), e.db, e.client, p, promote.Options{Jobs: 4})
	if err != nil {
		t.Fatal(err)
	}
	byDst := map[string]promote.DestinationReport{}
	for _, d := range rep.Destinations {
		byDst[d.Destination] = d
	}
	if d := byDst[e.d1Name()]; d.Copied != 1 || d.Tagged != 2 || d.Skipped != 1 || d.Lost != 1 || d.BytesSent == 0 {
		t.Errorf("d1 report = %+v, want 1 copied, 2 tagged (copy:v1, tag:v2), 1 skipped, 1 lost, bytes sent", d)
	}
	if d := byDst[e.d2Name()]; d.Copied != 3 || d.Tagged != 4 || d.Skipped != 0 || d.Lost != 1 {
		t.Errorf("d2 report = %+v, want 3 copied, 4 tagged, 0 skipped, 1 lost", d)
	}
	if diff := cmp.Diff([]string{"v1 " + tagD.String(), "v2 " + tagD.String()}, liveTags(t, e.d1, "prod/tag")); diff != "" {
		t.Errorf("d1 prod/tag tags (-want +got):\n%s", diff)
	}
	if len(rep.Mismatches) != 0 || rep.Verified == 0 {
		t.Errorf("verify: %d checked, mismatches %v", rep.Verified, rep.Mismatches)
	}
	// One record per pending row, in plan order, with the tags it put.
	type rec struct{ Dst, Image, Action, Tags string }
	var recs []rec
	for _, r := range rep.Images {
		recs = append(recs, rec{r.Destination, r.Image, r.Action, strings.Join(r.Tags, ",")})
		if r.Error != "" || r.DurationSeconds <= 0 || (r.Action == "copy" && r.BytesSent+r.BytesMounted == 0 && r.Destination == e.d1Name()) {
			t.Errorf("image record %+v: want no error, a duration, and bytes for a copy", r)
		}
	}
	wantRecs := []rec{
		{e.d2Name(), "copy", "copy", "v1"}, {e.d2Name(), "skip", "copy", "v1"}, {e.d2Name(), "tag", "copy", "v1,v2"},
		{e.d1Name(), "copy", "copy", "v1"}, {e.d1Name(), "tag", "tag", "v2"},
	}
	sort.SliceStable(wantRecs, func(i, j int) bool { return wantRecs[i].Dst < wantRecs[j].Dst })
	if diff := cmp.Diff(wantRecs, recs); diff != "" {
		t.Errorf("report images (-want +got):\n%s", diff)
	}
	if rep.Rows != 5 || rep.RowsDone != 5 || rep.Interrupted {
		t.Errorf("report rows %d, done %d, interrupted %v; want 5, 5, false", rep.Rows, rep.RowsDone, rep.Interrupted)
	}
	// Only the lost rows remain, and they are not pending.
	p2 := e.mustPlan(set)
	lost := 0
	for _, s := range p2.Summaries() {
		lost += s.Lost
	}
	if p2.Pending() != 0 || lost != 2 {
		t.Errorf("second plan: %d pending, %d lost; want 0, 2: %+v", p2.Pending(), lost, planLines(p2))
	}
}

func mustImage(t *testing.T, reg *regtest.Registry, ref string) v1.Image {
	t.Helper()
	img, err := remote.Image(reg.Ref(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestTagMoveRefusedInDryRun(t *testing.T) {
	e := newEnv(t)
	want := e.src.Push(t, "staging/app", "v1", regtest.Image(t, 128, 1, true))
	now := e.d1.Push(t, "prod/app", "v1", regtest.Image(t, 128, 1, true))
	set := e.manifestSet(entry{"app", want, []string{"v1"}})
	e.d1.Reset()
	e.d2.Reset()
	p, err := e.plan(context.Background(), set)
	var tm *promote.TagMoveError
	if !errors.As(err, &tm) {
		t.Fatalf("plan: err = %v, want a *TagMoveError", err)
	}
	wantMoves := []inventory.TagMove{{Dst: e.d1Name(), Image: "app", Tag: "v1", DigestNow: now.String(), DigestWanted: want.String(),
		File: filepath.Join(e.dir, "promoter-manifest.yaml"), Line: p.TagMoves[0].Line}}
	if diff := cmp.Diff(wantMoves, tm.Moves); diff != "" {
		t.Errorf("tag moves (-want +got):\n%s", diff)
	}
	for _, s := range []string{e.d1Name() + "/app:v1", now.String(), want.String()} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
	if _, err := promote.Promote(context.Background(), e.db, e.client, p, promote.Options{}); !errors.As(err, &tm) {
		t.Errorf("Promote with tag moves: err = %v, want a *TagMoveError", err)
	}
	if n := writes(e.d1) + writes(e.d2); n != 0 {
		t.Errorf("a refused plan wrote %d requests, want 0", n)
	}
}

func TestConflictingManifests(t *testing.T) {
	e := newEnv(t)
	a := e.src.Push(t, "staging/app", "a", regtest.Image(t, 128, 1, true))
	b := e.src.Push(t, "staging/app", "b", regtest.Image(t, 128, 1, true))
	dir := filepath.Join(e.dir, "thin")
	for i, d := range []v1.Hash{a, b} {
		x := fmt.Sprintf("m%d", i)
		mustWrite(t, filepath.Join(dir, "manifests", x, "promoter-manifest.yaml"),
			fmt.Sprintf("registries:\n- name: %s\n  src: true\n- name: %s\n", e.srcName(), e.d1Name()))
		mustWrite(t, filepath.Join(dir, "images", x, "images.yaml"),
			fmt.Sprintf("- name: app\n  dmap:\n    %q: [\"latest\"]\n", d.String()))
	}
	_, err := manifest.Load("", dir, manifest.Options{})
	var ve *manifest.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("load conflicting manifests: err = %v, want a *manifest.ValidationError", err)
	}
	// The inventory refuses them too, should validation ever let them by.
	route := func(file, dg string) inventory.Route {
		return inventory.Route{Src: e.srcName(), Dsts: []string{e.d1Name()}, File: file, Images: []inventory.WantedImage{
			{Name: "app", Digests: []inventory.WantedDigest{{Digest: dg, Tags: []string{"latest"}, Line: 1}}}}}
	}
	_, err = e.db.LoadRoutes(context.Background(), "test", []inventory.Route{route("x", a.String()), route("y", b.String())})
	if err == nil || !strings.Contains(err.Error(), "latest") {
		t.Errorf("LoadRoutes(conflict) = %v, want an error naming the tag", err)
	}
	if n := writes(e.d1); n != 0 {
		t.Errorf("wrote %d requests, want 0", n)
	}
}

func mustWrite(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// population pushes Docker and OCI images, Docker and OCI indexes, a nested
// index, a digest with two tags and a tagless digest; it returns the
// manifest entries naming them.
func population(t testing.TB, src *regtest.Registry) []entry {
	var out []entry
	for i := range 4 {
		oci := i%2 == 0
		img := fmt.Sprintf("app%d", i)
		d := src.Push(t, "staging/"+img, "v1", regtest.Image(t, 1024, 2, oci))
		out = append(out, entry{img, d, []string{"latest", "v1"}})
	}
	out = append(out,
		entry{"multi-oci", src.Push(t, "staging/multi-oci", "v2", regtest.Index(t, regtest.Platforms, true)), []string{"v2"}},
		entry{"multi-docker", src.Push(t, "staging/multi-docker", "v2", regtest.Index(t, regtest.Platforms, false)), []string{"v2"}},
		entry{"nested", src.Push(t, "staging/nested", "v3", regtest.Nest(t, regtest.Index(t, regtest.Platforms[:2], true))), []string{"v3"}},
		entry{"tagless", src.Push(t, "staging/tagless", "", regtest.Image(t, 256, 1, true)), nil},
	)
	return out
}

// checkPromoted asserts that every entry is in both destinations, by digest
// and by each tag.
func checkPromoted(t *testing.T, e *env, entries []entry) {
	t.Helper()
	for _, reg := range []struct {
		r    *regtest.Registry
		path string
	}{{e.d1, "prod"}, {e.d2, "mirror/prod"}} {
		for _, en := range entries {
			if _, err := remote.Head(reg.r.Ref(t, reg.path+"/"+en.image+"@"+en.digest.String())); err != nil {
				t.Errorf("%s/%s@%s: %v", reg.r.Host, reg.path+"/"+en.image, en.digest, err)
			}
			for _, tag := range en.tags {
				d, err := remote.Head(reg.r.Ref(t, reg.path+"/"+en.image+":"+tag))
				if err != nil || d.Digest != en.digest {
					t.Errorf("%s/%s:%s = %v (%v), want %s", reg.r.Host, reg.path+"/"+en.image, tag, d, err, en.digest)
				}
			}
		}
	}
}

func TestPromotePopulationThenNoWrites(t *testing.T) {
	e := newEnv(t)
	entries := population(t, e.src)
	set := e.manifestSet(entries...)
	e.src.Reset()
	rep := e.mustPromote(set)
	checkPromoted(t, e, entries)
	for _, d := range rep.Destinations {
		if d.Copied != len(entries) || d.Tagged != 11 {
			t.Errorf("report %s: %d copied, %d tagged; want %d, 11", d.Destination, d.Copied, d.Tagged, len(entries))
		}
	}
	if n := writes(e.src); n != 0 {
		t.Errorf("wrote %d requests to the source, want 0", n)
	}
	// Each (repository, digest) was put once by its digest, then each tag
	// once, after a HEAD found it free:
	// 4 images + 2 indexes × (1 + 3 children) + nested (1 + 1 + 2) + tagless = 17 manifests and 11 tags per destination.
	if got := e.d1.Count("PUT manifest"); got != 17+11 {
		t.Errorf("d1 PUT manifest = %d, want 28", got)
	}

	e.src.Reset()
	e.d1.Reset()
	e.d2.Reset()
	rep2 := e.mustPromote(set)
	if n := writes(e.d1) + writes(e.d2) + writes(e.src); n != 0 {
		t.Errorf("second run wrote %d requests (d1 %v, d2 %v), want 0", n, e.d1.Counts(), e.d2.Counts())
	}
	// Nothing to copy: the source is never read (destinations are synced
	// first, and only sources of missing digests after).
	if n := sumCounts(e.src); n != 0 {
		t.Errorf("second run sent %d requests to the source (%v), want 0", n, e.src.Counts())
	}
	for _, d := range rep2.Destinations {
		if d.Copied+d.Tagged != 0 || d.Skipped != len(entries) {
			t.Errorf("second report %s = %+v, want all %d skipped", d.Destination, d, len(entries))
		}
	}
}

// The report's requests per destination are the distribution requests its
// copies sent, to the destination and to the source: summed over
// destinations, every request the registries saw during the copy but the
// pings of the authentication handshakes.
func TestReportRequestsPerDestination(t *testing.T) {
	e := newEnv(t)
	entries := population(t, e.src)
	set := e.manifestSet(entries...)
	p := e.mustPlan(set)
	e.src.Reset()
	e.d1.Reset()
	e.d2.Reset()
	rep, err := promote.Promote(context.Background(), e.db, e.client, p, promote.Options{Jobs: 4})
	if err != nil {
		t.Fatal(err)
	}
	var got int64
	for _, d := range rep.Destinations {
		if d.Requests == 0 {
			t.Errorf("report %s: 0 requests", d.Destination)
		}
		got += d.Requests
	}
	want := sumCounts(e.src) - e.src.Count("GET ping")
	for _, r := range []*regtest.Registry{e.d1, e.d2} {
		// The verifying HEADs count for their destination too.
		want += sumCounts(r) - r.Count("GET ping")
	}
	if got != int64(want) || got == 0 {
		t.Errorf("requests in the report = %d, want %d (src %v, d1 %v, d2 %v)", got, want, e.src.Counts(), e.d1.Counts(), e.d2.Counts())
	}
	if rep.Totals.Requests != got {
		t.Errorf("totals.requests = %d, want the destinations' sum %d", rep.Totals.Requests, got)
	}
	if rep.HTTPRequests < got {
		t.Errorf("HTTP requests = %d, fewer than the destinations' %d", rep.HTTPRequests, got)
	}
}

func TestPromoteCancelledThenRerun(t *testing.T) {
	e := newEnv(t)
	entries := population(t, e.src)
	set := e.manifestSet(entries...)
	p := e.mustPlan(set)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var puts atomic.Int64
	e.d1.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && apipath.Kind(r.URL.Path) == "manifest" && puts.Add(1) == 6 {
			cancel()
		}
		return false
	})
	var heard atomic.Int64
	cut, err := promote.Promote(ctx, e.db, e.client, p, promote.Options{Jobs: 2, OnImage: func(promote.ImageRecord) { heard.Add(1) }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled promote: err = %v, want context.Canceled", err)
	}
	e.d1.SetFault(nil)
	// The report of the cut run says so, counts what finished, and its
	// totals are the sum of its destinations.
	if cut == nil || !cut.Interrupted || cut.Rows != p.Pending() || cut.RowsDone >= cut.Rows || cut.Verified != 0 {
		t.Fatalf("cancelled promote report: %+v; want interrupted, %d rows, fewer done, nothing verified", cut, p.Pending())
	}
	var sum promote.Totals
	for _, d := range cut.Destinations {
		sum.Copied += d.Copied
		sum.Tagged += d.Tagged
		sum.Skipped += d.Skipped
		sum.Referred += d.Referred
		sum.Lost += d.Lost
		sum.ManifestsPut += d.ManifestsPut
		sum.BlobsSent += d.BlobsSent
		sum.BlobsMounted += d.BlobsMounted
		sum.BytesSent += d.BytesSent
		sum.BytesMounted += d.BytesMounted
		sum.Requests += d.Requests
		sum.Errors += len(d.Errors)
	}
	if cut.Totals != sum || sum.Requests == 0 {
		t.Errorf("cancelled promote totals = %+v, want the destinations' sum %+v", cut.Totals, sum)
	}
	if sum.Errors != 0 {
		t.Errorf("cancelled promote: %d errors; the rows cut off are not failures", sum.Errors)
	}
	// One record per row finished, each heard as it finished.
	if len(cut.Images) != cut.RowsDone || int(heard.Load()) != cut.RowsDone {
		t.Errorf("cancelled promote: %d image records, %d heard, %d rows done; want them equal", len(cut.Images), heard.Load(), cut.RowsDone)
	}
	first := e.d1.Count("PUT manifest") + e.d2.Count("PUT manifest")
	if first == 0 || first >= 2*(17+11) {
		t.Fatalf("cancelled run put %d manifests, want some but not all", first)
	}

	e.d1.Reset()
	e.d2.Reset()
	rep := e.mustPromote(set)
	rest := e.d1.Count("PUT manifest") + e.d2.Count("PUT manifest")
	if rest >= 2*(17+11) {
		t.Errorf("rerun put %d manifests, want fewer than a cold run's %d", rest, 2*(17+11))
	}
	if len(rep.Mismatches) != 0 {
		t.Errorf("rerun mismatches: %v", rep.Mismatches)
	}
	checkPromoted(t, e, entries)
	e.d1.Reset()
	e.d2.Reset()
	e.mustPromote(set)
	if n := writes(e.d1) + writes(e.d2); n != 0 {
		t.Errorf("third run wrote %d requests, want 0", n)
	}
}

func TestPromoteRetriesFaults(t *testing.T) {
	e := newEnv(t)
	entries := population(t, e.src)
	set := e.manifestSet(entries...)
	// Every distinct request fails once (alternately 429 with Retry-After
	// and 503), then succeeds: every kind of request is retried, streamed
	// blob uploads included.
	var mu gosync.Mutex
	failed := map[string]bool{}
	var n atomic.Int64
	fault := func(w http.ResponseWriter, r *http.Request) bool {
		key := r.Host + " " + r.Method + " " + r.URL.String()
		mu.Lock()
		defer mu.Unlock()
		if failed[key] {
			return false
		}
		failed[key] = true
		if n.Add(1)%2 == 0 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		return true
	}
	e.src.SetFault(fault)
	e.d1.SetFault(fault)
	e.d2.SetFault(fault)
	rep := e.mustPromote(set)
	e.src.SetFault(nil)
	e.d1.SetFault(nil)
	e.d2.SetFault(nil)
	if len(rep.Mismatches) != 0 {
		t.Errorf("mismatches: %v", rep.Mismatches)
	}
	checkPromoted(t, e, entries)
	if n.Load() == 0 {
		t.Error("no faults injected")
	}
}

func TestVerifyFindsMismatches(t *testing.T) {
	e := newEnv(t)
	entries := population(t, e.src)[:2]
	set := e.manifestSet(entries...)
	e.mustPromote(set)
	// Break d2: delete a tag and move another.
	e.d2.Delete(t, "mirror/prod/app0:latest")
	other := e.d2.Push(t, "mirror/prod/app1", "v1", regtest.Image(t, 64, 1, true))
	loadID, err := e.db.LoadRoutes(context.Background(), "test", promote.Routes(set))
	if err != nil {
		t.Fatal(err)
	}
	checked, ms, err := promote.Verify(context.Background(), e.db, e.client, loadID, promote.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if checked != 2*2*3 {
		t.Errorf("checked %d references, want 12", checked)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Ref()+" "+m.Got)
	}
	want := []string{
		e.d2Name() + "/app0:latest absent",
		e.d2Name() + "/app1:v1 " + other.String(),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatches (-want +got):\n%s", diff)
	}
}

// An offline plan sends no request and, on an inventory the online plan
// just brought up to date, plans the same rows.
func TestOfflinePlanSendsNothing(t *testing.T) {
	e := newEnv(t)
	entries := population(t, e.src)
	set := e.manifestSet(entries...)
	online := e.mustPlan(set)
	if online.Pending() == 0 {
		t.Fatal("online plan has nothing pending")
	}
	e.src.Reset()
	e.d1.Reset()
	e.d2.Reset()
	offline, err := promote.MakePlan(context.Background(), e.db, e.client, set, "test", promote.Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := sumCounts(e.src) + sumCounts(e.d1) + sumCounts(e.d2); n != 0 {
		t.Errorf("offline plan sent %d requests (src %v, d1 %v, d2 %v), want 0", n, e.src.Counts(), e.d1.Counts(), e.d2.Counts())
	}
	if diff := cmp.Diff(planLines(online), planLines(offline)); diff != "" {
		t.Errorf("offline plan differs from the online one (-online +offline):\n%s", diff)
	}
}

// Change-scoped runs (--confirm-ttl). A rerun of unchanged manifests within
// the TTL contacts no registry: every destination repository was confirmed
// by the promotion that wrote and verified it. When one image's entry
// changes (a tag added), only its destination repositories are listed, and
// the tags cip put itself, confirmed by the PUT, are not HEADed (only the
// tagless entry's digest, which no tag listing shows, would be, as without
// a TTL); the listing still sees tags removed behind cip's back.
func TestWarmRunWithConfirmTTL(t *testing.T) {
	e := newEnv(t)
	entries := population(t, e.src)
	set := e.manifestSet(entries...)
	rep := e.mustPromote(set)
	if rep.Confirmed != 2*len(entries) {
		t.Errorf("promotion confirmed %d destination repositories, want %d (every one it wrote and verified)", rep.Confirmed, 2*len(entries))
	}
	e.src.Reset()
	e.d1.Reset()
	e.d2.Reset()
	p, err := promote.MakePlan(context.Background(), e.db, e.client, set, "test", promote.Options{Jobs: 4, ConfirmTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if p.Pending() != 0 || len(p.Trusted) != 2*len(entries) {
		t.Errorf("warm plan: %d pending rows, %d repositories trusted; want 0 and %d", p.Pending(), len(p.Trusted), 2*len(entries))
	}
	for i, r := range []*regtest.Registry{e.src, e.d1, e.d2} {
		if n := len(r.Counts()); n != 0 {
			t.Errorf("warm plan with a confirm TTL sent requests to registry %d: %v, want none", i, r.Counts())
		}
	}
	for _, s := range p.Summaries() {
		if s.Trusted != len(entries) || s.TrustedSince == nil {
			t.Errorf("summary %s: %d trusted since %v, want %d and a time", s.Destination, s.Trusted, s.TrustedSince, len(entries))
		}
	}
	// Without the TTL, or with --full, everything is confirmed live again.
	for _, opts := range []promote.Options{{Jobs: 4}, {Jobs: 4, ConfirmTTL: time.Hour, Full: true}} {
		e.d1.Reset()
		p, err := promote.MakePlan(context.Background(), e.db, e.client, set, "test", opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Trusted) != 0 || e.d1.Count("GET tags") != len(entries) {
			t.Errorf("plan with %+v: %d trusted, %d tag listings in d1; want 0 and %d", opts, len(p.Trusted), e.d1.Count("GET tags"), len(entries))
		}
	}

	// One image's entry changes: a tag added to app1; someone removes app2's
	// v1 behind cip's back (app2 is trusted: unnoticed within the TTL).
	e.d1.Delete(t, "prod/app0:latest")
	entries[1].tags = append(entries[1].tags, "extra")
	set = e.manifestSet(entries...)
	e.src.Reset()
	e.d1.Reset()
	e.d2.Reset()
	p, err = promote.MakePlan(context.Background(), e.db, e.client, set, "test", promote.Options{Jobs: 4, ConfirmTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range []*regtest.Registry{e.d1, e.d2} {
		if n := r.Count("GET tags"); n != 1 {
			t.Errorf("registry d%d: %d tag listings, want 1 (the changed image only): %v", i+1, n, r.Counts())
		}
		if n := r.Count("HEAD manifest") + r.Count("GET manifest"); n != 0 {
			t.Errorf("registry d%d: %d manifest requests, want 0 (the listed tags were confirmed by cip's PUT): %v", i+1, n, r.Counts())
		}
	}
	if n := len(p.Trusted); n != 2*(len(entries)-1) {
		t.Errorf("%d repositories trusted, want %d (all but the changed image's)", n, 2*(len(entries)-1))
	}
	var pending []string
	for _, r := range p.Rows {
		if r.Action != inventory.ActionSkip {
			pending = append(pending, r.Action+" "+r.DstRepo+" "+strings.Join(r.Missing, ","))
		}
	}
	want := []string{"tag " + e.d1Name() + "/app1 extra", "tag " + e.d2Name() + "/app1 extra"}
	slices.Sort(want)
	slices.Sort(pending)
	if diff := cmp.Diff(want, pending); diff != "" {
		t.Errorf("pending rows (-want +got):\n%s", diff)
	}
	// --full sees the removed tag.
	p, err = promote.MakePlan(context.Background(), e.db, e.client, set, "test", promote.Options{Jobs: 4, ConfirmTTL: time.Hour, Full: true})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range p.Rows {
		if r.DstRepo == e.d1Name()+"/app0" && r.Action == inventory.ActionTag && slices.Contains(r.Missing, "latest") {
			found = true
		}
	}
	if !found {
		t.Errorf("--full plan does not re-tag the tag removed behind cip's back: %+v", p.Rows)
	}
}

// A plan too large to hold (here: more than 2 rows) is streamed: MakePlan
// holds no row, Each reads them from the inventory in the held plan's
// order, and Promote copies them through a spool (a file past 2 rows)
// with the same result as a held plan.
func TestStreamedPlanPromotes(t *testing.T) {
	e := newEnv(t)
	entries := population(t, e.src)
	set := e.manifestSet(entries...)
	held := e.mustPlan(set)
	if held.Streamed || len(held.Rows) != 2*len(entries) {
		t.Fatalf("held plan: streamed %v, %d rows; want %d rows held", held.Streamed, len(held.Rows), 2*len(entries))
	}
	defer promote.SetStreamBounds(2)()
	p := e.mustPlan(set)
	if !p.Streamed || p.Rows != nil || p.Pending() != held.Pending() {
		t.Fatalf("streamed plan: streamed %v, %d rows held, %d pending; want streamed, none held, %d pending", p.Streamed, len(p.Rows), p.Pending(), held.Pending())
	}
	var streamed []inventory.PlanRow
	if err := p.Each(context.Background(), e.db, func(r inventory.PlanRow) error { streamed = append(streamed, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(held.Rows, streamed); diff != "" {
		t.Errorf("streamed rows (-held +streamed):\n%s", diff)
	}
	rep, err := promote.Promote(context.Background(), e.db, e.client, p, promote.Options{Jobs: 4})
	if err != nil {
		t.Fatal(err)
	}
	checkPromoted(t, e, entries)
	for _, d := range rep.Destinations {
		if d.Copied != len(entries) || d.Tagged != 11 {
			t.Errorf("report %s: %d copied, %d tagged; want %d, 11", d.Destination, d.Copied, d.Tagged, len(entries))
		}
	}
	if rep.Verified != 2*(11+1) || len(rep.Mismatches) != 0 || rep.Confirmed != 2*len(entries) {
		t.Errorf("verified %d (mismatches %v), confirmed %d; want 24, none, %d", rep.Verified, rep.Mismatches, rep.Confirmed, 2*len(entries))
	}
	if p := e.mustPlan(set); p.Pending() != 0 || p.Streamed {
		t.Errorf("plan after the streamed promotion: %d pending, streamed %v; want 0 and held", p.Pending(), p.Streamed)
	}
}

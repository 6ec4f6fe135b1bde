package audit_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipdev/cip/audit"
	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
)

const bundleType = regtest.SigstoreBundle

// referrerWorld is a registry serving the referrers API with, in
// prod/app, a promoted image (v1) signed by an untagged sigstore bundle
// (pushed through the referrers API), a signature on that bundle, a chain
// of referrers four deep on the image, and a rogue image (tag rogue) with
// a bundle of its own.
type referrerWorld struct {
	reg                       *regtest.Registry
	client                    *registry.Client
	set                       *manifest.Set
	repo                      string
	img, rogue                v1.Hash
	bundle, bundleSig, rogueB v1.Hash
	chain                     []v1.Hash // chain[0] refers to img, chain[i] to chain[i-1]
}

func newReferrerWorld(t *testing.T) *referrerWorld {
	t.Helper()
	w := &referrerWorld{reg: regtest.NewReferrers(t, 100)}
	w.repo = w.reg.Host + "/prod/app"
	w.img = w.reg.Push(t, "prod/app", "v1", regtest.Image(t, 64, 1, true))
	w.rogue = w.reg.Push(t, "prod/app", "rogue", regtest.Image(t, 65, 1, true))
	w.bundle = w.reg.Attach(t, "prod/app", w.reg.Descriptor(t, "prod/app", w.img), bundleType, "bundle of v1")
	w.bundleSig = w.reg.Attach(t, "prod/app", w.reg.Descriptor(t, "prod/app", w.bundle), bundleType, "signature on the bundle")
	w.rogueB = w.reg.Attach(t, "prod/app", w.reg.Descriptor(t, "prod/app", w.rogue), bundleType, "bundle of rogue")
	subject := w.img
	for i := range 4 {
		subject = w.reg.Attach(t, "prod/app", w.reg.Descriptor(t, "prod/app", subject), bundleType, fmt.Sprintf("link %d", i))
		w.chain = append(w.chain, subject)
	}
	w.set, _ = loadSet(t, fmt.Sprintf(`registries:
- name: src.example/staging
  src: true
- name: %s/prod
images:
- name: app
  dmap:
    %q: ["v1"]
`, w.reg.Host, w.img))
	w.client = registry.New(registry.Options{Transport: registry.NewTransport(registry.TransportOptions{Backoff: time.Millisecond})})
	return w
}

// cip audit: the destination's referrers as a sync records them (the
// referrers API's answers, untagged): those of the promoted image, and of
// its referrers down to the depth cip copies, are accounted for; the
// rogue image's bundle is reported with it; a referrer deeper than cip
// follows is nothing cip promoted.
func TestScanUntaggedAPIReferrers(t *testing.T) {
	ctx := context.Background()
	w := newReferrerWorld(t)
	db := openDB(t)
	if _, err := cipsync.Run(ctx, db, w.client, []cipsync.Target{{Ref: w.reg.Host + "/prod"}}, cipsync.Options{}); err != nil {
		t.Fatal(err)
	}
	// Depth 5 finds the whole chain, one level deeper than audit accounts.
	found, err := cipsync.Referrers(ctx, db, w.client, []cipsync.Ref{{Repository: w.repo, Digest: w.img.String()}, {Repository: w.repo, Digest: w.rogue.String()}},
		cipsync.ReferrerOptions{Depth: 5})
	if err != nil {
		t.Fatal(err)
	}
	if found.APIRequests == 0 || found.Referrers < 7 {
		t.Fatalf("sync.Referrers found %d referrers with %d API requests; want the API's 7", found.Referrers, found.APIRequests)
	}
	fs, err := audit.Scan(ctx, db, audit.NewPolicy(w.set), nil, audit.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, fmt.Sprintf("%s %s %s", f.Reason, f.Digest, strings.Join(f.Tags, ",")))
	}
	want := []string{
		fmt.Sprintf("%s %s rogue", audit.NotInManifest, w.rogue),
		fmt.Sprintf("%s %s ", audit.NotInManifest, w.rogueB),
		fmt.Sprintf("%s %s ", audit.NotInManifest, w.chain[3]),
	}
	if !sameSet(got, want) {
		t.Errorf("Scan findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		if m[x]--; m[x] < 0 {
			return false
		}
	}
	return true
}

// Judge with the inventory's referrers rows and subject fields: an
// untagged referrer of a promoted digest (or of a child of a promoted
// index, or of such a referrer) is verified; one of a rogue digest is not;
// a tag no manifest gives stays a tag mismatch on a referrer too.
func TestJudgeReferrersFromInventory(t *testing.T) {
	ctx := context.Background()
	set, _ := loadSet(t, fixture)
	p := audit.NewPolicy(set)
	db := openDB(t)
	const prod = "prod.example/prod/"
	dS, dS2, dR, dF, dC := dg('5'), dg('6'), dg('7'), dg('8'), dg('0') // API referrer of a; a signature on it; API referrer of x; referrer of child 1 by its subject field only; one of x by field
	withSubject := func(d, subject string) *inventory.Manifest {
		m := image(d)
		m.Subject = subject
		return m
	}
	write(t, db, prod+"app", map[string]string{"v1": dA, "evil": dX}, image(dA), image(dX))
	if _, err := db.WriteReferrers(ctx, 0, []inventory.ReferrerState{{Repository: prod + "app",
		API: map[string][]string{dA: {dS}, dS: {dS2}, dX: {dR}}, New: []*inventory.Manifest{image(dS), image(dS2), image(dR)}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertManifests(ctx, []*inventory.Manifest{withSubject(dF, d1), withSubject(dC, dX)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		ev      audit.Event
		verdict string
		reason  audit.Reason
		parent  string
		detail  string
	}{
		{"API referrer of a promoted digest", push(prod+"app", dS, ""), audit.Verified, audit.Referrer, dA, "refers to " + dA + ", promoted at"},
		{"referrer of that referrer", push(prod+"app", dS2, ""), audit.Verified, audit.Referrer, dS, "which belongs through " + dA},
		{"cosign signature of an API referrer", push(prod+"app", dX, "sha256-"+dS[7:]+".sig"), audit.Verified, audit.Referrer, dS, ""},
		{"API referrer of a rogue digest", push(prod+"app", dR, ""), audit.Rejected, audit.NotInManifest, "", ""},
		{"API referrer of a promoted digest elsewhere", push("mirror.example:5000/m/app", dS, ""), audit.Rejected, audit.NotInManifest, "", ""},
		{"subject field: a child of a promoted index", push(prod+"multi", dF, ""), audit.Verified, audit.Referrer, d1, "belongs through " + dI},
		{"subject field: a rogue digest", push(prod+"app", dC, ""), audit.Rejected, audit.NotInManifest, "", ""},
		{"a tag on an API referrer", push(prod+"app", dS, "latest-sig"), audit.Rejected, audit.TagMismatch, dA, "a referrer of " + dA},
		{"a promoted tag moved to an API referrer", push(prod+"app", dS, "v1"), audit.Rejected, audit.TagMismatch, "", "wants it at " + dA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := p.Judge(ctx, db, tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			if v.Verdict != tc.verdict || v.Reason != tc.reason || v.Parent != tc.parent || !strings.Contains(v.Detail, tc.detail) {
				t.Errorf("Judge(%s@%s:%s) = %s %s (parent %q; %s), want %s %s (parent %q; %q)",
					tc.ev.Repository, tc.ev.Digest, tc.ev.Tag, v.Verdict, v.Reason, v.Parent, v.Detail, tc.verdict, tc.reason, tc.parent, tc.detail)
			}
		})
	}
}

// cip audit serve: a push of a manifest the inventory does not hold is
// read from its repository to see its subject. An untagged referrer of the
// promoted image (and referrers of it, three levels) is VERIFIED; the
// fourth level, a rogue image's referrer and a digest that is not there
// are REJECTED; each event costs at most three manifest reads, and a read
// whose bytes are not the event's digest is no verdict for the referrer.
func TestServerReadsUnknownReferrers(t *testing.T) {
	w := newReferrerWorld(t)
	db := openDB(t)
	var lie bool // the reader returns another manifest's bytes
	read := func(ctx context.Context, repo, digest string) (registry.Manifest, error) {
		m, err := audit.LiveManifests(w.client)(ctx, repo, digest)
		if lie && err == nil {
			m.Digest = w.rogue.String()
		}
		return m, err
	}
	srv, err := audit.NewServer(audit.ServerOptions{Store: db, Token: []byte(token), Read: read,
		Load:   func() (*manifest.Set, error) { return w.set, nil },
		Logger: slog.New(slog.DiscardHandler), Verdicts: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)

	missing := dg('9')
	for _, tc := range []struct {
		name    string
		digest  v1.Hash
		verdict string
		reason  audit.Reason
		parent  string
		reads   int
	}{
		{"bundle of the promoted image", w.bundle, audit.Verified, audit.Referrer, w.img.String(), 1},
		{"signature on the bundle", w.bundleSig, audit.Verified, audit.Referrer, w.bundle.String(), 2},
		{"third level", w.chain[2], audit.Verified, audit.Referrer, w.chain[1].String(), 3},
		{"fourth level", w.chain[3], audit.Rejected, audit.NotInManifest, "", 3},
		{"bundle of the rogue image", w.rogueB, audit.Rejected, audit.NotInManifest, "", 2},
		{"not there", v1.Hash{Algorithm: "sha256", Hex: missing[7:]}, audit.Rejected, audit.NotInManifest, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.reg.Reset()
			id := strings.ReplaceAll(tc.name, " ", "-")
			code, answer := post(t, hs.URL, "", pubsub(`{"action":"INSERT","digest":"`+w.repo+"@"+tc.digest.String()+`"}`, id))
			if code != http.StatusOK {
				t.Fatalf("POST = %d %s", code, answer)
			}
			if reads := w.reg.Count("GET manifest"); reads != tc.reads {
				t.Errorf("%d manifest reads, want %d", reads, tc.reads)
			}
			rows, err := db.AuditEvents(context.Background(), inventory.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var got *inventory.AuditEvent
			for i := range rows {
				if rows[i].EventID == id {
					got = &rows[i]
				}
			}
			if got == nil || got.Verdict != tc.verdict || got.Reason != string(tc.reason) || !strings.Contains(got.Detail, tc.parent) {
				t.Errorf("recorded %+v, want %s %s naming %q", got, tc.verdict, tc.reason, tc.parent)
			}
		})
	}

	// A reader whose bytes are not the event's digest: no verdict from
	// them, and the detail says why.
	lie = true
	code, answer := post(t, hs.URL, "", pubsub(`{"action":"INSERT","digest":"`+w.repo+"@"+w.bundle.String()+`"}`, "lie"))
	if code != http.StatusOK || !strings.Contains(answer, `"rejected":1`) {
		t.Fatalf("POST (lying reader) = %d %s, want the event rejected", code, answer)
	}
	rows, _ := db.AuditEvents(context.Background(), inventory.AuditFilter{})
	for _, r := range rows {
		if r.EventID == "lie" && !strings.Contains(r.Detail, "could not be read") {
			t.Errorf("detail %q does not say the manifest could not be read", r.Detail)
		}
	}

	// Without a reader (cip audit serve --offline) the inventory alone
	// judges: a referrer it does not hold yet is rejected, and nothing is
	// read.
	offline, err := audit.NewServer(audit.ServerOptions{Store: openDB(t), Token: []byte(token),
		Load:   func() (*manifest.Set, error) { return w.set, nil },
		Logger: slog.New(slog.DiscardHandler), Verdicts: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ohs := httptest.NewServer(offline.Handler())
	t.Cleanup(ohs.Close)
	w.reg.Reset()
	code, answer = post(t, ohs.URL, "", pubsub(`{"action":"INSERT","digest":"`+w.repo+"@"+w.bundle.String()+`"}`, "offline"))
	if code != http.StatusOK || !strings.Contains(answer, `"rejected":1`) || w.reg.Count("GET manifest") != 0 {
		t.Errorf("POST (no reader) = %d %s with %d reads; want the event rejected, nothing read", code, answer, w.reg.Count("GET manifest"))
	}
}

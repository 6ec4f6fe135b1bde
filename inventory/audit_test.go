package inventory_test

import (
	"context"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
)

func auditEvent(id, verdict string) inventory.AuditEvent {
	return inventory.AuditEvent{Source: "distribution", EventID: id, Action: "push", Registry: "r.example",
		Repository: "r.example/prod/app", Digest: digest('a'), Tag: "v1", Verdict: verdict, Reason: "promoted", Detail: "d " + id}
}

func TestRecordAuditEventsOncePerID(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	got, err := db.RecordAuditEvents(ctx, []inventory.AuditEvent{auditEvent("e1", "VERIFIED"), auditEvent("e2", "REJECTED"), auditEvent("e1", "REJECTED")})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]bool{true, true, false}, got); diff != "" {
		t.Errorf("RecordAuditEvents inserted (-want +got):\n%s", diff)
	}
	// A redelivery changes nothing, not even the verdict of the first copy.
	got, err = db.RecordAuditEvents(ctx, []inventory.AuditEvent{auditEvent("e2", "VERIFIED")})
	if err != nil || len(got) != 1 || got[0] {
		t.Errorf("redelivered e2: inserted %v, err %v; want [false], nil", got, err)
	}
	// The same id from another source is another event.
	other := auditEvent("e1", "VERIFIED")
	other.Source = "pubsub"
	if got, err := db.RecordAuditEvents(ctx, []inventory.AuditEvent{other}); err != nil || !got[0] {
		t.Errorf("pubsub e1: inserted %v, err %v; want [true], nil", got, err)
	}
	all, err := db.AuditEvents(ctx, inventory.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range all {
		ids = append(ids, e.Source+"/"+e.EventID+"/"+e.Verdict)
	}
	if diff := cmp.Diff([]string{"distribution/e1/VERIFIED", "distribution/e2/REJECTED", "pubsub/e1/VERIFIED"}, ids); diff != "" {
		t.Errorf("AuditEvents (-want +got):\n%s", diff)
	}
	if !all[0].ReceivedAt.Equal(db.Now()) || all[0].Detail != "d e1" || all[0].Repository != "r.example/prod/app" {
		t.Errorf("stored event = %+v", all[0])
	}
	rejected, err := db.AuditEvents(ctx, inventory.AuditFilter{Verdict: "REJECTED"})
	if err != nil || len(rejected) != 1 || rejected[0].EventID != "e2" {
		t.Errorf("AuditEvents(REJECTED) = %+v, %v; want e2 only", rejected, err)
	}
}

func TestRecordAuditEventsRejectsUnknownVerdict(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	_, err := db.RecordAuditEvents(ctx, []inventory.AuditEvent{auditEvent("ok", "VERIFIED"), auditEvent("bad", "MAYBE")})
	if err == nil {
		t.Fatal("RecordAuditEvents accepted verdict MAYBE")
	}
	// One transaction: the good event went with the bad one.
	if all, _ := db.AuditEvents(ctx, inventory.AuditFilter{}); len(all) != 0 {
		t.Errorf("after a failed write, %d events stored, want 0", len(all))
	}
}

func TestAuditEventsSinceAndLimit(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var evs []inventory.AuditEvent
	for i, id := range []string{"a", "b", "c", "d"} {
		e := auditEvent(id, "REJECTED")
		e.ReceivedAt = base.Add(time.Duration(i) * 24 * time.Hour)
		evs = append(evs, e)
	}
	if _, err := db.RecordAuditEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	got, err := db.AuditEvents(ctx, inventory.AuditFilter{Since: base.Add(36 * time.Hour)})
	if err != nil || len(got) != 2 || got[0].EventID != "c" {
		t.Errorf("AuditEvents(since day 1.5) = %+v, %v; want c, d", got, err)
	}
	got, err = db.AuditEvents(ctx, inventory.AuditFilter{Limit: 1})
	if err != nil || len(got) != 1 || got[0].EventID != "a" {
		t.Errorf("AuditEvents(limit 1) = %+v, %v; want a", got, err)
	}
}

// Concurrent deliveries of one event (a sender retrying while the first
// request is still being answered) store it once and report it new once.
func TestRecordAuditEventsConcurrentRedelivery(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	news := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := db.RecordAuditEvents(ctx, []inventory.AuditEvent{auditEvent("same", "REJECTED")})
			if err != nil {
				t.Error(err)
				return
			}
			if got[0] {
				mu.Lock()
				news++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if news != 1 {
		t.Errorf("%d deliveries reported new, want 1", news)
	}
}

func TestParentsAndLatestTagChanges(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	idx := &inventory.Manifest{Digest: digest('i'), MediaType: string(types.OCIImageIndex), IsIndex: true, Raw: []byte(`{}`),
		Children: []inventory.Child{{Digest: digest('a')}, {Digest: digest('b')}}}
	idx2 := &inventory.Manifest{Digest: digest('j'), MediaType: string(types.OCIImageIndex), IsIndex: true, Raw: []byte(`{"j":1}`),
		Children: []inventory.Child{{Digest: digest('a')}}}
	st := inventory.RepositoryState{Name: "r.example/prod/app", Tags: map[string]string{"v1": digest('i'), "v2": digest('j'), "solo": digest('d')},
		New: []*inventory.Manifest{idx, idx2, image('a'), image('b'), image('d')}}
	if _, err := db.WriteRepository(ctx, 0, st); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string][]string{digest('a'): {digest('i'), digest('j')}, digest('b'): {digest('i')}, digest('d'): nil} {
		got, err := db.Parents(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Parents(%s) (-want +got):\n%s", d[:8], diff)
		}
	}
	// solo removed, v1 moved, v2 unchanged: the latest change of each tag.
	st.Tags = map[string]string{"v1": digest('d'), "v2": digest('j')}
	st.New = nil
	if _, err := db.WriteRepository(ctx, 0, st); err != nil {
		t.Fatal(err)
	}
	got, err := db.LatestTagChanges(ctx, "r.example/prod")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range got {
		lines = append(lines, e.Tag+" "+e.Change+" "+short(e.Old)+">"+short(e.New))
	}
	if diff := cmp.Diff([]string{"solo removed d>", "v1 moved i>d", "v2 added >j"}, lines); diff != "" {
		t.Errorf("LatestTagChanges (-want +got):\n%s", diff)
	}
	if got, _ := db.LatestTagChanges(ctx, "r.example/pro"); len(got) != 0 {
		t.Errorf("LatestTagChanges(r.example/pro) = %v, want none (not below by whole segments)", got)
	}
}

func short(d string) string {
	if d == "" {
		return ""
	}
	return d[7:8]
}

func TestSubjects(t *testing.T) {
	ctx := context.Background()
	db, _ := mustOpen(t)
	w := newReferrerWorld(t)
	src, dst := "reg.example/staging/app", "reg.example/prod/app"
	if _, err := db.WriteRepository(ctx, 0, inventory.RepositoryState{Name: src,
		Tags: map[string]string{"v1": w.img.Digest, referrer.Tag(w.img.Digest, referrer.CosignSignature): w.sig.Digest,
			referrer.Tag(w.img.Digest, referrer.TagSchema): w.fallback.Digest, referrer.Tag(w.bundle.Digest, referrer.CosignSignature): w.bundleSig.Digest},
		New: []*inventory.Manifest{w.img, w.sig, w.bundle, w.fallback, w.bundleSig}}); err != nil {
		t.Fatal(err)
	}
	// dst holds the image and the .sig, which its referrers API lists for
	// another subject (z): what the registry says, recorded as it is.
	if _, err := db.WriteRepository(ctx, 0, inventory.RepositoryState{Name: dst, Tags: map[string]string{"v1": w.img.Digest}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.WriteReferrers(ctx, 0, []inventory.ReferrerState{{Repository: dst, API: map[string][]string{digest('z'): {w.sig.Digest}}}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		repo, digest string
		want         []string
		known        bool
	}{
		{src, w.sig.Digest, []string{w.img.Digest}, true},          // a cosign-tag row
		{src, w.bundle.Digest, []string{w.img.Digest}, true},       // its subject field and a tag-schema row, once
		{src, w.bundleSig.Digest, []string{w.bundle.Digest}, true}, // a signature on the bundle
		{src, w.img.Digest, nil, true},                             // refers to nothing
		{dst, w.sig.Digest, []string{digest('z')}, true},           // dst's rows only: src's cosign tag is not dst's
		{dst, w.bundle.Digest, []string{w.img.Digest}, true},       // the subject field holds wherever the bytes are
		{"reg.example/prod/other", w.sig.Digest, nil, true},        // no row there, no subject field
		{dst, digest('9'), nil, false},                             // a manifest the inventory lacks
	} {
		got, known, err := db.Subjects(ctx, tc.repo, tc.digest)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" || known != tc.known {
			t.Errorf("Subjects(%s, %s) = %v, known %v; want known %v (-want +got):\n%s", tc.repo, tc.digest[:12], got, known, tc.known, diff)
		}
	}
}

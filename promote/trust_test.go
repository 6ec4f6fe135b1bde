package promote_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipdev/cip/internal/apipath"
	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/promote"
)

// damage changes one byte of the stored bytes of manifest digest, as a
// bit flip on disk would (PRAGMA integrity_check cannot see it: SQLite
// keeps no page checksums), through a connection of the test's own.
func damage(t *testing.T, path, digest string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var raw []byte
	if err := db.QueryRow(`SELECT raw FROM manifests WHERE digest = ?`, digest).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndex(string(raw), `"size":`) + len(`"size":`)
	raw[i] ^= 1 // a digit becomes another digit
	if _, err := db.Exec(`UPDATE manifests SET raw = ? WHERE digest = ?`, raw, digest); err != nil {
		t.Fatal(err)
	}
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v; want ok", ok, err)
	}
}

// A manifest whose bytes in the inventory no longer verify is never put,
// by digest or by tag: it is fetched again from the source, verified,
// repaired in the inventory, and the run says so.
func TestCorruptManifestFetchedAgain(t *testing.T) {
	e := newEnv(t)
	e.oneDst = true
	d := e.src.Push(t, "staging/app", "v1", regtest.Image(t, 256, 1, true))
	set := e.manifestSet(entry{"app", d, []string{"v1"}})
	p := e.mustPlan(set)
	damage(t, e.db.Path(), d.String())
	if _, err := e.db.Manifest(context.Background(), d.String()); !errors.Is(err, inventory.ErrCorrupt) || !strings.Contains(err.Error(), d.String()) {
		t.Fatalf("Manifest of the damaged row = %v, want ErrCorrupt naming %s", err, d)
	}
	e.src.Reset()
	rep, err := promote.Promote(context.Background(), e.db, e.client, p, promote.Options{Jobs: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], d.String()) || !strings.Contains(rep.Warnings[0], "staging/app") {
		t.Errorf("warnings = %q, want one naming %s and where it was fetched from", rep.Warnings, d)
	}
	if n := e.src.Count("GET manifest"); n != 1 {
		t.Errorf("source manifest GETs = %d, want 1 (the fetch again)", n)
	}
	got, err := remote.Head(e.d1.Ref(t, "prod/app:v1"))
	if err != nil || got.Digest != d {
		t.Fatalf("prod/app:v1 = %v (%v), want %s", got, err, d)
	}
	if _, err := e.db.Manifest(context.Background(), d.String()); err != nil {
		t.Errorf("Manifest after the repair = %v", err)
	}
}

// When the damaged manifest cannot be fetched again, its row fails and
// nothing of it reaches the destination.
func TestCorruptManifestNotFetchableFails(t *testing.T) {
	e := newEnv(t)
	e.oneDst = true
	d := e.src.Push(t, "staging/app", "v1", regtest.Image(t, 256, 1, true))
	other := e.src.Push(t, "staging/other", "v1", regtest.Image(t, 256, 1, true))
	set := e.manifestSet(entry{"app", d, []string{"v1"}}, entry{"other", other, []string{"v1"}})
	p := e.mustPlan(set)
	damage(t, e.db.Path(), d.String())
	e.src.Delete(t, "staging/app@"+d.String())
	e.d1.Reset()
	_, err := promote.Promote(context.Background(), e.db, e.client, p, promote.Options{Jobs: 4})
	if !errors.Is(err, inventory.ErrCorrupt) || !strings.Contains(err.Error(), d.String()) {
		t.Fatalf("promote = %v, want ErrCorrupt naming %s", err, d)
	}
	if _, err := remote.Head(e.d1.Ref(t, "prod/app@"+d.String())); err == nil {
		t.Error("the damaged digest reached the destination")
	}
	if _, err := remote.Head(e.d1.Ref(t, "prod/app:v1")); err == nil {
		t.Error("prod/app:v1 was put")
	}
	if got, err := remote.Head(e.d1.Ref(t, "prod/other:v1")); err != nil || got.Digest != other {
		t.Errorf("prod/other:v1 = %v (%v), want %s: the other rows go on", got, err, other)
	}
}

// A tag someone pushes to the destination after the plan, before cip tags,
// is refused (naming it) and left as it is; the digest goes up by digest
// first, and the rest of the run completes.
func TestTagPushedAfterPlanIsLeft(t *testing.T) {
	e := newEnv(t)
	e.oneDst = true
	d := e.src.Push(t, "staging/app", "v1", regtest.Image(t, 256, 1, true))
	tagged := e.src.Push(t, "staging/tagrow", "v1", regtest.Image(t, 256, 1, true))
	same := e.src.Push(t, "staging/same", "v1", regtest.Image(t, 256, 1, true))
	// The destination holds tagrow already (a tag row), and will be given
	// same:v1 at the right digest by someone else.
	e.d1.Push(t, "prod/tagrow", "old", mustImage(t, e.src, "staging/tagrow@"+tagged.String()))
	set := e.manifestSet(entry{"app", d, []string{"v1", "v2"}}, entry{"tagrow", tagged, []string{"v1"}}, entry{"same", same, []string{"v1"}})
	p := e.mustPlan(set)
	if p.Pending() != 3 {
		t.Fatalf("pending = %d, want 3", p.Pending())
	}
	// After the plan: someone pushes prod/app:v1 and prod/tagrow:v1 at
	// other images, and prod/same:v1 at the wanted one.
	intruder := e.d1.Push(t, "prod/app", "v1", regtest.Image(t, 128, 1, false))
	intruder2 := e.d1.Push(t, "prod/tagrow", "v1", regtest.Image(t, 128, 1, false))
	e.d1.Push(t, "prod/same", "v1", mustImage(t, e.src, "staging/same@"+same.String()))
	e.d1.Reset()
	_, err := promote.Promote(context.Background(), e.db, e.client, p, promote.Options{Jobs: 4})
	var te *promote.TagTakenError
	if !errors.As(err, &te) || strings.Count(err.Error(), "pushed after the plan") != 2 || !strings.Contains(err.Error(), "prod/app:v1") || !strings.Contains(err.Error(), "prod/tagrow:v1") {
		t.Fatalf("promote = %v, want the two tags pushed after the plan refused, by name", err)
	}
	for ref, want := range map[string]string{
		"prod/app:v1": intruder.String(), "prod/tagrow:v1": intruder2.String(), // left as they are
		"prod/app:v2": d.String(), "prod/app@" + d.String(): d.String(), "prod/same:v1": same.String(),
	} {
		got, err := remote.Head(e.d1.Ref(t, ref))
		if err != nil || got.Digest.String() != want {
			t.Errorf("%s = %v (%v), want %s", ref, got, err, want)
		}
	}
	// PUTs: app and same by digest (copy rows), app:v2 (not v1), no tag
	// for tagrow (taken) or same (already at its digest).
	if n := e.d1.Count("PUT manifest"); n != 3 {
		t.Errorf("destination manifest PUTs = %d, want 3 (%v)", n, e.d1.Counts())
	}
}

// Referrer tags go up as other tags do: the manifest by its digest first,
// the tag after a HEAD right before shows it where cip read it; a cosign
// tag another signer moved in between is refused by name and left, and
// the other referrers still travel.
func TestReferrerTagsByDigestFirst(t *testing.T) {
	e := newEnv(t)
	e.oneDst = true
	img := regtest.Image(t, 256, 1, true)
	d := e.src.Push(t, "staging/app", "v1", img)
	e.src.Sign(t, "staging/app", d, "staging-signature")
	other := e.src.Push(t, "staging/other", "v1", regtest.Image(t, 128, 1, true))
	otherSig := e.src.Sign(t, "staging/other", other, "other-signature")
	sigTag := referrer.Tag(d.String(), referrer.CosignSignature)
	otherTag := referrer.Tag(other.String(), referrer.CosignSignature)
	// The destination holds app with a signature of its own (a merge
	// follows); other is new there.
	e.d1.Push(t, "prod/app", "v1", img)
	own := e.d1.Sign(t, "prod/app", d, "prod-signature")
	set := e.manifestSet(entry{"app", d, []string{"v1"}}, entry{"other", other, []string{"v1"}})
	p := e.planWith(set, referrer.All)

	// Every manifest request to the destination, in order; another signer
	// moves prod/app's .sig at cip's HEAD before its tag PUT.
	var mu gosync.Mutex
	var seq []string
	var moved v1.Hash
	var fired atomic.Bool
	e.d1.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if apipath.Kind(r.URL.Path) != "manifest" {
			return false
		}
		ref := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		mu.Lock()
		seq = append(seq, r.Method+" "+ref)
		mu.Unlock()
		if r.Method == http.MethodHead && ref == sigTag && fired.CompareAndSwap(false, true) {
			// The signer's own requests pass through this func too.
			moved = e.d1.Sign(t, "prod/app", d, "another-signer")
		}
		return false
	})
	_, err := promote.Promote(context.Background(), e.db, e.client, p, promote.Options{Jobs: 4, Referrers: referrer.All})
	e.d1.SetFault(nil)
	var te *promote.TagTakenError
	if !errors.As(err, &te) || te.Tag != sigTag || !strings.Contains(err.Error(), "prod/app:"+sigTag) {
		t.Fatalf("promote = %v, want prod/app:%s refused (moved by another signer)", err, sigTag)
	}
	if got, _ := liveTag(t, e.d1, "prod/app", sigTag); got != moved || moved == own {
		t.Errorf("prod/app:%s = %s, want the other signer's %s left as it is", sigTag, got, moved)
	}
	if got, _ := liveTag(t, e.d1, "prod/other", otherTag); got != otherSig {
		t.Errorf("prod/other:%s = %s, want the source's %s", otherTag, got, otherSig)
	}
	// Each tag PUT comes after its manifest's PUT by digest and a HEAD of
	// the tag.
	mu.Lock()
	defer mu.Unlock()
	at := func(s string) int { return slices.Index(seq, s) }
	put := at("PUT " + otherTag)
	if put < 0 || at("PUT "+otherSig.String()) < 0 || at("PUT "+otherSig.String()) > put || at("HEAD "+otherTag) < 0 || at("HEAD "+otherTag) > put {
		t.Errorf("destination manifest requests %q: want PUT %s, then HEAD and PUT %s", seq, otherSig, otherTag)
	}
	// The other signer's push is the one PUT of the moved tag.
	if n := len(slices.DeleteFunc(slices.Clone(seq), func(s string) bool { return s != "PUT "+sigTag })); n != 1 {
		t.Errorf("destination manifest requests %q: the moved tag %s was put %d times, want once (by the other signer)", seq, sigTag, n)
	}
}

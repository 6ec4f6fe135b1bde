package promote_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cipdev/cip/internal/apipath"
	"github.com/cipdev/cip/promote"
)

// Two destination registries: each source blob is read once and sent to
// both (the fan-out), not read once per destination.
func TestPromoteReadsEachSourceBlobOnce(t *testing.T) {
	e := newEnv(t)
	entries := population(t, e.src)
	set := e.manifestSet(entries...)
	p := e.mustPlan(set)
	e.src.Reset()
	rep, err := promote.Promote(t.Context(), e.db, e.client, p, promote.Options{Jobs: 4})
	if err != nil {
		t.Fatalf("promote: %v", err)
	}
	checkPromoted(t, e, entries)
	// Each registry gets each distinct blob uploaded once (other
	// repositories of the same registry mount it).
	gets, up1, up2 := e.src.Count("GET blob"), e.d1.Count("PUT upload"), e.d2.Count("PUT upload")
	if up1 == 0 || up1 != up2 {
		t.Fatalf("uploads: d1 %d, d2 %d; want the same, not 0", up1, up2)
	}
	if gets != up1 {
		t.Errorf("source GET blob = %d, want %d (each blob read once for both destinations)", gets, up1)
	}
	if len(rep.Mismatches) != 0 {
		t.Errorf("mismatches: %v", rep.Mismatches)
	}
}

// A source that serves other bytes than the digest says: the fan-out's
// read fails on the digest (before any upload of those bytes), and no
// manifest is put. (A blob streamed per destination is checked by the
// registry instead, against PUT ?digest=.)
func TestPromoteFanOutVerifiesDigest(t *testing.T) {
	e := newEnv(t)
	entries := population(t, e.src)[:1]
	set := e.manifestSet(entries...)
	p := e.mustPlan(set)
	e.src.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || apipath.Kind(r.URL.Path) != "blob" {
			return false
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(strings.Repeat("x", 1024)))
		return true
	})
	_, err := promote.Promote(t.Context(), e.db, e.client, p, promote.Options{Jobs: 4})
	if err == nil || !strings.Contains(err.Error(), "read blob sha256:") {
		t.Fatalf("promote with a corrupt source: err = %v, want a read blob error", err)
	}
	if n := e.d1.Count("PUT manifest") + e.d2.Count("PUT manifest"); n != 0 {
		t.Errorf("corrupt source: %d manifest PUTs, want 0", n)
	}
}

package promote_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
	"github.com/cipdev/cip/promote"
	"github.com/cipdev/cip/registry"
)

// k8sManifests is the real registry.k8s.io thin-manifest directory, next to
// the repository (a user's clone does not have it).
var k8sManifests = filepath.Join("..", "..", "shared", "realdata", "k8s.io", "registry.k8s.io")

// keepPercent of the wanted (destination, image, digest) entries are in
// each destination: a steady state with a few new promotions pending.
const keepPercent = 95

func keep(dst, image, digest string) bool {
	h := sha256.Sum256([]byte(dst + "\x00" + image + "\x00" + digest))
	return binary.BigEndian.Uint32(h[:4])%100 < keepPercent
}

// seedK8sInventory writes a synthetic inventory for the wanted rows: every
// source repository holds all its wanted digests and tags, every
// destination repository keepPercent of them. It returns the number of
// (repository, digest) edges.
func seedK8sInventory(b *testing.B, db *inventory.DB, wanted []manifest.Promotion) int {
	b.Helper()
	ctx := context.Background()
	type repoState struct {
		tags     map[string]string
		untagged map[string]bool
	}
	repos := map[string]*repoState{}
	add := func(repo, digest string, tags []string) {
		st, ok := repos[repo]
		if !ok {
			st = &repoState{tags: map[string]string{}, untagged: map[string]bool{}}
			repos[repo] = st
		}
		if len(tags) == 0 {
			st.untagged[digest] = true
		}
		for _, t := range tags {
			st.tags[t] = digest
		}
	}
	digests := map[string]bool{}
	for _, w := range wanted {
		digests[w.Digest] = true
		add(w.Src+"/"+w.Image, w.Digest, w.Tags)
		if keep(w.Dst, w.Image, w.Digest) {
			add(w.Dst+"/"+w.Image, w.Digest, w.Tags)
		}
	}
	ms := make([]*inventory.Manifest, 0, len(digests))
	for d := range digests {
		ms = append(ms, &inventory.Manifest{Digest: d, MediaType: string(types.OCIManifestSchema1), Raw: []byte(`{"schemaVersion":2}`)})
	}
	if err := db.InsertManifests(ctx, ms); err != nil {
		b.Fatal(err)
	}
	for name, st := range repos {
		rs := inventory.RepositoryState{Name: name, Tags: st.tags}
		for d := range st.untagged {
			tagged := false
			for _, td := range st.tags {
				if td == d {
					tagged = true
					break
				}
			}
			if !tagged {
				rs.Untagged = append(rs.Untagged, d)
			}
		}
		if _, err := db.WriteRepository(ctx, 0, rs); err != nil {
			b.Fatal(err)
		}
	}
	return int(readInventory(b, db.Path(), `SELECT COUNT(*) FROM repository_manifests`)[0][0].(int64))
}

// readInventory reads a statement's rows through inventory.OpenReadOnly.
func readInventory(b *testing.B, path, q string) [][]any {
	b.Helper()
	ctx := context.Background()
	r, err := inventory.OpenReadOnly(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	rows, err := r.Query(ctx, q)
	if err != nil {
		b.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		out = append(out, rows.Row())
	}
	if err := rows.Err(); err != nil {
		b.Fatalf("%s: %v", q, err)
	}
	return out
}

// vacuumInto writes a compact copy of the inventory at path to dst with
// SQLite's VACUUM INTO, on a connection of its own (the inventory's
// readers refuse it): a benchmark fixture, not something cip does.
func vacuumInto(b *testing.B, path, dst string) {
	b.Helper()
	d, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Exec(`VACUUM INTO ?`, dst); err != nil {
		b.Fatalf("copy %s to %s: %v", path, dst, err)
	}
}

// offlineTransport refuses every request and counts them: an offline plan
// sends none.
type offlineTransport struct{ requests atomic.Int64 }

func (o *offlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	o.requests.Add(1)
	return nil, fmt.Errorf("offline plan sent %s %s", req.Method, req.URL)
}

// peakRSS reads the process's peak resident set (VmHWM) in bytes.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// resetPeakRSS frees what it can and resets VmHWM (Linux: writing 5 to
// clear_refs), so that peakRSS afterwards measures what follows.
func resetPeakRSS() {
	runtime.GC()
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// BenchmarkPlanK8s plans the full real registry.k8s.io manifests (loaded
// with --skip-invalid) against a synthetic inventory in which every
// destination holds 95% of the wanted entries: the plan of a steady-state
// promoter run, from the inventory alone (promote.Options.Offline: the
// syncs and probes before it are registry traffic, measured by bench/).
// MakePlan includes loading the M tables (a new set), the plan SQL and the
// tag-move check; MakePlanWarm is the same with the manifests already
// loaded once. Target (issue 6): ≤ 2 s and ≤ 200 MB peak RSS.
//
// Seeding the inventory takes minutes; with CIP_BENCH_K8S_DB=FILE the
// seeded inventory is saved to FILE and reused from it while it exists
// (delete it when the seeding or the schema changes).
func BenchmarkPlanK8s(b *testing.B) {
	if _, err := os.Stat(k8sManifests); err != nil {
		b.Skipf("real registry.k8s.io manifests not present at %s (only in the shared workspace): %v", k8sManifests, err)
	}
	ctx := context.Background()
	set, err := manifest.Load("", k8sManifests, manifest.Options{SkipInvalid: true})
	if err != nil {
		b.Fatal(err)
	}
	wanted := set.Promotions()
	dbPath := filepath.Join(b.TempDir(), "inventory.db")
	cache := os.Getenv("CIP_BENCH_K8S_DB")
	cached := false
	if cache != "" {
		if raw, err := os.ReadFile(cache); err == nil {
			if err := os.WriteFile(dbPath, raw, 0o600); err != nil {
				b.Fatal(err)
			}
			cached = true
		}
	}
	db, err := inventory.Open(ctx, dbPath)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var edges int
	if !cached {
		edges = seedK8sInventory(b, db, wanted)
		if cache != "" {
			vacuumInto(b, dbPath, cache)
		}
	} else {
		edges = int(readInventory(b, dbPath, `SELECT COUNT(*) FROM repository_manifests`)[0][0].(int64))
	}
	dbBytes := readInventory(b, dbPath, `SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()`)[0][0].(int64)
	nWanted := len(wanted)
	sources := map[string]bool{}
	for _, w := range wanted {
		sources[w.Src+"/"+w.Image] = true
	}
	b.Logf("%d wanted (destination, image, digest) rows, %d (repository, digest) edges in the inventory, %d MB", nWanted, edges, dbBytes>>20)
	wanted = nil // not live while measuring

	b.Run("LoadManifests", func(b *testing.B) {
		b.ReportAllocs()
		resetPeakRSS()
		for b.Loop() {
			if _, err := manifest.Load("", k8sManifests, manifest.Options{SkipInvalid: true}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
	})
	// MakePlan loads the manifests into M (a new set the first time) and
	// plans; MakePlanWarm plans again with the same manifests, which reuse
	// the stored set.
	// MakePlanWarmReferrers is MakePlanWarm with --referrers all: the refer
	// rows' statement over an inventory that records no referrer (today's
	// registry.k8s.io, whose signatures cip has not seen yet).
	for _, name := range []string{"MakePlan", "MakePlanWarm", "MakePlanWarmReferrers"} {
		sel := referrer.Selection{}
		if name == "MakePlanWarmReferrers" {
			sel = referrer.All
		}
		b.Run(name, func(b *testing.B) {
			tr := &offlineTransport{}
			client := registry.New(registry.Options{
				Transport: registry.NewTransport(registry.TransportOptions{Base: tr, MaxRetries: -1}),
				Keychain:  authn.NewMultiKeychain(),
			})
			b.ReportAllocs()
			resetPeakRSS()
			var rows, pending int
			for b.Loop() {
				p, err := promote.MakePlan(ctx, db, client, set, k8sManifests, promote.Options{Offline: true, Referrers: sel})
				if err != nil {
					b.Fatal(err)
				}
				rows = 0
				for _, s := range p.Summaries() {
					rows += s.Copy + s.Tag + s.Skip + s.Lost
				}
				pending = p.Pending()
			}
			b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
			b.ReportMetric(float64(rows), "rows")
			b.ReportMetric(float64(pending), "pending")
			if n := tr.requests.Load(); n > 0 {
				b.Fatalf("an offline plan sent %d requests", n)
			}
			if rows != nWanted || pending == 0 || pending > rows/10 {
				b.Fatalf("plan has %d pending rows of %d (%d wanted), want about %d%%", pending, rows, nWanted, 100-keepPercent)
			}
		})
	}
	// MakePlanCold: the first plan into empty destinations (a new mirror
	// for everything, or a first run), on a copy of the inventory without
	// its destination repositories: every wanted row is pending, listed.
	b.Run("MakePlanCold", func(b *testing.B) {
		coldPath := filepath.Join(b.TempDir(), "cold.db")
		vacuumInto(b, dbPath, coldPath)
		cold, err := inventory.Open(ctx, coldPath)
		if err != nil {
			b.Fatal(err)
		}
		defer cold.Close()
		for _, row := range readInventory(b, coldPath, `SELECT name FROM repositories`) {
			if n := row[0].(string); !sources[n] {
				if _, err := cold.RemoveRepository(ctx, 0, n); err != nil {
					b.Fatal(err)
				}
			}
		}
		client := registry.New(registry.Options{
			Transport: registry.NewTransport(registry.TransportOptions{Base: &offlineTransport{}, MaxRetries: -1}),
			Keychain:  authn.NewMultiKeychain(),
		})
		b.ReportAllocs()
		resetPeakRSS()
		var pending int
		for b.Loop() {
			p, err := promote.MakePlan(ctx, cold, client, set, k8sManifests, promote.Options{Offline: true})
			if err != nil {
				b.Fatal(err)
			}
			pending = p.Pending()
		}
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
		b.ReportMetric(float64(pending), "pending")
		if pending != nWanted {
			b.Fatalf("cold plan has %d pending rows, want all %d", pending, nWanted)
		}
	})
}

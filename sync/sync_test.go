package sync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
)

func mustOpen(t *testing.T) *inventory.DB {
	t.Helper()
	db, err := inventory.Open(context.Background(), filepath.Join(t.TempDir(), "inv.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func client() *registry.Client {
	return registry.New(registry.Options{Transport: registry.NewTransport(registry.TransportOptions{Backoff: time.Millisecond})})
}

func run(t *testing.T, db *inventory.DB, c *registry.Client, refs ...string) *cipsync.Result {
	t.Helper()
	var targets []cipsync.Target
	for _, r := range refs {
		targets = append(targets, cipsync.Target{Ref: r})
	}
	res, err := cipsync.Run(context.Background(), db, c, targets, cipsync.Options{Jobs: 4})
	if err != nil {
		t.Fatalf("sync %v: %v", refs, err)
	}
	return res
}

// queryStrings reads a statement's rows through inventory.OpenReadOnly, as
// cip query does, each row as its values joined by spaces.
func queryStrings(t *testing.T, db *inventory.DB, q string, args ...any) []string {
	t.Helper()
	ctx := context.Background()
	r, err := inventory.OpenReadOnly(ctx, db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, err := r.Query(ctx, q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals := rows.Row()
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(parts, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSyncPopulation(t *testing.T) {
	reg := regtest.New(t)
	img := regtest.Image(t, 1024, 2, false)
	imgD := reg.Push(t, "staging/app", "v1", img)
	reg.Tag(t, "staging/app", imgD, "latest")
	idx := regtest.Index(t, regtest.Platforms, true)
	idxD := reg.Push(t, "staging/multi", "v2", idx)
	// A nested index: an index whose child is the index above.
	nested := regtest.Nest(t, idx)
	nestedD := reg.Push(t, "staging/nested", "v3", nested)
	reg.Push(t, "other/x", "v1", regtest.Image(t, 64, 1, true))

	db := mustOpen(t)
	res := run(t, db, client(), reg.Host+"/staging")

	if got := len(res.Registries); got != 1 {
		t.Fatalf("registries = %d, want 1", got)
	}
	st := res.Registries[0]
	// app: 1 image; multi: index + 3 children; nested: outer + inner + 3 children (inner and children already fetched via multi or not).
	if st.Repositories != 3 || st.Tags != 4 {
		t.Errorf("stats = %+v, want 3 repositories, 4 tags", st)
	}
	if st.ManifestsFetched != 1+4+1 {
		t.Errorf("manifests fetched = %d, want 6 (shared digests fetched once)", st.ManifestsFetched)
	}
	tags := queryStrings(t, db, `SELECT r.name, t.tag, t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id ORDER BY 1, 2`)
	want := []string{
		reg.Host + "/staging/app latest " + imgD.String(),
		reg.Host + "/staging/app v1 " + imgD.String(),
		reg.Host + "/staging/multi v2 " + idxD.String(),
		reg.Host + "/staging/nested v3 " + nestedD.String(),
	}
	if diff := cmp.Diff(want, tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	// Children with platforms.
	plats := queryStrings(t, db, `SELECT os || '/' || architecture || '/' || variant FROM manifest_children WHERE parent_digest = ? ORDER BY position`, idxD.String())
	if diff := cmp.Diff([]string{"linux/amd64/", "linux/arm64/v8", "linux/s390x/"}, plats); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
	// The nested repository holds outer, inner and the three grandchildren.
	n := queryStrings(t, db, `SELECT COUNT(*) FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id WHERE r.name = ?`, reg.Host+"/staging/nested")
	if n[0] != "5" {
		t.Errorf("nested repository holds %s digests, want 5", n[0])
	}
	// Blobs of the single image: config + 2 layers, with sizes.
	layers, _ := img.Layers()
	blobs := queryStrings(t, db, `SELECT kind, blob_digest, size FROM manifest_blobs WHERE manifest_digest = ? ORDER BY position`, imgD.String())
	if len(blobs) != 1+len(layers) || !strings.HasPrefix(blobs[0], "config ") {
		t.Errorf("blobs = %v, want config + %d layers", blobs, len(layers))
	}
	for i, l := range layers {
		ld, _ := l.Digest()
		sz, _ := l.Size()
		if want := fmt.Sprintf("layer %s %d", ld, sz); blobs[i+1] != want {
			t.Errorf("blob %d = %q, want %q", i+1, blobs[i+1], want)
		}
	}
	// other/x lies outside the prefix.
	if got := queryStrings(t, db, `SELECT COUNT(*) FROM repositories WHERE name LIKE '%other%'`); got[0] != "0" {
		t.Errorf("other/x was synced though outside the prefix")
	}
	// Raw bytes are kept exactly.
	raw, _ := idx.RawManifest()
	m, err := db.Manifest(context.Background(), idxD.String())
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Raw) != string(raw) {
		t.Errorf("stored raw manifest differs from the pushed one")
	}
}

func TestResyncFetchesNoManifest(t *testing.T) {
	reg := regtest.New(t)
	for i := range 5 {
		reg.Push(t, fmt.Sprintf("p/r%d", i), "v1", regtest.Index(t, regtest.Platforms[:2], i%2 == 0))
		reg.Push(t, fmt.Sprintf("p/r%d", i), "v2", regtest.Image(t, 256, 1, false))
	}
	db := mustOpen(t)
	run(t, db, client(), reg.Host)
	if got := reg.Count("GET manifest"); got != 5*(3+1) {
		t.Errorf("cold sync: %d manifest GETs, want %d", got, 5*4)
	}
	reg.Reset()
	res := run(t, db, client(), reg.Host)
	if got := reg.Count("GET manifest"); got != 0 {
		t.Errorf("re-sync: %d manifest GETs, want 0", got)
	}
	if got := reg.Count("HEAD manifest"); got != 10 {
		t.Errorf("re-sync: %d manifest HEADs, want 10 (one per tag)", got)
	}
	if res.Registries[0].ManifestsFetched != 0 || len(res.Changes) != 0 {
		t.Errorf("re-sync result = %+v, %v; want nothing fetched or changed", res.Registries[0], res.Changes)
	}
}

func TestVanishedAndMovedTags(t *testing.T) {
	reg := regtest.New(t)
	a := reg.Push(t, "p/app", "v1", regtest.Image(t, 128, 1, true))
	reg.Tag(t, "p/app", a, "latest")
	reg.Tag(t, "p/app", a, "old")
	goneD := reg.Push(t, "p/gone", "v1", regtest.Image(t, 128, 1, true))
	db := mustOpen(t)
	run(t, db, client(), reg.Host+"/p")

	b := reg.Push(t, "p/app", "latest", regtest.Image(t, 128, 1, true)) // moves latest
	reg.Delete(t, "p/app:old")
	reg.Delete(t, "p/gone:v1") // the catalog still lists p/gone, now with no tags

	res := run(t, db, client(), reg.Host+"/p")
	var got []string
	for _, c := range res.Changes {
		got = append(got, fmt.Sprintf("%s:%s %s %s->%s", strings.TrimPrefix(c.Repository, reg.Host+"/"), c.Tag, c.Change, short(c.Old), short(c.New)))
	}
	want := []string{
		"p/app:latest moved " + short(a.String()) + "->" + short(b.String()),
		"p/app:old removed " + short(a.String()) + "->",
		"p/gone:v1 removed " + short(goneD.String()) + "->",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	hist := queryStrings(t, db, `SELECT change, COUNT(*) FROM tag_history GROUP BY change ORDER BY change`)
	if diff := cmp.Diff([]string{"added 4", "moved 1", "removed 2"}, hist); diff != "" {
		t.Errorf("tag history (-want +got):\n%s", diff)
	}
	tags, _ := db.Tags(context.Background(), reg.Host+"/p/app")
	if diff := cmp.Diff(map[string]string{"v1": a.String(), "latest": b.String()}, tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
}

func short(d string) string {
	if len(d) > 15 {
		return d[7:15]
	}
	return d
}

func TestRemovedRepositoryExact(t *testing.T) {
	reg := regtest.New(t)
	reg.Push(t, "p/app", "v1", regtest.Image(t, 128, 1, true))
	db := mustOpen(t)
	run(t, db, client(), reg.Host+"/p/app")
	reg.Delete(t, "p/app:v1")
	// ggcr's registry forgets a repository with no tags only in the catalog
	// sense; an exact target of a missing repository removes it.
	res, err := cipsync.Run(context.Background(), db, client(), []cipsync.Target{{Ref: reg.Host + "/p/missing", Exact: true}}, cipsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 0 {
		t.Errorf("changes for a never-seen missing repository: %v", res.Changes)
	}
	repos, _ := db.Repositories(context.Background(), reg.Host)
	if diff := cmp.Diff([]string{reg.Host + "/p/app"}, repos); diff != "" {
		t.Errorf("repositories (-want +got):\n%s", diff)
	}
}

func TestTagPagination(t *testing.T) {
	reg := regtest.New(t)
	d := reg.Push(t, "p/many", "t0000", regtest.Image(t, 64, 1, true))
	const n = 1203 // more than one page of 1000
	for i := 1; i < n; i++ {
		reg.Tag(t, "p/many", d, fmt.Sprintf("t%04d", i))
	}
	db := mustOpen(t)
	reg.Reset()
	run(t, db, client(), reg.Host+"/p/many")
	tags, _ := db.Tags(context.Background(), reg.Host+"/p/many")
	if len(tags) != n {
		t.Errorf("synced %d tags, want %d", len(tags), n)
	}
	if got := reg.Count("GET tags"); got < 2 {
		t.Errorf("tags/list requests = %d, want >= 2 (paginated)", got)
	}
}

func TestLinkPagination(t *testing.T) {
	reg := regtest.New(t)
	d := reg.Push(t, "p/linked", "a", regtest.Image(t, 64, 1, true))
	reg.Tag(t, "p/linked", d, "b")
	reg.Tag(t, "p/linked", d, "c")
	// Serve tags one per page with Link headers, as docker-registry does.
	all := []string{"a", "b", "c"}
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/tags/list") {
			return false
		}
		last := r.URL.Query().Get("last")
		i := sort.SearchStrings(all, last)
		if last != "" {
			i++
		}
		page := all[i : i+1]
		if i+1 < len(all) {
			w.Header().Set("Link", fmt.Sprintf(`<%s?n=1&last=%s>; rel="next"`, r.URL.Path, page[0]))
		}
		json.NewEncoder(w).Encode(map[string]any{"name": "p/linked", "tags": page})
		return true
	})
	db := mustOpen(t)
	run(t, db, client(), reg.Host+"/p/linked")
	tags, _ := db.Tags(context.Background(), reg.Host+"/p/linked")
	if len(tags) != 3 || reg.Count("GET tags") != 3 {
		t.Errorf("tags = %v after %d pages; want 3 tags over 3 pages", tags, reg.Count("GET tags"))
	}
}

func TestGCRExtension(t *testing.T) {
	reg := regtest.New(t)
	img := regtest.Image(t, 64, 1, true)
	tagged := reg.Push(t, "proj/app", "v1", img)
	untagged := reg.Push(t, "proj/app", "", regtest.Image(t, 64, 1, false))
	subD := reg.Push(t, "proj/app/sub", "s1", regtest.Image(t, 64, 1, true))
	// A GCR-style tags/list: a digest -> tags map (untagged digests too) and
	// child repositories; no catalog.
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.HasSuffix(r.URL.Path, "/_catalog"):
			w.WriteHeader(http.StatusNotFound)
			return true
		case r.URL.Path == "/v2/proj/app/tags/list":
			json.NewEncoder(w).Encode(map[string]any{
				"name": "proj/app", "child": []string{"sub"}, "tags": []string{"v1"},
				"manifest": map[string]any{
					tagged.String():   map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "tag": []string{"v1"}},
					untagged.String(): map[string]any{"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "tag": []string{}},
				},
			})
			return true
		case r.URL.Path == "/v2/proj/app/sub/tags/list":
			json.NewEncoder(w).Encode(map[string]any{
				"name": "proj/app/sub", "child": []string{}, "tags": []string{"s1"},
				"manifest": map[string]any{subD.String(): map[string]any{"tag": []string{"s1"}}},
			})
			return true
		}
		return false
	})
	db := mustOpen(t)
	reg.Reset()
	run(t, db, client(), reg.Host+"/proj/app")
	if got := reg.Count("HEAD manifest"); got != 0 {
		t.Errorf("HEADs = %d, want 0 (the extension names every digest)", got)
	}
	got := queryStrings(t, db, `SELECT r.name, rm.digest FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id ORDER BY 1, 2`)
	want := []string{reg.Host + "/proj/app " + tagged.String(), reg.Host + "/proj/app " + untagged.String(), reg.Host + "/proj/app/sub " + subD.String()}
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("repository contents (-want +got):\n%s", diff)
	}
}

func TestRetryAfter429(t *testing.T) {
	reg := regtest.New(t)
	reg.Push(t, "p/app", "v1", regtest.Image(t, 64, 1, true))
	var mu gosync.Mutex
	throttled := 0
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		// A first crawl GETs tags' manifests, a later one HEADs them.
		if (r.Method == http.MethodHead || r.Method == http.MethodGet) && strings.Contains(r.URL.Path, "/manifests/") {
			mu.Lock()
			defer mu.Unlock()
			if throttled < 2 {
				throttled++
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(http.StatusTooManyRequests)
				return true
			}
		}
		return false
	})
	var slept []time.Duration
	tr := registry.NewTransport(registry.TransportOptions{Sleep: func(_ context.Context, d time.Duration) error {
		mu.Lock()
		slept = append(slept, d)
		mu.Unlock()
		return nil
	}})
	c := registry.New(registry.Options{Transport: tr})
	db := mustOpen(t)
	run(t, db, c, reg.Host+"/p/app")
	if diff := cmp.Diff([]time.Duration{7 * time.Second, 7 * time.Second}, slept); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	tags, _ := db.Tags(context.Background(), reg.Host+"/p/app")
	if len(tags) != 1 {
		t.Errorf("tags = %v, want v1 synced after the retries", tags)
	}
}

func TestRepositoryErrorKeepsOthers(t *testing.T) {
	reg := regtest.New(t)
	reg.Push(t, "p/good", "v1", regtest.Image(t, 64, 1, true))
	reg.Push(t, "p/bad", "v1", regtest.Image(t, 64, 1, true))
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/v2/p/bad/manifests/") {
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		return false
	})
	db := mustOpen(t)
	_, err := cipsync.Run(context.Background(), db, client(), []cipsync.Target{{Ref: reg.Host + "/p"}}, cipsync.Options{})
	if err == nil || !strings.Contains(err.Error(), "p/bad") {
		t.Fatalf("err = %v, want an error naming p/bad", err)
	}
	repos, _ := db.Repositories(context.Background(), reg.Host)
	if diff := cmp.Diff([]string{reg.Host + "/p/good"}, repos); diff != "" {
		t.Errorf("repositories (-want +got):\n%s", diff)
	}
}

// With a tag TTL, a re-sync takes tags the registry still lists from the
// inventory while they are fresh (no HEAD), HEADs new tags, forgets removed
// ones, and HEADs everything again once the confirmations have expired; a
// moved tag goes unnoticed only until then.
func TestTagTTL(t *testing.T) {
	reg := regtest.New(t)
	a := reg.Push(t, "p/app", "v1", regtest.Image(t, 128, 1, true))
	reg.Tag(t, "p/app", a, "latest")
	reg.Push(t, "p/app", "old", regtest.Image(t, 128, 1, true))
	db := mustOpen(t)
	clock := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return clock }
	ctx := context.Background()
	crawl := func(ttl time.Duration) *cipsync.Result {
		t.Helper()
		reg.Reset()
		res, err := cipsync.Run(ctx, db, client(), []cipsync.Target{{Ref: reg.Host + "/p/app", Exact: true}}, cipsync.Options{Jobs: 4, ConfirmTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	crawl(0)

	// Fresh: only the new tag is HEADed; the removed one is forgotten.
	clock = clock.Add(5 * time.Minute)
	b := reg.Push(t, "p/app", "v2", regtest.Image(t, 128, 1, true))
	reg.Delete(t, "p/app:old")
	moved := reg.Push(t, "p/app", "latest", regtest.Image(t, 128, 1, true)) // someone moves latest
	reg.Reset()
	res := crawl(10 * time.Minute)
	if got := reg.Count("HEAD manifest"); got != 1 {
		t.Errorf("fresh re-sync: %d manifest HEADs, want 1 (the new tag v2)", got)
	}
	tags, _ := db.Tags(ctx, reg.Host+"/p/app")
	if diff := cmp.Diff(map[string]string{"v1": a.String(), "latest": a.String(), "v2": b.String()}, tags); diff != "" {
		t.Errorf("fresh re-sync tags (-want +got):\n%s", diff)
	}
	if len(res.Changes) != 2 {
		t.Errorf("fresh re-sync changes = %v, want v2 added and old removed", res.Changes)
	}

	// 11 minutes after v1 and latest were confirmed (6 after v2): those two
	// are HEADed again and the move is seen; v2 is still fresh.
	clock = clock.Add(6 * time.Minute)
	res = crawl(10 * time.Minute)
	if got := reg.Count("HEAD manifest"); got != 2 {
		t.Errorf("expired re-sync: %d manifest HEADs, want 2 (v1 and latest)", got)
	}
	tags, _ = db.Tags(ctx, reg.Host+"/p/app")
	if tags["latest"] != moved.String() {
		t.Errorf("expired re-sync: latest = %s, want the moved digest %s", tags["latest"], moved)
	}

	// Without a TTL every tag is HEADed, as always.
	crawl(0)
	if got := reg.Count("HEAD manifest"); got != 3 {
		t.Errorf("re-sync without TTL: %d manifest HEADs, want 3", got)
	}
}

// Repositories are crawled per host, the hosts side by side: a host that
// does not answer holds only its own crawl, and another host's
// repositories, all sorted after the stalled host's, are listed meanwhile.
// The stalled host answers once the other host has listed all 8 (a pool
// shared by all hosts, at --jobs 1, would never get there: the deadline
// only keeps the test from hanging).
func TestSyncHostsSideBySide(t *testing.T) {
	slow, fast := regtest.New(t), regtest.New(t)
	for i := range 8 {
		for _, reg := range []*regtest.Registry{slow, fast} {
			reg.Push(t, fmt.Sprintf("p/r%d", i), "v1", regtest.Image(t, 64, 1, true))
		}
	}
	release := make(chan struct{})
	var once gosync.Once
	var listed atomic.Int64
	var expired atomic.Bool
	timer := time.AfterFunc(2*time.Minute, func() {
		expired.Store(true)
		once.Do(func() { close(release) })
	})
	defer timer.Stop()
	slow.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		<-release
		return false
	})
	fast.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/tags/list") && listed.Add(1) == 8 {
			once.Do(func() { close(release) })
		}
		return false
	})
	var targets []cipsync.Target
	for i := range 8 {
		for _, reg := range []*regtest.Registry{slow, fast} {
			targets = append(targets, cipsync.Target{Ref: fmt.Sprintf("%s/p/r%d", reg.Host, i), Exact: true})
		}
	}
	// The stalled host's repositories first: a pool shared by all hosts
	// would fill with them.
	sort.Slice(targets, func(i, j int) bool {
		return strings.HasPrefix(targets[i].Ref, slow.Host) && !strings.HasPrefix(targets[j].Ref, slow.Host)
	})
	db := mustOpen(t)
	if _, err := cipsync.Run(context.Background(), db, client(), targets, cipsync.Options{Jobs: 1}); err != nil {
		t.Fatal(err)
	}
	if expired.Load() {
		t.Errorf("the other host listed only %d of its 8 repositories while one host stalled: it waited for the stalled host", listed.Load())
	}
	if n := len(queryStrings(t, db, `SELECT name FROM repositories`)); n != 16 {
		t.Errorf("%d repositories crawled, want 16", n)
	}
}

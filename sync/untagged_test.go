package sync_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/inventory"
	cipsync "github.com/cipdev/cip/sync"
)

// held lists the digests the inventory records repo holds.
func held(t *testing.T, db *inventory.DB, repo string) []string {
	t.Helper()
	return queryStrings(t, db, `SELECT rm.digest FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id WHERE r.name = ? ORDER BY 1`, repo)
}

func sorted(ds ...v1.Hash) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	slices.Sort(out)
	return out
}

func childDigests(t *testing.T, idx v1.ImageIndex) []v1.Hash {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, m := range im.Manifests {
		out = append(out, m.Digest)
	}
	return out
}

// A sync keeps the untagged digests the inventory knows a repository holds
// (here found by a look-up by digest, as promote and check do), confirming
// each root with one HEAD by digest, and drops one only when the registry
// answers 404. Before, every sync replaced the repository's digests with
// what its tags reach, and the untagged ones vanished.
func TestSyncKeepsKnownUntagged(t *testing.T) {
	ctx := context.Background()
	reg := regtest.New(t)
	tagged := reg.Push(t, "prod/app", "v1", regtest.Image(t, 64, 1, true))
	lone := reg.Push(t, "prod/app", "", regtest.Image(t, 64, 1, false))
	idx := regtest.Index(t, regtest.Platforms, true)
	idxD := reg.Push(t, "prod/app", "", idx)
	kids := childDigests(t, idx)
	repo := reg.Host + "/prod/app"

	db := mustOpen(t)
	c := client()
	run(t, db, c, repo)
	if diff := cmp.Diff(sorted(tagged), held(t, db, repo)); diff != "" {
		t.Fatalf("after the first sync (-want +got):\n%s", diff)
	}
	found, err := cipsync.Digests(ctx, db, c, []cipsync.Ref{{repo, lone.String()}, {repo, idxD.String()}}, cipsync.Options{})
	if err != nil || len(found.Present) != 2 {
		t.Fatalf("Digests = %+v, %v; want both present", found, err)
	}
	all := sorted(append([]v1.Hash{tagged, lone, idxD}, kids...)...)
	if diff := cmp.Diff(all, held(t, db, repo)); diff != "" {
		t.Fatalf("after the look-up (-want +got):\n%s", diff)
	}

	// A sync keeps them: a HEAD for the tag, one for each untagged root
	// (the index's children follow it), no GET.
	reg.Reset()
	res := run(t, db, c, repo)
	if diff := cmp.Diff(all, held(t, db, repo)); diff != "" {
		t.Errorf("after a sync (-want +got):\n%s", diff)
	}
	if got := reg.Count("HEAD manifest"); got != 3 {
		t.Errorf("HEAD manifest = %d, want 3 (v1, the untagged image, the untagged index)", got)
	}
	if got := reg.Count("GET manifest"); got != 0 {
		t.Errorf("GET manifest = %d, want 0", got)
	}
	if len(res.Changes) != 0 {
		t.Errorf("tag changes = %v, want none", res.Changes)
	}

	// The registry deletes the lone image: 404, dropped.
	reg.Delete(t, "prod/app@"+lone.String())
	run(t, db, c, repo)
	rest := sorted(append([]v1.Hash{tagged, idxD}, kids...)...)
	if diff := cmp.Diff(rest, held(t, db, repo)); diff != "" {
		t.Errorf("after deleting the lone image (-want +got):\n%s", diff)
	}

	// The registry deletes the index but keeps its children: each child is
	// checked itself then, and kept.
	reg.Delete(t, "prod/app@"+idxD.String())
	reg.Reset()
	run(t, db, c, repo)
	if diff := cmp.Diff(sorted(append([]v1.Hash{tagged}, kids...)...), held(t, db, repo)); diff != "" {
		t.Errorf("after deleting the index (-want +got):\n%s", diff)
	}
	if got, want := reg.Count("HEAD manifest"), 1+1+len(kids); got != want {
		t.Errorf("HEAD manifest = %d, want %d (v1, the index, then each child)", got, want)
	}
}

// A digest that only a tag reached, and that loses its tag, is dropped
// without a HEAD, as before: only digests the inventory knew untagged are
// confirmed, so a tag that moves every day costs no HEAD per old digest.
func TestSyncUntaggedCostsOnlyKnownUntagged(t *testing.T) {
	reg := regtest.New(t)
	old := reg.Push(t, "prod/app", "v1", regtest.Image(t, 64, 1, true))
	repo := reg.Host + "/prod/app"
	db := mustOpen(t)
	c := client()
	run(t, db, c, repo)
	cur := reg.Push(t, "prod/app", "v1", regtest.Image(t, 64, 1, true)) // v1 moves
	reg.Reset()
	run(t, db, c, repo)
	if diff := cmp.Diff(sorted(cur), held(t, db, repo)); diff != "" {
		t.Errorf("held (-want +got):\n%s", diff)
	}
	if got := reg.Count("HEAD manifest"); got != 1 {
		t.Errorf("HEAD manifest = %d, want 1 (the tag; %s is not checked)", got, old)
	}
}

// docker-registry answers a tag listing of a repository that holds only
// untagged manifests with NAME_UNKNOWN (404). The sync must not remove the
// repository when the inventory knows untagged digests there that a HEAD
// still finds; once they are gone, it removes it.
func TestSyncOnlyUntaggedRepository(t *testing.T) {
	ctx := context.Background()
	reg := regtest.New(t)
	d := reg.Push(t, "prod/only", "", regtest.Image(t, 64, 1, true))
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/prod/only/tags/list") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`))
			return true
		}
		return false
	})
	repo := reg.Host + "/prod/only"
	db := mustOpen(t)
	c := client()
	if _, err := cipsync.Digests(ctx, db, c, []cipsync.Ref{{repo, d.String()}}, cipsync.Options{}); err != nil {
		t.Fatal(err)
	}
	res := run(t, db, c, repo)
	if diff := cmp.Diff([]string{d.String()}, held(t, db, repo)); diff != "" {
		t.Errorf("held after a sync (-want +got):\n%s", diff)
	}
	if len(res.Registries) != 1 || res.Registries[0].Repositories != 1 || res.Registries[0].Removed != 0 {
		t.Errorf("stats = %+v, want 1 repository, none removed", res.Registries)
	}
	reg.Delete(t, "prod/only@"+d.String())
	run(t, db, c, repo)
	if repos, _ := db.Repositories(ctx, repo); len(repos) != 0 {
		t.Errorf("repositories = %v after the digest was deleted, want none", repos)
	}
}

// A registry that fails the HEAD (and the GET) of an untagged digest does
// not make the sync forget it: the repository's crawl fails, and the
// inventory keeps what it had.
func TestSyncUntaggedErrorKeeps(t *testing.T) {
	ctx := context.Background()
	reg := regtest.New(t)
	reg.Push(t, "prod/app", "v1", regtest.Image(t, 64, 1, true))
	d := reg.Push(t, "prod/app", "", regtest.Image(t, 64, 1, true))
	repo := reg.Host + "/prod/app"
	db := mustOpen(t)
	c := client()
	run(t, db, c, repo)
	if _, err := cipsync.Digests(ctx, db, c, []cipsync.Ref{{repo, d.String()}}, cipsync.Options{}); err != nil {
		t.Fatal(err)
	}
	before := held(t, db, repo)
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/manifests/"+d.String()) {
			w.WriteHeader(http.StatusForbidden)
			return true
		}
		return false
	})
	_, err := cipsync.Run(ctx, db, c, []cipsync.Target{{Ref: repo, Exact: true}}, cipsync.Options{})
	if err == nil || !strings.Contains(err.Error(), d.String()) {
		t.Errorf("sync = %v, want an error naming %s", err, d)
	}
	if diff := cmp.Diff(before, held(t, db, repo)); diff != "" {
		t.Errorf("held after a failed check (-want +got):\n%s", diff)
	}
}

package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipdev/cip/inventory"
)

func contentDigests(t *testing.T, db *inventory.DB, repo string) []string {
	t.Helper()
	cs, err := db.Contents(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.Digest)
	}
	return out
}

// A crawl that finds a repository unchanged touches only synced_at; one
// that finds it unchanged but the inventory holding an untagged digest the
// listing no longer shows rewrites it, as before.
func TestWriteRepositoryUnchanged(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	idx := &inventory.Manifest{Digest: digest('i'), MediaType: string(types.OCIImageIndex), IsIndex: true, Raw: []byte(`{}`),
		Children: []inventory.Child{{Digest: digest('a')}}}
	const repo = "r.example/p/app"
	st := inventory.RepositoryState{Name: repo, Tags: map[string]string{"v1": digest('i')},
		New: []*inventory.Manifest{idx, image('a'), image('d')}}
	if _, err := db.WriteRepository(ctx, 0, st); err != nil {
		t.Fatal(err)
	}
	want := []string{digest('a'), digest('i')}
	if diff := cmp.Diff(want, contentDigests(t, db, repo)); diff != "" {
		t.Fatalf("contents after first write (-want +got):\n%s", diff)
	}
	syncedAt := func() string {
		rows := queryRows(t, db.Path(), `SELECT synced_at FROM repositories WHERE name = ?`, repo)
		if len(rows) != 1 {
			t.Fatalf("synced_at of %s: %d rows, want 1", repo, len(rows))
		}
		return fmt.Sprint(rows[0][0])
	}
	before := syncedAt()

	db.Now = func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }
	again := inventory.RepositoryState{Name: repo, Tags: map[string]string{"v1": digest('i')}}
	changes, err := db.WriteRepository(ctx, 0, again)
	if err != nil || len(changes) != 0 {
		t.Fatalf("unchanged write: changes %v, err %v", changes, err)
	}
	if after := syncedAt(); after == before {
		t.Errorf("synced_at = %s after an unchanged crawl, want updated", after)
	}
	if diff := cmp.Diff(want, contentDigests(t, db, repo)); diff != "" {
		t.Errorf("contents after unchanged write (-want +got):\n%s", diff)
	}

	// An untagged digest recorded since (a promotion) that the crawl no
	// longer shows is dropped, as a full write always did.
	if err := db.RecordDigest(ctx, repo, digest('d')); err != nil {
		t.Fatal(err)
	}
	if _, err := db.WriteRepository(ctx, 0, again); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, contentDigests(t, db, repo)); diff != "" {
		t.Errorf("contents after a crawl without the untagged digest (-want +got):\n%s", diff)
	}
}

func TestLargestImage(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	big := image('b')
	big.Blobs = append(big.Blobs, inventory.Blob{Digest: digest('m'), Kind: "layer", Size: 1000})
	idx := &inventory.Manifest{Digest: digest('i'), MediaType: string(types.OCIImageIndex), IsIndex: true, Raw: []byte(`{}`),
		Children: []inventory.Child{{Digest: digest('a')}, {Digest: digest('b')}}}
	lone := &inventory.Manifest{Digest: digest('j'), MediaType: string(types.OCIImageIndex), IsIndex: true, Raw: []byte(`{}`),
		Children: []inventory.Child{{Digest: digest('z')}}}
	if err := db.InsertManifests(ctx, []*inventory.Manifest{image('a'), big, idx, lone}); err != nil {
		t.Fatal(err)
	}
	imageSize := int64(len(image('a').Raw)) + 10 + 100
	for _, tc := range []struct {
		digest, want string
		size         int64
		err          error
	}{
		{digest: digest('a'), want: digest('a'), size: imageSize},
		{digest: digest('i'), want: digest('b'), size: imageSize + 1000},
		{digest: digest('j'), err: inventory.ErrNotFound},
		{digest: digest('x'), err: inventory.ErrNotFound},
	} {
		got, size, err := db.LargestImage(ctx, tc.digest)
		if !errors.Is(err, tc.err) || got != tc.want || size != tc.size {
			t.Errorf("LargestImage(%s) = %s, %d, %v; want %s, %d, %v", tc.digest[7:8], got, size, err, tc.want, tc.size, tc.err)
		}
	}
}

// UntaggedDigests lists what a repository holds that no tag reaches, with
// the untagged children of each; a write with the same untagged digests is
// unchanged (synced_at only), one without them drops them.
func TestUntaggedDigests(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	const repo = "r.example/p/app"
	// v1 -> index i (children a, b); untagged: index j (children b, c), image d.
	idx := func(d byte, kids ...byte) *inventory.Manifest {
		m := &inventory.Manifest{Digest: digest(d), MediaType: string(types.OCIImageIndex), IsIndex: true, Raw: []byte(`{"` + string(d) + `":1}`)}
		for _, k := range kids {
			m.Children = append(m.Children, inventory.Child{Digest: digest(k)})
		}
		return m
	}
	st := inventory.RepositoryState{Name: repo, Tags: map[string]string{"v1": digest('i')}, Untagged: []string{digest('d'), digest('j')},
		New: []*inventory.Manifest{idx('i', 'a', 'b'), idx('j', 'b', 'c'), image('a'), image('b'), image('c'), image('d')}}
	if _, err := db.WriteRepository(ctx, 0, st); err != nil {
		t.Fatal(err)
	}
	got, err := db.UntaggedDigests(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	// b is reached from v1; c only from the untagged j.
	want := []inventory.UntaggedDigest{{Digest: digest('c')}, {Digest: digest('d')}, {Digest: digest('j'), Children: []string{digest('c')}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UntaggedDigests (-want +got):\n%s", diff)
	}
	if got, err := db.UntaggedDigests(ctx, "r.example/p/none"); err != nil || len(got) != 0 {
		t.Errorf("UntaggedDigests(unknown) = %v, %v; want none", got, err)
	}

	all := []string{digest('a'), digest('b'), digest('c'), digest('d'), digest('i'), digest('j')}
	same := inventory.RepositoryState{Name: repo, Tags: map[string]string{"v1": digest('i')}, Untagged: []string{digest('d'), digest('j')}}
	if changes, err := db.WriteRepository(ctx, 0, same); err != nil || len(changes) != 0 {
		t.Fatalf("same write: %v, %v", changes, err)
	}
	if diff := cmp.Diff(all, contentDigests(t, db, repo)); diff != "" {
		t.Errorf("contents after the same write (-want +got):\n%s", diff)
	}
	less := inventory.RepositoryState{Name: repo, Tags: map[string]string{"v1": digest('i')}, Untagged: []string{digest('d')}}
	if _, err := db.WriteRepository(ctx, 0, less); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{digest('a'), digest('b'), digest('d'), digest('i')}, contentDigests(t, db, repo)); diff != "" {
		t.Errorf("contents after dropping j (-want +got):\n%s", diff)
	}
}

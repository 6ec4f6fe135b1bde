package inventory_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	cipdigest "github.com/cipdev/cip/internal/digest"
	"github.com/cipdev/cip/inventory"
)

// benchManifests returns n image manifests (a config and two layers each)
// and n/4 indexes of 4 of them, every digest its bytes'.
func benchManifests(b *testing.B, n int) []*inventory.Manifest {
	b.Helper()
	var ms []*inventory.Manifest
	parse := func(mt string, raw []byte) *inventory.Manifest {
		m, err := inventory.ParseManifest(cipdigest.SHA256(raw), mt, raw)
		if err != nil {
			b.Fatal(err)
		}
		ms = append(ms, m)
		return m
	}
	for i := 0; i < n; i++ {
		parse("application/vnd.oci.image.manifest.v1+json", fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%064x","size":7},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%064x","size":%d},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%064x","size":%d}]}`, i, i+1<<20, 1000+i, i+2<<20, 2000+i))
	}
	for i := 0; i+4 <= n; i += 4 {
		var parts []string
		for j, c := range ms[i : i+4] {
			parts = append(parts, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d,"platform":{"os":"linux","architecture":"a%d"}}`, c.MediaType, c.Digest, len(c.Raw), j))
		}
		parse("application/vnd.oci.image.index.v1+json", fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}`, strings.Join(parts, ",")))
	}
	return ms
}

// BenchmarkManifest reads (and verifies) every manifest of an inventory
// of 1,000 images and 250 indexes, as a referrers look-up over a warm
// inventory reads each wanted digest and its children: one op is 1,250
// reads.
func BenchmarkManifest(b *testing.B) {
	ctx := context.Background()
	db, err := inventory.Open(ctx, filepath.Join(b.TempDir(), "inv.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ms := benchManifests(b, 1000)
	if err := db.InsertManifests(ctx, ms); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, m := range ms {
			got, err := db.Manifest(ctx, m.Digest)
			if err != nil {
				b.Fatal(err)
			}
			if len(got.Children)+len(got.Blobs) == 0 {
				b.Fatalf("%s: no children or blobs read", m.Digest)
			}
		}
	}
}

// BenchmarkRecrawlWrite is a warm crawl's inventory work for 240
// repositories of 10 tags each that have not changed: per repository the
// look-up of which listed digests are new (KnownDigests), then the write
// (WriteRepositories, 8 repositories a transaction), which finds each
// unchanged and only marks it synced. One op is all 240.
func BenchmarkRecrawlWrite(b *testing.B) {
	ctx := context.Background()
	db, err := inventory.Open(ctx, filepath.Join(b.TempDir(), "inv.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ms := benchManifests(b, 2400)
	if err := db.InsertManifests(ctx, ms); err != nil {
		b.Fatal(err)
	}
	var sts []inventory.RepositoryState
	var digests [][]string
	for r := 0; r < 240; r++ {
		st := inventory.RepositoryState{Name: fmt.Sprintf("r.example/repo%d", r), Tags: map[string]string{}}
		var ds []string
		for t := 0; t < 10; t++ {
			d := ms[r*10+t].Digest
			st.Tags[fmt.Sprintf("v%d", t)] = d
			ds = append(ds, d)
		}
		sts = append(sts, st)
		digests = append(digests, ds)
	}
	if _, err := db.WriteRepositories(ctx, 0, sts); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := 0; i < len(sts); i += 8 {
			for _, ds := range digests[i : i+8] {
				known, err := db.KnownDigests(ctx, ds)
				if err != nil || len(known) != len(ds) {
					b.Fatalf("known %d of %d: %v", len(known), len(ds), err)
				}
			}
			res, err := db.WriteRepositories(ctx, 0, sts[i:i+8])
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range res {
				if r.Err != nil || len(r.Changes) > 0 {
					b.Fatalf("rewrite: %v, %d changes", r.Err, len(r.Changes))
				}
			}
		}
	}
}

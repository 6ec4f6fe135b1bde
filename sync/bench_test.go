package sync_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/inventory"
	cipsync "github.com/cipdev/cip/sync"
)

// seed2000 pushes 200 repositories × 10 images (one in ten a 3-platform
// index) into an in-process registry: 2,000 tags, 2,600 manifests.
func seed2000(b *testing.B) *regtest.Registry {
	b.Helper()
	reg := regtest.New(b)
	for r := range 200 {
		for i := range 10 {
			var x remote.Taggable
			if i == 0 {
				x = regtest.Index(b, regtest.Platforms, r%2 == 0)
			} else {
				x = regtest.Image(b, 64, 1, r%2 == 0)
			}
			reg.Push(b, fmt.Sprintf("bench/r%03d", r), fmt.Sprintf("v1.%d.0", i), x)
		}
	}
	return reg
}

func benchSync(b *testing.B, db *inventory.DB, reg *regtest.Registry) *cipsync.Result {
	res, err := cipsync.Run(context.Background(), db, client(), []cipsync.Target{{Ref: reg.Host + "/bench"}}, cipsync.Options{Jobs: cipsync.DefaultJobs})
	if err != nil {
		b.Fatal(err)
	}
	return res
}

// BenchmarkSync2000 crawls 2,000 images cold (empty inventory) and
// incrementally (nothing changed): manifests fetched per second, and
// requests per crawl.
func BenchmarkSync2000(b *testing.B) {
	reg := seed2000(b)
	b.Run("cold", func(b *testing.B) {
		var fetched, reqs int64
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			db, err := inventory.Open(context.Background(), filepath.Join(b.TempDir(), fmt.Sprintf("inv%d.db", i)))
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			res := benchSync(b, db, reg)
			b.StopTimer()
			fetched += int64(res.Registries[0].ManifestsFetched)
			reqs += res.Requests
			db.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(fetched)/b.Elapsed().Seconds(), "manifests/s")
		b.ReportMetric(float64(reqs)/float64(b.N), "requests/op")
	})
	b.Run("incremental", func(b *testing.B) {
		db, err := inventory.Open(context.Background(), filepath.Join(b.TempDir(), "inv.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		benchSync(b, db, reg)
		reg.Reset()
		b.ResetTimer()
		var reqs int64
		for i := 0; i < b.N; i++ {
			res := benchSync(b, db, reg)
			reqs += res.Requests
			if res.Registries[0].ManifestsFetched != 0 {
				b.Fatalf("incremental sync fetched %d manifests", res.Registries[0].ManifestsFetched)
			}
		}
		b.ReportMetric(float64(reqs)/float64(b.N), "requests/op")
		b.ReportMetric(float64(reg.Count("GET manifest"))/float64(b.N), "manifestGETs/op")
	})
}

// BenchmarkSyncJobs compares --jobs values on the 2,000-image registry
// (incremental crawl: HEAD-bound, the common case), to choose DefaultJobs.
func BenchmarkSyncJobs(b *testing.B) {
	reg := seed2000(b)
	for _, jobs := range []int{1, 2, 4, 8, 16, 32} {
		b.Run(fmt.Sprintf("jobs=%d", jobs), func(b *testing.B) {
			db, err := inventory.Open(context.Background(), filepath.Join(b.TempDir(), "inv.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			benchSync(b, db, reg)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := cipsync.Run(context.Background(), db, client(), []cipsync.Target{{Ref: reg.Host + "/bench"}}, cipsync.Options{Jobs: jobs}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

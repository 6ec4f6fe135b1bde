package promote_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/promote"
)

// w200 pushes a W200-like population into src: 20 repositories × 10
// digests, 30% of them three-platform indexes, 220 tags (every digest has a
// version tag, one in ten also "latest").
func w200(b *testing.B, src *regtest.Registry) []entry {
	b.Helper()
	out := make([]entry, 200)
	var g errgroup.Group
	g.SetLimit(16)
	for r := range 20 {
		for i := range 10 {
			g.Go(func() error {
				n := r*10 + i
				repo := fmt.Sprintf("repo%02d", r)
				tags := []string{fmt.Sprintf("v1.%d.0", i)}
				if i == 0 {
					tags = append(tags, "latest")
				}
				var d v1.Hash
				if n%10 < 3 {
					d = src.Push(b, "staging/"+repo, tags[0], regtest.Index(b, regtest.Platforms, n%2 == 0))
				} else {
					d = src.Push(b, "staging/"+repo, tags[0], regtest.Image(b, 2048, 2, n%2 == 0))
				}
				for _, t := range tags[1:] {
					src.Tag(b, "staging/"+repo, d, t)
				}
				out[n] = entry{repo, d, tags}
				return nil
			})
		}
	}
	_ = g.Wait()
	return out
}

func sumCounts(r *regtest.Registry) int {
	n := 0
	for _, v := range r.Counts() {
		n += v
	}
	return n
}

// BenchmarkPromoteW200 promotes W200 from one in-process registry to
// another (one destination): cold (empty destination and inventory each
// iteration) and warm (a no-op rerun). Each iteration includes the sync of
// the source and destination repositories and the plan, as `cip promote
// --confirm` does.
func BenchmarkPromoteW200(b *testing.B) {
	e := newEnv(b)
	e.oneDst = true
	entries := w200(b, e.src)
	ctx := context.Background()
	opts := promote.Options{Jobs: 8}

	b.Run("cold", func(b *testing.B) {
		var reqs, sent int64
		for b.Loop() {
			b.StopTimer()
			e.d1 = regtest.New(b)
			db, err := inventory.Open(ctx, filepath.Join(b.TempDir(), "inv.db"))
			if err != nil {
				b.Fatal(err)
			}
			e.db = db
			set := e.manifestSet(entries...)
			b.StartTimer()
			p, err := e.plan(ctx, set)
			if err != nil {
				b.Fatal(err)
			}
			rep, err := promote.Promote(ctx, e.db, e.client, p, opts)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if rep.Destinations[0].Copied != 200 || len(rep.Mismatches) != 0 {
				b.Fatalf("report %+v", rep.Destinations[0])
			}
			reqs += int64(sumCounts(e.d1))
			sent += rep.Destinations[0].BytesSent
			db.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(reqs)/float64(b.N), "dst-requests/op")
		b.ReportMetric(float64(sent)/float64(b.N), "bytes-sent/op")
	})
	b.Run("warm", func(b *testing.B) {
		db, err := inventory.Open(ctx, filepath.Join(b.TempDir(), "inv.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		e.db = db
		e.d1 = regtest.New(b)
		set := e.manifestSet(entries...)
		p, err := e.plan(ctx, set)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := promote.Promote(ctx, e.db, e.client, p, opts); err != nil {
			b.Fatal(err)
		}
		e.d1.Reset()
		for b.Loop() {
			p, err := e.plan(ctx, set)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := promote.Promote(ctx, e.db, e.client, p, opts); err != nil {
				b.Fatal(err)
			}
		}
		if n := writes(e.d1); n != 0 {
			b.Fatalf("warm runs wrote %d requests", n)
		}
		b.ReportMetric(float64(sumCounts(e.d1))/float64(b.N), "dst-requests/op")
	})
}

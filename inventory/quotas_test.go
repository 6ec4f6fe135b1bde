package inventory_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cipdev/cip/inventory"
)

// Quotas kept replace those of the same host and project; a read gives
// those measured since a moment, in host and project order; a bad rate
// stores nothing of its batch.
func TestQuotas(t *testing.T) {
	db, _ := mustOpen(t)
	ctx := context.Background()
	day := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if err := db.RecordQuotas(ctx, []inventory.Quota{
		{Host: "us-docker.pkg.dev", Project: "k8s-artifacts-prod", QPS: 61.5, MeasuredAt: day.Add(-10 * 24 * time.Hour)},
		{Host: "gcr.io", Project: "k8s-staging-kubernetes", QPS: 58, MeasuredAt: day.Add(-time.Hour)},
		{Host: "registry.example", QPS: 20, MeasuredAt: day.Add(-2 * time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordQuotas(ctx, []inventory.Quota{{Host: "gcr.io", Project: "k8s-staging-kubernetes", QPS: 60.25, MeasuredAt: day}}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Quotas(ctx, day.Add(-7*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []inventory.Quota{
		{Host: "gcr.io", Project: "k8s-staging-kubernetes", QPS: 60.25, MeasuredAt: day},
		{Host: "registry.example", QPS: 20, MeasuredAt: day.Add(-2 * time.Hour)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Quotas within a week (-want +got):\n%s", diff)
	}
	for _, bad := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		err := db.RecordQuotas(ctx, []inventory.Quota{{Host: "a.example", QPS: 5}, {Host: "b.example", QPS: bad}})
		if err == nil || !strings.Contains(err.Error(), "b.example") {
			t.Errorf("a quota of %v: error %v, want one naming b.example", bad, err)
		}
	}
	if got, err := db.Quotas(ctx, time.Time{}); err != nil || len(got) != 3 {
		t.Errorf("after refused batches: %d quotas (%v), want the 3 kept before", len(got), err)
	}
}

package app

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cipdev/cip/inventory"
)

// A promotion starts each host's pace from the quota the inventory kept
// for it (90% of it), when it was measured within a week; an older one,
// and a host with none, start as they would without (unpaced on hosts
// other than Google's). The kept quotas stay for the next run.
func TestPromoteStartsFromKeptQuotas(t *testing.T) {
	f := newPromoteFixture(t)
	ctx := context.Background()
	db, err := inventory.Open(ctx, f.db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	err = db.RecordQuotas(ctx, []inventory.Quota{
		{Host: f.dst.Host, QPS: 40, MeasuredAt: now.Add(-time.Hour)},
		{Host: f.src.Host, QPS: 30, MeasuredAt: now.Add(-8 * 24 * time.Hour)},
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	if code, _, errs := f.run(ctx, "promote", "-m", f.manifest, "--report", report); code != ExitOK {
		t.Fatalf("promote: exit %d\n%s", code, errs)
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Hosts []struct {
			Host  string  `json:"host"`
			Pace  float64 `json:"pace"`
			Quota float64 `json:"quota"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	pace := map[string][2]float64{}
	for _, h := range rep.Hosts {
		pace[h.Host] = [2]float64{h.Pace, h.Quota}
	}
	if got := pace[f.dst.Host]; got != [2]float64{36, 40} {
		t.Errorf("destination kept at 40/s an hour ago: pace and quota %v, want [36 40]; report:\n%s", got, raw)
	}
	if got, ok := pace[f.src.Host]; !ok || got != [2]float64{0, 0} {
		t.Errorf("source kept at 30/s 8 days ago: pace and quota %v (reported %v), want unpaced [0 0]; report:\n%s", got, ok, raw)
	}
	db, err = inventory.Open(ctx, f.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if kept, err := db.Quotas(ctx, now.Add(-30*24*time.Hour)); err != nil || len(kept) != 2 {
		t.Errorf("after the run: %d quotas kept (%v), want the 2 seeded", len(kept), err)
	}
}

package promote

import (
	"context"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cipdev/cip/inventory"
)

// Totals is the sum of a Report's destinations, field by field.
type Totals struct {
	Copied       int   `json:"copied"`
	Tagged       int   `json:"tagged"`
	Skipped      int   `json:"skipped"`
	Referred     int   `json:"referred"`
	Lost         int   `json:"lost"`
	ManifestsPut int   `json:"manifests_put"`
	BlobsSent    int   `json:"blobs_sent"`
	BlobsMounted int   `json:"blobs_mounted"`
	BytesSent    int64 `json:"bytes_sent"`
	BytesMounted int64 `json:"bytes_mounted"`
	Requests     int64 `json:"requests"`
	Errors       int   `json:"errors"`
}

func (t *Totals) add(d DestinationReport) {
	t.Copied += d.Copied
	t.Tagged += d.Tagged
	t.Skipped += d.Skipped
	t.Referred += d.Referred
	t.Lost += d.Lost
	t.ManifestsPut += d.ManifestsPut
	t.BlobsSent += d.BlobsSent
	t.BlobsMounted += d.BlobsMounted
	t.BytesSent += d.BytesSent
	t.BytesMounted += d.BytesMounted
	t.Requests += d.Requests
	t.Errors += len(d.Errors)
}

// ImageRecord is what happened to one copy or tag row: a (destination
// registry, image, digest) and the tags put there.
type ImageRecord struct {
	Destination string `json:"destination"`
	Image       string `json:"image"`
	Digest      string `json:"digest"`
	// Action is the plan's: copy (the digest, with its tags) or tag (tags
	// only).
	Action string `json:"action"`
	// Tags are the tags put (the row's missing tags, when it succeeded).
	Tags []string `json:"tags"`
	// BytesSent and BytesMounted are the blob bytes this row streamed
	// from the source and mounted from another repository (a blob shared
	// with another row counts for the row that placed it).
	BytesSent       int64   `json:"bytes_sent"`
	BytesMounted    int64   `json:"bytes_mounted"`
	DurationSeconds float64 `json:"duration_seconds"`
	Error           string  `json:"error,omitempty"`
}

// Ref names the record's destination reference: dst/image@digest.
func (r ImageRecord) Ref() string { return r.Destination + "/" + r.Image + "@" + r.Digest }

// rowTally counts what one row placed, through the context of its
// requests (a blob copy runs with the context of the row that started it).
type rowTally struct{ sent, mounted atomic.Int64 }

type tallyKey struct{}

func withTally(ctx context.Context, t *rowTally) context.Context {
	return context.WithValue(ctx, tallyKey{}, t)
}

// tally adds a placed blob to the row of ctx, when there is one.
func tally(ctx context.Context, sent, mounted int64) {
	if t, ok := ctx.Value(tallyKey{}).(*rowTally); ok {
		t.sent.Add(sent)
		t.mounted.Add(mounted)
	}
}

// record is the ImageRecord of row r, finished at end after start.
func record(r inventory.PlanRow, t *rowTally, start, end time.Time, err error) ImageRecord {
	rec := ImageRecord{
		Destination: r.Dst, Image: r.Image, Digest: r.Digest, Action: r.Action, Tags: []string{},
		BytesSent: t.sent.Load(), BytesMounted: t.mounted.Load(), DurationSeconds: end.Sub(start).Seconds(),
	}
	if err != nil {
		rec.Error = err.Error()
	} else {
		rec.Tags = append(rec.Tags, r.Missing...)
	}
	return rec
}

func sortRecords(rs []ImageRecord) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.Destination != b.Destination {
			return a.Destination < b.Destination
		}
		if a.Image != b.Image {
			return a.Image < b.Image
		}
		return a.Digest < b.Digest
	})
}

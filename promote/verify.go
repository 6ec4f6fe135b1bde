package promote

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"

	"github.com/cipdev/cip/internal/hostpool"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
)

// Mismatch is a promised reference that a destination does not serve as
// promised.
type Mismatch struct {
	Destination string `json:"destination"`
	Image       string `json:"image"`
	Tag         string `json:"tag,omitempty"` // empty: the digest itself
	// Subject is set for a referrer: Want is a referrer of Subject that
	// the destination does not serve with it.
	Subject string `json:"subject,omitempty"`
	Want    string `json:"want"` // digest
	Got     string `json:"got"`  // digest, "absent", or "error: ..."
	File    string `json:"file"`
	Line    int    `json:"line"`
}

// Ref is the reference checked: dst/image:tag or dst/image@digest.
func (m Mismatch) Ref() string {
	if m.Subject != "" {
		return m.Destination + "/" + m.Image + "@" + m.Subject + " (referrer)"
	}
	if m.Tag != "" {
		return m.Destination + "/" + m.Image + ":" + m.Tag
	}
	return m.Destination + "/" + m.Image + "@" + m.Want
}

// VerifyError lists every mismatch a verification found.
type VerifyError struct {
	Mismatches []Mismatch
}

func (e *VerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "verify: %d mismatch(es):", len(e.Mismatches))
	for _, m := range e.Mismatches {
		fmt.Fprintf(&b, "\n  %s: want %s, got %s", m.Ref(), m.Want, m.Got)
	}
	return b.String()
}

// Verify checks with a live HEAD every (destination, image, digest) and
// (destination, image, tag) that the routes loaded as loadID promise (the
// caller loads them with inventory's LoadRoutes). It returns how many references it checked and every
// mismatch, in reference order; the error is for failures to run at all.
func Verify(ctx context.Context, db *inventory.DB, client *registry.Client, loadID int64, opts Options) (int, []Mismatch, error) {
	refs, err := db.WantedRefs(ctx, loadID)
	if err != nil {
		return 0, nil, err
	}
	return len(refs), verifyRefs(ctx, client, refs, opts.jobs(), verifyHooks{}), nil
}

// verifySpool verifies the references of a spool (a run's writes) and
// returns the mismatches sorted by destination, image, digest and tag.
func verifySpool(ctx context.Context, client *registry.Client, refs *spool[inventory.WantedRef], jobs int, hooks verifyHooks) ([]Mismatch, error) {
	var out []Mismatch
	var batch []inventory.WantedRef
	check := func() {
		out = append(out, verifyRefs(ctx, client, batch, jobs, hooks)...)
		batch = batch[:0]
	}
	// A batch at a time: every host's HEADs side by side, a bounded number
	// of references held.
	err := refs.each(func(w inventory.WantedRef) error {
		batch = append(batch, w)
		if len(batch) >= spoolRows {
			check()
		}
		return nil
	})
	check()
	slices.SortFunc(out, func(a, b Mismatch) int {
		return cmp.Or(strings.Compare(a.Destination, b.Destination), strings.Compare(a.Image, b.Image),
			strings.Compare(a.Want, b.Want), strings.Compare(a.Tag, b.Tag))
	})
	return out, err
}

// verifyHooks let Promote count the verifying HEADs: counter returns a
// destination's request counter, done is called after each HEAD. Either
// may be nil.
type verifyHooks struct {
	counter func(dst string) *atomic.Int64
	done    func()
}

// verifyRefs HEADs each reference (jobs at a time per destination host,
// the hosts side by side) and returns the mismatches in the order of refs.
func verifyRefs(ctx context.Context, client *registry.Client, refs []inventory.WantedRef, jobs int, hooks verifyHooks) []Mismatch {
	got := make([]string, len(refs))
	pool := hostpool.New(jobs)
	var mu gosync.Mutex
	for i, w := range refs {
		host, _ := inventory.SplitRepository(w.Dst)
		pool.Go(host, func() {
			ref := w.Digest
			if w.Tag != "" {
				ref = w.Tag
			}
			var s string
			hctx := ctx
			if hooks.counter != nil {
				hctx = registry.WithRequestCounter(ctx, hooks.counter(w.Dst))
			}
			repo, err := client.ParseRepository(w.Dst + "/" + w.Image)
			if err == nil {
				var d registry.Descriptor
				d, err = client.Head(hctx, repo, ref)
				s = d.Digest
			}
			if hooks.done != nil {
				hooks.done()
			}
			switch {
			case errors.Is(err, registry.ErrNotFound):
				s = "absent"
			case err != nil:
				s = "error: " + err.Error()
			}
			mu.Lock()
			got[i] = s
			mu.Unlock()
		})
	}
	pool.Wait()
	var out []Mismatch
	for i, w := range refs {
		if got[i] != w.Digest {
			out = append(out, Mismatch{Destination: w.Dst, Image: w.Image, Tag: w.Tag, Want: w.Digest, Got: got[i], File: w.File, Line: w.Line})
		}
	}
	return out
}

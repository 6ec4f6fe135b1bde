package promote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	gosync "sync"

	"github.com/cipdev/cip/internal/once"
)

// Fan-out bounds. A blob up to fanoutMaxBlob that two or more destination
// registries need is read from the source once and held in memory until
// the last of them has it; fanoutMaxHeld bounds what all such blobs hold at
// once. Most layers are far below 64 MiB; bigger ones, and any blob once
// the budget is spent, are streamed from the source per destination as
// before (never to disk, never recompressed).
const (
	fanoutMaxBlob = 64 << 20
	fanoutMaxHeld = 512 << 20
)

// fanout holds source blobs that several destination registries need,
// fetched once (one GET, whoever asks first) and verified against their
// digest before any destination gets them.
type fanout struct {
	reads once.Group[string, []byte] // by blob digest

	mu       gosync.Mutex
	held     int64                      // bytes reserved, read or being read
	reserved map[string]*reservation    // by blob digest: its share of held
	hosts    map[string]map[string]bool // blob digest -> destination hosts still to place it
}

// reservation is one blob's share of the budget, taken before it is read.
type reservation struct{ size int64 }

func newFanout() *fanout {
	return &fanout{reserved: map[string]*reservation{}, hosts: map[string]map[string]bool{}}
}

// need says that host will place blob (from this run's plan).
func (f *fanout) need(blob, host string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hs := f.hosts[blob]
	if hs == nil {
		hs = map[string]bool{}
		f.hosts[blob] = hs
	}
	hs[host] = true
}

// get returns blob's bytes when it is worth holding (two or more hosts
// still need it, it is small enough and the budget allows), fetching them
// with fetch once for all callers; ok false means: stream it yourself.
func (f *fanout) get(ctx context.Context, blob string, size int64, fetch func(ctx context.Context) (io.ReadCloser, error)) (data []byte, ok bool, err error) {
	f.mu.Lock()
	r, found := f.reserved[blob]
	if !found {
		if len(f.hosts[blob]) < 2 || size > fanoutMaxBlob || size < 0 || f.held+size > fanoutMaxHeld || !strings.HasPrefix(blob, "sha256:") {
			f.mu.Unlock()
			return nil, false, nil
		}
		r = &reservation{size: size}
		f.reserved[blob] = r
		f.held += size
	}
	f.mu.Unlock()
	data, ran, err := f.reads.Do(ctx, blob, func() ([]byte, error) { return readVerified(ctx, blob, size, fetch) })
	if err != nil {
		if ran {
			// Give the budget back; a later caller reserves and tries again.
			f.release(blob, r)
		}
		return nil, false, err
	}
	return data, true, nil
}

// release gives r's budget back, unless r is no longer blob's reservation.
func (f *fanout) release(blob string, r *reservation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reserved[blob] == r {
		delete(f.reserved, blob)
		f.held -= r.size
	}
}

// placed says host has blob (or gave up on it): when no host still needs
// it, its bytes are let go.
func (f *fanout) placed(blob, host string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hs := f.hosts[blob]
	delete(hs, host)
	if len(hs) > 0 {
		return
	}
	delete(f.hosts, blob)
	if r, ok := f.reserved[blob]; ok {
		delete(f.reserved, blob)
		f.held -= r.size
		f.reads.Forget(blob)
	}
}

// readVerified reads a whole blob and checks its size and sha256 digest.
func readVerified(ctx context.Context, blob string, size int64, fetch func(ctx context.Context) (io.ReadCloser, error)) ([]byte, error) {
	rc, err := fetch(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data := make([]byte, 0, size)
	h := sha256.New()
	w := &limitedBuffer{buf: data, max: size}
	if _, err := io.Copy(io.MultiWriter(w, h), rc); err != nil {
		return nil, fmt.Errorf("read blob %s: %w", blob, err)
	}
	if int64(len(w.buf)) != size {
		return nil, fmt.Errorf("read blob %s: got %d bytes, want %d", blob, len(w.buf), size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != blob {
		return nil, fmt.Errorf("read blob %s: content has digest %s", blob, got)
	}
	return w.buf, nil
}

// limitedBuffer collects at most max bytes, failing past them (a source
// sending more than the manifest says).
type limitedBuffer struct {
	buf []byte
	max int64
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if int64(len(b.buf)+len(p)) > b.max {
		return 0, fmt.Errorf("more than the %d bytes the manifest declares", b.max)
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

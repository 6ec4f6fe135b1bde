package promote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
)

// The fan-out reads a blob once for all its callers, gives the budget back
// when a read fails (the next caller reads again) and when every host has
// placed the blob.
func TestFanoutBudget(t *testing.T) {
	data := []byte("blob bytes")
	blob := fmt.Sprintf("sha256:%x", sha256.Sum256(data))
	f := newFanout()
	f.need(blob, "a")
	f.need(blob, "b")
	var reads atomic.Int64
	fail := true
	fetch := func(context.Context) (io.ReadCloser, error) {
		reads.Add(1)
		if fail {
			return nil, errors.New("source down")
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	ctx := context.Background()
	if _, ok, err := f.get(ctx, blob, int64(len(data)), fetch); err == nil || ok {
		t.Fatalf("get from a failing source = %v, %v; want the error", ok, err)
	}
	if f.held != 0 || len(f.reserved) != 0 {
		t.Errorf("after a failed read: %d bytes held, %d reserved; want none", f.held, len(f.reserved))
	}
	fail = false
	for i := range 3 {
		got, ok, err := f.get(ctx, blob, int64(len(data)), fetch)
		if err != nil || !ok || !bytes.Equal(got, data) {
			t.Fatalf("get #%d = %q, %v, %v; want the bytes", i, got, ok, err)
		}
	}
	if reads.Load() != 2 || f.held != int64(len(data)) {
		t.Errorf("%d reads, %d bytes held; want 2 reads (one failed, one shared), %d held", reads.Load(), f.held, len(data))
	}
	f.placed(blob, "a")
	if f.held != int64(len(data)) {
		t.Errorf("one host left: %d bytes held, want %d", f.held, len(data))
	}
	f.placed(blob, "b")
	if f.held != 0 || len(f.reserved) != 0 || f.reads.Len() != 0 {
		t.Errorf("every host placed it: %d bytes held, %d reserved, %d reads kept; want none", f.held, len(f.reserved), f.reads.Len())
	}
	if _, ok, err := f.get(ctx, blob, int64(len(data)), fetch); ok || err != nil {
		t.Errorf("get after every host placed it = %v, %v; want: stream it yourself", ok, err)
	}
}

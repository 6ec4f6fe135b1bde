package memprof

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var keep [][]byte

// A heap that grows while sampled leaves a profile naming what grew it.
func TestStartWritesProfileOfGrowth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "heap.pprof")
	stop := Start(path, 5*time.Millisecond)
	for range 64 {
		keep = append(keep, growHeap())
		time.Sleep(time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("no profile written: %v", err)
	}
	defer f.Close()
	// A pprof profile is a gzipped protocol buffer whose string table
	// holds the function names.
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s is not a gzipped profile: %v", path, err)
	}
	raw, err := io.ReadAll(io.LimitReader(z, 64<<20))
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.Contains(raw, []byte("memprof.growHeap")) {
		t.Errorf("profile (%d bytes) does not name growHeap, the function that grew the heap", len(raw))
	}
	keep = nil
}

//go:noinline
func growHeap() []byte { return make([]byte, 1<<20) }

package main

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
)

// peakChildEnv makes the test binary, run by TestRunPeakIsTheChilds, a
// child that touches 16 MiB and holds it a moment.
const peakChildEnv = "CIP_BENCH_PEAK_CHILD"

// touch writes one byte per page of b: enough to make it resident, and
// quick under the race detector.
func touch(b []byte) {
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
}

// TestRunPeakIsTheChilds runs a child touching 16 MiB while this process
// holds 256 MiB: the child's peak is its own (ru_maxrss said at least 256).
// The bound leaves room for a race-enabled child's runtime and shadow
// memory.
func TestRunPeakIsTheChilds(t *testing.T) {
	if os.Getenv(peakChildEnv) != "" {
		b := make([]byte, 16<<20)
		touch(b)
		time.Sleep(100 * time.Millisecond) // several of runPeak's polls
		runtime.KeepAlive(b)
		return
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skipf("no /proc: %v", err)
	}
	held := make([]byte, 256<<20)
	touch(held)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunPeakIsTheChilds$")
	cmd.Env = append(os.Environ(), peakChildEnv+"=1")
	peak, err := runPeak(cmd)
	runtime.KeepAlive(held)
	if err != nil {
		t.Fatal(err)
	}
	if mib := peak >> 10; mib < 16 || mib >= 160 {
		t.Errorf("child peaked at %d MiB, want its own 16 MiB and a runtime (not this process's 256)", mib)
	}
}

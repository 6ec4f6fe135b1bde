package e2e

import (
	"os/exec"
	"time"

	"github.com/cipdev/cip/internal/peakrss"
)

// runPeakRSS runs cmd and returns its peak resident memory in MB, its own
// (internal/peakrss: VmHWM polled every 2 ms, not the ru_maxrss that
// includes this test process's high-water mark).
func runPeakRSS(cmd *exec.Cmd) (float64, error) {
	kib, err := peakrss.Run(cmd, 2*time.Millisecond)
	return float64(kib) / 1024, err
}

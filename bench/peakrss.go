package main

import (
	"os/exec"
	"time"

	"github.com/cipdev/cip/internal/peakrss"
)

// peakPoll is how often runPeak reads a child's VmHWM: a peak reached in
// the last peakPoll before the child exits is missed. 5 ms costs about
// 200 reads of a /proc file a second per process (under 1% of a core with
// eight processes at once, crane's loops).
const peakPoll = 5 * time.Millisecond

// runPeak runs cmd (not yet started) to its end and returns the peak
// resident memory of its process in KiB, its own (internal/peakrss: not its
// ru_maxrss, which holds this harness's high-water mark); 0 where there is
// no /proc.
func runPeak(cmd *exec.Cmd) (int64, error) { return peakrss.Run(cmd, peakPoll) }

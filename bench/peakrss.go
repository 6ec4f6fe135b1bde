package main

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// peakPoll is how often runPeak reads a child's VmHWM: a peak reached in
// the last peakPoll before the child exits is missed. 5 ms costs about
// 200 reads of a /proc file a second per process (under 1% of a core with
// eight processes at once, crane's loops).
const peakPoll = 5 * time.Millisecond

// runPeak runs cmd (not yet started) to its end and returns the peak
// resident memory of its process in KiB, read from the child's own
// /proc/PID/status (VmHWM) while it runs; 0 where there is no /proc.
//
// The child's getrusage ru_maxrss cannot be used: Go starts children with
// vfork (CLONE_VM), and Linux carries the high-water mark of the memory the
// child shared with this process until exec into the child's maxrss, so
// every tool "peaked" at least at this harness's own high-water mark (one
// `crane ls` as much as cip). VmHWM belongs to the memory the child got at
// exec.
func runPeak(cmd *exec.Cmd) (int64, error) {
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	status := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status"
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	tick := time.NewTicker(peakPoll)
	defer tick.Stop()
	for {
		if kib := vmHWM(status); kib > peak {
			peak = kib
		}
		select {
		case err := <-done:
			return peak, err
		case <-tick.C:
		}
	}
}

// vmHWM reads the VmHWM line (KiB) of a /proc/PID/status file; 0 when the
// process is gone or has no memory any more (a zombie).
func vmHWM(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			n, _ := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			return n
		}
	}
	return 0
}

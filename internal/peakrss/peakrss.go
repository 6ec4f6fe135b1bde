// Package peakrss measures a child process's peak resident memory from its
// own /proc/PID/status (VmHWM), polled while it runs: the figure the
// benchmarks and the memory tests report.
//
// The child's getrusage ru_maxrss cannot be used: Go starts children with
// vfork (CLONE_VM), and Linux carries the high-water mark of the memory the
// child shared with its parent until exec into the child's maxrss, so
// every child of a process holding 300 MB "peaks" at 300 MB (/bin/true
// included). VmHWM belongs to the memory the child got at exec.
package peakrss

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// Run starts cmd (not yet started), waits for it to end, and returns its
// peak resident memory in KiB, read every poll while it runs (a peak
// reached in the last poll before it exits is missed); 0 where there is no
// /proc. The error is cmd's.
func Run(cmd *exec.Cmd, poll time.Duration) (int64, error) {
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	status := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status"
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if kib := VmHWM(status); kib > peak {
			peak = kib
		}
		select {
		case err := <-done:
			return peak, err
		case <-tick.C:
		}
	}
}

// VmHWM reads the VmHWM line (KiB) of a /proc/PID/status file; 0 when the
// process is gone or has no memory any more (a zombie).
func VmHWM(path string) int64 {
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

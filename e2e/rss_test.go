package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// runPeakRSS runs cmd and returns its peak resident memory in MB, read
// from the child's own /proc/PID/status (VmHWM) while it runs. The
// child's getrusage ru_maxrss cannot be used: Go starts children with
// vfork (CLONE_VM), and Linux carries the high-water mark of the memory
// the child shared with this test process until exec into the child's
// maxrss, so every child of a test process holding 160 MB "peaked" at
// 160 MB (/bin/true included). VmHWM belongs to the memory the child got
// at exec. Polling misses at most the last few milliseconds before exit.
func runPeakRSS(cmd *exec.Cmd) (float64, error) {
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	status := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status"
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peakKB int64
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if kb := vmHWM(status); kb > peakKB {
			peakKB = kb
		}
		select {
		case err := <-done:
			return float64(peakKB) / 1024, err
		case <-tick.C:
		}
	}
}

// vmHWM reads the VmHWM line (kB) of a /proc/PID/status file; 0 when the
// process is gone or has no memory any more (a zombie).
func vmHWM(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if v, ok := strings.CutPrefix(string(line), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

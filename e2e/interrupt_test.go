package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptPromote sends SIGINT (Ctrl-C) to cip promote --confirm in
// the middle of its copies, against the real docker-registry: cip exits
// 130, says how far it got and not a summary that reads like a finished
// run, and the --report file says "interrupted": true with totals that are
// the sum of its per-destination parts. With stderr a pipe (as in CI), the
// copies log a line each, which is how the test knows they have begun.
// A rerun finishes and verifies.
func TestInterruptPromote(t *testing.T) {
	src, dst := StartRegistry(t), StartRegistry(t)
	seedCrash(t, src.Host)
	work := t.TempDir()
	db := filepath.Join(work, "inventory.db")
	Cip(t, 0, "--db", db, "--quiet", "sync", src.Host+"/staging")
	images, _ := Cip(t, 0, "--db", db, "snapshot", "--offline", src.Host+"/staging")
	dir := filepath.Join(work, "manifests")
	writeFile(t, filepath.Join(dir, "images", "p", "images.yaml"), images)
	writeFile(t, filepath.Join(dir, "manifests", "p", "promoter-manifest.yaml"),
		fmt.Sprintf("registries:\n- name: %s/staging\n  src: true\n- name: %s/prod\n- name: %s/mirror\n", src.Host, dst.Host, dst.Host))
	report := filepath.Join(work, "report.json")

	// --jobs 1 keeps the copies going long enough to be interrupted.
	cmd := exec.Command(cipBin, "--db", db, "promote", "--thin-manifest-dir", dir, "--confirm", "--report", report, "--jobs", "1")
	var out bytes.Buffer
	cmd.Stdout = &out
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	lines := bufio.NewScanner(io.TeeReader(pipe, &stderr))
	copied := 0
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "copied ") || strings.HasPrefix(lines.Text(), "tagged ") {
			if copied++; copied == 3 {
				break
			}
		}
	}
	if copied < 3 {
		cmd.Wait()
		t.Fatalf("cip promote logged %d copies before it ended; stderr:\n%s", copied, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(pipe)
	stderr.Write(rest)
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	errs := stderr.String()
	if code != 130 {
		t.Fatalf("SIGINT during promote --confirm: exit %d, want 130; stderr:\n%s", code, errs)
	}
	m := regexp.MustCompile(`(?m)^cip: interrupted: (\d+) of (\d+) copies done; rerun to finish$`).FindStringSubmatch(errs)
	if m == nil || m[1] == m[2] {
		t.Errorf("stderr after SIGINT lacks the interrupted line (fewer than all done):\n%s", errs)
	}
	for _, not := range []string{"promoted ", "references verified", "context canceled"} {
		if strings.Contains(errs, not) {
			t.Errorf("stderr after SIGINT has %q, which reads like a finished run:\n%s", not, errs)
		}
	}

	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("no --report after SIGINT: %v", err)
	}
	var rep struct {
		Interrupted  bool                     `json:"interrupted"`
		Rows         int                      `json:"rows"`
		RowsDone     int                      `json:"rows_done"`
		Destinations []map[string]any         `json:"destinations"`
		Totals       map[string]float64       `json:"totals"`
		Images       []map[string]any         `json:"images"`
		Mismatches   []map[string]interface{} `json:"mismatches"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, raw)
	}
	if !rep.Interrupted || rep.RowsDone == 0 || rep.RowsDone >= rep.Rows || fmt.Sprint(rep.RowsDone) != m[1] || fmt.Sprint(rep.Rows) != m[2] {
		t.Errorf("report: interrupted %v, %d of %d rows done; want interrupted, as stderr said (%s of %s):\n%s", rep.Interrupted, rep.RowsDone, rep.Rows, m[1], m[2], raw)
	}
	if rep.Mismatches == nil || rep.Images == nil || len(rep.Images) != rep.RowsDone {
		t.Errorf("report: mismatches %v, %d image records for %d rows done; want [] and one record per row", rep.Mismatches, len(rep.Images), rep.RowsDone)
	}
	if len(rep.Destinations) != 2 || len(rep.Totals) == 0 {
		t.Fatalf("report: %d destinations, totals %v", len(rep.Destinations), rep.Totals)
	}
	for k, v := range rep.Totals {
		var sum float64
		for _, d := range rep.Destinations {
			switch x := d[k].(type) {
			case float64:
				sum += x
			case []any:
				sum += float64(len(x))
			default:
				t.Errorf("destination %v has no %s", d["destination"], k)
			}
		}
		if v != sum {
			t.Errorf("report totals.%s = %v, the destinations' sum is %v:\n%s", k, v, sum, raw)
		}
	}

	// The rerun does what is left, and everything verifies.
	start := time.Now()
	_, rerun := Cip(t, 0, "--db", db, "promote", "--thin-manifest-dir", dir, "--confirm")
	if !strings.Contains(rerun, "references verified") {
		t.Errorf("rerun stderr lacks its summary:\n%s", rerun)
	}
	t.Logf("interrupted after %s of %s rows; rerun took %s", m[1], m[2], time.Since(start).Round(time.Millisecond))
	Cip(t, 0, "--db", db, "verify", "--thin-manifest-dir", dir)
}

package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cipdev/cip/inventory"
)

// emptyInventory creates an inventory file with the current schema.
func emptyInventory(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "inv.db")
	db, err := inventory.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	return path
}

// queryRun runs cip query and returns its exit code, stdout (counted, not
// kept, past 1 MiB), stderr, peak RSS in MB and duration.
func queryRun(t *testing.T, args ...string) (code int, out *countingBuffer, stderr string, rssMB float64, took time.Duration) {
	t.Helper()
	cmd := exec.Command(cipBin, args...)
	out = &countingBuffer{keep: 1 << 20}
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errb
	start := time.Now()
	rssMB, err := runPeakRSS(cmd)
	took = time.Since(start)
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out, errb.String(), rssMB, took
}

// countingBuffer counts what is written and keeps its first keep bytes.
type countingBuffer struct {
	keep  int
	n     int64
	lines int64
	buf   bytes.Buffer
}

func (c *countingBuffer) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	c.lines += int64(bytes.Count(p, []byte{'\n'}))
	if room := c.keep - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// cip query ends a statement that never ends at --timeout (exit 1, saying
// so), streams a huge answer in constant memory, and caps a table.
func TestQueryTimeoutStreamingAndTableCap(t *testing.T) {
	db := emptyInventory(t)
	const endless = `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) `
	for name, stmt := range map[string]string{
		"no row ever":          endless + `SELECT count(*) FROM c`,
		"one row, then no end": endless + `SELECT x FROM c WHERE x = 1 OR x < 0`,
	} {
		code, out, stderr, _, took := queryRun(t, "--db", db, "query", "--timeout", "1s", "-o", "csv", stmt)
		t.Logf("%s: exit %d after %s: %s", name, code, took.Round(time.Millisecond), lastLine(stderr))
		if code != 1 || !strings.Contains(stderr, "--timeout 1s") || took > 15*time.Second {
			t.Errorf("%s: exit %d after %s, stderr %q; want exit 1 about --timeout within seconds", name, code, took, stderr)
		}
		if name == "one row, then no end" && !strings.HasPrefix(out.buf.String(), "x\n1\n") {
			t.Errorf("%s: stdout = %q, want the row read before the deadline", name, out.buf.String())
		}
	}

	// A million rows of 100 bytes (about 100 MB of CSV) stream out; cip
	// held them all before.
	const n = 1_000_000
	big := `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000000) SELECT x, printf('%099d', x) AS pad FROM c`
	code, out, stderr, rss, took := queryRun(t, "--db", db, "query", "--timeout", "10m", "-o", "csv", big)
	t.Logf("%d rows as csv: exit %d, %d bytes, peak RSS %.0f MB, %s", n, code, out.n, rss, took.Round(time.Millisecond))
	if code != 0 || out.lines != n+1 {
		t.Fatalf("csv: exit %d, %d lines, want 0 and %d (header and rows)\n%s", code, out.lines, n+1, stderr)
	}
	// Streaming takes about 25 MB; holding every row took 273 MB.
	const maxRSS = 150
	if rss >= maxRSS {
		t.Errorf("peak RSS while streaming %d MB of CSV = %.0f MB, want under %d MB", out.n>>20, rss, maxRSS)
	}
	code, out, _, rss, _ = queryRun(t, "--db", db, "query", "--timeout", "10m", "-o", "json", big)
	if code != 0 || out.lines != n+2 || rss >= maxRSS {
		t.Errorf("json: exit %d, %d lines, peak RSS %.0f MB; want 0, %d, under %d MB", code, out.lines, rss, n+2, maxRSS)
	}

	// A table stops at 10,000 rows and says so.
	code, out, stderr, _, _ = queryRun(t, "--db", db, "query", endless+`SELECT x FROM c LIMIT 20000`)
	if code != 1 || out.lines != 10001 || !strings.Contains(stderr, "stops after 10000 rows") || !strings.Contains(stderr, "--output csv") {
		t.Errorf("table of 20000 rows: exit %d, %d lines, stderr %q; want exit 1, header and 10000 rows, the way out named", code, out.lines, stderr)
	}
}

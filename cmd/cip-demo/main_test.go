package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the README's capture of the demo from a fresh run")

const (
	readme     = "../../README.md"
	startMark  = "<!-- cip-demo: the output of `make demo 2>&1 | cat`, checked by cmd/cip-demo's tests (go test ./cmd/cip-demo -update rewrites it) -->\n```text\n"
	endMark    = "```\n<!-- /cip-demo -->\n"
	durationRE = `\b\d+(\.\d+)?(ns|µs|ms|s|m)\b`
)

var (
	hostPort = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	duration = regexp.MustCompile(durationRE)
	tempDir  = regexp.MustCompile(`/tmp/cip-demo-\d+`)
)

// normalize makes a capture comparable with another run's: the loopback
// ports (numbered in order of appearance), the temporary directory and the
// timings vary; so does the order in which concurrent copies finish, so
// runs of consecutive "copied"/"tagged" lines are sorted.
func normalize(s string) string {
	ports := map[string]string{}
	s = hostPort.ReplaceAllStringFunc(s, func(hp string) string {
		if _, ok := ports[hp]; !ok {
			ports[hp] = fmt.Sprintf("127.0.0.1:PORT%d", len(ports)+1)
		}
		return ports[hp]
	})
	s = tempDir.ReplaceAllString(s, "/tmp/cip-demo-DIR")
	s = duration.ReplaceAllString(s, "TIME")
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && (strings.HasPrefix(lines[j], "copied ") || strings.HasPrefix(lines[j], "tagged ")) {
			j++
		}
		if j > i {
			sort.Strings(lines[i:j])
			i = j
			continue
		}
		i++
	}
	return strings.Join(lines, "\n")
}

func demo(t *testing.T, keep string) string {
	t.Helper()
	var b bytes.Buffer
	if err := run(context.Background(), &b, &b, keep); err != nil {
		t.Fatalf("demo: %v\n%s", err, b.String())
	}
	return b.String()
}

// TestREADMECapture: the README's capture of `make demo` is what a fresh
// run prints, but for ports, the temporary directory, timings and the
// order of concurrent copies. The digests come from a fixed seed.
func TestREADMECapture(t *testing.T) {
	got := demo(t, "")
	raw, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	i := strings.Index(text, startMark)
	j := strings.Index(text, endMark)
	if i < 0 || j < i {
		t.Fatalf("%s has no demo capture between %q and %q", readme, startMark, endMark)
	}
	if *update {
		text = text[:i+len(startMark)] + got + text[j:]
		if err := os.WriteFile(readme, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	capture := text[i+len(startMark) : j]
	if diff := cmp.Diff(normalize(capture), normalize(got)); diff != "" {
		t.Errorf("README's demo capture differs from a fresh run (-README +run); go test ./cmd/cip-demo -update rewrites it:\n%s", diff)
	}
	// The steps say what they show, and it ends with what to try next.
	for _, want := range []string{"# The plan:", "Look at the ACTION column", "0 requests", "\n# now try: ", "largest 3 images"} {
		if !strings.Contains(got, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

// TestNormalize shows what the comparison forgives, and that it still
// sees a changed digest or count.
func TestNormalize(t *testing.T) {
	a := "$ cip sync 127.0.0.1:4000/staging\nsync: 17 requests in 35ms\ncopied 127.0.0.1:5000/prod/b@x in 2ms\ncopied 127.0.0.1:5000/prod/a@x in 1.5s\nDIR=/tmp/cip-demo-123\n"
	b := "$ cip sync 127.0.0.1:4100/staging\nsync: 17 requests in 1.2s\ncopied 127.0.0.1:5100/prod/a@x in 7ms\ncopied 127.0.0.1:5100/prod/b@x in 3µs\nDIR=/tmp/cip-demo-999\n"
	if normalize(a) != normalize(b) {
		t.Errorf("normalize:\n%s\n!=\n%s", normalize(a), normalize(b))
	}
	for _, changed := range []string{strings.Replace(b, "17 requests", "18 requests", 1), strings.Replace(b, "/a@x", "/a@y", 1)} {
		if normalize(a) == normalize(changed) {
			t.Errorf("normalize hides a change:\n%s", changed)
		}
	}
}

// TestKeep: --keep DIR keeps the manifest, the report and the inventory,
// and a second run into the same directory starts afresh.
func TestKeep(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kept")
	for range 2 {
		out := demo(t, dir)
		for _, f := range []string{"promoter-manifest.yaml", "report.json", "inventory.db"} {
			if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
				t.Errorf("--keep %s: %s missing or empty (%v)", dir, f, err)
			}
		}
		if !strings.Contains(out, "cip --db "+filepath.Join(dir, "inventory.db")+" query") {
			t.Errorf("--keep: the closing suggestions do not name the kept inventory:\n%s", out)
		}
	}
}

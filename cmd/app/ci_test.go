package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cipdev/cip/internal/apipath"
	"github.com/cipdev/cip/internal/regtest"
)

// lockedBuffer is a bytes.Buffer safe for the goroutines that log to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// promoteFixture is a staging registry with three images (one tagged
// twice) and an empty production registry, and a manifest promoting them.
type promoteFixture struct {
	src, dst *regtest.Registry
	manifest string
	db       string
	digests  []string
}

func newPromoteFixture(t *testing.T) *promoteFixture {
	t.Helper()
	f := &promoteFixture{src: regtest.New(t), dst: regtest.New(t)}
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "registries:\n- name: %s/staging\n  src: true\n- name: %s/prod\nimages:\n", f.src.Host, f.dst.Host)
	for i, name := range []string{"apple", "banana", "cherry"} {
		d := f.src.Push(t, "staging/"+name, "v1", regtest.Image(t, 2048, 2, i%2 == 0))
		tags := `["v1"]`
		if i == 0 {
			f.src.Tag(t, "staging/"+name, d, "latest")
			tags = `["latest", "v1"]`
		}
		f.digests = append(f.digests, d.String())
		fmt.Fprintf(&b, "- name: %s\n  dmap:\n    %q: %s\n", name, d.String(), tags)
	}
	f.manifest = filepath.Join(dir, "promoter-manifest.yaml")
	if err := os.WriteFile(f.manifest, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	f.db = filepath.Join(dir, "inventory.db")
	return f
}

// run runs cip in-process with stderr not a terminal (a buffer, as in CI).
func (f *promoteFixture) run(ctx context.Context, args ...string) (int, string, string) {
	var out bytes.Buffer
	var errb lockedBuffer
	code := Run(ctx, "cip", append([]string{"cip", "--db", f.db}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// TestCILogLines: with stderr not a terminal, promote logs one line per
// finished copy and tag, in text and in JSON, and the report has a record
// per image.
func TestCILogLines(t *testing.T) {
	f := newPromoteFixture(t)
	report := filepath.Join(t.TempDir(), "report.json")
	code, _, errs := f.run(context.Background(), "promote", "-m", f.manifest, "--confirm", "--report", report)
	if code != ExitOK {
		t.Fatalf("promote --confirm: exit %d\n%s", code, errs)
	}
	copied := regexp.MustCompile(`(?m)^copied ` + regexp.QuoteMeta(f.dst.Host) + `/prod/(apple|banana|cherry)@sha256:[0-9a-f]{64} \(tags ([a-z0-9, ]+)\): [0-9.]+ (B|KiB) sent, 0 B mounted in [0-9.]+(µs|ms|s)$`)
	got := copied.FindAllStringSubmatch(errs, -1)
	var lines []string
	for _, m := range got {
		lines = append(lines, m[1]+" "+m[2])
	}
	sort.Strings(lines)
	if want := []string{"apple latest, v1", "banana v1", "cherry v1"}; strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("copy lines %q, want %q; stderr:\n%s", lines, want, errs)
	}
	if !strings.Contains(errs, "promote: 3 copied, 4 tagged, ") {
		t.Errorf("no totals line:\n%s", errs)
	}
	var rep struct {
		Interrupted bool `json:"interrupted"`
		Images      []struct {
			Destination, Image, Digest, Action string
			Tags                               []string
			BytesSent                          int64   `json:"bytes_sent"`
			Duration                           float64 `json:"duration_seconds"`
		} `json:"images"`
		Mismatches []any `json:"mismatches"`
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Images) != 3 || rep.Interrupted || rep.Mismatches == nil {
		t.Errorf("report: %d images, interrupted %v, mismatches %v; want 3, false, []:\n%s", len(rep.Images), rep.Interrupted, rep.Mismatches, raw)
	}
	for _, im := range rep.Images {
		if im.Destination != f.dst.Host+"/prod" || im.Action != "copy" || len(im.Tags) == 0 || im.BytesSent == 0 || im.Duration <= 0 {
			t.Errorf("report image %+v: want a copy to %s/prod with tags, bytes and a duration", im, f.dst.Host)
		}
	}

	// A tag-only row, logged as JSON.
	f.src.Tag(t, "staging/banana", mustHash(t, f.digests[1]), "stable")
	body, _ := os.ReadFile(f.manifest)
	body = bytes.Replace(body, []byte(fmt.Sprintf("%q: [\"v1\"]", f.digests[1])), []byte(fmt.Sprintf("%q: [\"stable\", \"v1\"]", f.digests[1])), 1)
	if err := os.WriteFile(f.manifest, body, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = f.run(context.Background(), "promote", "-m", f.manifest, "--confirm", "--log-format", "json")
	if code != ExitOK {
		t.Fatalf("promote --log-format json: exit %d\n%s", code, errs)
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(errs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("--log-format json: a line that is not JSON: %q (%v)", line, err)
		}
		msgs = append(msgs, rec["msg"].(string))
		if rec["msg"] == "tagged" {
			if rec["image"] != "banana" || rec["digest"] != f.digests[1] || fmt.Sprint(rec["tags"]) != "[stable]" || rec["level"] != "INFO" {
				t.Errorf("tagged record %v: want banana@%s tags [stable]", rec, f.digests[1])
			}
		}
	}
	if got := strings.Join(msgs, ","); !strings.Contains(got, "synced,") || !strings.Contains(got, "plan,tagged,promoted,promote") {
		t.Errorf("JSON records: %s; want synced…, plan, tagged, promoted, promote", got)
	}
}

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestHeartbeat: off a terminal, a slow promote logs its progress every
// --heartbeat.
func TestHeartbeat(t *testing.T) {
	f := newPromoteFixture(t)
	// Each manifest PUT waits, so the copies take a while.
	f.dst.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && apipath.Kind(r.URL.Path) == "manifest" {
			time.Sleep(150 * time.Millisecond)
		}
		return false
	})
	code, _, errs := f.run(context.Background(), "promote", "-m", f.manifest, "--confirm", "--heartbeat", "50ms", "--jobs", "1")
	if code != ExitOK {
		t.Fatalf("promote: exit %d\n%s", code, errs)
	}
	beat := regexp.MustCompile(`(?m)^promote: \d/3 images to 1 destinations, [0-9.]+ (B|KiB) sent, \d+ blobs mounted, \d+s elapsed$`)
	if n := len(beat.FindAllString(errs, -1)); n < 2 {
		t.Errorf("%d heartbeat lines in a promote of over 450 ms with --heartbeat 50ms, want at least 2:\n%s", n, errs)
	}
	// --heartbeat 0: none.
	f2 := newPromoteFixture(t)
	if code, _, errs := f2.run(context.Background(), "promote", "-m", f2.manifest, "--confirm", "--heartbeat", "0"); code != ExitOK || beat.MatchString(errs) {
		t.Errorf("--heartbeat 0: exit %d, stderr:\n%s", code, errs)
	}
}

// TestInterruptedPromote: a promote cancelled mid-way (as by Ctrl-C) exits
// 130, says how far it got instead of a summary, and its report says
// interrupted with totals that are the sum of its destinations.
func TestInterruptedPromote(t *testing.T) {
	f := newPromoteFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var puts atomic.Int32
	f.dst.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && apipath.Kind(r.URL.Path) == "manifest" && puts.Add(1) == 2 {
			cancel()
		}
		return false
	})
	report := filepath.Join(t.TempDir(), "report.json")
	code, _, errs := f.run(ctx, "promote", "-m", f.manifest, "--confirm", "--report", report, "--jobs", "1")
	if code != ExitInterrupted {
		t.Fatalf("interrupted promote: exit %d, want %d\n%s", code, ExitInterrupted, errs)
	}
	if !regexp.MustCompile(`(?m)^cip: interrupted: [0-2] of 3 copies done; rerun to finish$`).MatchString(errs) ||
		strings.Contains(errs, "promoted ") || strings.Contains(errs, "context canceled") {
		t.Errorf("interrupted promote stderr:\n%s\nwant the interrupted line and no summary", errs)
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	checkInterruptedReport(t, raw)
	// The rerun finishes.
	if code, _, errs := f.run(context.Background(), "promote", "-m", f.manifest, "--confirm"); code != ExitOK || !strings.Contains(errs, "references verified") {
		t.Errorf("rerun: exit %d\n%s", code, errs)
	}
}

// checkInterruptedReport checks a --report file of an interrupted run.
func checkInterruptedReport(t *testing.T, raw []byte) {
	t.Helper()
	var rep struct {
		Interrupted  bool              `json:"interrupted"`
		Rows         int               `json:"rows"`
		RowsDone     int               `json:"rows_done"`
		Destinations []map[string]any  `json:"destinations"`
		Totals       map[string]any    `json:"totals"`
		Images       []json.RawMessage `json:"images"`
		Mismatches   []json.RawMessage `json:"mismatches"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted || rep.RowsDone >= rep.Rows || rep.Images == nil || rep.Mismatches == nil {
		t.Errorf("report: interrupted %v, %d of %d rows, images %v, mismatches %v; want interrupted, fewer done, [] not null:\n%s",
			rep.Interrupted, rep.RowsDone, rep.Rows, rep.Images, rep.Mismatches, raw)
	}
	if len(rep.Images) != rep.RowsDone {
		t.Errorf("report: %d image records, %d rows done", len(rep.Images), rep.RowsDone)
	}
	for k, v := range rep.Totals {
		var sum float64
		for _, d := range rep.Destinations {
			switch x := d[k].(type) {
			case float64:
				sum += x
			case []any:
				sum += float64(len(x))
			}
		}
		if v.(float64) != sum {
			t.Errorf("report totals.%s = %v, the destinations' sum %v:\n%s", k, v, sum, raw)
		}
	}
	if len(rep.Totals) < 10 {
		t.Errorf("report totals %v: want every count", rep.Totals)
	}
}

// TestMetricsFile: --metrics-file writes a Prometheus text file that
// Prometheus's own parser reads, with the run's requests by registry and
// kind, its copies and its outcome.
func TestMetricsFile(t *testing.T) {
	f := newPromoteFixture(t)
	path := filepath.Join(t.TempDir(), "cip.prom")
	code, _, errs := f.run(context.Background(), "--metrics-file", path, "promote", "-m", f.manifest, "--confirm")
	if code != ExitOK {
		t.Fatalf("promote --metrics-file: exit %d\n%s", code, errs)
	}
	fams := readMetrics(t, path)
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		fam, ok := fams[name]
		if !ok {
			t.Errorf("metrics file lacks %s", name)
			return -1
		}
	next:
		for _, m := range fam.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["command"] != "promote" {
				t.Errorf("%s%v: command label %q, want promote", name, got, got["command"])
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
		t.Errorf("metrics file has no %s%v", name, labels)
		return -1
	}
	dst := f.dst.Host + "/prod"
	if v := value("cip_run_exit_code", nil); v != 0 {
		t.Errorf("cip_run_exit_code = %v, want 0", v)
	}
	if v := value("cip_promote_rows", map[string]string{"destination": dst, "action": "copied"}); v != 3 {
		t.Errorf("copied = %v, want 3", v)
	}
	if v := value("cip_promote_rows", map[string]string{"destination": dst, "action": "tagged"}); v != 4 {
		t.Errorf("tagged = %v, want 4", v)
	}
	if v := value("cip_promote_rows", map[string]string{"destination": dst, "action": "referred"}); v != 0 {
		t.Errorf("referred = %v, want 0 (the images are unsigned)", v)
	}
	// The manifest PUTs the destination registry counted, as the file says.
	if v := value("cip_run_requests", map[string]string{"registry": f.dst.Host, "method": "PUT", "kind": "manifest"}); v != float64(f.dst.Count("PUT manifest")) || v == 0 {
		t.Errorf("PUT manifest requests = %v, the registry counted %d", v, f.dst.Count("PUT manifest"))
	}
	if v := value("cip_run_bytes", map[string]string{"registry": f.dst.Host, "direction": "sent"}); v <= 0 {
		t.Errorf("bytes sent to %s = %v, want some", f.dst.Host, v)
	}
	for _, name := range []string{"cip_run_retries", "cip_run_throttled", "cip_run_duration_seconds", "cip_run_timestamp_seconds", "cip_promote_verified"} {
		value(name, nil)
	}
	// A failing run says so; no temporary file is left beside it.
	code, _, _ = f.run(context.Background(), "--metrics-file", path, "promote", "--manifest", "/nonexistent")
	if code != ExitUsage {
		t.Fatalf("promote with a missing manifest: exit %d, want 2", code)
	}
	fams = readMetrics(t, path)
	if g := fams["cip_run_exit_code"].GetMetric()[0].GetGauge().GetValue(); g != ExitUsage {
		t.Errorf("cip_run_exit_code after a usage error = %v, want 2", g)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("metrics directory holds %d files, want only cip.prom", len(entries))
	}
}

// readMetrics parses a metrics file with Prometheus's text parser.
func readMetrics(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return fams
}

// TestVerifySummary: cip verify prints its answer on stdout in one line
// after the mismatches (a table fitted to COLUMNS), and JSON with no
// mismatch is [].
func TestVerifySummary(t *testing.T) {
	f := newPromoteFixture(t)
	if code, _, errs := f.run(context.Background(), "promote", "-m", f.manifest, "--confirm"); code != ExitOK {
		t.Fatalf("promote: exit %d\n%s", code, errs)
	}
	if code, out, errs := f.run(context.Background(), "verify", "-m", f.manifest); code != ExitOK || out != "verified: 7 references, all match\n" {
		t.Errorf("verify: exit %d, stdout %q (stderr %s); want 0 and the summary", code, out, errs)
	}
	if code, out, _ := f.run(context.Background(), "verify", "-m", f.manifest, "-o", "json"); code != ExitOK || out != "[]\n" {
		t.Errorf("verify -o json: exit %d, stdout %q; want 0 and []", code, out)
	}
	// Delete a tag behind cip's back.
	f.dst.Delete(t, "prod/banana:v1")
	t.Setenv("COLUMNS", "100")
	code, out, _ := f.run(context.Background(), "verify", "-m", f.manifest)
	if code != ExitRuntime || !regexp.MustCompile(`\nverified: 7 references, [12] do not match the manifests\n$`).MatchString(out) || !strings.Contains(out, "prod/banana:v1") {
		t.Errorf("verify after a tag move: exit %d, stdout:\n%s\nwant 1, the mismatch and the summary", code, out)
	}
	if w := widest(out); w > 100 {
		t.Errorf("verify table under COLUMNS=100 is %d wide:\n%s", w, out)
	}
}

package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReorderArgsSubcommand(t *testing.T) {
	app := newApp("cip", io.Discard, io.Discard)
	for _, tc := range []struct{ in, want []string }{
		{[]string{"cip", "audit", "127.0.0.1:5000/prod", "-o", "json"}, []string{"cip", "audit", "-o", "json", "127.0.0.1:5000/prod"}},
		{[]string{"cip", "audit", "serve", "--listen", "127.0.0.1:0", "-m", "m.yaml"}, []string{"cip", "audit", "serve", "--listen", "127.0.0.1:0", "-m", "m.yaml"}},
		{[]string{"cip", "--db", "x.db", "audit", "serve", "extra", "--token-file", "t"}, []string{"cip", "--db", "x.db", "audit", "serve", "--token-file", "t", "extra"}},
	} {
		if diff := cmp.Diff(tc.want, reorderArgs(app, tc.in)); diff != "" {
			t.Errorf("reorderArgs(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func writeAuditManifest(t *testing.T, dir string) string {
	t.Helper()
	m := filepath.Join(dir, "promoter-manifest.yaml")
	body := fmt.Sprintf("registries:\n- name: src.example/staging\n  src: true\n- name: prod.example/prod\nimages:\n- name: app\n  dmap:\n    %q: [\"v1\"]\n", "sha256:"+strings.Repeat("a", 64))
	if err := os.WriteFile(m, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAuditUsage(t *testing.T) {
	dir := t.TempDir()
	m := writeAuditManifest(t, dir)
	db := filepath.Join(dir, "inv.db")
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("tooshort\n"), 0o600)
	good := filepath.Join(dir, "token")
	os.WriteFile(good, []byte("0123456789abcdef0123\n"), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("registries: [\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit"}, "exactly one of --manifest or --thin-manifest-dir"},
		{[]string{"audit", "-m", m, "-o", "xml"}, "want table, wide, json, yaml or github"},
		{[]string{"audit", "-m", m, "not a ref"}, "invalid REF"},
		{[]string{"audit", "-m", bad, "--offline"}, "manifest error"},
		{[]string{"audit", "serve", "-m", m}, "--token-file is required"},
		{[]string{"audit", "serve", "-m", m, "--token-file", filepath.Join(dir, "none")}, "read --token-file"},
		{[]string{"audit", "serve", "-m", m, "--token-file", short}, "want at least 16"},
		{[]string{"audit", "serve", "-m", m, "--token-file", good, "stray"}, "takes no arguments"},
		{[]string{"audit", "serve", "-m", bad, "--token-file", good, "--offline"}, "manifest error"},
		{[]string{"audit", "serve", "--token-file", good}, "exactly one of --manifest or --thin-manifest-dir"},
	} {
		code, _, stderr := runNamed(t, "cip", append([]string{"--db", db}, tc.args...)...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("cip %s: exit %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}

// Offline on an empty inventory, everything promoted is missing: exit 1,
// and the JSON lists it.
func TestAuditOfflineFindsMissing(t *testing.T) {
	dir := t.TempDir()
	m := writeAuditManifest(t, dir)
	code, stdout, stderr := runNamed(t, "cip", "--db", filepath.Join(dir, "inv.db"), "audit", "-m", m, "--offline", "-o", "json")
	if code != ExitRuntime {
		t.Fatalf("exit %d, want 1; stderr %s", code, stderr)
	}
	var fs []struct{ Reason, Repository, Digest string }
	if err := json.Unmarshal([]byte(stdout), &fs); err != nil {
		t.Fatalf("json: %v\n%s", err, stdout)
	}
	if len(fs) != 1 || fs[0].Reason != "missing" || fs[0].Repository != "prod.example/prod/app" {
		t.Errorf("findings = %+v, want app missing", fs)
	}
	if !strings.Contains(stderr, "audit: 1 findings (1 missing) under prod.example/prod") {
		t.Errorf("summary = %q", stderr)
	}
	// GitHub annotations name the manifest entry.
	_, stdout, _ = runNamed(t, "cip", "--db", filepath.Join(dir, "inv.db"), "audit", "-m", m, "--offline", "-o", "github")
	if !strings.HasPrefix(stdout, "::error file="+ghProperty(m)+",line=8,title=cip audit missing::prod.example/prod/app@") {
		t.Errorf("github output = %q", stdout)
	}
}

// cip audit serve in process: it listens, judges, and stops with exit 0
// when its context ends (SIGTERM, in cip).
func TestAuditServeRuns(t *testing.T) {
	dir := t.TempDir()
	m := writeAuditManifest(t, dir)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("0123456789abcdef0123\n"), 0o600)
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, "cip", []string{"cip", "--db", filepath.Join(dir, "inv.db"), "audit", "serve", "-m", m,
			"--token-file", tok, "--listen", "127.0.0.1:0", "--offline"}, &stdout, &stderr)
	}()
	var addr string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no listening line; stderr:\n%s", stderr.String())
		}
		for _, line := range strings.Split(stderr.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addr = rec.Addr
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	body := `{"events":[{"id":"e1","action":"push","target":{"repository":"prod/app","digest":"sha256:` + strings.Repeat("b", 64) + `","tag":"v1","url":"http://prod.example/v2/prod/app/manifests/v1"},"request":{"host":"prod.example"}}]}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer 0123456789abcdef0123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST /events = %s", resp.Status)
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit %d after shutdown, want 0; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("cip audit serve did not stop")
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout.String())), &rec); err != nil {
		t.Fatalf("stdout is not one JSON verdict: %q", stdout.String())
	}
	if rec["verdict"] != "REJECTED" || rec["reason"] != "tag-mismatch" {
		t.Errorf("verdict = %v, want REJECTED tag-mismatch", rec)
	}
}

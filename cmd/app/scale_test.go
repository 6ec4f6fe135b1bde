package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipdev/cip/internal/regtest"
)

func runCip(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), "cip", append([]string{"cip"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// --tag-ttl still works, as the deprecated name of --confirm-ttl, and says
// so; --hosts-config is read strictly, its errors naming file and line
// (exit 2).
func TestConfirmTTLAndHostsConfigFlags(t *testing.T) {
	reg := regtest.New(t)
	reg.Push(t, "p/app", "v1", regtest.Image(t, 64, 1, true))
	dir := t.TempDir()
	db := filepath.Join(dir, "inv.db")

	code, _, stderr := runCip(t, "--db", db, "--quiet", "sync", reg.Host+"/p/app", "--tag-ttl", "1m")
	if code != 0 || !strings.Contains(stderr, "--tag-ttl (CIP_TAG_TTL) is deprecated: use --confirm-ttl") {
		t.Errorf("sync --tag-ttl: exit %d, stderr %q; want 0 and the deprecation warning", code, stderr)
	}
	code, _, stderr = runCip(t, "--db", db, "--quiet", "sync", reg.Host+"/p/app", "--confirm-ttl", "1m")
	if code != 0 || strings.Contains(stderr, "deprecated") {
		t.Errorf("sync --confirm-ttl: exit %d, stderr %q; want 0 and no warning", code, stderr)
	}

	good := filepath.Join(dir, "hosts.yaml")
	if err := os.WriteFile(good, []byte("hosts:\n  "+reg.Host+":\n    qps: 100\n    jobs: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = runCip(t, "--db", db, "--quiet", "sync", reg.Host+"/p/app", "--hosts-config", good); code != 0 {
		t.Errorf("sync --hosts-config (valid): exit %d, stderr %q", code, stderr)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("hosts:\n  "+reg.Host+":\n    qsp: 100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCip(t, "--db", db, "--quiet", "sync", reg.Host+"/p/app", "--hosts-config", bad)
	if code != ExitUsage || !strings.Contains(stderr, bad+":3: ") || !strings.Contains(stderr, `unknown field "qsp"`) {
		t.Errorf("sync --hosts-config (unknown field): exit %d, stderr %q; want 2 naming %s:3 and the field", code, stderr, bad)
	}
}

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A registry that refuses connections fails the run at once, saying what
// failed: no retry storm, no "authenticate to". (It took 36-54 s before.)
// No docker-registry is needed: nothing listens on the port.
func TestRefusedConnectionFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	db := filepath.Join(t.TempDir(), "inv.db")
	dir := t.TempDir()
	mf := filepath.Join(dir, "promoter-manifest.yaml")
	os.WriteFile(mf, []byte(fmt.Sprintf(`registries:
- name: %s/staging
  src: true
- name: %s/prod
images:
- name: app
  dmap:
    "sha256:%s": ["v1"]
`, host, host, strings.Repeat("a", 64))), 0o644)
	for _, args := range [][]string{
		{"sync", host + "/staging/app"},
		{"sync", host},
		{"promote", "--manifest", mf, "--confirm"},
	} {
		start := time.Now()
		_, stderr := Cip(t, 1, append([]string{"--db", db}, args...)...)
		took := time.Since(start)
		want := fmt.Sprintf("connect to %s: connection refused", host)
		if !strings.Contains(stderr, want) || strings.Contains(stderr, "authenticate to") {
			t.Errorf("cip %s: stderr\n%s\nwant %q and no \"authenticate to\"", strings.Join(args, " "), stderr, want)
		}
		// 3 s: well under the 36 s of the retry storm, loose enough for a
		// loaded CI machine (the failure itself takes milliseconds).
		if took > 3*time.Second {
			t.Errorf("cip %s took %v, want under 3s", strings.Join(args, " "), took)
		}
		t.Logf("cip %s: exit 1 after %v", strings.Join(args, " "), took.Round(time.Millisecond))
	}
}

// hostile is a small server on loopback that misbehaves one way.
type hostile struct {
	name    string
	args    []string // extra cip flags
	serve   http.HandlerFunc
	silent  bool     // accept TCP and never answer (serve unused)
	want    string   // in stderr; HOST is replaced by the server's host
	also    []string // more lines expected in stderr (progress), HOST replaced
	limit   time.Duration
	secrets []string // must not appear in stderr or the inventory
}

// startHostile starts h on loopback and returns its host.
func startHostile(t *testing.T, h hostile) string {
	t.Helper()
	if !h.silent {
		srv := httptest.NewServer(h.serve)
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				go io.Copy(io.Discard, c)
				<-done
			}()
		}
	}()
	t.Cleanup(func() {
		close(done)
		l.Close()
	})
	return l.Addr().String()
}

// TestHostileRegistries: cip sync of a good docker-registry and one
// hostile server together. Each hostile case fails (exit 1) with a clear
// error naming its host, within a bounded time, while the good registry's
// repositories are all synced; no credential reaches stderr or the
// inventory.
func TestHostileRegistries(t *testing.T) {
	good := StartRegistry(t)
	seed(t, good.Host)
	const user, pass = "robot", "e2e-s3cret-passw0rd"
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	tagsPage := func(w http.ResponseWriter, tags ...string) {
		json.NewEncoder(w).Encode(map[string]any{"name": "hostile/app", "tags": tags})
	}
	cases := []hostile{
		{
			name: "accepts TCP, never answers", silent: true,
			args:  []string{"--response-header-timeout", "500ms"},
			want:  "timed out after 500ms talking to HOST (GET /v2/): no answer",
			limit: 15 * time.Second,
		},
		{
			name: "stalls mid-manifest",
			args: []string{"--idle-timeout", "500ms"},
			serve: func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/v2/":
				case r.URL.Path == "/v2/_catalog":
					w.WriteHeader(http.StatusNotFound)
				case strings.HasSuffix(r.URL.Path, "/tags/list"):
					tagsPage(w, "v1")
				default:
					w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
					w.Header().Set("Content-Length", "400")
					w.Write([]byte(`{"schemaVersion":2,`))
					w.(http.Flusher).Flush()
					select {
					case <-r.Context().Done():
					case <-time.After(30 * time.Second):
					}
				}
			},
			want:  "timed out after 500ms talking to HOST (GET /v2/hostile/app/manifests/v1): no byte moved",
			limit: 15 * time.Second,
		},
		{
			name: "429 Retry-After: 3600 on every call",
			serve: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "3600")
				w.WriteHeader(http.StatusTooManyRequests)
			},
			want:  "gave up on HOST: it asks to wait 1h0m0s (429 on GET /v2/), longer than cip waits (1m0s)",
			limit: 5 * time.Second,
		},
		{
			name: "503 on every call",
			args: []string{"--retry-budget", "3"},
			serve: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusServiceUnavailable)
			},
			want: "gave up on HOST: its retry budget (3) is spent; last: 503 on GET /v2/",
			// Off a terminal (a CI log) the transport's log records each
			// retry and the give-up as they happen.
			also:  []string{"msg=retrying host=HOST ", " reason=503 wait=", `msg="giving up on host" host=HOST reason="its retry budget (3) is spent`},
			limit: 20 * time.Second,
		},
		{
			name: "tags/list paging that never ends",
			args: []string{"--max-pages", "200"},
			serve: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v2/" {
					return
				}
				p := r.URL.Query().Get("p")
				w.Header().Set("Link", fmt.Sprintf(`</v2/hostile/app/tags/list?p=%s1>; rel="next"`, p))
				tagsPage(w, "t"+p)
			},
			want:  "list tags of HOST/hostile/app: listing too large: more than 200 pages (--max-pages)",
			limit: 15 * time.Second,
		},
		{
			name: "a 401 echoing the Authorization header",
			serve: func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") == "" {
					w.Header().Set("WWW-Authenticate", `Basic realm="hostile"`)
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				if r.URL.Path == "/v2/" {
					return
				}
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintf(w, "who are you? you sent %s (%s:%s)", r.Header.Get("Authorization"), user, pass)
			},
			want:    "who are you? you sent Basic REDACTED",
			limit:   10 * time.Second,
			secrets: []string{basic, pass},
		},
	}
	for _, h := range cases {
		t.Run(h.name, func(t *testing.T) {
			host := startHostile(t, h)
			dir := t.TempDir()
			db := filepath.Join(dir, "inv.db")
			cfg := filepath.Join(dir, "docker")
			os.MkdirAll(cfg, 0o700)
			os.WriteFile(filepath.Join(cfg, "config.json"), []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, basic)), 0o600)
			args := append([]string{"--db", db, "sync", good.Host + "/staging", host + "/hostile/app"}, h.args...)
			start := time.Now()
			code, stdout, stderr := cipEnv(t, []string{"DOCKER_CONFIG=" + cfg, "HOME=" + dir}, args...)
			took := time.Since(start)
			want := strings.ReplaceAll(h.want, "HOST", host)
			if code != 1 || !strings.Contains(stderr, want) {
				t.Fatalf("cip sync with %s: exit %d, stderr\n%s\nwant exit 1 and %q", h.name, code, stderr, want)
			}
			for _, a := range h.also {
				if a = strings.ReplaceAll(a, "HOST", host); !strings.Contains("\n"+stderr, a) {
					t.Errorf("stderr lacks %q:\n%s", a, stderr)
				}
			}
			if took > h.limit {
				t.Errorf("cip sync took %v, want under %v", took, h.limit)
			}
			t.Logf("exit 1 after %v: %s", took.Round(time.Millisecond), lastLine(stderr))
			// The good registry finished: all 7 of its repositories.
			if !strings.Contains(stderr, "synced "+good.Host+": 7 repositories") {
				t.Errorf("stderr does not report the good registry's 7 repositories:\n%s", stderr)
			}
			inv := readAll(t, dir)
			for _, s := range h.secrets {
				if strings.Contains(stderr, s) || strings.Contains(stdout, s) || strings.Contains(inv, s) {
					t.Errorf("the secret %q reached stderr, stdout or the inventory", s)
				}
			}
			if len(h.secrets) > 0 && !strings.Contains(inv, "REDACTED") {
				t.Errorf("the inventory does not record the redacted error")
			}
		})
	}
}

// readAll returns the inventory's files (database and WAL) in dir as one
// string.
func readAll(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"inv.db", "inv.db-wal"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err == nil {
			b.Write(data)
		}
	}
	return b.String()
}

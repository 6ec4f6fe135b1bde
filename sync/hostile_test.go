package sync_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
)

// A GCR-style registry whose every repository names a child, without end:
// the walk stops at the repositories cap with an error naming the prefix,
// after as many listings.
func TestGCRWalkBounded(t *testing.T) {
	var lists atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
		case strings.HasSuffix(r.URL.Path, "/_catalog"):
			w.WriteHeader(http.StatusNotFound)
		case strings.HasSuffix(r.URL.Path, "/tags/list"):
			lists.Add(1)
			json.NewEncoder(w).Encode(map[string]any{"child": []string{"a", "b"}, "tags": []string{}, "manifest": map[string]any{}})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := registry.New(registry.Options{MaxRepositories: 20})
	_, err := cipsync.Run(context.Background(), mustOpen(t), c, []cipsync.Target{{Ref: host + "/proj"}}, cipsync.Options{Jobs: 2})
	if err == nil || !strings.Contains(err.Error(), "listing too large: more than 20 (--max-repositories)") || !strings.Contains(err.Error(), host+"/proj") {
		t.Fatalf("sync of an endless GCR tree = %v, want the repositories cap named", err)
	}
	if n := lists.Load(); n > 20 {
		t.Errorf("tags/list requests = %d, want at most 20", n)
	}
}

// One hostile registry among good ones: it answers 429 with Retry-After:
// 3600, or echoes the credentials it was sent in a 401. The good registry's
// repositories are written; the hostile one's fail, named, at once; the
// run's recorded errors hold no credential.
func TestHostileRegistryAmongGood(t *testing.T) {
	good := regtest.New(t)
	good.Push(t, "p/app", "v1", regtest.Image(t, 64, 1, true))
	throttle := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer throttle.Close()
	const user, pass = "robot", "s3cret-passw0rd"
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/v2/" {
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials","detail":%q}]}`, "Authorization: "+r.Header.Get("Authorization")+" = "+user+":"+pass)
	}))
	defer echo.Close()
	throttled, echoing := strings.TrimPrefix(throttle.URL, "http://"), strings.TrimPrefix(echo.URL, "http://")

	kc := keychain{authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})}
	c := registry.New(registry.Options{Keychain: kc})
	db := mustOpen(t)
	start := time.Now()
	_, err := cipsync.Run(context.Background(), db, c, []cipsync.Target{
		{Ref: good.Host + "/p/app", Exact: true}, {Ref: throttled + "/p/a", Exact: true}, {Ref: throttled + "/p/b", Exact: true},
		{Ref: echoing + "/p/app", Exact: true},
	}, cipsync.Options{Jobs: 4})
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("sync took %v, want the hostile registries to fail at once", d)
	}
	if err == nil {
		t.Fatal("sync with hostile registries succeeded")
	}
	for _, want := range []string{"gave up on " + throttled + ": it asks to wait 1h0m0s", throttled + "/p/a", throttled + "/p/b", echoing + "/p/app"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("sync error does not name %q:\n%v", want, err)
		}
	}
	tags, _ := db.Tags(context.Background(), good.Host+"/p/app")
	if len(tags) != 1 {
		t.Errorf("good registry's tags = %v, want v1", tags)
	}
	recorded := strings.Join(queryStrings(t, db, `SELECT errors FROM sync_runs ORDER BY id`), "\n")
	if !strings.Contains(recorded, echoing+"/p/app") {
		t.Errorf("sync_runs.errors = %q, want the echoing registry's failure", recorded)
	}
	for _, secret := range []string{basic, pass} {
		if strings.Contains(err.Error(), secret) || strings.Contains(recorded, secret) {
			t.Errorf("a credential (%q) reached the error or sync_runs.errors:\n%v\n%s", secret, err, recorded)
		}
	}
	if diff := cmp.Diff([]string{good.Host + "/p/app"}, mustRepos(t, db, good.Host)); diff != "" {
		t.Errorf("repositories of the good registry (-want +got):\n%s", diff)
	}
}

// keychain hands every registry the same credentials (only the echoing
// one asks for them).
type keychain struct{ a authn.Authenticator }

func (k keychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

func mustRepos(t *testing.T, db interface {
	Repositories(context.Context, string) ([]string, error)
}, prefix string) []string {
	t.Helper()
	repos, err := db.Repositories(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return repos
}

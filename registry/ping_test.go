package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/registry"
)

func anonymousClient() *registry.Client {
	return registry.New(registry.Options{Keychain: authn.NewMultiKeychain()})
}

// A registry that asks for no token is pinged once per run, not once per
// repository and scope.
func TestRoundTripperPingsOpenRegistryOnce(t *testing.T) {
	reg := regtest.New(t)
	for i := range 5 {
		reg.Push(t, fmt.Sprintf("p/r%d", i), "v1", regtest.Image(t, 64, 1, true))
	}
	reg.Reset()
	c := anonymousClient()
	ctx := context.Background()
	for i := range 5 {
		repo, err := c.ParseRepository(fmt.Sprintf("%s/p/r%d", reg.Host, i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Tags(ctx, repo); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Head(ctx, repo, "v1"); err != nil {
			t.Fatal(err)
		}
	}
	// One ping for the run; go-containerregistry's handshake pinged once
	// per repository (5).
	if got := reg.Count("GET ping"); got != 1 {
		t.Errorf("GET ping = %d for 5 repositories, want 1", got)
	}
	if got := reg.Count("GET tags"); got != 5 {
		t.Errorf("GET tags = %d, want 5", got)
	}
}

// A bearer registry still gets a token per repository: a token for one
// repository must not be sent for another.
func TestRoundTripperBearerTokenPerRepository(t *testing.T) {
	var tokens atomic.Int64
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			tokens.Add(1)
			json.NewEncoder(w).Encode(map[string]string{"token": "tok " + r.URL.Query().Get("scope")})
			return
		case strings.HasSuffix(r.URL.Path, "/tags/list"):
			repo := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v2/"), "/tags/list")
			if r.Header.Get("Authorization") == "Bearer tok repository:"+repo+":pull" {
				json.NewEncoder(w).Encode(map[string]any{"name": repo, "tags": []string{"v1"}})
				return
			}
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, srv.URL))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := anonymousClient()
	for _, name := range []string{"a/one", "b/two"} {
		repo, err := c.ParseRepository(host + "/" + name)
		if err != nil {
			t.Fatal(err)
		}
		tl, err := c.Tags(context.Background(), repo)
		if err != nil {
			t.Fatalf("Tags(%s): %v", name, err)
		}
		if len(tl.Tags) != 1 {
			t.Errorf("Tags(%s) = %v, want [v1]", name, tl.Tags)
		}
	}
	if got := tokens.Load(); got != 2 {
		t.Errorf("token requests = %d, want 2 (one per repository)", got)
	}
}

// bearerRegistry serves one repository's tags behind a token server that
// grants tokens only while *grant is true; it counts token requests.
func bearerRegistry(t *testing.T, grant *atomic.Bool, tokens *atomic.Int64) string {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/token":
			tokens.Add(1)
			if !grant.Load() {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"token": "tok"})
			return
		case strings.HasSuffix(r.URL.Path, "/tags/list") && r.Header.Get("Authorization") == "Bearer tok":
			json.NewEncoder(w).Encode(map[string]any{"name": "a/one", "tags": []string{"v1"}})
			return
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test"`, srv.URL))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// A failed authentication is kept for the run: later requests to the
// repository fail at once instead of repeating the handshake.
func TestRoundTripperKeepsFailedAuthentication(t *testing.T) {
	var grant atomic.Bool
	var tokens atomic.Int64
	host := bearerRegistry(t, &grant, &tokens)
	c := anonymousClient()
	repo, err := c.ParseRepository(host + "/a/one")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Tags(context.Background(), repo); err == nil || !strings.Contains(err.Error(), "authenticate to "+host+"/a/one") {
			t.Fatalf("Tags #%d = %v, want an authentication error naming the repository", i, err)
		}
	}
	if got := tokens.Load(); got != 1 {
		t.Errorf("token requests = %d for 3 calls, want 1", got)
	}
}

// A handshake cut short by a cancelled context is not kept: the next call
// authenticates.
func TestRoundTripperForgetsCancelledAuthentication(t *testing.T) {
	var grant atomic.Bool
	grant.Store(true)
	var tokens atomic.Int64
	host := bearerRegistry(t, &grant, &tokens)
	c := anonymousClient()
	repo, err := c.ParseRepository(host + "/a/one")
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.RoundTripper(cancelled, repo, "pull"); err == nil {
		t.Fatal("RoundTripper with a cancelled context succeeded")
	}
	tl, err := c.Tags(context.Background(), repo)
	if err != nil || len(tl.Tags) != 1 {
		t.Fatalf("Tags after a cancelled handshake = %v, %v; want [v1]", tl, err)
	}
}

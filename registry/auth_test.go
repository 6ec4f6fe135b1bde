package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/cipdev/cip/registry"
)

// tokenRegistry is a registry behind a token server, both on one httptest
// server (as Artifact Registry's /v2/token): it serves tags/list for any
// repository to a token granting it, and counts pings and token requests.
type tokenRegistry struct {
	srv  *httptest.Server
	host string

	mu         sync.Mutex
	now        func() time.Time
	ttl        int  // expires_in of the tokens it hands out
	firstOnly  bool // grant only the first scope asked for
	revokeUsed bool // a token works once
	pings      int
	requests   [][]string // the scopes of each token request
	refused    int        // 401 answers to requests with a token
	grants     map[string]*grant
	basicUser  string // when set, the token server wants these credentials
	basicPass  string
}

type grant struct {
	scopes  map[string]bool // "repository:a/b:pull" (one action each)
	expires time.Time
	used    bool
}

func newTokenRegistry(t *testing.T) *tokenRegistry {
	tr := &tokenRegistry{ttl: 300, grants: map[string]*grant{}, now: time.Now}
	tr.srv = httptest.NewServer(http.HandlerFunc(tr.serve))
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	return tr
}

func (tr *tokenRegistry) challenge(w http.ResponseWriter, scope string) {
	c := fmt.Sprintf(`Bearer realm="%s/v2/token",service="test"`, tr.srv.URL)
	if scope != "" {
		c += fmt.Sprintf(`,scope="%s"`, scope)
	}
	w.Header().Set("WWW-Authenticate", c)
	w.WriteHeader(http.StatusUnauthorized)
}

func (tr *tokenRegistry) serve(w http.ResponseWriter, r *http.Request) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	switch {
	case r.URL.Path == "/v2/token":
		if tr.basicUser != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != tr.basicUser || p != tr.basicPass {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		scopes := r.URL.Query()["scope"]
		tr.requests = append(tr.requests, scopes)
		g := &grant{scopes: map[string]bool{}, expires: tr.now().Add(time.Duration(tr.ttl) * time.Second)}
		for i, s := range scopes {
			if tr.firstOnly && i > 0 {
				break
			}
			res, acts, _ := strings.Cut(s[len("repository:"):], ":")
			for _, a := range strings.Split(acts, ",") {
				g.scopes["repository:"+res+":"+a] = true
			}
		}
		tok := fmt.Sprintf("tok%d", len(tr.requests))
		tr.grants[tok] = g
		json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": tr.ttl})
		return
	case r.URL.Path == "/v2/":
		tr.pings++
		tr.challenge(w, "")
		return
	}
	repo, _, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/tags/list")
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	scope := "repository:" + repo + ":pull"
	tok, hasTok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	g := tr.grants[tok]
	if !hasTok || g == nil || !g.scopes[scope] || !tr.now().Before(g.expires) || (tr.revokeUsed && g.used) {
		if hasTok {
			tr.refused++
		}
		tr.challenge(w, scope)
		return
	}
	g.used = true
	json.NewEncoder(w).Encode(map[string]any{"name": repo, "tags": []string{"v1"}})
}

func (tr *tokenRegistry) counts() (pings, tokens, refused int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.pings, len(tr.requests), tr.refused
}

func listTags(t *testing.T, c *registry.Client, repo string) error {
	t.Helper()
	r, err := c.ParseRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Tags(context.Background(), r)
	return err
}

// One ping per host and one token per repository however many requests:
// a token is kept for the run and reused until it expires.
func TestBearerTokenKept(t *testing.T) {
	reg := newTokenRegistry(t)
	c := anonymousClient()
	for range 5 {
		for _, r := range []string{"a/one", "b/two"} {
			if err := listTags(t, c, reg.host+"/"+r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if pings, tokens, refused := reg.counts(); pings != 1 || tokens != 2 || refused != 0 {
		t.Errorf("10 requests to 2 repositories: %d pings, %d token requests, %d refused; want 1, 2, 0", pings, tokens, refused)
	}
	var tokenKind int64
	for _, h := range c.Transport().Stats().Hosts {
		for _, k := range h.ByKind {
			if k.Kind == "token" {
				tokenKind += k.N
			}
		}
	}
	if tokenKind != 2 {
		t.Errorf("the transport counted %d token requests, want 2 (kind token)", tokenKind)
	}
}

// With the repositories announced (Expect), one token request asks for
// many scopes: 30 repositories cost 2 token requests (25 + 5).
func TestBearerExpectBatchesScopes(t *testing.T) {
	reg := newTokenRegistry(t)
	c := anonymousClient()
	var repos []string
	for i := range 30 {
		repos = append(repos, fmt.Sprintf("%s/p/r%02d", reg.host, i))
	}
	c.Expect(repos, false)
	var wg sync.WaitGroup
	for _, r := range repos {
		wg.Go(func() {
			if err := listTags(t, c, r); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	pings, tokens, refused := reg.counts()
	if pings != 1 || tokens > 3 || refused != 0 {
		t.Errorf("30 announced repositories: %d pings, %d token requests, %d refused; want 1, at most 3, 0", pings, tokens, refused)
	}
	reg.mu.Lock()
	most := 0
	for _, s := range reg.requests {
		most = max(most, len(s))
	}
	reg.mu.Unlock()
	if most != 25 {
		t.Errorf("largest token request asked for %d scopes, want 25", most)
	}
}

// A token is renewed before it expires, with no 401 on the way.
func TestBearerTokenRenewedWhenExpired(t *testing.T) {
	reg := newTokenRegistry(t)
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	reg.now, reg.ttl = clock, 60
	c := registry.New(registry.Options{Keychain: authn.NewMultiKeychain(), Transport: registry.NewTransport(registry.TransportOptions{Now: clock})})
	if err := listTags(t, c, reg.host+"/a/one"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(30 * time.Second)
	mu.Unlock()
	if err := listTags(t, c, reg.host+"/a/one"); err != nil {
		t.Fatal(err)
	}
	if _, tokens, _ := reg.counts(); tokens != 1 {
		t.Errorf("30 s into a 60 s token: %d token requests, want 1", tokens)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if err := listTags(t, c, reg.host+"/a/one"); err != nil {
		t.Fatal(err)
	}
	if _, tokens, refused := reg.counts(); tokens != 2 || refused != 0 {
		t.Errorf("after the token expired: %d token requests, %d refused; want 2 and 0 (renewed, not refused)", tokens, refused)
	}
}

// A token the registry refuses (revoked, or expired early) is refreshed
// once; a registry that refuses every token is not asked forever.
func TestBearer401RefreshesOnce(t *testing.T) {
	reg := newTokenRegistry(t)
	reg.revokeUsed = true
	c := anonymousClient()
	for range 3 {
		if err := listTags(t, c, reg.host+"/a/one"); err != nil {
			t.Fatalf("a request after its token was revoked: %v", err)
		}
	}
	if _, tokens, refused := reg.counts(); tokens != 3 || refused != 2 {
		t.Errorf("3 requests, each token working once: %d token requests, %d refused; want 3 and 2", tokens, refused)
	}

	never := newTokenRegistry(t)
	never.ttl = -3600 // every token is expired when it arrives; the client assumes 60 s
	c = anonymousClient()
	err := listTags(t, c, never.host+"/a/one")
	if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") && !strings.Contains(err.Error(), "401") {
		t.Errorf("a registry refusing every token: %v, want a 401 error", err)
	}
	if _, tokens, refused := never.counts(); tokens != 2 || refused != 2 {
		t.Errorf("a registry refusing every token: %d token requests, %d refused; want 2 and 2 (one refresh)", tokens, refused)
	}
}

// A token server that grants only the first scope of a request: the
// request refused with the batched token is sent again with a token of
// its own, and later tokens are asked for one scope at a time.
func TestBearerServerGrantsOneScope(t *testing.T) {
	reg := newTokenRegistry(t)
	reg.firstOnly = true
	c := anonymousClient()
	var repos []string
	for i := range 5 {
		repos = append(repos, fmt.Sprintf("%s/p/r%d", reg.host, i))
	}
	c.Expect(repos, false)
	for _, r := range repos {
		if err := listTags(t, c, r); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
	}
	_, tokens, refused := reg.counts()
	if tokens != 5 || refused != 1 {
		t.Errorf("5 repositories, one scope granted per token: %d token requests, %d refused; want 5 and 1", tokens, refused)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	for i, s := range reg.requests[2:] {
		if len(s) != 1 {
			t.Errorf("token request %d after the server was found to grant one scope asked for %v", i+3, s)
		}
	}
}

// Basic-auth registries: one ping, the credentials on every request, no
// token request.
func TestBasicAuthRegistry(t *testing.T) {
	var mu sync.Mutex
	pings, authed := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		u, p, ok := r.BasicAuth()
		if r.URL.Path == "/v2/" {
			pings++
		}
		if !ok || u != "user" || p != "secret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		authed++
		json.NewEncoder(w).Encode(map[string]any{"tags": []string{"v1"}})
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := registry.New(registry.Options{Keychain: hostKeychain{host: host, cfg: authn.AuthConfig{Username: "user", Password: "secret"}}})
	for _, r := range []string{"a/one", "b/two", "a/one"} {
		if err := listTags(t, c, host+"/"+r); err != nil {
			t.Fatal(err)
		}
	}
	if pings != 1 || authed != 3 {
		t.Errorf("%d pings, %d authenticated requests; want 1 and 3", pings, authed)
	}
}

type hostKeychain struct {
	host string
	cfg  authn.AuthConfig
}

func (k hostKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() != k.host {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(k.cfg), nil
}

// The token server gets the credentials (Basic) the keychain has.
func TestBearerTokenWithCredentials(t *testing.T) {
	reg := newTokenRegistry(t)
	reg.basicUser, reg.basicPass = "user", "secret"
	c := registry.New(registry.Options{Keychain: hostKeychain{host: reg.host, cfg: authn.AuthConfig{Username: "user", Password: "secret"}}})
	if err := listTags(t, c, reg.host+"/a/one"); err != nil {
		t.Fatal(err)
	}
	anon := anonymousClient()
	if err := listTags(t, anon, reg.host+"/a/one"); err == nil || !strings.Contains(err.Error(), "authenticate to "+reg.host+"/a/one") {
		t.Errorf("without credentials: %v, want an authentication error naming the repository", err)
	}
}

// A realm on an internal address other than the registry's own is refused
// before any credential is sent there.
func TestBearerRealmOnInternalAddressRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://169.254.169.254/token",service="x"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	err := listTags(t, anonymousClient(), host+"/a/one")
	if err == nil || !strings.Contains(err.Error(), "private or local address") {
		t.Errorf("Tags = %v, want the realm refused as a local address", err)
	}
}

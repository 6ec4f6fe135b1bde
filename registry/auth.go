package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Authentication, once per registry host and run. A host is pinged once
// (GET /v2/) to learn its challenge: none (anonymous), Basic (the
// credentials go with every request), or Bearer (a token server). Bearer
// tokens are fetched from the challenge's realm and kept for the run by
// credentials and scope, until they expire: every request to a repository
// reuses one token instead of pinging and fetching a token per repository,
// as go-containerregistry's transport.NewWithContext does. When the caller
// has said which repositories the run will use (Expect), a token request
// asks for several of them at once (the token protocol allows several
// scope parameters). A 401 to a request sent with a token (it expired, was
// revoked, or lacks a scope the registry names) fetches a fresh token for
// that request alone and sends it again, once; when that works where a
// token for several repositories failed, the token server is asked for one
// scope at a time from then on.
//
// Credentials (the docker config and credential helpers, the Google
// keychain, a manifest's service account) are resolved once per host and
// service account; what they yield (user and password, an identity
// token, a registry token) is asked for again at each token request, so
// that credentials that refresh themselves (Google's) stay current.

// maxScopesPerToken bounds the scopes of one token request: 25
// repositories keep the request's URL (about 80 bytes a scope) and a JWT
// token listing each grant within a few KB, well under the 8 KB header
// limit of common servers (nginx's default large_client_header_buffers).
const maxScopesPerToken = 25

// maxTokenBody bounds a token server's answer (tokens are a few KB).
const maxTokenBody = 64 << 10

// defaultTokenTTL is a token's lifetime when the server does not say: the
// token protocol's default of 60 seconds.
const defaultTokenTTL = 60 * time.Second

// hostAuth is what a host's ping said.
type hostAuth struct {
	scheme   string // "", "basic" or "bearer" (lower case)
	realm    *url.URL
	service  string
	insecure bool   // the registry may be spoken to over http
	url      string // the URL scheme the ping worked with: https, or http
}

// authFor pings host once per run and returns how to authenticate to it.
func (c *Client) authFor(ctx context.Context, reg name.Registry) (*hostAuth, error) {
	ch, err := c.challenge(ctx, reg)
	if err != nil {
		return nil, err
	}
	a := &hostAuth{scheme: strings.ToLower(ch.Scheme), insecure: ch.Insecure || reg.Scheme() == "http", url: "https"}
	if ch.Insecure {
		a.url = "http"
	}
	if a.scheme != "bearer" {
		return a, nil
	}
	realm, ok := ch.Parameters["realm"]
	if !ok {
		return nil, fmt.Errorf("registry %s asks for a bearer token without naming a realm", reg.RegistryStr())
	}
	u, err := validRealm(realm, reg.RegistryStr(), a.insecure)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", reg.RegistryStr(), err)
	}
	a.realm, a.service = u, ch.Parameters["service"]
	return a, nil
}

// validRealm refuses a token realm that is not https (http only for a
// registry spoken to over http), or that names a private, loopback or
// link-local address other than the registry's own host (any port: a token
// server beside the registry): a hostile registry must not make cip send
// credentials to an internal service (the cloud metadata endpoint, say).
func validRealm(realm, registryHost string, insecure bool) (*url.URL, error) {
	u, err := url.Parse(realm)
	if err != nil {
		return nil, fmt.Errorf("token realm %q: %w", realm, err)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && insecure:
	default:
		return nil, fmt.Errorf("token realm %q: want https", realm)
	}
	reg := registryHost
	if h, _, err := net.SplitHostPort(registryHost); err == nil {
		reg = h
	}
	if strings.EqualFold(u.Hostname(), reg) {
		return u, nil
	}
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
		if ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() {
			return nil, fmt.Errorf("token realm %q is a private or local address", realm)
		}
	}
	return u, nil
}

// identity names the credentials a request to repo (or a registry, for
// the catalog) uses: its host and the service account configured for it.
func (c *Client) identity(res string) string {
	return hostOf(res) + " " + c.serviceAccount(res)
}

// authenticator resolves, once per identity, the credentials for res.
func (c *Client) authenticator(ctx context.Context, res authn.Resource) (authn.Authenticator, error) {
	r, _, err := c.creds.Do(ctx, c.identity(res.String()), func() (resolved, error) {
		if sa := c.serviceAccount(res.String()); sa != "" {
			return resolved{auth: c.tr.secrets.recording(&gcloudImpersonation{account: sa, registry: res.RegistryStr()})}, nil
		}
		auth, err := c.keychain.Resolve(res)
		if err != nil {
			return resolved{err: fmt.Errorf("resolve credentials for %s: %w", res.RegistryStr(), err)}, nil
		}
		// What it hands out is remembered as secrets to redact.
		return resolved{auth: c.tr.secrets.recording(auth)}, nil
	})
	if err == nil {
		err = r.err
	}
	return r.auth, err
}

type resolved struct {
	auth authn.Authenticator
	err  error
}

// tokens returns the token cache of an identity.
func (c *Client) tokens(identity string) *tokenSet {
	if ts, ok := c.tokenSets.Load(identity); ok {
		return ts.(*tokenSet)
	}
	ts, _ := c.tokenSets.LoadOrStore(identity, newTokenSet(c.tr.now))
	return ts.(*tokenSet)
}

// Expect tells the client that this run will send requests to the given
// repositories (full names), to write (push) or only to read: a bearer
// registry's token requests then ask for several of them at once.
func (c *Client) Expect(repos []string, push bool) {
	actions := transport.PullScope
	if push {
		actions = transport.PushScope
	}
	by := map[string][]string{}
	for _, r := range repos {
		host, path, ok := strings.Cut(r, "/")
		if !ok || host == "" || path == "" {
			continue
		}
		id := c.identity(r)
		by[id] = append(by[id], "repository:"+path+":"+actions)
	}
	for id, scopes := range by {
		c.tokens(id).expect(scopes)
	}
}

// authTransport sends requests for one resource (a repository, or a
// registry's catalog) with the credentials and token its host asks for.
type authTransport struct {
	c      *Client
	res    authn.Resource
	auth   *hostAuth
	scopes []string
}

// transportFor returns the authenticated transport for res (a name.Repository
// or a name.Registry) with the given scopes, pinging its host first if this
// run has not.
func (c *Client) transportFor(ctx context.Context, res authn.Resource, reg name.Registry, scopes []string) (*authTransport, error) {
	a, err := c.authFor(ctx, reg)
	if err != nil {
		return nil, err
	}
	return &authTransport{c: c, res: res, auth: a, scopes: scopes}, nil
}

// token fetches (or finds in the cache) the bearer token t's requests
// will carry; for other schemes it does nothing.
func (t *authTransport) token(ctx context.Context) error {
	if t.auth.scheme != "bearer" {
		return nil
	}
	_, err := t.c.tokens(t.c.identity(t.res.String())).get(ctx, t, t.scopes, false)
	return err
}

// RoundTrip implements http.RoundTripper. Credentials go only to the
// registry's own host (a redirect to a storage bucket carries none), over
// the URL scheme its ping worked with (a registry named insecure may still
// speak https).
func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.res.RegistryStr() {
		return t.c.tr.RoundTrip(req)
	}
	if req.URL.Scheme != t.auth.url {
		req = req.Clone(req.Context())
		req.URL.Scheme = t.auth.url
	}
	ctx := req.Context()
	if t.auth.scheme != "bearer" {
		// No challenge (the ping was answered 200), Basic, or a scheme cip
		// does not know: the credentials, if there are any, as Basic (as
		// go-containerregistry does).
		auth, err := t.c.authenticator(ctx, t.res)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		cfg, err := authn.Authorization(ctx, auth)
		if err != nil {
			closeBody(req)
			return nil, fmt.Errorf("resolve credentials for %s: %w", t.res.RegistryStr(), err)
		}
		r := req.Clone(ctx)
		if cfg.Username != "" || cfg.Password != "" {
			r.SetBasicAuth(cfg.Username, cfg.Password)
		}
		return t.c.tr.RoundTrip(r)
	}
	ts := t.c.tokens(t.c.identity(t.res.String()))
	need := t.scopes
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	batchFailed := false
	for refresh := 0; ; refresh++ {
		tok, err := ts.get(ctx, t, need, refresh > 0)
		if err != nil {
			closeBody(req)
			return nil, fmt.Errorf("authenticate to %s: %w", t.res.String(), err)
		}
		r := req.Clone(ctx)
		if refresh > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		r.Header.Set("Authorization", "Bearer "+tok.value)
		resp, err := t.c.tr.RoundTrip(r)
		if err == nil && resp.StatusCode != http.StatusUnauthorized && batchFailed {
			// A token for several repositories failed where one for this
			// repository alone works: the server grants one scope per
			// token (or only the first).
			ts.noBatch()
		}
		if err != nil || resp.StatusCode != http.StatusUnauthorized || !replayable || refresh > 0 {
			return resp, err
		}
		// Expired, revoked, or short of a scope the registry names (a
		// mount's source): a fresh token, once.
		batchFailed = len(tok.scopes) > len(need)
		extra := challengeScope(resp.Header.Get("WWW-Authenticate"))
		_, _ = io.CopyN(io.Discard, resp.Body, 4096)
		resp.Body.Close()
		ts.forget(tok)
		if extra != "" && !slices.Contains(need, extra) {
			need = append(slices.Clip(need), extra)
		}
	}
}

// challengeScope returns the scope a Bearer challenge names, if any.
func challengeScope(h string) string {
	scheme, params, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	for len(params) > 0 {
		params = strings.TrimLeft(params, " ,")
		key, rest, ok := strings.Cut(params, "=")
		if !ok {
			return ""
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				return ""
			}
			val, params = rest[1:end+1], rest[end+2:]
		} else {
			val, params, _ = strings.Cut(rest, ",")
		}
		if strings.EqualFold(strings.TrimSpace(key), "scope") {
			return val
		}
	}
	return ""
}

// bearerToken is one token from a token server.
type bearerToken struct {
	value   string
	expires time.Time
	scopes  []string             // what it was asked for
	grants  map[string]stringSet // resource -> actions it was asked for
	failed  error                // set when the request was refused
	done    chan struct{}        // closed when fetched (or refused)
}

type stringSet map[string]bool

func (t *bearerToken) covers(scopes []string) bool {
	for _, s := range scopes {
		res, acts := splitScope(s)
		g := t.grants[res]
		for _, a := range acts {
			if !g[a] && !g["*"] {
				return false
			}
		}
	}
	return true
}

// splitScope splits "repository:a/b:push,pull" into its resource
// ("repository:a/b") and actions.
func splitScope(s string) (string, []string) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, nil
	}
	return s[:i], strings.Split(s[i+1:], ",")
}

// tokenSet is the token cache of one identity (host and credentials).
type tokenSet struct {
	now func() time.Time

	mu       sync.Mutex
	tokens   map[string]*bearerToken // resource -> the newest token for it (fetched or in flight)
	failed   map[string]error        // scope -> a refusal, kept for the run
	expected []string                // scopes Expect announced, in order
	known    map[string]bool         // the expected scopes, as a set
	next     int                     // expected[:next] were asked for already
	single   bool                    // the server honours one scope per token
	refresh  string                  // an OAuth2 refresh token the server handed out
}

func newTokenSet(now func() time.Time) *tokenSet {
	return &tokenSet{now: now, tokens: map[string]*bearerToken{}, failed: map[string]error{}, known: map[string]bool{}}
}

func (ts *tokenSet) expect(scopes []string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, s := range scopes {
		if !ts.known[s] {
			ts.known[s] = true
			ts.expected = append(ts.expected, s)
		}
	}
}

func (ts *tokenSet) noBatch() {
	ts.mu.Lock()
	ts.single = true
	ts.mu.Unlock()
}

// forget drops a token a registry refused (expired or revoked).
func (ts *tokenSet) forget(tok *bearerToken) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for res, t := range ts.tokens {
		if t == tok {
			delete(ts.tokens, res)
		}
	}
}

// get returns a token covering need: one this run holds and that has not
// expired, one being fetched, or a new one (with, unless fresh or the
// server honours one scope per token, other expected scopes of the same
// actions not yet asked for).
func (ts *tokenSet) get(ctx context.Context, t *authTransport, need []string, fresh bool) (*bearerToken, error) {
	for tries := 0; ; tries++ {
		ts.mu.Lock()
		if err := ts.failed[need[0]]; err != nil {
			ts.mu.Unlock()
			return nil, err
		}
		res, _ := splitScope(need[0])
		tok := ts.tokens[res]
		if tok != nil && tok.covers(need) {
			select {
			case <-tok.done:
				if tok.failed == nil && ts.now().Before(tok.expires) {
					ts.mu.Unlock()
					return tok, nil
				}
			default:
				// Being fetched: wait for it, then look again.
				ts.mu.Unlock()
				select {
				case <-tok.done:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				if tries < 3 {
					continue
				}
				ts.mu.Lock()
			}
		}
		scopes := slices.Clone(need)
		if !fresh && !ts.single {
			scopes = ts.extras(scopes, need)
		}
		tok = &bearerToken{scopes: scopes, grants: map[string]stringSet{}, done: make(chan struct{})}
		for _, s := range scopes {
			r, acts := splitScope(s)
			if tok.grants[r] == nil {
				tok.grants[r] = stringSet{}
			}
			for _, a := range acts {
				tok.grants[r][a] = true
			}
			ts.tokens[r] = tok
		}
		ts.advance()
		refresh := ts.refresh
		ts.mu.Unlock()

		value, ttl, newRefresh, err := t.c.fetchToken(ctx, t, scopes, refresh)
		if err != nil && len(scopes) > len(need) && ctx.Err() == nil {
			// Perhaps one of the other scopes was refused: ask for these alone.
			scopes = slices.Clone(need)
			value, ttl, newRefresh, err = t.c.fetchToken(ctx, t, scopes, refresh)
		}
		ts.mu.Lock()
		if err != nil {
			tok.failed = err
			for r, x := range ts.tokens {
				if x == tok {
					delete(ts.tokens, r)
				}
			}
			if ctx.Err() == nil {
				// A refusal is kept: later requests fail at once instead of
				// repeating it, and its retries, per request.
				for _, s := range need {
					ts.failed[s] = err
				}
			}
			close(tok.done)
			ts.mu.Unlock()
			return nil, err
		}
		tok.value = value
		tok.expires = ts.now().Add(ttl)
		if newRefresh != "" {
			ts.refresh = newRefresh
		}
		close(tok.done)
		ts.mu.Unlock()
		return tok, nil
	}
}

// extras adds to scopes, up to maxScopesPerToken, expected scopes with the
// same actions as need that no token holds or is being fetched for.
// ts.mu is held.
func (ts *tokenSet) extras(scopes, need []string) []string {
	_, acts := splitScope(need[0])
	want := strings.Join(acts, ",")
	for i := ts.next; i < len(ts.expected) && len(scopes) < maxScopesPerToken; i++ {
		s := ts.expected[i]
		if _, a := splitScope(s); strings.Join(a, ",") != want || slices.Contains(scopes, s) || ts.covered(s) {
			continue
		}
		scopes = append(scopes, s)
	}
	return scopes
}

// covered says whether a token held or being fetched covers scope s.
// ts.mu is held.
func (ts *tokenSet) covered(s string) bool {
	r, _ := splitScope(s)
	tok := ts.tokens[r]
	return tok != nil && tok.covers([]string{s})
}

// advance moves past the expected scopes that tokens cover, so that the
// next batch starts after them. ts.mu is held.
func (ts *tokenSet) advance() {
	for ts.next < len(ts.expected) && ts.covered(ts.expected[ts.next]) {
		ts.next++
	}
}

// tokenAnswer is a token server's answer.
type tokenAnswer struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
}

// fetchToken asks the realm of t's host for a token with scopes: with a
// registry token from the credentials, none is asked for; with an identity
// (refresh) token, by OAuth2 POST (falling back to GET where the server
// has no OAuth2 endpoint); otherwise by GET, with the credentials as Basic
// when there are any. It returns the token, its lifetime and any refresh
// token handed out.
func (c *Client) fetchToken(ctx context.Context, t *authTransport, scopes []string, refresh string) (string, time.Duration, string, error) {
	auth, err := c.authenticator(ctx, t.res)
	if err != nil {
		return "", 0, "", err
	}
	cfg, err := authn.Authorization(ctx, auth)
	if err != nil {
		return "", 0, "", fmt.Errorf("resolve credentials for %s: %w", t.res.RegistryStr(), err)
	}
	if cfg.RegistryToken != "" {
		// A token the credentials hold already: no expiry known; a 401
		// says it is no good, and asking again gives the same.
		return cfg.RegistryToken, 24 * time.Hour, "", nil
	}
	if refresh == "" {
		refresh = cfg.IdentityToken
	}
	ctx = withKind(ctx, "token")
	hc := &http.Client{Transport: c.tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if _, err := validRealm(req.URL.String(), t.res.RegistryStr(), t.auth.insecure); err != nil {
			return fmt.Errorf("token server redirect: %w", err)
		}
		return nil
	}}
	var resp *http.Response
	if refresh != "" {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"cip"},
			"scope": {strings.Join(scopes, " ")}}
		if t.auth.service != "" {
			form.Set("service", t.auth.service)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.auth.realm.String(), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(form.Encode())), nil }
		resp, err = hc.Do(req)
		if err == nil && resp.StatusCode == http.StatusNotFound {
			// Not every token server speaks OAuth2: the token protocol's GET.
			resp.Body.Close()
			resp = nil
		}
	}
	if resp == nil && err == nil {
		u := *t.auth.realm
		q := u.Query()
		q["scope"] = scopes
		if t.auth.service != "" {
			q.Set("service", t.auth.service)
		}
		u.RawQuery = q.Encode()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if cfg.Username != "" || cfg.Password != "" {
			req.SetBasicAuth(cfg.Username, cfg.Password)
		}
		resp, err = hc.Do(req)
	}
	if err != nil {
		return "", 0, "", fmt.Errorf("fetch token from %s: %w", t.auth.realm.Host, err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return "", 0, "", fmt.Errorf("fetch token from %s: %w", t.auth.realm.Host, err)
	}
	var ans tokenAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTokenBody)).Decode(&ans); err != nil {
		return "", 0, "", fmt.Errorf("fetch token from %s: decode: %w", t.auth.realm.Host, err)
	}
	tok := ans.Token
	if tok == "" {
		tok = ans.AccessToken
	}
	if tok == "" {
		return "", 0, "", fmt.Errorf("fetch token from %s: the answer holds no token", t.auth.realm.Host)
	}
	ttl := time.Duration(ans.ExpiresIn) * time.Second
	if ttl <= 0 {
		ttl = defaultTokenTTL
	}
	// Renew a little early: a token used at the edge of its life may
	// expire on the way (the registry's clock and cip's differ too).
	ttl -= min(ttl/10, 30*time.Second)
	c.tr.secrets.add(tok)
	c.tr.secrets.add(ans.RefreshToken)
	return tok, ttl, ans.RefreshToken, nil
}

// hostOf returns the host of a full name (host[:port]/path), or the name.
func hostOf(s string) string {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i]
	}
	return s
}

// Package registry speaks the OCI distribution API for cip, reads and
// writes: catalogs and tags (with GCR's tags/list extension), manifests
// (HEAD, GET, PUT) and blobs (HEAD, GET, cross-repository mount, upload).
// Every request goes through one shared Transport (per-host requests in
// flight and an adaptive pace, retries, logging, counters) and cip's own
// authentication (auth.go: one ping per host, tokens kept per credentials
// and scope, several repositories per token request), over
// go-containerregistry's authn keychains. Callers decide what to copy and
// where from; this package only speaks the protocol.
package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/google"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cipdev/cip/internal/googlehost"
	"github.com/cipdev/cip/internal/once"
)

// MaxManifestSize caps a manifest body: the distribution spec suggests
// registries accept at least 4 MiB, and no real manifest comes near it.
const MaxManifestSize = 4 << 20

// ErrNotFound is returned when a repository, tag or manifest does not exist.
var ErrNotFound = errors.New("not found")

// Options configures a Client.
type Options struct {
	// Transport is the shared transport; nil means NewTransport with defaults.
	Transport *Transport
	// Keychain resolves credentials; nil means the docker config and
	// credential helpers, then the Google keychain for gcr.io and
	// *-docker.pkg.dev.
	Keychain authn.Keychain
	// Insecure lists registry hosts spoken to over plain HTTP (loopback hosts
	// are detected without it).
	Insecure []string
	// ServiceAccounts maps a registry name (host/path prefix) to a service
	// account whose identity is borrowed through gcloud impersonation.
	// Entries on registries that are not Google's are never used: a gcloud
	// access token is good only at Google.
	ServiceAccounts map[string]string
	// MaxTags, MaxRepositories and MaxPages cap listings (see Tags and
	// Catalog); 0 means DefaultMaxTags, DefaultMaxRepositories and
	// DefaultMaxPages.
	MaxTags, MaxRepositories, MaxPages int
	// Warn receives warnings about a registry that the run goes on with
	// (a token realm on another host), once per registry; nil means none.
	Warn func(msg string)
}

// Client is a registry client shared by one run. It is safe for concurrent use.
type Client struct {
	tr       *Transport
	keychain authn.Keychain
	insecure map[string]bool
	accounts map[string]string
	warn     func(string)

	maxTags, maxRepositories, maxPages int

	pings     once.Group[string, *transport.Challenge] // by registry host
	creds     once.Group[string, resolved]             // by identity (host and service account)
	tokenSets sync.Map                                 // identity -> *tokenSet

	realmWarned sync.Map // registry host -> true, once warned about its token realm

	interned internTable // listings' digests and tags, one copy each (list.go)
}

// New returns a Client.
func New(opts Options) *Client {
	tr := opts.Transport
	if tr == nil {
		tr = NewTransport(TransportOptions{})
	}
	kc := opts.Keychain
	if kc == nil {
		kc = authn.NewMultiKeychain(authn.DefaultKeychain, google.Keychain)
	}
	c := &Client{tr: tr, keychain: kc, insecure: map[string]bool{}, accounts: map[string]string{}, warn: opts.Warn,
		maxTags: cmp.Or(opts.MaxTags, DefaultMaxTags), maxRepositories: cmp.Or(opts.MaxRepositories, DefaultMaxRepositories),
		maxPages: cmp.Or(opts.MaxPages, DefaultMaxPages)}
	for reg, sa := range opts.ServiceAccounts {
		if googlehost.OfName(reg) {
			c.accounts[reg] = sa
		}
	}
	for _, h := range opts.Insecure {
		c.insecure[h] = true
	}
	return c
}

// MaxRepositories is the cap on a catalog's entries, which a caller walking
// GCR's child lists applies to the walk too.
func (c *Client) MaxRepositories() int { return c.maxRepositories }

// Transport returns the shared transport (for request counts, or to hand to
// go-containerregistry's remote package).
func (c *Client) Transport() *Transport { return c.tr }

// Keychain returns the keychain the client authenticates with.
func (c *Client) Keychain() authn.Keychain { return c.keychain }

// ParseRepository parses a full repository name (host[:port]/path),
// honouring the client's insecure hosts.
func (c *Client) ParseRepository(s string) (name.Repository, error) {
	var opts []name.Option
	if c.insecure[hostOf(s)] {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(s, append(opts, name.StrictValidation)...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("parse repository %q: %w", s, err)
	}
	return r, nil
}

// ParseRegistry parses a registry host, honouring the client's insecure hosts.
func (c *Client) ParseRegistry(host string) (name.Registry, error) {
	var opts []name.Option
	if c.insecure[host] {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRegistry(host, append(opts, name.StrictValidation)...)
	if err != nil {
		return name.Registry{}, fmt.Errorf("parse registry %q: %w", host, err)
	}
	return r, nil
}

// Authenticator returns the credentials for a repository: the service
// account configured for it (through gcloud), else the keychain's.
func (c *Client) Authenticator(repo name.Repository) (authn.Authenticator, error) {
	a, err := c.authenticator(context.Background(), repo)
	return a, c.tr.secrets.redacted(err)
}

func (c *Client) serviceAccount(repo string) string {
	best, sa := "", ""
	for prefix, acct := range c.accounts {
		if (repo == prefix || strings.HasPrefix(repo, prefix+"/")) && len(prefix) > len(best) {
			best, sa = prefix, acct
		}
	}
	return sa
}

// challenge pings reg once per run and returns its authentication
// challenge, warning once when its token realm is on another host.
// Failures are not kept: the next request pings again. The Transport's own
// errors (a host that cannot be reached, a timeout, a host given up) come
// back as themselves.
func (c *Client) challenge(ctx context.Context, reg name.Registry) (*transport.Challenge, error) {
	ch, ran, err := c.pings.Do(ctx, reg.RegistryStr(), func() (*transport.Challenge, error) {
		ch, err := transport.Ping(ctx, reg, c.tr)
		if err != nil {
			if te, own := ownError(err); own {
				return nil, te
			}
			return nil, fmt.Errorf("ping %s: %w", reg.RegistryStr(), err)
		}
		return ch, nil
	})
	if ran && err == nil {
		c.checkRealm(reg.RegistryStr(), ch)
	}
	return ch, err
}

// RoundTripper returns an authenticated transport for repo with the given
// scope (transport.PullScope or transport.PushScope): its host pinged once
// per run, its token (for a bearer registry) fetched now and shared with
// every other request of the run that the token covers.
func (c *Client) RoundTripper(ctx context.Context, repo name.Repository, scope string) (http.RoundTripper, error) {
	rt, err := c.roundTripper(ctx, repo, scope)
	if err != nil {
		return nil, c.tr.secrets.redacted(err)
	}
	return rt, nil
}

func (c *Client) roundTripper(ctx context.Context, repo name.Repository, scope string) (*authTransport, error) {
	at, err := c.transportFor(ctx, repo, repo.Registry, []string{repo.Scope(scope)})
	if err != nil {
		return nil, authError(repo.Name(), err)
	}
	if err := at.token(ctx); err != nil {
		return nil, authError(repo.Name(), err)
	}
	return at, nil
}

// authError is the error of authenticating to what: the Transport's own
// errors (a host that cannot be reached, a timeout, a host given up) as
// themselves, so that the message says what failed once; others as
// "authenticate to what: …".
func authError(what string, err error) error {
	if te, own := ownError(err); own {
		return te
	}
	return fmt.Errorf("authenticate to %s: %w", what, err)
}

// do sends one distribution request to repo with the scope's
// authentication (and any further scopes it needs: a mount's source), and
// counts it for WithRequestCounter. Errors from the Transport (a host that
// cannot be reached, a timeout, a host given up) come back as themselves,
// without net/http's URL around them.
func (c *Client) do(ctx context.Context, repo name.Repository, scope string, req *http.Request, more ...string) (*http.Response, error) {
	at, err := c.transportFor(ctx, repo, repo.Registry, append([]string{repo.Scope(scope)}, more...))
	if err == nil {
		// The token first, so that a failure to get one is told without
		// the request's URL (RoundTrip then finds it in the cache).
		err = at.token(ctx)
	}
	if err != nil {
		closeBody(req)
		return nil, authError(repo.Name(), err)
	}
	if n, ok := ctx.Value(counterKey{}).(*atomic.Int64); ok {
		n.Add(1)
	}
	resp, err := (&http.Client{Transport: at}).Do(req.WithContext(ctx))
	return resp, transportError(err)
}

type counterKey struct{}

// WithRequestCounter returns a context under which every request a Client
// method sends adds one to n: what one piece of work costs (promote counts
// the requests of each destination, its reads of the source included). A
// request the Transport retries counts once here; Transport.Stats counts
// every attempt, and the authentication handshakes.
func WithRequestCounter(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, counterKey{}, n)
}

// checkError is transport.CheckError (which reads the registry's error
// body), then drains and closes the body either way, so that the
// connection can be reused.
func checkError(resp *http.Response, codes ...int) error {
	err := transport.CheckError(resp, codes...)
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
	return err
}

func repoURL(repo name.Repository, suffix string) *url.URL {
	return &url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: "/v2/" + repo.RepositoryStr() + suffix}
}

// gcloudImpersonation borrows a service account's identity through
// `gcloud auth print-access-token --impersonate-service-account`.
type gcloudImpersonation struct {
	account  string
	registry string

	once  sync.Once
	token string
	err   error
}

func (g *gcloudImpersonation) Authorization() (*authn.AuthConfig, error) {
	g.once.Do(func() {
		path, err := exec.LookPath("gcloud")
		if err != nil {
			g.err = fmt.Errorf("registry %s names service account %s, but gcloud is not installed to impersonate it: %w", g.registry, g.account, err)
			return
		}
		out, err := exec.Command(path, "auth", "print-access-token", "--impersonate-service-account="+g.account).Output()
		if err != nil {
			g.err = fmt.Errorf("impersonate service account %s for registry %s: %w", g.account, g.registry, err)
			return
		}
		g.token = strings.TrimSpace(string(out))
	})
	if g.err != nil {
		return nil, g.err
	}
	return &authn.AuthConfig{Username: "oauth2accesstoken", Password: g.token}, nil
}

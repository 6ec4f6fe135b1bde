package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Listing caps (Options; cip's --max-tags, --max-repositories, --max-pages).
const (
	// DefaultMaxTags caps the entries of one repository's tag listing:
	// tags, and with GCR's extension digests, their tags and child names.
	// The largest repository of the Kubernetes promoter's manifests has
	// 1,660 digests and 575 tags; a million entries of 128-character tags
	// still fit in about 150 MB.
	DefaultMaxTags = 1_000_000
	// DefaultMaxRepositories caps a catalog's entries: registry.k8s.io's
	// manifests name about 1,200 images; this is eighty times that.
	DefaultMaxRepositories = 100_000
	// DefaultMaxPages caps the pages of one listing: DefaultMaxTags
	// entries at 100 a page, the smallest page size registries serve.
	DefaultMaxPages = 10_000
	// maxListBytes caps the bytes of one listing, all pages together: more
	// than the largest tags/list answer (GCR's, with every digest) of any
	// repository under the entry caps.
	maxListBytes = 256 << 20
	// maxJSONToken caps one JSON string or number in a listing: tags are at
	// most 128 characters, repository names 255, digests 135 (sha512).
	// Without it one huge string would be held whole by the decoder.
	maxJSONToken = 64 << 10
)

// Listing errors a caller may branch on: a listing past a cap (entries,
// pages or bytes), and one whose pages loop back (it cannot be trusted to
// be complete).
var (
	ErrListTooLarge = errors.New("listing too large")
	ErrListLoop     = errors.New("listing loops")
)

// listing bounds one listing (a repository's tags, a catalog) as its pages
// arrive: entries, pages and bytes, and the URLs already fetched.
type listing struct {
	what       string // "tags of REPO", "catalog of HOST"
	flag       string // the flag that raises the entry cap
	maxEntries int
	maxPages   int
	entries    int
	pages      int
	bytes      int64
	seen       map[string]bool // URLs fetched
	prev       string          // the URL fetched last
	interned   *internTable    // the Client's shared copies
}

func (c *Client) newListing(what, flag string, maxEntries int) *listing {
	return &listing{what: what, flag: flag, maxEntries: maxEntries, maxPages: c.maxPages, seen: map[string]bool{}, interned: &c.interned}
}

// add counts n entries, failing past the cap.
func (l *listing) add(n int) error {
	l.entries += n
	if l.entries > l.maxEntries {
		return fmt.Errorf("%w: more than %d entries (%s)", ErrListTooLarge, l.maxEntries, l.flag)
	}
	return nil
}

// next counts the page about to be fetched from u; added says whether the
// page read before it added an entry. It fails past the page cap, and
// reports false when the listing is complete: u was fetched already, and is
// the page just read (a last page linking to itself) or follows a page
// that added nothing. A Link back to an earlier page after one that added
// entries is an error: the listing cannot be trusted to be complete.
func (l *listing) next(u *url.URL, added bool) (bool, error) {
	if l.seen[u.String()] {
		if u.String() == l.prev || !added {
			return false, nil
		}
		return false, loopError(u)
	}
	if l.pages >= l.maxPages {
		return false, fmt.Errorf("%w: more than %d pages (--max-pages)", ErrListTooLarge, l.maxPages)
	}
	l.pages++
	l.seen[u.String()] = true
	l.prev = u.String()
	return true, nil
}

// TagList is a tags/list answer. Manifests and Children are filled only by
// registries that implement GCR's extension (gcr.io, *-docker.pkg.dev):
// Manifests maps every digest in the repository (tagged or not) to its
// details; Children lists the sub-repositories below this path.
type TagList struct {
	Tags      []string
	Manifests map[string]GCRManifest
	Children  []string
}

// GCRManifest is one entry of GCR's tags/list "manifest" map.
type GCRManifest struct {
	MediaType string   `json:"mediaType"`
	Tags      []string `json:"tag"`
	Size      string   `json:"imageSizeBytes"`
}

// tagsPageSize is 1000, the most ECR accepts; registries that page further
// say so with a Link header.
const tagsPageSize = 1000

// Tags lists repo's tags, following n/last pagination and Link headers. A
// repository that does not exist is reported as ErrNotFound.
//
// Paging ends at the last page, at a page that adds no entry (registries
// that link past the end, or ignore "last" and serve the same page again),
// and at a Link to the page itself; a Link back to an earlier page after
// a page that added entries means the listing cannot be trusted to be
// complete, and is an error. Entries, pages and bytes are
// capped (Options.MaxTags, MaxPages): a listing past a cap is an error
// wrapping ErrListTooLarge, never a truncated list.
func (c *Client) Tags(ctx context.Context, repo name.Repository) (*TagList, error) {
	tl, err := c.tags(ctx, repo)
	return tl, c.tr.secrets.redacted(err)
}

func (c *Client) tags(ctx context.Context, repo name.Repository) (*TagList, error) {
	fail := func(err error) (*TagList, error) { return nil, fmt.Errorf("list tags of %s: %w", repo.Name(), err) }
	u := repoURL(repo, "/tags/list")
	u.RawQuery = "n=" + strconv.Itoa(tagsPageSize)
	l := c.newListing("tags of "+repo.Name(), "--max-tags", c.maxTags)
	out := &TagList{}
	// What pages add: from the second page on, tags are checked against
	// the ones listed (a set built only then: most listings are one page).
	var seenTags map[string]bool
	seenChildren := map[string]bool{}
	added := true // whether the last page added an entry
	for u != nil {
		more, err := l.next(u, added)
		if err != nil {
			return fail(err)
		}
		if !more {
			break
		}
		req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
		resp, err := c.do(ctx, repo, transport.PullScope, req)
		if err != nil {
			return fail(err)
		}
		if resp.StatusCode == http.StatusNotFound {
			resp.Body.Close()
			return fail(ErrNotFound)
		}
		if resp.StatusCode != http.StatusOK {
			return fail(checkError(resp, http.StatusOK))
		}
		if l.pages == 2 {
			seenTags = make(map[string]bool, len(out.Tags))
			for _, t := range out.Tags {
				seenTags[t] = true
			}
		}
		// Entries go straight into out, new ones only: a page served
		// again costs no memory.
		added = false
		pageTags, lastTag, gcr := 0, "", false
		err = decodeList(resp.Body, l, func(s *scanner, key string) error {
			switch key = fold(key, "tags", "child", "manifest"); key {
			case "tags":
				return stringArray(s, func(v string) error {
					pageTags++
					lastTag = v
					if seenTags != nil {
						if seenTags[v] {
							return nil
						}
						seenTags[v] = true
					}
					added = true
					out.Tags = append(out.Tags, l.interned.intern(v))
					return l.add(1)
				})
			case "child":
				return stringArray(s, func(v string) error {
					if seenChildren[v] {
						return nil
					}
					seenChildren[v] = true
					added = true
					out.Children = append(out.Children, v)
					return l.add(1)
				})
			case "manifest":
				gcr = true
				n, err := gcrManifests(s, l, &out.Manifests)
				added = added || n > 0
				return err
			}
			return s.skip()
		})
		resp.Body.Close()
		if err != nil {
			return fail(err)
		}
		if !added {
			// An empty page, or one served again: the listing ended.
			break
		}
		next, err := nextPage(resp, u)
		if err != nil {
			return fail(err)
		}
		if next == nil && !gcr && pageTags == tagsPageSize {
			// A page of exactly the size asked for and no Link header: ask
			// for the page after its last tag (the spec's n/last
			// pagination). A registry that sent more than it was asked
			// for ignores n: that page was the whole listing.
			next = repoURL(repo, "/tags/list")
			next.RawQuery = url.Values{"n": {strconv.Itoa(tagsPageSize)}, "last": {lastTag}}.Encode()
		}
		u = next
	}
	return out, nil
}

// loopError is a Link back to an earlier page after a page that added
// entries: more pages may exist that the loop hides, and a listing taken
// as complete would drop them from the inventory.
func loopError(u *url.URL) error {
	return fmt.Errorf("%w: the registry's Link header leads back to %s, a page already read: the listing cannot be trusted to be complete", ErrListLoop, u.RequestURI())
}

// nextPage resolves a Link: <url>; rel="next" header against the request
// URL, refusing links to another host.
func nextPage(resp *http.Response, cur *url.URL) (*url.URL, error) {
	link := resp.Header.Get("Link")
	if link == "" {
		return nil, nil
	}
	start, end := strings.IndexByte(link, '<'), strings.IndexByte(link, '>')
	if start < 0 || end < start {
		return nil, fmt.Errorf("parse Link header %q", link)
	}
	next, err := url.Parse(link[start+1 : end])
	if err != nil {
		return nil, fmt.Errorf("parse Link header %q: %w", link, err)
	}
	next = cur.ResolveReference(next)
	if next.Host != cur.Host {
		return nil, fmt.Errorf("Link header points to another host: %q", link)
	}
	return next, nil
}

// catalogPageSize: 1000 per page, the largest page size every common
// registry accepts.
const catalogPageSize = 1000

// Catalog lists every repository of reg (paginated, with the same stops
// and caps as Tags; Options.MaxRepositories caps the entries). Registries
// that do not offer a catalog answer with an error wrapping ErrNotFound or
// the registry's own error.
func (c *Client) Catalog(ctx context.Context, reg name.Registry) ([]string, error) {
	out, err := c.catalog(ctx, reg)
	return out, c.tr.secrets.redacted(err)
}

func (c *Client) catalog(ctx context.Context, reg name.Registry) ([]string, error) {
	fail := func(err error) ([]string, error) {
		return nil, fmt.Errorf("list catalog of %s: %w", reg.RegistryStr(), transportError(err))
	}
	// Catalog needs a registry-scoped token.
	at, err := c.transportFor(ctx, reg, reg, []string{reg.Scope(transport.PullScope)})
	if err == nil {
		err = at.token(ctx)
	}
	if err != nil {
		return fail(err)
	}
	hc := &http.Client{Transport: at}
	u := &url.URL{Scheme: reg.Scheme(), Host: reg.RegistryStr(), Path: "/v2/_catalog", RawQuery: "n=" + strconv.Itoa(catalogPageSize)}
	l := c.newListing("catalog of "+reg.RegistryStr(), "--max-repositories", c.maxRepositories)
	var out []string
	var seen map[string]bool
	added := true
	for u != nil {
		more, err := l.next(u, added)
		if err != nil {
			return fail(err)
		}
		if !more {
			break
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		resp, err := hc.Do(req)
		if err != nil {
			return fail(err)
		}
		if resp.StatusCode == http.StatusNotFound {
			resp.Body.Close()
			return fail(ErrNotFound)
		}
		if resp.StatusCode != http.StatusOK {
			return fail(checkError(resp, http.StatusOK))
		}
		if l.pages == 2 {
			seen = make(map[string]bool, len(out))
			for _, r := range out {
				seen[r] = true
			}
		}
		added = false
		err = decodeList(resp.Body, l, func(s *scanner, key string) error {
			if fold(key, "repositories") != "repositories" {
				return s.skip()
			}
			return stringArray(s, func(v string) error {
				if seen != nil {
					if seen[v] {
						return nil
					}
					seen[v] = true
				}
				added = true
				out = append(out, v)
				return l.add(1)
			})
		})
		resp.Body.Close()
		if err != nil {
			return fail(err)
		}
		if !added {
			break
		}
		if u, err = nextPage(resp, u); err != nil {
			return fail(err)
		}
	}
	return out, nil
}

// decodeList streams one page of a listing, a JSON object, calling member
// for each of its members with the scanner positioned at the value (which
// member must consume). The page's bytes count toward the listing's, and no
// single string or number may exceed maxJSONToken: memory stays that of the
// entries kept, whatever the registry sends.
func decodeList(r io.Reader, l *listing, member func(s *scanner, key string) error) error {
	s := newScanner(r, l)
	err := s.object(func(key string) error { return member(s, key) })
	if err == nil {
		err = s.end()
	}
	if err != nil && !errors.Is(err, ErrListTooLarge) {
		return fmt.Errorf("decode: %w", err)
	}
	return err
}

// fold returns the name among names that key equals ignoring case (as
// encoding/json matches object keys to fields), or key itself.
func fold(key string, names ...string) string {
	for _, n := range names {
		if strings.EqualFold(key, n) {
			return n
		}
	}
	return key
}

// stringArray reads a JSON array of strings (or null), handing each to
// add.
func stringArray(s *scanner, add func(string) error) error {
	return s.array(func() error {
		v, err := s.string()
		if err != nil {
			return err
		}
		return add(v)
	})
}

// internTable is a Client's one copy of each digest and tag its listings
// returned. Mirrors list the same repositories at about the same moment,
// with the same tags and (on GCR and Artifact Registry) the same digests:
// without it each listing held its own copy (a fresh plan at full
// registry.k8s.io scale held 88 MB of listing strings at its peak). The
// table holds its strings for the Client's life (a run), at most
// maxInterned of them: unique.Make, which lets go of a string once its
// Handle is gone, cost 3.1 µs a call against 0.14 µs here (1M look-ups of
// 50k digests), as its entries were dropped and made again at every
// collection.
type internTable struct {
	mu sync.Mutex
	m  map[string]string
}

// maxInterned bounds a Client's table: 1M strings of ~70 bytes.
const maxInterned = 1 << 20

// intern returns the table's copy of s, adding s while there is room (a
// nil table, a listing made by hand, returns s).
func (t *internTable) intern(s string) string {
	if t == nil {
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.m[s]; ok {
		return v
	}
	if t.m == nil {
		t.m = map[string]string{}
	}
	if len(t.m) < maxInterned {
		t.m[s] = s
	}
	return s
}

// gcrManifests reads GCR's "manifest" object (digest → details) into out,
// skipping digests out already has; each new digest and each of its tags
// counts as an entry of l. It returns how many digests it added; out stays
// nil until one is. Media
// types are shared between entries: a repository has a handful of them and
// many digests.
func gcrManifests(s *scanner, l *listing, out *map[string]GCRManifest) (int, error) {
	types := map[string]string{}
	added := 0
	err := s.object(func(digest string) error {
		if _, ok := (*out)[digest]; ok {
			return s.skip()
		}
		digest = l.interned.intern(digest)
		if err := l.add(1); err != nil {
			return err
		}
		var m GCRManifest
		err := s.object(func(key string) error {
			switch fold(key, "mediaType", "tag", "imageSizeBytes") {
			case "mediaType":
				if null, err := s.null(); null || err != nil {
					return err
				}
				v, err := s.string()
				if err != nil {
					return err
				}
				if shared, ok := types[v]; ok {
					v = shared
				} else if len(types) < 64 {
					types[v] = v
				}
				m.MediaType = v
				return nil
			case "tag":
				return stringArray(s, func(v string) error {
					m.Tags = append(m.Tags, l.interned.intern(v))
					return l.add(1)
				})
			case "imageSizeBytes":
				b, err := s.peek()
				switch {
				case err != nil:
					return err
				case b == '"':
					m.Size, err = s.string()
				case b == '-' || b >= '0' && b <= '9':
					m.Size, err = s.number()
				default:
					err = s.skip()
				}
				return err
			}
			return s.skip()
		})
		if err != nil {
			return err
		}
		if *out == nil {
			// Only a map with entries says "GCR's extension" (sync then
			// takes digests from it instead of HEADs).
			*out = map[string]GCRManifest{}
		}
		(*out)[digest] = m
		added++
		return nil
	})
	return added, err
}

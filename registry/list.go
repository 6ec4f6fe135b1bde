package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

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
}

func (c *Client) newListing(what, flag string, maxEntries int) *listing {
	return &listing{what: what, flag: flag, maxEntries: maxEntries, maxPages: c.maxPages, seen: map[string]bool{}}
}

// add counts n entries, failing past the cap.
func (l *listing) add(n int) error {
	l.entries += n
	if l.entries > l.maxEntries {
		return fmt.Errorf("%w: more than %d entries (%s)", ErrListTooLarge, l.maxEntries, l.flag)
	}
	return nil
}

// page counts a page about to be fetched from u. It fails past the page cap
// and reports false for a URL already fetched (the registry's Link leads
// back: the caller stops).
func (l *listing) page(u *url.URL) (bool, error) {
	if l.seen[u.String()] {
		return false, nil
	}
	if l.pages >= l.maxPages {
		return false, fmt.Errorf("%w: more than %d pages (--max-pages)", ErrListTooLarge, l.maxPages)
	}
	l.pages++
	l.seen[u.String()] = true
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
	var seenTags map[string]bool // from the second page on, to tell what a page adds
	seenChildren := map[string]bool{}
	added, prev := true, "" // whether the last page added an entry; its URL
	for u != nil {
		fresh, err := l.page(u)
		if err != nil {
			return fail(err)
		}
		if !fresh {
			if u.String() == prev || !added {
				// A last page linking to itself.
				break
			}
			return fail(loopError(u))
		}
		prev = u.String()
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
		var page TagList
		err = decodeList(resp.Body, l, func(dec *json.Decoder, key string) error {
			switch key {
			case "tags":
				return stringArray(dec, l, func(s string) { page.Tags = append(page.Tags, s) })
			case "child":
				return stringArray(dec, l, func(s string) { page.Children = append(page.Children, s) })
			case "manifest":
				return gcrManifests(dec, l, &page.Manifests)
			}
			return skipValue(dec)
		})
		resp.Body.Close()
		if err != nil {
			return fail(err)
		}
		if l.pages == 2 {
			seenTags = make(map[string]bool, len(out.Tags))
			for _, t := range out.Tags {
				seenTags[t] = true
			}
		}
		added = false
		for _, t := range page.Tags {
			if seenTags != nil {
				if seenTags[t] {
					continue
				}
				seenTags[t] = true
			}
			out.Tags = append(out.Tags, t)
			added = true
		}
		for d, m := range page.Manifests {
			if out.Manifests == nil {
				out.Manifests = map[string]GCRManifest{}
			}
			if _, ok := out.Manifests[d]; !ok {
				out.Manifests[d] = m
				added = true
			}
		}
		for _, ch := range page.Children {
			if !seenChildren[ch] {
				seenChildren[ch] = true
				out.Children = append(out.Children, ch)
				added = true
			}
		}
		if !added {
			// An empty page, or one served again: the listing ended.
			break
		}
		next, err := nextPage(resp, u)
		if err != nil {
			return fail(err)
		}
		if next == nil && len(page.Manifests) == 0 && len(page.Tags) >= tagsPageSize {
			// A full page and no Link header: ask for the page after the
			// last tag seen (the spec's n/last pagination).
			next = repoURL(repo, "/tags/list")
			next.RawQuery = url.Values{"n": {strconv.Itoa(tagsPageSize)}, "last": {page.Tags[len(page.Tags)-1]}}.Encode()
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
	// Catalog needs a registry-scoped token; a repository handle with an
	// empty path cannot be made, so build the transport directly.
	auth, err := c.keychain.Resolve(reg)
	if err != nil {
		return nil, fmt.Errorf("resolve credentials for %s: %w", reg.RegistryStr(), err)
	}
	rt, err := transport.NewWithContext(ctx, reg, c.tr.secrets.recording(auth), c.tr, []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return fail(err)
	}
	hc := &http.Client{Transport: rt}
	u := &url.URL{Scheme: reg.Scheme(), Host: reg.RegistryStr(), Path: "/v2/_catalog", RawQuery: "n=" + strconv.Itoa(catalogPageSize)}
	l := c.newListing("catalog of "+reg.RegistryStr(), "--max-repositories", c.maxRepositories)
	var out []string
	var seen map[string]bool
	added, prev := true, ""
	for u != nil {
		fresh, err := l.page(u)
		if err != nil {
			return fail(err)
		}
		if !fresh {
			if u.String() == prev || !added {
				// A last page linking to itself.
				break
			}
			return fail(loopError(u))
		}
		prev = u.String()
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
		var page []string
		err = decodeList(resp.Body, l, func(dec *json.Decoder, key string) error {
			if key == "repositories" {
				return stringArray(dec, l, func(s string) { page = append(page, s) })
			}
			return skipValue(dec)
		})
		resp.Body.Close()
		if err != nil {
			return fail(err)
		}
		if l.pages == 2 {
			seen = make(map[string]bool, len(out))
			for _, r := range out {
				seen[r] = true
			}
		}
		added = false
		for _, r := range page {
			if seen != nil {
				if seen[r] {
					continue
				}
				seen[r] = true
			}
			out = append(out, r)
			added = true
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
// for each of its members with the decoder positioned at the value (which
// member must consume). The page's bytes count toward the listing's, and no
// single string or number may exceed maxJSONToken: memory stays that of the
// entries kept, whatever the registry sends.
func decodeList(r io.Reader, l *listing, member func(dec *json.Decoder, key string) error) error {
	g := &tokenGuard{r: r, l: l}
	dec := json.NewDecoder(g)
	dec.UseNumber()
	err := func() error {
		if err := expectDelim(dec, '{'); err != nil {
			return err
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, ok := tok.(string)
			if !ok {
				return fmt.Errorf("object key %v is not a string", tok)
			}
			if err := member(dec, key); err != nil {
				return err
			}
		}
		return expectDelim(dec, '}')
	}()
	if g.err != nil {
		return g.err // the guard's own error, not the decoder's view of it
	}
	if err != nil && !errors.Is(err, ErrListTooLarge) {
		return fmt.Errorf("decode: %w", err)
	}
	return err
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("got %v, want %q", tok, want)
	}
	return nil
}

// stringArray reads a JSON array of strings (or null), counting each as an
// entry of l.
func stringArray(dec *json.Decoder, l *listing, add func(string)) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("got %v, want an array of strings", tok)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		s, ok := tok.(string)
		if !ok {
			return fmt.Errorf("got %v in an array of strings", tok)
		}
		if err := l.add(1); err != nil {
			return err
		}
		add(s)
	}
	return expectDelim(dec, ']')
}

// gcrManifests reads GCR's "manifest" object (digest → details), each
// digest and each of its tags counting as an entry. Media types are shared
// between entries: a repository has a handful of them and many digests.
func gcrManifests(dec *json.Decoder, l *listing, out *map[string]GCRManifest) error {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("got %v, want an object of manifests", tok)
	}
	if *out == nil {
		*out = map[string]GCRManifest{}
	}
	types := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		digest, ok := tok.(string)
		if !ok {
			return fmt.Errorf("manifest key %v is not a string", tok)
		}
		if err := l.add(1); err != nil {
			return err
		}
		var m GCRManifest
		if err := expectDelim(dec, '{'); err != nil {
			return err
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			switch tok {
			case "mediaType":
				tok, err := dec.Token()
				if err != nil {
					return err
				}
				if s, ok := tok.(string); ok {
					if shared, ok := types[s]; ok {
						s = shared
					} else if len(types) < 64 {
						types[s] = s
					}
					m.MediaType = s
				}
			case "tag":
				if err := stringArray(dec, l, func(s string) { m.Tags = append(m.Tags, s) }); err != nil {
					return err
				}
			case "imageSizeBytes":
				tok, err := dec.Token()
				if err != nil {
					return err
				}
				switch v := tok.(type) {
				case string:
					m.Size = v
				case json.Number:
					m.Size = v.String()
				}
			default:
				if err := skipValue(dec); err != nil {
					return err
				}
			}
		}
		if err := expectDelim(dec, '}'); err != nil {
			return err
		}
		(*out)[digest] = m
	}
	return expectDelim(dec, '}')
}

// skipValue consumes one JSON value, however nested, token by token (never
// holding it whole).
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			default:
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// tokenGuard is a listing page's body as the JSON decoder reads it: it
// counts the listing's bytes and fails past maxListBytes, and fails on a
// string or number longer than maxJSONToken (which the decoder would
// otherwise buffer whole).
type tokenGuard struct {
	r   io.Reader
	l   *listing
	err error

	inString, escaped bool
	run               int // length of the current string or bare token
}

func (g *tokenGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	g.l.bytes += int64(n)
	if g.l.bytes > maxListBytes {
		g.err = fmt.Errorf("%w: more than %d MiB", ErrListTooLarge, maxListBytes>>20)
		return 0, g.err
	}
	for _, b := range p[:n] {
		switch {
		case g.inString:
			switch {
			case g.escaped:
				g.escaped = false
			case b == '\\':
				g.escaped = true
			case b == '"':
				g.inString = false
				g.run = 0
				continue
			}
			g.run++
		case b == '"':
			g.inString = true
			g.run = 0
		case b == '{' || b == '}' || b == '[' || b == ']' || b == ',' || b == ':' || b == ' ' || b == '\n' || b == '\r' || b == '\t':
			g.run = 0
		default:
			g.run++
		}
		if g.run > maxJSONToken {
			g.err = fmt.Errorf("%w: a JSON value longer than %d KiB", ErrListTooLarge, maxJSONToken>>10)
			return 0, g.err
		}
	}
	return n, err
}

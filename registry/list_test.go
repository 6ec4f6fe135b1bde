package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/cipdev/cip/registry"
)

// listServer serves handler for every listing request (the ping answers
// 200) and counts them.
func listServer(t *testing.T, handler http.HandlerFunc) (host string, requests *atomic.Int64) {
	t.Helper()
	requests = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		requests.Add(1)
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), requests
}

func tagsJSON(tags ...string) string {
	b, _ := json.Marshal(map[string]any{"name": "a", "tags": tags})
	return string(b)
}

func genTags(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("t%07d", from+i)
	}
	return out
}

// Registries whose paging goes wrong: each stops, with what was listed, or
// fails naming the repository and why, within a bounded number of requests.
func TestTagsPagingHostile(t *testing.T) {
	tests := []struct {
		name     string
		opts     registry.Options
		handler  http.HandlerFunc
		want     []string
		wantErr  string
		requests int64
	}{
		{
			name: "empty last page whose Link points to itself",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("last") == "" {
					w.Header().Set("Link", `</v2/a/tags/list?n=1000&last=v2>; rel="next"`)
					fmt.Fprint(w, tagsJSON("v1", "v2"))
					return
				}
				w.Header().Set("Link", `</v2/a/tags/list?n=1000&last=v2>; rel="next"`)
				fmt.Fprint(w, tagsJSON())
			},
			want: []string{"v1", "v2"}, requests: 2,
		},
		{
			name: "a page linking to itself",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Link", `</v2/a/tags/list?n=1000>; rel="next"`)
				fmt.Fprint(w, tagsJSON("v1"))
			},
			want: []string{"v1"}, requests: 1,
		},
		{
			name: "GCR-style: n and last ignored, the same full page every time",
			handler: func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, tagsJSON(genTags(0, 1000)...))
			},
			want: genTags(0, 1000), requests: 2,
		},
		{
			name: "a Link back to the first page after new entries",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("last") == "" {
					w.Header().Set("Link", `</v2/a/tags/list?n=1000&last=v1>; rel="next"`)
					fmt.Fprint(w, tagsJSON("v1"))
					return
				}
				w.Header().Set("Link", `</v2/a/tags/list?n=1000>; rel="next"`)
				fmt.Fprint(w, tagsJSON("v2"))
			},
			wantErr: "leads back to /v2/a/tags/list?n=1000, a page already read: the listing cannot be trusted to be complete", requests: 2,
		},
		{
			name: "n/last paging that never ends: the entry cap",
			opts: registry.Options{MaxTags: 5000},
			handler: func(w http.ResponseWriter, r *http.Request) {
				from := 0
				if last := r.URL.Query().Get("last"); last != "" {
					from, _ = strconv.Atoi(last[1:])
					from++
				}
				fmt.Fprint(w, tagsJSON(genTags(from, 1000)...))
			},
			wantErr: "listing too large: more than 5000 entries (--max-tags)", requests: 6,
		},
		{
			name: "Link paging that never ends: the page cap",
			opts: registry.Options{MaxPages: 50},
			handler: func(w http.ResponseWriter, r *http.Request) {
				p, _ := strconv.Atoi(r.URL.Query().Get("page"))
				w.Header().Set("Link", fmt.Sprintf(`</v2/a/tags/list?page=%d>; rel="next"`, p+1))
				fmt.Fprint(w, tagsJSON(fmt.Sprintf("p%d", p)))
			},
			wantErr: "listing too large: more than 50 pages (--max-pages)", requests: 50,
		},
		{
			name: "one huge string",
			handler: func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, `{"name":"a","tags":["`+strings.Repeat("x", 100<<10)+`"]}`)
			},
			wantErr: "listing too large: a JSON value longer than 64 KiB", requests: 1,
		},
		{
			name: "GCR manifest map with too many tags in one entry",
			opts: registry.Options{MaxTags: 100},
			handler: func(w http.ResponseWriter, r *http.Request) {
				tags, _ := json.Marshal(genTags(0, 200))
				fmt.Fprintf(w, `{"name":"a","tags":[],"manifest":{"sha256:%s":{"tag":%s}}}`, strings.Repeat("0", 64), tags)
			},
			wantErr: "more than 100 entries (--max-tags)", requests: 1,
		},
		{
			name: "not JSON",
			handler: func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, `<html>`)
			},
			wantErr: "decode: invalid JSON: got '<', want '{'", requests: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, requests := listServer(t, tt.handler)
			opts := tt.opts
			opts.Keychain = anonymousKeychain
			c := registry.New(opts)
			tl, err := c.Tags(context.Background(), parse(t, c, host+"/a"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "list tags of "+host+"/a: ") {
					t.Fatalf("Tags = %v, want an error naming %s/a with %q", err, host, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("Tags = %v", err)
				}
				if diff := cmp.Diff(tt.want, tl.Tags); diff != "" {
					t.Errorf("Tags (-want +got):\n%s", diff)
				}
			}
			if got := requests.Load(); got != tt.requests {
				t.Errorf("listing requests = %d, want %d", got, tt.requests)
			}
		})
	}
}

// Tags pages that are not sorted are all kept (a registry need not sort),
// and entries a second page repeats are listed once.
func TestTagsUnsortedPages(t *testing.T) {
	host, _ := listServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("page") {
		case "":
			w.Header().Set("Link", `</v2/a/tags/list?page=2>; rel="next"`)
			fmt.Fprint(w, tagsJSON("v3", "v2"))
		default:
			fmt.Fprint(w, tagsJSON("v1", "v2"))
		}
	})
	c := registry.New(registry.Options{Keychain: anonymousKeychain})
	tl, err := c.Tags(context.Background(), parse(t, c, host+"/a"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"v3", "v2", "v1"}, tl.Tags); diff != "" {
		t.Errorf("Tags (-want +got):\n%s", diff)
	}
}

// The streaming decoder reads GCR's extension as encoding/json would:
// numbers and unknown fields, nulls, children.
func TestTagsGCRExtension(t *testing.T) {
	d1, d2 := "sha256:"+strings.Repeat("1", 64), "sha256:"+strings.Repeat("2", 64)
	body := fmt.Sprintf(`{"child":["sub","sub2"],"manifest":{
		%q:{"imageSizeBytes":"1234","layerId":"","mediaType":"application/vnd.oci.image.index.v1+json","tag":["v1","latest"],"timeCreatedMs":"1","timeUploadedMs":"2","extra":{"deep":[1,[2,{"x":null}]]}},
		%q:{"imageSizeBytes":99,"mediaType":"application/vnd.oci.image.index.v1+json","tag":null}},
		"name":"a","tags":["latest","v1"],"unknown":[true,false,null,{"a":"b"}]}`, d1, d2)
	host, _ := listServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })
	c := registry.New(registry.Options{Keychain: anonymousKeychain})
	tl, err := c.Tags(context.Background(), parse(t, c, host+"/a"))
	if err != nil {
		t.Fatal(err)
	}
	want := &registry.TagList{
		Tags: []string{"latest", "v1"},
		Manifests: map[string]registry.GCRManifest{
			d1: {MediaType: "application/vnd.oci.image.index.v1+json", Tags: []string{"v1", "latest"}, Size: "1234"},
			d2: {MediaType: "application/vnd.oci.image.index.v1+json", Size: "99"},
		},
		Children: []string{"sub", "sub2"},
	}
	if diff := cmp.Diff(want, tl); diff != "" {
		t.Errorf("Tags (-want +got):\n%s", diff)
	}
}

// _catalog linking to itself, and a catalog past its cap.
func TestCatalogPagingHostile(t *testing.T) {
	page := func(repos ...string) string {
		b, _ := json.Marshal(map[string]any{"repositories": repos})
		return string(b)
	}
	t.Run("linking to itself", func(t *testing.T) {
		host, requests := listServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", `</v2/_catalog?n=1000>; rel="next"`)
			fmt.Fprint(w, page("a", "b"))
		})
		c := registry.New(registry.Options{Keychain: anonymousKeychain})
		reg, _ := c.ParseRegistry(host)
		got, err := c.Catalog(context.Background(), reg)
		if err != nil || fmt.Sprint(got) != "[a b]" || requests.Load() != 1 {
			t.Errorf("Catalog = %v, %v after %d requests; want [a b] after 1", got, err, requests.Load())
		}
	})
	t.Run("never ending", func(t *testing.T) {
		host, requests := listServer(t, func(w http.ResponseWriter, r *http.Request) {
			p, _ := strconv.Atoi(r.URL.Query().Get("p"))
			w.Header().Set("Link", fmt.Sprintf(`</v2/_catalog?p=%d>; rel="next"`, p+1))
			fmt.Fprint(w, page(genTags(p*10, 10)...))
		})
		c := registry.New(registry.Options{Keychain: anonymousKeychain, MaxRepositories: 95})
		reg, _ := c.ParseRegistry(host)
		_, err := c.Catalog(context.Background(), reg)
		want := "list catalog of " + host + ": listing too large: more than 95 entries (--max-repositories)"
		if err == nil || err.Error() != want || !errors.Is(err, registry.ErrListTooLarge) {
			t.Errorf("Catalog = %v, want %q", err, want)
		}
		if requests.Load() != 10 {
			t.Errorf("catalog requests = %d, want 10", requests.Load())
		}
	})
}

var anonymousKeychain = authn.NewMultiKeychain()

// Two listings of the same repository through one Client (two mirrors
// listing it at once) share one copy of each tag and digest: the second
// listing's strings are the first's.
func TestTagsShareStrings(t *testing.T) {
	d := "sha256:" + strings.Repeat("3", 64)
	body := fmt.Sprintf(`{"manifest":{%q:{"mediaType":"application/vnd.oci.image.index.v1+json","tag":["v1"]}},"name":"a","tags":["v1"]}`, d)
	a, _ := listServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })
	b, _ := listServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, body) })
	c := registry.New(registry.Options{Keychain: anonymousKeychain})
	var lists []*registry.TagList
	for _, host := range []string{a, b} {
		tl, err := c.Tags(context.Background(), parse(t, c, host+"/a"))
		if err != nil {
			t.Fatal(err)
		}
		lists = append(lists, tl)
	}
	key := func(tl *registry.TagList) string {
		for k := range tl.Manifests {
			return k
		}
		return ""
	}
	same := func(x, y string) bool { return x == y && unsafe.StringData(x) == unsafe.StringData(y) }
	if k0, k1 := key(lists[0]), key(lists[1]); !same(k0, k1) {
		t.Errorf("the two listings' digest %q and %q are two copies", k0, k1)
	}
	if !same(lists[0].Tags[0], lists[1].Tags[0]) || !same(lists[0].Manifests[d].Tags[0], lists[1].Manifests[d].Tags[0]) {
		t.Errorf("the two listings' tags are two copies")
	}
}

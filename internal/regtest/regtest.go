// Package regtest serves go-containerregistry's in-memory registry through
// httptest for cip's unit tests, counts the requests it receives, lets a
// test inject faults, and seeds it with random images and indexes.
package regtest

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipdev/cip/internal/apipath"
)

// Registry is a running in-memory registry.
type Registry struct {
	Server *httptest.Server
	Host   string // 127.0.0.1:port

	mu     sync.Mutex
	counts map[string]int
	// Fault, when set, may answer a request instead of the registry
	// (return true when it wrote a response).
	fault func(w http.ResponseWriter, r *http.Request) bool
}

// New starts a registry that stops when the test ends.
func New(t testing.TB) *Registry {
	t.Helper()
	return start(t, ggcrregistry.New(ggcrregistry.Logger(nopLogger())))
}

// NewReferrers starts a registry that serves the OCI 1.1 referrers API as
// the spec has it: go-containerregistry's (registry.WithReferrersSupport)
// with pages of pageSize descriptors linked by Link headers, the
// artifactType filter (announced with OCI-Filters-Applied), each
// referrer's artifactType read from its manifest, and the OCI-Subject
// header on the PUT of a manifest with a subject.
func NewReferrers(t testing.TB, pageSize int) *Registry {
	t.Helper()
	inner := ggcrregistry.New(ggcrregistry.Logger(nopLogger()), ggcrregistry.WithReferrersSupport(true))
	return start(t, &referrersAPI{inner: inner, pageSize: pageSize})
}

func start(t testing.TB, inner http.Handler) *Registry {
	reg := &Registry{counts: map[string]int{}}
	reg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reg.mu.Lock()
		reg.counts[r.Method+" "+apipath.Kind(r.URL.Path)]++
		f := reg.fault
		reg.mu.Unlock()
		if f != nil && f(w, r) {
			return
		}
		if r.Method == http.MethodPut && apipath.Kind(r.URL.Path) == "manifest" {
			// go-containerregistry's registry stores whatever part of a
			// manifest it read when the client went away mid-body (a
			// cancelled run): a tag at the digest of an empty or cut body,
			// which no real registry keeps. Refuse a body that did not
			// arrive whole, as a registry checking it would.
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "read manifest: "+err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(reg.Server.Close)
	reg.Host = strings.TrimPrefix(reg.Server.URL, "http://")
	return reg
}

// SetFault installs (or, with nil, removes) a fault injector.
func (r *Registry) SetFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fault = f
}

// Count returns how many requests of "METHOD kind" arrived (e.g. "GET manifest").
func (r *Registry) Count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[key]
}

// Counts returns a copy of all counters.
func (r *Registry) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// Reset zeroes the counters.
func (r *Registry) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts = map[string]int{}
}

// Ref returns host/path[:tag or @digest] as a name.Reference.
func (r *Registry) Ref(t testing.TB, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.Host + "/" + s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// Image returns a random image with layers of size bytes; oci selects OCI
// media types (else Docker's).
func Image(t testing.TB, size int64, layers int, oci bool) v1.Image {
	t.Helper()
	img, err := random.Image(size, int64(layers))
	if err != nil {
		t.Fatal(err)
	}
	if oci {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	return img
}

// Platforms is a typical multi-arch set.
var Platforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "s390x"},
}

// Index returns an index of one random image per platform; oci selects an
// OCI index (else a Docker manifest list).
func Index(t testing.TB, platforms []v1.Platform, oci bool) v1.ImageIndex {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	if oci {
		idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	} else {
		idx = mutate.IndexMediaType(idx, types.DockerManifestList)
	}
	for _, p := range platforms {
		img := Image(t, 512, 1, oci)
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return idx
}

// Push writes an image or index to host/path:tag (or @digest when tag is "").
func (r *Registry) Push(t testing.TB, path, tag string, x remote.Taggable) v1.Hash {
	t.Helper()
	var d v1.Hash
	var err error
	switch v := x.(type) {
	case v1.Image:
		d, err = v.Digest()
	case v1.ImageIndex:
		d, err = v.Digest()
	default:
		t.Fatalf("push %T: not an image or index", x)
	}
	if err != nil {
		t.Fatal(err)
	}
	ref := fmt.Sprintf("%s/%s@%s", r.Host, path, d)
	if tag != "" {
		ref = fmt.Sprintf("%s/%s:%s", r.Host, path, tag)
	}
	pr, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	switch v := x.(type) {
	case v1.Image:
		err = remote.Write(pr, v)
	case v1.ImageIndex:
		err = remote.WriteIndex(pr, v)
	}
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return d
}

// Tag points host/path:tag at an existing digest.
func (r *Registry) Tag(t testing.TB, path string, d v1.Hash, tag string) {
	t.Helper()
	src, err := name.NewDigest(fmt.Sprintf("%s/%s@%s", r.Host, path, d))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(src.Context().Tag(tag), desc); err != nil {
		t.Fatal(err)
	}
}

// Delete removes a tag or digest reference.
func (r *Registry) Delete(t testing.TB, ref string) {
	t.Helper()
	pr, err := name.ParseReference(r.Host + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(pr); err != nil {
		t.Fatalf("delete %s: %v", ref, err)
	}
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// Nest returns an OCI index whose only child is the index inner.
func Nest(t testing.TB, inner v1.ImageIndex) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	return mutate.AppendManifests(idx, mutate.IndexAddendum{Add: inner})
}

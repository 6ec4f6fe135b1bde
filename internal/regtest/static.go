package regtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Static is a registry that answers exactly what a test set, byte for
// byte, headers included: for the answers a real registry never gives (a
// catalog naming "..", a tag with a newline, a Docker-Content-Digest in
// md5, a schema 1 manifest named by its payload). /v2/ answers 200;
// anything not set answers 404. HEAD answers a GET's status and headers
// without the body.
type Static struct {
	Server *httptest.Server
	Host   string

	mu     sync.Mutex
	routes map[string]Response // by URL path, the query ignored
	counts map[string]int      // by METHOD + " " + path
}

// Response is one answer of a Static registry.
type Response struct {
	Status int // 0 is 200
	Header map[string]string
	Body   []byte
}

// NewStatic starts a Static registry that stops when the test ends.
func NewStatic(t testing.TB) *Static {
	t.Helper()
	s := &Static{routes: map[string]Response{"/v2/": {}}, counts: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Server.Close)
	s.Host = strings.TrimPrefix(s.Server.URL, "http://")
	return s
}

func (s *Static) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.counts[r.Method+" "+r.URL.Path]++
	resp, ok := s.routes[r.URL.Path]
	s.mu.Unlock()
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.Error(w, `{"errors":[{"code":"NAME_UNKNOWN","message":"not here"}]}`, http.StatusNotFound)
		return
	}
	for k, v := range resp.Header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.Body)))
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	if r.Method == http.MethodGet {
		w.Write(resp.Body)
	}
}

// Set answers path (e.g. /v2/app/tags/list) with resp.
func (s *Static) Set(path string, resp Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[path] = resp
}

// Count returns how many "METHOD path" requests arrived.
func (s *Static) Count(method, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[method+" "+path]
}

// Catalog answers /v2/_catalog with repos.
func (s *Static) Catalog(repos ...string) {
	s.JSON("/v2/_catalog", map[string]any{"repositories": repos})
}

// Tags answers repo's tags/list with tags.
func (s *Static) Tags(repo string, tags ...string) {
	s.JSON("/v2/"+repo+"/tags/list", map[string]any{"name": repo, "tags": tags})
}

// JSON answers path with v encoded as JSON.
func (s *Static) JSON(path string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	s.Set(path, Response{Header: map[string]string{"Content-Type": "application/json"}, Body: b})
}

// Manifest answers repo's manifests/ref (a tag or a digest) with body,
// Content-Type mediaType and, when digest is set, Docker-Content-Digest.
func (s *Static) Manifest(repo, ref, mediaType, digest string, body []byte) {
	h := map[string]string{"Content-Type": mediaType}
	if digest != "" {
		h["Docker-Content-Digest"] = digest
	}
	s.Set("/v2/"+repo+"/manifests/"+ref, Response{Header: h, Body: body})
}

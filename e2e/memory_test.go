package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"
)

// bigRegistry serves one repository, big/app, of tags v0…v(n-1), each at
// its own OCI image manifest of size bytes (padded with an annotation),
// generated on demand so that the test process holds none of them: a
// registry far larger than what cip may keep in memory.
type bigRegistry struct {
	n, size int
	srv     *httptest.Server
	mu      gosync.Mutex
	digests map[string]int // digest -> tag number
}

func startBigRegistry(t testing.TB, n, size int) *bigRegistry {
	t.Helper()
	r := &bigRegistry{n: n, size: size, digests: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *bigRegistry) host() string { return strings.TrimPrefix(r.srv.URL, "http://") }

func (r *bigRegistry) manifest(i int) []byte {
	head := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%064x","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%064x","size":%d}],"annotations":{"pad":"`, i, i+1<<40, 1000+i)
	tail := `"}}`
	pad := max(0, r.size-len(head)-len(tail))
	var b bytes.Buffer
	b.Grow(len(head) + pad + len(tail))
	b.WriteString(head)
	b.Write(bytes.Repeat([]byte{'a' + byte(i%26)}, pad))
	b.WriteString(tail)
	return b.Bytes()
}

func (r *bigRegistry) serve(w http.ResponseWriter, req *http.Request) {
	p := req.URL.Path
	switch {
	case p == "/v2/":
		return
	case p == "/v2/big/app/tags/list":
		n, _ := strconv.Atoi(req.URL.Query().Get("n"))
		if n <= 0 {
			n = r.n
		}
		start := 0
		if last := req.URL.Query().Get("last"); last != "" {
			start, _ = strconv.Atoi(strings.TrimPrefix(last, "v"))
			start++
		}
		var tags []string
		for i := start; i < min(start+n, r.n); i++ {
			tags = append(tags, fmt.Sprintf("v%06d", i))
		}
		if start+n < r.n {
			w.Header().Set("Link", fmt.Sprintf(`</v2/big/app/tags/list?%s>; rel="next"`, url.Values{"n": {strconv.Itoa(n)}, "last": {tags[len(tags)-1]}}.Encode()))
		}
		json.NewEncoder(w).Encode(map[string]any{"name": "big/app", "tags": tags})
		return
	case strings.HasPrefix(p, "/v2/big/app/manifests/"):
		ref := strings.TrimPrefix(p, "/v2/big/app/manifests/")
		i := -1
		if strings.HasPrefix(ref, "v") {
			i, _ = strconv.Atoi(ref[1:])
		} else {
			r.mu.Lock()
			j, ok := r.digests[ref]
			r.mu.Unlock()
			if ok {
				i = j
			}
		}
		if i < 0 || i >= r.n {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		body := r.manifest(i)
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(body))
		r.mu.Lock()
		r.digests[d] = i
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", d)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if req.Method == http.MethodGet {
			w.Write(body)
		}
		return
	}
	http.Error(w, `{"errors":[{"code":"NAME_UNKNOWN"}]}`, http.StatusNotFound)
}

// syncPeakRSS runs cip sync of big/app into a fresh inventory and returns
// cip's peak resident memory (runPeakRSS), the
// time it took, and the tags the inventory recorded.
func syncPeakRSS(t testing.TB, reg *bigRegistry) (rssMB float64, took time.Duration, tags int) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "inv.db")
	cmd := exec.Command(cipBin, "--db", db, "--quiet", "sync", reg.host()+"/big/app")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	rssMB, err := runPeakRSS(cmd)
	if err != nil {
		t.Fatalf("cip sync: %v\n%s", err, out.String())
	}
	took = time.Since(start)
	return rssMB, took, queryInt(t, db, `SELECT COUNT(*) FROM tags`)
}

// A repository of 300 one-megabyte manifests: cip's peak memory stays
// under 300 MB (it held every manifest of a repository until its write,
// 992 MB for 150 of 4 MB).
func TestSyncMemoryBounded(t *testing.T) {
	const n, size = 300, 1 << 20
	reg := startBigRegistry(t, n, size)
	rss, took, tags := syncPeakRSS(t, reg)
	t.Logf("cip sync of %d tags × %d bytes: peak RSS %.0f MB in %s", n, size, rss, took.Round(time.Millisecond))
	if tags != n {
		t.Errorf("tags recorded = %d, want %d", tags, n)
	}
	if rss >= 300 {
		t.Errorf("peak RSS = %.0f MB, want under 300 MB", rss)
	}
}

// BenchmarkSyncPeakRSS syncs a repository of 5,000 tags of 1 MiB manifests
// (5 GiB of manifests) and reports cip's peak RSS:
//
//	go test -run '^$' -bench BenchmarkSyncPeakRSS -benchtime 1x ./e2e/
func BenchmarkSyncPeakRSS(b *testing.B) {
	const n, size = 5000, 1 << 20
	reg := startBigRegistry(b, n, size)
	for b.Loop() {
		rss, took, tags := syncPeakRSS(b, reg)
		if tags != n {
			b.Fatalf("tags recorded = %d, want %d", tags, n)
		}
		b.ReportMetric(rss, "peak-RSS-MB")
		b.ReportMetric(took.Seconds(), "sync-s")
		if rss >= 300 {
			b.Errorf("peak RSS = %.0f MB, want under 300 MB", rss)
		}
	}
}

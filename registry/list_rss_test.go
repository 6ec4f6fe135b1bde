package registry_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cipdev/cip/registry"
)

// The pages BenchmarkTagsPageRSS serves, each about 100 MB, generated as
// they are sent (the server holds none of it):
//   - tags: one tags/list page of 1,000,000 tags of 97 characters;
//   - gcr: GCR's extension, 330,000 digests each with one tag, media type,
//     size and times (the way a real page grows that large);
//   - tags2x: twice the tags page (190 MB, 2,000,000 tags), past the
//     default --max-tags: refused, and how much that costs.
const (
	rssTags    = 1_000_000
	rssDigests = 330_000
)

func writeRSSPage(w io.Writer, shape string) {
	bw := bufio.NewWriterSize(w, 1<<20)
	defer bw.Flush()
	pad := strings.Repeat("x", 88)
	switch shape {
	case "tags", "tags2x":
		n := rssTags
		if shape == "tags2x" {
			n *= 2
		}
		bw.WriteString(`{"name":"big/app","tags":[`)
		for i := range n {
			if i > 0 {
				bw.WriteByte(',')
			}
			fmt.Fprintf(bw, `"v%08d%s"`, i, pad)
		}
		bw.WriteString(`]}`)
	case "gcr":
		bw.WriteString(`{"child":[],"manifest":{`)
		for i := range rssDigests {
			if i > 0 {
				bw.WriteByte(',')
			}
			fmt.Fprintf(bw, `"sha256:%064x":{"imageSizeBytes":"%d","layerId":"","mediaType":"application/vnd.docker.distribution.manifest.v2+json","tag":["v%08d"],"timeCreatedMs":"1700000000000","timeUploadedMs":"1700000000000"}`, i, 1000000+i, i)
		}
		bw.WriteString(`},"name":"big/app","tags":[`)
		for i := range rssDigests {
			if i > 0 {
				bw.WriteByte(',')
			}
			fmt.Fprintf(bw, `"v%08d"`, i)
		}
		bw.WriteString(`]}`)
	}
}

// BenchmarkTagsPageRSS measures the peak RSS of a process that lists one
// repository whose tags/list answer is a single ~100 MB page: the client
// runs in a child process (this test binary again), the page is served
// from this one, so the figure is the client's alone. Modes: "cip"
// (registry.Client.Tags, streaming with caps) and "decode" (the way cip
// read pages before: one json.Decoder.Decode of the whole page). It fails
// when cip's peak reaches 300 MB.
//
//	go test -run '^$' -bench BenchmarkTagsPageRSS -benchtime 1x ./registry/
func BenchmarkTagsPageRSS(b *testing.B) {
	var served int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		cw := &countWriter{w: w}
		// /v2/SHAPE/app/tags/list
		writeRSSPage(cw, strings.Split(r.URL.Path, "/")[2])
		served = cw.n
	}))
	defer srv.Close()
	for _, shape := range []string{"tags", "gcr", "tags2x"} {
		for _, mode := range []string{"cip", "decode"} {
			if shape == "tags2x" && mode == "decode" {
				continue
			}
			b.Run(shape+"/"+mode, func(b *testing.B) {
				for range b.N {
					cmd := exec.Command(os.Args[0], "-test.run=^TestTagsPageRSSChild$", "-test.v")
					cmd.Env = append(os.Environ(), "CIP_RSS_CHILD="+srv.URL+" "+shape+" "+mode)
					out, err := cmd.CombinedOutput()
					if err != nil {
						b.Fatalf("child: %v\n%s", err, out)
					}
					var kb, entries int64
					for _, line := range strings.Split(string(out), "\n") {
						if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "rss: "); ok {
							fmt.Sscanf(rest, "maxrss_kb=%d entries=%d", &kb, &entries)
						}
					}
					if kb == 0 {
						b.Fatalf("child printed no figure:\n%s", out)
					}
					mb := float64(kb) / 1024
					b.ReportMetric(mb, "peak-RSS-MB")
					if shape != "tags2x" { // refused before the end: the count is not the page's
						b.ReportMetric(float64(served)/(1<<20), "page-MB")
					}
					b.ReportMetric(float64(entries), "entries")
					if mode == "cip" && mb >= 300 {
						b.Errorf("peak RSS %.0f MB for a %.0f MB page, want under 300 MB", mb, float64(served)/(1<<20))
					}
				}
			})
		}
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// TestTagsPageRSSChild is BenchmarkTagsPageRSS's child: it lists the page
// and prints its own peak RSS. It does nothing in a normal test run.
func TestTagsPageRSSChild(t *testing.T) {
	arg := os.Getenv("CIP_RSS_CHILD")
	if arg == "" {
		t.Skip("the child of BenchmarkTagsPageRSS")
	}
	f := strings.Fields(arg)
	base, shape, mode := f[0], f[1], f[2]
	var entries int
	switch mode {
	case "cip":
		c := registry.New(registry.Options{Keychain: anonymousKeychain})
		host := strings.TrimPrefix(base, "http://")
		// The server ignores n=1000, as GCR does.
		tl, err := c.Tags(context.Background(), parse(t, c, host+"/"+shape+"/app"))
		switch {
		case shape == "tags2x":
			if !errors.Is(err, registry.ErrListTooLarge) {
				t.Fatalf("Tags of 2,000,000 tags = %v, want ErrListTooLarge", err)
			}
			entries = registry.DefaultMaxTags
		case err != nil:
			t.Fatal(err)
		default:
			entries = len(tl.Tags) + len(tl.Manifests)
		}
	case "decode":
		resp, err := http.Get(base + "/v2/" + shape + "/app/tags/list")
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Tags      []string                        `json:"tags"`
			Manifests map[string]registry.GCRManifest `json:"manifest"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		entries = len(body.Tags) + len(body.Manifests)
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("rss: maxrss_kb=%d entries=%s\n", ru.Maxrss, strconv.Itoa(entries))
}

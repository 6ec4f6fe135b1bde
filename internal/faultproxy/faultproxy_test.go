package faultproxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func upstream(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("a", 64))
		io.WriteString(w, strings.Repeat("x", 1000))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// trace sends n distinct GETs one after another and returns what each got.
func trace(t *testing.T, p *Proxy, n int) []string {
	var out []string
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range n {
		resp, err := c.Get(fmt.Sprintf("http://%s/v2/r/blobs/sha256:%d", p.Host, i))
		if err != nil {
			out = append(out, "error")
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		s := strconv.Itoa(resp.StatusCode) + " " + strconv.Itoa(len(body))
		switch ra := resp.Header.Get("Retry-After"); {
		case ra == "":
		case func() bool { _, err := strconv.Atoi(ra); return err == nil }():
			s += " seconds"
		case func() bool { _, err := http.ParseTime(ra); return err == nil }():
			s += " date"
		default:
			s += " unreadable Retry-After " + ra
		}
		if err != nil {
			s += " cut"
		}
		out = append(out, s)
	}
	return out
}

func TestSeededAndBounded(t *testing.T) {
	up := upstream(t)
	opts := Options{Seed: 42, Rate: 0.5, Faults: []Fault{ServerError, RetryAfterSeconds, RetryAfterDate, Reset}, Max: 15, Delay: time.Millisecond}
	a, b := New(t, up, opts), New(t, up, opts)
	ta, tb := trace(t, a, 60), trace(t, b, 60)
	if strings.Join(ta, "\n") != strings.Join(tb, "\n") {
		t.Errorf("same seed, different faults:\n%v\n%v", ta, tb)
	}
	if a.Total() != 15 {
		t.Errorf("faults injected = %d (%s), want the bound 15", a.Total(), a)
	}
	for _, f := range opts.Faults {
		if a.Injected()[f] == 0 {
			t.Errorf("no %s among %s", f, a)
		}
	}
	for _, s := range ta {
		if strings.HasPrefix(s, "429") && !strings.HasSuffix(s, " seconds") && !strings.HasSuffix(s, " date") {
			t.Errorf("429 answer %q: Retry-After neither seconds nor an HTTP date", s)
		}
	}
	if c := New(t, up, Options{Seed: 43, Rate: 0.5, Faults: opts.Faults, Max: 15}); strings.Join(trace(t, c, 60), "\n") == strings.Join(ta, "\n") {
		t.Error("another seed gave the same faults")
	}
}

func TestWrongDigestAndTruncate(t *testing.T) {
	up := upstream(t)
	p := New(t, up, Options{Seed: 1, Rate: 1, Faults: []Fault{WrongDigest}})
	resp, err := http.Get("http://" + p.Host + "/v2/r/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got == "sha256:"+strings.Repeat("a", 64) || !strings.HasPrefix(got, "sha256:") {
		t.Errorf("Docker-Content-Digest = %q, want another digest", got)
	}
	p = New(t, up, Options{Seed: 1, Rate: 1, Faults: []Fault{Truncate}})
	resp, err = http.Get("http://" + p.Host + "/v2/r/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(body) != 500 {
		t.Errorf("truncated body: %d bytes, %v; want 500 bytes read cleanly", len(body), err)
	}
}

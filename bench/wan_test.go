package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"gopkg.in/yaml.v3"
)

func TestBuiltinK8sShape(t *testing.T) {
	b := BuiltinK8sTree()
	if got := len(b.Subprojects); got != 75 {
		t.Errorf("built-in tree: %d subprojects, want 75", got)
	}
	// 388 image names, 2 of them without digests (sig-storage lists two
	// empty images).
	if got := b.Images(); got != 386 {
		t.Errorf("built-in tree: %d images with digests, want 386", got)
	}
	if got := b.Repos(); got != 445 {
		t.Errorf("built-in tree: %d repositories per mirror, want 445", got)
	}
	if got := b.Digests(); got != 20017 {
		t.Errorf("built-in tree: %d digests, want 20017", got)
	}
	if b.Mirrors != 22 {
		t.Errorf("built-in tree: %d mirrors, want 22", b.Mirrors)
	}
}

// TestBuiltinK8sMatchesRealData checks the built-in constants against the
// real manifests beside the repository (absent in a user's clone).
func TestBuiltinK8sMatchesRealData(t *testing.T) {
	dir := filepath.Join("..", defaultRealDir)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("real registry.k8s.io manifests not at hand: %v", err)
	}
	real, err := K8sTreeFrom(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := BuiltinK8sTree()
	if real.Mirrors != b.Mirrors || len(real.Subprojects) != len(b.Subprojects) {
		t.Fatalf("real tree: %d mirrors, %d subprojects; built-in: %d, %d", real.Mirrors, len(real.Subprojects), b.Mirrors, len(b.Subprojects))
	}
	for i, rs := range real.Subprojects {
		bs := b.Subprojects[i]
		if len(rs.Paths) != len(bs.Paths) || len(rs.Images) != len(bs.Images) {
			t.Errorf("%s: real %d paths, %d images; built-in %d, %d", rs.Name, len(rs.Paths), len(rs.Images), len(bs.Paths), len(bs.Images))
			continue
		}
		for j, ri := range rs.Images {
			bi := bs.Images[j]
			hist := func(tags []int) map[int]int {
				m := map[int]int{}
				for _, n := range tags {
					m[n]++
				}
				return m
			}
			rh, bh := hist(ri.Tags), hist(bi.Tags)
			if len(ri.Tags) != len(bi.Tags) || ri.Arch != bi.Arch || len(rh) != len(bh) {
				t.Errorf("%s/%s: real %d digests (arch %v, tags %v); built-in %d (arch %v, tags %v)", rs.Name, ri.Name, len(ri.Tags), ri.Arch, rh, len(bi.Tags), bi.Arch, bh)
				continue
			}
			for k, v := range rh {
				if bh[k] != v {
					t.Errorf("%s/%s: %d digests with %d tags, built-in %d", rs.Name, ri.Name, v, k, bh[k])
				}
			}
		}
	}
}

func TestScaledK8s(t *testing.T) {
	b := BuiltinK8sTree()
	s := b.Scaled(1.0/16, 0)
	if s.Images() != b.Images() || s.Repos() != b.Repos() {
		t.Errorf("Scaled(1/16) kept %d images, %d repositories; want all %d, %d", s.Images(), s.Repos(), b.Images(), b.Repos())
	}
	// At least one digest per image, about a sixteenth of long histories.
	if got := s.Digests(); got < b.Digests()/16 || got > b.Digests()/16+b.Images() {
		t.Errorf("Scaled(1/16): %d digests, want between %d and %d", got, b.Digests()/16, b.Digests()/16+b.Images())
	}
	if got := b.Scaled(1, 10).Images(); got != 10 {
		t.Errorf("Scaled(1, 10): %d images, want 10", got)
	}
	for _, tc := range []struct {
		in   string
		want float64
	}{{"1/16", 1.0 / 16}, {"1/4", 0.25}, {"1", 1}, {"0.5", 0.5}} {
		if got, err := ParseScale(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseScale(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"0", "2", "1/0", "x", "3/2"} {
		if _, err := ParseScale(bad); err == nil {
			t.Errorf("ParseScale(%q) succeeded", bad)
		}
	}
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

func tinyContent(t *testing.T) *K8sContent {
	t.Helper()
	tree := BuiltinK8sTree().Scaled(1.0/16, 4)
	tree.Mirrors = 2
	c, err := GenerateK8s(tree, DefaultContent)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGenerateK8sHonest(t *testing.T) {
	c := tinyContent(t)
	again := tinyContent(t)
	lists := 0
	for i, it := range c.Items {
		if again.Items[i].Manifest.Digest != it.Manifest.Digest {
			t.Errorf("item %d: digest %s, then %s", i, it.Manifest.Digest, again.Items[i].Manifest.Digest)
		}
		ms := append([]*Manifest{it.Manifest}, it.Manifest.Children...)
		if len(it.Manifest.Children) > 0 {
			lists++
		}
		for _, m := range ms {
			if sha(m.Data) != m.Digest {
				t.Errorf("manifest %s: bytes hash to %s", m.Digest, sha(m.Data))
			}
			for _, b := range m.Blobs {
				if sha(b.Data) != b.Digest {
					t.Errorf("blob %s: bytes hash to %s", b.Digest, sha(b.Data))
				}
			}
		}
	}
	if lists == 0 || lists == len(c.Items) {
		t.Errorf("%d manifest lists of %d items: want some of each", lists, len(c.Items))
	}
	if len(c.PR.Tags) != 2 || len(c.PR.Manifest.Children) == 0 {
		t.Errorf("the change: tags %v, %d children; want 2 tags and a manifest list", c.PR.Tags, len(c.PR.Manifest.Children))
	}
	for _, it := range c.Items {
		if it.Manifest.Digest == c.PR.Manifest.Digest {
			t.Errorf("the change's digest %s is already in the base content", it.Manifest.Digest)
		}
	}
}

func TestWriteThin(t *testing.T) {
	c := tinyContent(t)
	dir := t.TempDir()
	if err := c.WriteThin(dir, "127.0.0.1:1", []string{"127.0.0.1:2", "127.0.0.1:3"}, true); err != nil {
		t.Fatal(err)
	}
	back, err := K8sTreeFrom(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Mirrors != 2 {
		t.Errorf("K8sTreeFrom(written) = %d mirror hosts, want 2", back.Mirrors)
	}
	if got, want := back.Digests(), len(c.Items)+1; got != want {
		t.Errorf("written manifests name %d digests, want %d (base and the change)", got, want)
	}
	if got, want := back.Repos(), c.Tree.Repos(); got != want {
		t.Errorf("written manifests: %d repositories per mirror, want %d", got, want)
	}
	var cfg struct {
		Sync []struct {
			Source, Target string
			Tags           struct{ Allow []string }
		}
	}
	file := filepath.Join(dir, "regsync.yml")
	if err := c.WriteRegsync(file, "127.0.0.1:1", []string{"127.0.0.1:2", "127.0.0.1:3"}, false, 8); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if got, want := len(cfg.Sync), 2*c.Tree.Repos(); got != want {
		t.Errorf("regsync config: %d entries, want %d", got, want)
	}
	tags := 0
	for _, s := range cfg.Sync {
		tags += len(s.Tags.Allow)
		if !strings.HasPrefix(s.Source, "127.0.0.1:1/") || !strings.HasPrefix(s.Target, "127.0.0.1:") {
			t.Errorf("regsync entry %s -> %s", s.Source, s.Target)
		}
	}
	want := 0
	for _, it := range c.Items {
		want += 2 * len(it.Tags) * len(c.Tree.Subprojects[it.Sub].Paths)
	}
	if tags != want {
		t.Errorf("regsync config allows %d tags, want %d", tags, want)
	}
}

// TestWANSimulator pushes and pulls through the simulator with
// go-containerregistry's bearer transport and checks what it counts: one
// ping and one token per transport, the quota's 429s with Retry-After,
// scopes, mounts, and the blob check on manifest PUT.
func TestWANSimulator(t *testing.T) {
	c := tinyContent(t)
	w, err := StartWAN(2, WANOptions{Latency: time.Millisecond, QPS: 1000, Burst: 1000, TokenTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	src := w.Hosts[0]
	// Two items of different images: one repository each (their first
	// digests share the tag v1.0.0).
	one, two := c.Items[0], c.Items[len(c.Items)-1]
	if one.Image == two.Image {
		t.Fatalf("tiny content has one image")
	}
	repos := func(it K8sItem) []string {
		if it.Image == one.Image {
			return []string{"staging/app"}
		}
		return []string{"staging/other"}
	}
	if err := src.Seed([]K8sItem{one, two}, repos); err != nil {
		t.Fatal(err)
	}
	w.Take()

	// A pull: ping (401), token, manifest GET.
	ref, err := name.ParseReference(src.Addr + "/staging/app:" + one.Tags[0])
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref, remote.WithAuth(authn.Anonymous))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != one.Manifest.Digest {
		t.Errorf("GET %s = %s, want %s", ref, desc.Digest, one.Manifest.Digest)
	}
	st := w.Take()
	h := st.Hosts[0]
	for k, want := range map[string]int64{"ping": 1, "token": 1, "manifest GET": 1} {
		if got := h.ByKind[k]; got != want {
			t.Errorf("after one pull: %d %q requests, want %d (all: %v)", got, k, want, h.ByKind)
		}
	}
	if got := h.ByStatus["ping 401"]; got != 1 {
		t.Errorf("ping answered 401 %d times, want 1 (%v)", got, h.ByStatus)
	}
	if st.BusyHostSeconds <= 0 || h.BusySeconds <= 0 || h.BusySeconds > st.Seconds {
		t.Errorf("busy: %.4f host-seconds, host %.4f s, window %.4f s", st.BusyHostSeconds, h.BusySeconds, st.Seconds)
	}

	// No token, or a pull token, cannot push.
	resp, err := http.Post("http://"+src.Addr+"/v2/staging/app/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="repository:staging/app:pull,push"`) {
		t.Errorf("anonymous POST: %s, challenge %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	// go-containerregistry's bearer transport would refresh into the
	// challenge's scope: ask for a pull token by hand.
	resp, err = http.Get("http://" + src.Addr + tokenPath + "?service=x&scope=repository:staging/app:pull")
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.Token == "" {
		t.Fatalf("token: %v %q", err, tok.Token)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodPost, "http://"+src.Addr+"/v2/staging/app/blobs/uploads/", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("POST with a pull token: %s, challenge %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	req, _ = http.NewRequest(http.MethodGet, "http://"+src.Addr+"/v2/staging/app/tags/list", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("tags list with a pull token: %s, want 200", resp.Status)
	}
	req, _ = http.NewRequest(http.MethodGet, "http://"+src.Addr+"/v2/staging/other/tags/list", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("tags list of another repository with a pull token: %s, want 401", resp.Status)
	}

	// A mount with a token for the target only: challenged for both.
	resp, err = http.Get("http://" + src.Addr + tokenPath + "?service=x&scope=repository:prod/app:pull,push")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.Token == "" {
		t.Fatalf("token: %v %q", err, tok.Token)
	}
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodPost, "http://"+src.Addr+"/v2/prod/app/blobs/uploads/?mount="+one.Manifest.Digest+"&from=staging/app", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := `scope="repository:prod/app:pull,push repository:staging/app:pull"`; resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), want) {
		t.Errorf("mount without pull on from: %s, challenge %q, want 401 with %s", resp.Status, resp.Header.Get("WWW-Authenticate"), want)
	}

	// One token for two repositories (two scopes in one request), a mount
	// between them, and a manifest whose blobs are missing.
	other := ref.Context().Registry.Repo("prod", "app")
	rt, err := transport.NewWithContext(context.Background(), ref.Context().Registry, authn.Anonymous, http.DefaultTransport,
		[]string{ref.Context().Scope(transport.PullScope), other.Scope(transport.PushScope)})
	if err != nil {
		t.Fatal(err)
	}
	cl := &http.Client{Transport: rt}
	m := one.Manifest
	if len(m.Children) > 0 {
		m = m.Children[0]
	}
	put, _ := http.NewRequest(http.MethodPut, "http://"+src.Addr+"/v2/prod/app/manifests/"+m.Digest, strings.NewReader(string(m.Data)))
	put.Header.Set("Content-Type", m.MediaType)
	resp, err = cl.Do(put)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("PUT of a manifest without its blobs: %s, want 400", resp.Status)
	}
	for _, b := range m.Blobs {
		resp, err := cl.Post("http://"+src.Addr+"/v2/prod/app/blobs/uploads/?mount="+b.Digest+"&from=staging/app", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("mount %s from staging/app: %s, want 201", b.Digest, resp.Status)
		}
	}
	put, _ = http.NewRequest(http.MethodPut, "http://"+src.Addr+"/v2/prod/app/manifests/"+m.Digest, strings.NewReader(string(m.Data)))
	put.Header.Set("Content-Type", m.MediaType)
	resp, err = cl.Do(put)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("PUT of a manifest after mounting its blobs: %s, want 201", resp.Status)
	}
	st = w.Take()
	h = st.Hosts[0]
	if h.ByKind["token"] != 3 || h.ByStatus["manifest PUT 400"] != 1 || h.ByStatus["blob mount 401"] != 1 || h.ByStatus["blob mount 201"] != int64(len(m.Blobs)) {
		t.Errorf("counts: %v", h.ByStatus)
	}
	if n, miss := src.Check([]K8sItem{one, two}, repos); n == 0 || len(miss) != 0 {
		t.Errorf("Check(seeded) = %d checked, missing %v", n, miss)
	}
	if _, miss := w.Hosts[1].Check([]K8sItem{one}, repos); len(miss) == 0 {
		t.Errorf("Check(empty host) found nothing missing")
	}
}

// TestWANQuota sends more requests than the bucket holds, at once, and
// checks that the excess is refused with Retry-After, counted in the
// host's first second, and that the bucket refills.
func TestWANQuota(t *testing.T) {
	w, err := StartWAN(1, WANOptions{Latency: time.Millisecond, QPS: 20, Burst: 5, TokenTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	h := w.Hosts[0]
	var mu sync.Mutex
	codes := map[int]int{}
	retry := ""
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get("http://" + h.Addr + "/v2/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests {
				retry = resp.Header.Get("Retry-After")
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	// 5 from the bucket, and at most one more refilled while the 12 arrive.
	if codes[http.StatusUnauthorized] < 5 || codes[http.StatusUnauthorized] > 6 || codes[http.StatusTooManyRequests] != 12-codes[http.StatusUnauthorized] {
		t.Errorf("12 pings at once against a bucket of 5: %v", codes)
	}
	if retry != "1" {
		t.Errorf("Retry-After = %q, want 1 (whole seconds, rounded up)", retry)
	}
	if req, tm, _ := w.Peek(); req != 12 || tm != int64(codes[http.StatusTooManyRequests]) {
		t.Errorf("Peek() = %d requests, %d 429s; want 12, %d", req, tm, codes[http.StatusTooManyRequests])
	}
	st := w.Take()
	if got := st.Hosts[0].TooMany; got != int64(codes[http.StatusTooManyRequests]) {
		t.Errorf("counted %d 429s, want %d", got, codes[http.StatusTooManyRequests])
	}
	if st.Hosts[0].TooManyFirstSecond != st.Hosts[0].TooMany {
		t.Errorf("429s in the first second: %d of %d", st.Hosts[0].TooManyFirstSecond, st.Hosts[0].TooMany)
	}
	if len(st.Timeline) == 0 || st.Timeline[0].TooMany != st.Hosts[0].TooMany || st.Timeline[0].Hosts != 1 {
		t.Errorf("timeline %+v", st.Timeline)
	}
	// After 300 ms the bucket holds 5 again (20/s).
	time.Sleep(300 * time.Millisecond)
	resp, err := http.Get("http://" + h.Addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("ping after the bucket refilled: %s, want 401", resp.Status)
	}
	if st := w.Take(); st.Hosts[0].Requests != 1 || st.Hosts[0].TooMany != 0 {
		t.Errorf("second window: %d requests, %d 429s; want 1, 0", st.Hosts[0].Requests, st.Hosts[0].TooMany)
	}
}

func TestWANSectionKept(t *testing.T) {
	file := filepath.Join(t.TempDir(), "RESULTS.md")
	for _, tc := range []struct{ in, want string }{
		{"# Benchmark results\n\n## W200\n\nx\n", ""},
		{"# B\n\n## W200\n\n" + wanSectionHeading + "\n\n### a\n\nnumbers\n", wanSectionHeading + "\n\n### a\n\nnumbers\n"},
		{"# B\n\n" + wanSectionHeading + "\n\nnumbers\n\n## Raw runs\n\nraw\n", wanSectionHeading + "\n\nnumbers\n"},
	} {
		if err := os.WriteFile(file, []byte(tc.in), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := wanSection(file); got != tc.want {
			t.Errorf("wanSection(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := wanSection(filepath.Join(t.TempDir(), "absent.md")); got != "" {
		t.Errorf("wanSection(absent) = %q", got)
	}
}

// TestWANGCRList checks GCR's tags/list extension: every manifest of the
// repository with its tags (children untagged), and the child
// repositories of a path, kept up to date by pushes.
func TestWANGCRList(t *testing.T) {
	c := tinyContent(t)
	var list K8sItem
	for _, it := range c.Items {
		if len(it.Manifest.Children) > 0 {
			list = it
			break
		}
	}
	if list.Manifest == nil {
		t.Fatal("tiny content has no manifest list")
	}
	w, err := StartWAN(1, WANOptions{Latency: time.Millisecond, QPS: 1000, Burst: 1000, TokenTTL: time.Minute, GCRList: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	h := w.Hosts[0]
	if err := h.Seed([]K8sItem{list}, func(K8sItem) []string { return []string{"staging/app"} }); err != nil {
		t.Fatal(err)
	}
	reg, err := name.NewRegistry(h.Addr)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := transport.NewWithContext(context.Background(), reg, authn.Anonymous, http.DefaultTransport,
		[]string{reg.Repo("staging", "app").Scope(transport.PushScope), reg.Repo("staging").Scope(transport.PullScope)})
	if err != nil {
		t.Fatal(err)
	}
	cl := &http.Client{Transport: rt}
	get := func(repo string) (int, map[string]any) {
		resp, err := cl.Get("http://" + h.Addr + "/v2/" + repo + "/tags/list")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	code, body := get("staging/app")
	if code != http.StatusOK {
		t.Fatalf("tags/list: %d", code)
	}
	ms, _ := body["manifest"].(map[string]any)
	if len(ms) != 1+len(list.Manifest.Children) {
		t.Errorf("manifest map has %d entries, want %d (the list and its children)", len(ms), 1+len(list.Manifest.Children))
	}
	top, _ := ms[list.Manifest.Digest].(map[string]any)
	if tags, _ := top["tag"].([]any); len(tags) != len(list.Tags) || top["mediaType"] != list.Manifest.MediaType {
		t.Errorf("entry of %s: %v, want tags %v", list.Manifest.Digest, top, list.Tags)
	}
	child, _ := ms[list.Manifest.Children[0].Digest].(map[string]any)
	if tags, _ := child["tag"].([]any); child == nil || len(tags) != 0 {
		t.Errorf("entry of a child: %v, want untagged", child)
	}
	// A tag moved by a push moves in the listing.
	moved := list.Manifest.Children[0]
	put, _ := http.NewRequest(http.MethodPut, "http://"+h.Addr+"/v2/staging/app/manifests/"+list.Tags[0], strings.NewReader(string(moved.Data)))
	put.Header.Set("Content-Type", moved.MediaType)
	resp, err := cl.Do(put)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	_, body = get("staging/app")
	ms, _ = body["manifest"].(map[string]any)
	child, _ = ms[moved.Digest].(map[string]any)
	if tags, _ := child["tag"].([]any); len(tags) != 1 || tags[0] != list.Tags[0] {
		t.Errorf("after moving %s: child entry %v", list.Tags[0], child)
	}
	code, body = get("staging")
	if cs, _ := body["child"].([]any); code != http.StatusOK || len(cs) != 1 || cs[0] != "app" {
		t.Errorf("tags/list of the path: %d %v, want child [app]", code, body)
	}
}

// The simulator's request kinds, as the report's columns name them.
func TestWANKind(t *testing.T) {
	for _, c := range []struct{ method, target, want string }{
		{"GET", "/v2/", "ping"},
		{"GET", "/v2/token?scope=repository:a:pull", "token"},
		{"GET", "/v2/_catalog?n=100", "catalog"},
		{"GET", "/v2/a/b/tags/list", "tags"},
		{"GET", "/v2/a/referrers/sha256:00", "referrers"},
		{"HEAD", "/v2/a/manifests/v1", "manifest HEAD"},
		{"PUT", "/v2/a/manifests/sha256:00", "manifest PUT"},
		{"GET", "/v2/a/blobs/sha256:00", "blob GET"},
		{"POST", "/v2/a/blobs/uploads/", "blob POST"},
		{"POST", "/v2/a/blobs/uploads/?mount=sha256:00&from=b", "blob mount"},
		{"PATCH", "/v2/a/blobs/uploads/u1", "blob PATCH"},
		{"PUT", "/v2/a/blobs/uploads/u1?digest=sha256:00", "blob PUT"},
		{"GET", "/healthz", "other GET"},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		if got := wanKind(r); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.method, c.target, got, c.want)
		}
	}
}

// With a quota per project, each project of a host has its own bucket (as
// Artifact Registry counts per project and region): one project's burst
// is refused while another project and the host's pings are not, a token
// request counts against its scope's project, and the counts name the
// quotas and the busiest.
func TestWANQuotaPerProject(t *testing.T) {
	w, err := StartWAN(1, WANOptions{Latency: time.Millisecond, QPS: 1, Burst: 3, QuotaPer: "project", TokenTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	base := "http://" + w.Hosts[0].Addr
	status := func(path string) int {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var busy []int
	for range 5 {
		busy = append(busy, status("/v2/busy/img/tags/list"))
	}
	if busy[3] != http.StatusTooManyRequests || busy[4] != http.StatusTooManyRequests {
		t.Errorf("5 requests to one project against a bucket of 3: %v, want the last two refused", busy)
	}
	if got := status("/v2/other/img/tags/list"); got == http.StatusTooManyRequests {
		t.Error("another project of the host was refused: its quota is its own")
	}
	if got := status("/v2/"); got == http.StatusTooManyRequests {
		t.Error("a ping was refused: it counts against the host's own quota")
	}
	if got := status("/v2/token?scope=repository%3Abusy%2Fimg%3Apull&service=x"); got != http.StatusTooManyRequests {
		t.Errorf("a token request for the exhausted project answered %d, want 429", got)
	}
	st := w.Take().Hosts[0]
	if st.Quotas != 3 || st.BusiestQuota != "busy" || st.BusiestAnswered != 3 || st.TooMany != 3 || st.TooManyFirstSecond != 3 {
		t.Errorf("quotas %d, busiest %q with %d answered, 429s %d (%d in the first second); want 3, busy with 3, 3 (3)",
			st.Quotas, st.BusiestQuota, st.BusiestAnswered, st.TooMany, st.TooManyFirstSecond)
	}
	if _, err := StartWAN(1, WANOptions{QPS: 1, Burst: 1, QuotaPer: "region"}); err == nil {
		t.Error("quota per region accepted, want an error")
	}
}

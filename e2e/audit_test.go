package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/cipdev/cip/internal/dockerregistry"
	"github.com/cipdev/cip/internal/regtest"
)

const auditToken = "e2e-audit-token-6f1c0b9a2d"

// auditServer is a running `cip audit serve`.
type auditServer struct {
	url            string
	cmd            *exec.Cmd
	stdout, stderr string // files
	done           chan error
}

// freeAddr reserves a loopback port for a server started later (the
// registry's config must name the audit server before either starts).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startAuditServer(t *testing.T, addr string, args ...string) *auditServer {
	t.Helper()
	dir := t.TempDir()
	s := &auditServer{url: "http://" + addr, stdout: filepath.Join(dir, "verdicts.jsonl"), stderr: filepath.Join(dir, "stderr.jsonl"), done: make(chan error, 1)}
	out, err := os.Create(s.stdout)
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(s.stderr)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(cipBin, append(args, "--listen", addr)...)
	s.cmd.Stdout, s.cmd.Stderr = out, errf
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait(); out.Close(); errf.Close() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	waitUntil(t, 60*time.Second, "cip audit serve ready", func() bool {
		resp, err := http.Get(s.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, s)
	return s
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool, s *auditServer) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(s.stderr)
			t.Fatalf("timed out after %s waiting for %s; server stderr:\n%s", limit, what, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// records reads a JSON-lines log.
func records(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: a line is not JSON: %q", path, sc.Text())
		}
		out = append(out, r)
	}
	return out
}

func (s *auditServer) request(t *testing.T, method, path, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *auditServer) metrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := s.request(t, http.MethodGet, "/metrics", "Bearer "+auditToken, "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return mfs
}

// counter sums the series of name whose labels include want.
func counter(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range mfs[name].GetMetric() {
		ok := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

type auditRow struct {
	Verdict, Reason, Repository, Digest, Tag string
}

// auditRows reads audit_events through cip query, as a user would.
func auditRows(t *testing.T, db, where string) []auditRow {
	t.Helper()
	out, _ := Cip(t, 0, "--db", db, "query", "-o", "json",
		"SELECT verdict, reason, repository, digest, tag FROM audit_events WHERE "+where+" ORDER BY id")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("cip query json: %v\n%s", err, out)
	}
	var res []auditRow
	for _, r := range rows {
		res = append(res, auditRow{fmt.Sprint(r["verdict"]), fmt.Sprint(r["reason"]), fmt.Sprint(r["repository"]), fmt.Sprint(r["digest"]), fmt.Sprint(r["tag"])})
	}
	return res
}

// TestAuditDockerRegistry: a real docker-registry notifies `cip audit
// serve`. A promotion is VERIFIED event by event; a copy of an image no
// manifest names, a moved promoted tag and a deletion are each REJECTED
// with their reason, in the log, the audit_events table and /metrics;
// hostile requests get their status and leave the server answering; a
// refused reload keeps the last good set; `cip audit` finds the same rogue
// images afterwards from the inventory; SIGTERM stops the server cleanly.
func TestAuditDockerRegistry(t *testing.T) {
	addr := freeAddr(t)
	srcSrv := StartRegistry(t)
	dstSrv, err := dockerregistry.Start(context.Background(), dockerregistry.Options{Notify: []dockerregistry.Endpoint{{
		Name: "cip-audit", URL: "http://" + addr + "/events", Headers: map[string]string{"Authorization": "Bearer " + auditToken},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dstSrv.Stop)
	src, dst := &regtest.Registry{Host: srcSrv.Host}, dstSrv.Host

	// app0: two images, three tags; app1: one image; multi: a multi-arch
	// index; tagless: promoted by digest. rogue and fakesig are in no
	// manifest.
	h0 := src.Push(t, "staging/app0", "v1.0.0", regtest.Image(t, 1024, 1, true))
	src.Tag(t, "staging/app0", h0, "latest")
	app0v1 := h0.String()
	app0old := src.Push(t, "staging/app0", "v0.9.0", regtest.Image(t, 1024, 1, false)).String()
	app1 := src.Push(t, "staging/app1", "v1", regtest.Image(t, 512, 1, true)).String()
	multi := src.Push(t, "staging/multi", "v2", platformIndex(t, true)).String()
	tagless := src.Push(t, "staging/tagless", "", regtest.Image(t, 256, 1, true)).String()
	rogue := src.Push(t, "staging/rogue", "v1", regtest.Image(t, 256, 1, true)).String()
	src.Push(t, "staging/fakesig", "v1", regtest.Image(t, 128, 1, true))

	dir := t.TempDir()
	mf := filepath.Join(dir, "promoter-manifest.yaml")
	manifestYAML := fmt.Sprintf(`registries:
- name: %[1]s/staging
  src: true
- name: %[2]s/prod
images:
- name: app0
  dmap:
    %[3]q: ["latest", "v1.0.0"]
    %[4]q: ["v0.9.0"]
- name: app1
  dmap:
    %[5]q: ["v1"]
- name: multi
  dmap:
    %[6]q: ["v2"]
- name: tagless
  dmap:
    %[7]q: []
`, src.Host, dst, app0v1, app0old, app1, multi, tagless)
	if err := os.WriteFile(mf, []byte(manifestYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(auditToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auditDB := filepath.Join(dir, "audit.db")
	srv := startAuditServer(t, addr, "--db", auditDB, "audit", "serve", "--manifest", mf, "--token-file", tokenFile, "--reload-interval", "200ms")

	// The promotion: every manifest push and tag is VERIFIED.
	promoteDB := filepath.Join(dir, "promote.db")
	Cip(t, 0, "--db", promoteDB, "promote", "--manifest", mf, "--confirm")
	var children []string
	var idx struct{ Manifests []struct{ Digest string } }
	if err := json.Unmarshal([]byte(Crane(t, "manifest", src.Host+"/staging/multi@"+multi)), &idx); err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		children = append(children, m.Digest)
	}
	prod := dst + "/prod/"
	wantVerified := map[auditRow]bool{}
	// cip puts a tagged manifest by its tags, an untagged one (an index
	// child, a tagless promotion) by digest.
	for _, r := range []auditRow{
		{"VERIFIED", "promoted", prod + "app0", app0v1, "latest"}, {"VERIFIED", "promoted", prod + "app0", app0v1, "v1.0.0"},
		{"VERIFIED", "promoted", prod + "app0", app0old, "v0.9.0"}, {"VERIFIED", "promoted", prod + "app1", app1, "v1"},
		{"VERIFIED", "promoted", prod + "multi", multi, "v2"}, {"VERIFIED", "promoted", prod + "tagless", tagless, ""},
	} {
		wantVerified[r] = true
	}
	for _, c := range children {
		wantVerified[auditRow{"VERIFIED", "child", prod + "multi", c, ""}] = true
	}
	waitUntil(t, 60*time.Second, "the promotion's verdicts", func() bool {
		got := map[auditRow]bool{}
		for _, r := range auditRows(t, auditDB, "1") {
			got[r] = true
		}
		for r := range wantVerified {
			if !got[r] {
				return false
			}
		}
		return true
	}, srv)
	time.Sleep(500 * time.Millisecond) // stragglers
	if rej := auditRows(t, auditDB, "verdict <> 'VERIFIED'"); len(rej) != 0 {
		t.Fatalf("the promotion got rejected events: %+v", rej)
	}
	promotionEvents := len(auditRows(t, auditDB, "1"))

	// The rogue changes, and a fake signature of a promoted digest.
	Crane(t, "copy", src.Host+"/staging/rogue:v1", prod+"app0:rogue")
	Crane(t, "tag", prod+"app0@"+app0old, "latest")
	Crane(t, "copy", src.Host+"/staging/fakesig:v1", prod+"app0:sha256-"+strings.TrimPrefix(app0v1, "sha256:")+".sig")
	Crane(t, "delete", prod+"app1@"+app1)
	wantRejected := []auditRow{
		{"REJECTED", "not-in-manifest", prod + "app0", rogue, "rogue"},
		{"REJECTED", "tag-mismatch", prod + "app0", app0old, "latest"},
		{"REJECTED", "deletion", prod + "app1", app1, ""},
		{"REJECTED", "deletion", prod + "app1", "", "v1"}, // docker-registry untags what it deletes, one event per tag
	}
	waitUntil(t, 30*time.Second, "the rogue changes' verdicts", func() bool {
		return len(auditRows(t, auditDB, "verdict = 'REJECTED'")) >= len(wantRejected)
	}, srv)
	time.Sleep(500 * time.Millisecond)
	if diff := cmp.Diff(wantRejected, auditRows(t, auditDB, "verdict = 'REJECTED'")); diff != "" {
		t.Errorf("REJECTED rows in audit_events (-want +got):\n%s", diff)
	}
	sig := auditRows(t, auditDB, "reason = 'referrer'")
	if len(sig) != 1 || sig[0].Repository != prod+"app0" || !strings.HasSuffix(sig[0].Tag, ".sig") {
		t.Errorf("the signature's verdict = %+v, want one VERIFIED referrer", sig)
	}

	// The log: one JSON line per judged event, the rejections with their
	// reason and reference.
	logged := map[auditRow]bool{}
	verdicts := records(t, srv.stdout)
	for _, r := range verdicts {
		logged[auditRow{fmt.Sprint(r["verdict"]), fmt.Sprint(r["reason"]), fmt.Sprint(r["repository"]), fmt.Sprint(r["digest"]), fmt.Sprint(r["tag"])}] = true
		if r["detail"] == "" || r["event_id"] == "" || r["source"] != "distribution" {
			t.Errorf("verdict record lacks detail, id or source: %v", r)
		}
	}
	for _, r := range wantRejected {
		if !logged[r] {
			t.Errorf("log lacks %+v", r)
		}
	}
	if n := len(auditRows(t, auditDB, "1")); len(verdicts) != n {
		t.Errorf("%d verdict log lines, %d table rows: want one each per event", len(verdicts), n)
	}

	// The metrics agree with the table.
	mfs := srv.metrics(t)
	for _, c := range []struct {
		verdict, reason string
		want            float64
	}{
		{"REJECTED", "not-in-manifest", 1}, {"REJECTED", "tag-mismatch", 1}, {"REJECTED", "deletion", 2},
		{"VERIFIED", "child", float64(len(children))}, {"VERIFIED", "referrer", 1},
		{"VERIFIED", "promoted", float64(len(auditRows(t, auditDB, "reason = 'promoted'")))},
	} {
		got := counter(mfs, "cip_audit_events_total", map[string]string{"verdict": c.verdict, "reason": c.reason, "registry": dst})
		if got != c.want {
			t.Errorf("cip_audit_events_total{verdict=%s,reason=%s,registry=%s} = %v, want %v", c.verdict, c.reason, dst, got, c.want)
		}
	}
	for _, reason := range []string{"blob", "pull"} {
		if counter(mfs, "cip_audit_events_ignored_total", map[string]string{"reason": reason}) == 0 {
			t.Errorf("no %s events ignored: the registry sends them", reason)
		}
	}
	if promotionEvents < len(wantVerified) {
		t.Errorf("%d promotion events, want at least %d", promotionEvents, len(wantVerified))
	}

	// An SBOM that oras attaches to a promoted image. docker-registry 2.8
	// has no referrers API, so oras pushes the artifact by digest,
	// untagged, with its subject, then the sha256-<hex> index listing it:
	// the server reads the artifact (the inventory does not hold it) to
	// see its subject, and verifies both pushes as referrers.
	t.Run("oras attach", func(t *testing.T) {
		orasBin := tool(t, "oras")
		sbom := filepath.Join(dir, "sbom.spdx.json")
		if err := os.WriteFile(sbom, []byte(`{"spdxVersion":"SPDX-2.3"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(orasBin, "attach", "--plain-http", "--artifact-type", "application/spdx+json", prod+"app0@"+app0v1, "sbom.spdx.json")
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "HOME="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("oras attach: %v\n%s", err, out)
		}
		m := regexp.MustCompile(`(?m)^Digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("oras attach printed no digest:\n%s", out)
		}
		artifact, indexTag := m[1], "sha256-"+strings.TrimPrefix(app0v1, "sha256:")
		want := []auditRow{
			{"VERIFIED", "referrer", prod + "app0", artifact, ""},
			{"VERIFIED", "referrer", prod + "app0", Crane(t, "digest", prod+"app0:"+indexTag), indexTag},
		}
		where := "digest = '" + artifact + "' OR tag = '" + indexTag + "'"
		waitUntil(t, 30*time.Second, "the attached SBOM's verdicts", func() bool {
			return len(auditRows(t, auditDB, where)) >= len(want)
		}, srv)
		if diff := cmp.Diff(want, auditRows(t, auditDB, where)); diff != "" {
			t.Errorf("the attached SBOM's rows in audit_events (-want +got):\n%s", diff)
		}
	})

	// Hostile requests, each with its status; the server answers after
	// each. A redelivered event is counted once.
	many := make([]string, 1000)
	for i := range many {
		many[i] = `{"id":"m` + fmt.Sprint(i) + `","action":"pull"}`
	}
	bearer := "Bearer " + auditToken
	for _, h := range []struct {
		name, auth, body string
		want             int
	}{
		{"no token", "", `{"events":[]}`, http.StatusUnauthorized},
		{"wrong token", "Bearer " + strings.Repeat("x", len(auditToken)), `{"events":[]}`, http.StatusUnauthorized},
		{"10 MB body", bearer, `{"events":[{"id":"` + strings.Repeat("a", 10<<20) + `"}]}`, http.StatusRequestEntityTooLarge},
		{"deep JSON", bearer, strings.Repeat(`{"events":`, 5000) + "[]" + strings.Repeat("}", 5000), http.StatusBadRequest},
		{"1,000 events in one envelope", bearer, `{"events":[` + strings.Join(many, ",") + `]}`, http.StatusRequestEntityTooLarge},
		{"bad UTF-8", bearer, "{\"events\":[{\"id\":\"\xed\xa0\x80\",\"action\":\"push\"}]}", http.StatusBadRequest},
		{"Pub/Sub data not base64", bearer, `{"message":{"data":"%%%","messageId":"1"}}`, http.StatusBadRequest},
	} {
		if code, body := srv.request(t, http.MethodPost, "/events", h.auth, h.body); code != h.want {
			t.Errorf("%s: %d %s, want %d", h.name, code, strings.TrimSpace(body), h.want)
		}
		if code, _ := srv.request(t, http.MethodGet, "/healthz", "", ""); code != http.StatusOK {
			t.Errorf("after %s: /healthz = %d", h.name, code)
		}
	}
	// A Pub/Sub DELETE is rejected; sent twice, it is counted once.
	data := base64.StdEncoding.EncodeToString([]byte(`{"action":"DELETE","tag":"` + prod + `app0:v1.0.0"}`))
	push := `{"message":{"data":"` + data + `","messageId":"ps-1"},"subscription":"projects/p/subscriptions/s"}`
	for i := range 2 {
		code, body := srv.request(t, http.MethodPost, "/events?token="+auditToken, "", push)
		want := `"rejected":1`
		if i == 1 {
			want = `"duplicates":1`
		}
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("Pub/Sub DELETE, delivery %d: %d %s, want 200 with %s", i+1, code, body, want)
		}
	}
	if got := counter(srv.metrics(t), "cip_audit_events_total", map[string]string{"reason": "deletion"}); got != 3 {
		t.Errorf("deletions counted = %v, want 3 (2 from the registry, the Pub/Sub one once)", got)
	}

	// An invalid manifest change (a tag on two digests) is refused on
	// SIGHUP and by the poll; the last good set stays.
	bad := strings.Replace(manifestYAML, `["v0.9.0"]`, `["v1.0.0"]`, 1)
	if err := os.WriteFile(mf, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, 10*time.Second, "the refused reload", func() bool {
		return counter(srv.metrics(t), "cip_audit_manifest_reloads_total", map[string]string{"result": "error"}) >= 1
	}, srv)
	sawRefusal := false
	for _, r := range records(t, srv.stderr) {
		if strings.Contains(fmt.Sprint(r["msg"]), "keeping the last good set") {
			sawRefusal = true
		}
	}
	if !sawRefusal {
		t.Errorf("the refused reload is not in the server's log")
	}
	evt := `{"events":[{"id":"after-bad-reload","action":"push","target":{"repository":"prod/app0","digest":"` + app0v1 + `","tag":"v1.0.0","url":"http://` + dst + `/v2/prod/app0/manifests/v1.0.0"},"request":{"host":"` + dst + `"}}]}`
	if code, body := srv.request(t, http.MethodPost, "/events", bearer, evt); code != http.StatusOK || !strings.Contains(body, `"verified":1`) {
		t.Errorf("after the refused reload: %d %s, want the last good set to verify v1.0.0", code, body)
	}
	os.WriteFile(mf, []byte(manifestYAML), 0o644)

	// cip audit finds the same rogue images from the inventory: with the
	// promoter's inventory the tag history dates the deletion; a fresh one
	// only sees the digest missing.
	type finding struct{ Reason, Repository, Digest, Tag, Want, Since string }
	oneShot := func(db string) []finding {
		out, _ := Cip(t, 1, "--db", db, "audit", "--manifest", mf, "-o", "json")
		var fs []finding
		if err := json.Unmarshal([]byte(out), &fs); err != nil {
			t.Fatalf("cip audit json: %v\n%s", err, out)
		}
		for i := range fs {
			if fs[i].Since != "" {
				fs[i].Since = "yes"
			}
		}
		sort.Slice(fs, func(i, j int) bool { return fs[i].Reason < fs[j].Reason })
		return fs
	}
	want := []finding{
		{"deletion", prod + "app1", app1, "", "", "yes"},
		{"not-in-manifest", prod + "app0", rogue, "", "", ""},
		{"tag-mismatch", prod + "app0", app0old, "latest", app0v1, "yes"},
	}
	if diff := cmp.Diff(want, oneShot(promoteDB)); diff != "" {
		t.Errorf("cip audit with the promoter's inventory (-want +got):\n%s", diff)
	}
	want[0] = finding{"missing", prod + "app1", app1, "", "", ""}
	if diff := cmp.Diff(want, oneShot(filepath.Join(dir, "fresh.db"))); diff != "" {
		t.Errorf("cip audit with a fresh inventory (-want +got):\n%s", diff)
	}

	// SIGTERM: a clean exit, promptly.
	srv.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-srv.done:
		if err != nil {
			log, _ := os.ReadFile(srv.stderr)
			t.Errorf("cip audit serve after SIGTERM: %v\n%s", err, log)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("cip audit serve did not stop within 15 s of SIGTERM")
	}
}

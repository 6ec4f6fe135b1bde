package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/cipdev/cip/internal/regtest"
)

// tool finds a tool `make tools` builds (cosign, oras) in $CIP_TOOLS_DIR,
// else the repository's bin/tools. A missing tool fails the test, naming
// the make target; CIP_E2E_SKIP_TOOLS=1 turns that into a skip, for a
// developer without the tools at hand (never in CI).
func tool(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("CIP_TOOLS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "bin", "tools")
	}
	p, err := filepath.Abs(filepath.Join(dir, name))
	if err == nil {
		if st, serr := os.Stat(p); serr == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("CIP_E2E_SKIP_TOOLS") == "1" {
		t.Skipf("%s not in %s (CIP_E2E_SKIP_TOOLS=1); `make tools` builds it", name, dir)
	}
	t.Fatalf("%s not found in %s: run `make tools` (or set CIP_TOOLS_DIR to a directory holding it)", name, dir)
	return ""
}

// signer runs cosign and oras against docker-registry servers, offline:
// keys in a temporary directory, no transparency log.
type signer struct {
	t            *testing.T
	cosign, oras string
	dir          string
}

func newSigner(t *testing.T) *signer {
	s := &signer{t: t, cosign: tool(t, "cosign"), oras: tool(t, "oras"), dir: t.TempDir()}
	for _, k := range []string{"k1", "k2", "k3"} {
		s.run(s.cosign, "generate-key-pair", "--output-key-prefix", filepath.Join(s.dir, k))
	}
	return s
}

func (s *signer) run(bin string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=e2e", "COSIGN_YES=true", "HOME="+s.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (s *signer) key(k, ext string) string { return filepath.Join(s.dir, k+"."+ext) }

var offline = []string{"--tlog-upload=false", "--use-signing-config=false"}

// sign signs ref with key k: a sigstore bundle referrer, or with old the
// sha256-<hex>.sig tag.
func (s *signer) sign(k, ref string, old bool, extra ...string) {
	s.t.Helper()
	args := append([]string{"sign", "--key", s.key(k, "key")}, offline...)
	if old {
		args = append(args, "--new-bundle-format=false")
	}
	s.run(s.cosign, append(append(args, extra...), ref)...)
}

// verify checks ref's signature by key k (old: the .sig tag's).
func (s *signer) verify(k, ref string, old bool) {
	s.t.Helper()
	args := []string{"verify", "--key", s.key(k, "pub"), "--insecure-ignore-tlog=true"}
	if old {
		args = append(args, "--new-bundle-format=false")
	}
	s.run(s.cosign, append(args, ref)...)
}

// digestRE finds digests in tool output.
var digestRE = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// tree is `cosign tree ref` with the repository named as REPO, its
// sections sorted (cosign lists the tag kinds in no fixed order).
func (s *signer) tree(repo, digest string) string {
	s.t.Helper()
	out := strings.ReplaceAll(s.run(s.cosign, "tree", repo+"@"+digest), repo, "REPO")
	var sections []string
	for _, sec := range strings.Split(out, "\n└── ") {
		sections = append(sections, strings.TrimSpace(sec))
	}
	sort.Strings(sections)
	return strings.Join(sections, "\n└── ")
}

// discover is `oras discover` of ref as JSON: the referrers' digests and
// artifact types, nested.
func (s *signer) discover(repo, digest string) string {
	s.t.Helper()
	out := s.run(s.oras, "discover", "--plain-http", "--format", "json", repo+"@"+digest)
	var v struct {
		Referrers []json.RawMessage `json:"referrers"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		s.t.Fatalf("oras discover: %v\n%s", err, out)
	}
	return strings.ReplaceAll(out, repo, "REPO")
}

// TestReferrersCosignOras is issue 15's end-to-end check on docker-registry
// (no referrers API: the sha256-<hex> tag schema and cosign's tags): a
// multi-arch index signed with two keys (a sigstore bundle for the index
// and each child, an old-format .sig), attested, with an SBOM attached by
// oras and a signature on the attestation, promoted into two destinations.
// Every cosign and oras check passes in both, the second run plans
// nothing, a destination's own signature survives, --referrers none
// copies none and --referrers signatures only signatures.
func TestReferrersCosignOras(t *testing.T) {
	s := newSigner(t)
	srcSrv, dstSrv := StartRegistry(t), StartRegistry(t)
	src := &regtest.Registry{Host: srcSrv.Host}
	idxD := src.Push(t, "staging/app", "v1", platformIndex(t, true)).String()
	staging := srcSrv.Host + "/staging/app"
	ref := staging + "@" + idxD

	s.sign("k1", ref, false, "--recursive")
	s.sign("k2", ref, true)
	pred := filepath.Join(s.dir, "predicate.json")
	if err := os.WriteFile(pred, []byte(`{"builder":"e2e"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s.run(s.cosign, append(append([]string{"attest", "--key", s.key("k1", "key"), "--new-bundle-format=false", "--type", "custom", "--predicate", pred}, offline...), ref)...)
	attTag := "sha256-" + strings.TrimPrefix(idxD, "sha256:") + ".att"
	attD := Crane(t, "digest", staging+":"+attTag)
	s.sign("k2", staging+"@"+attD, true)
	sbom := filepath.Join(s.dir, "sbom.spdx.json")
	if err := os.WriteFile(sbom, []byte(`{"spdxVersion":"SPDX-2.3"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s.run(s.oras, "attach", "--plain-http", "--artifact-type", "application/spdx+json", ref, "sbom.spdx.json")
	var children []string
	var im struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	if err := json.Unmarshal([]byte(Crane(t, "manifest", ref)), &im); err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		children = append(children, m.Digest)
	}

	// The second destination holds the image with a signature of its own.
	mirror := dstSrv.Host + "/mirror/app"
	Crane(t, "copy", ref, mirror+":v1")
	s.sign("k3", mirror+"@"+idxD, true)

	dir := t.TempDir()
	db := filepath.Join(dir, "inventory.db")
	writeManifest := func(file string, dsts ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "registries:\n- name: %s/staging\n  src: true\n", srcSrv.Host)
		for _, d := range dsts {
			fmt.Fprintf(&b, "- name: %s/%s\n", dstSrv.Host, d)
		}
		fmt.Fprintf(&b, "images:\n- name: app\n  dmap:\n    %q: [\"v1\"]\n", idxD)
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mf := writeManifest("promoter-manifest.yaml", "prod", "mirror")

	out, _ := Cip(t, 3, "--db", db, "promote", "--manifest", mf, "--plan", "--exit-code", "-o", "json")
	var plan []struct{ Destination, Action, Subject, Referrer, ArtifactType string }
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("plan json: %v\n%s", err, out)
	}
	refers := map[string]int{}
	for _, p := range plan {
		if p.Action == "refer" {
			refers[p.Destination]++
		}
	}
	// The index's bundle, .sig, .att and SBOM, each child's bundle, the
	// attestation's .sig.
	want := 4 + len(children) + 1
	if refers[dstSrv.Host+"/prod"] != want || refers[dstSrv.Host+"/mirror"] != want {
		t.Errorf("refer rows per destination = %v, want %d each:\n%s", refers, want, out)
	}
	reportFile := filepath.Join(t.TempDir(), "report.json")
	Cip(t, 0, "--db", db, "promote", "--manifest", mf, "--confirm", "--report", reportFile)
	var rep struct {
		Totals struct {
			Referred int `json:"referred"`
		} `json:"totals"`
	}
	if raw, err := os.ReadFile(reportFile); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, raw)
	}
	if rep.Totals.Referred != 2*want {
		t.Errorf("report totals.referred = %d, want the %d refer rows of both destinations", rep.Totals.Referred, 2*want)
	}

	stagingTree := s.tree(staging, idxD)
	stagingDiscover := s.discover(staging, idxD)
	for _, repo := range []string{dstSrv.Host + "/prod/app", mirror} {
		at := repo + "@" + idxD
		s.verify("k1", at, false)
		s.verify("k2", at, true)
		for _, c := range children {
			s.verify("k1", repo+"@"+c, false)
		}
		s.run(s.cosign, "verify-attestation", "--key", s.key("k1", "pub"), "--insecure-ignore-tlog=true", "--new-bundle-format=false", "--type", "custom", at)
		s.verify("k2", repo+"@"+attD, true)
		if got := s.discover(repo, idxD); got != stagingDiscover {
			t.Errorf("oras discover %s differs from staging:\n%s\nstaging:\n%s", repo, got, stagingDiscover)
		}
	}
	if got := s.tree(dstSrv.Host+"/prod/app", idxD); got != stagingTree {
		t.Errorf("cosign tree of prod differs from staging:\n%s\nstaging:\n%s", got, stagingTree)
	}
	// The mirror keeps its own signature beside the staging one.
	s.verify("k3", mirror+"@"+idxD, true)
	sigTag := "sha256-" + strings.TrimPrefix(idxD, "sha256:") + ".sig"
	if len(digestRE.FindAllString(s.tree(mirror, idxD), -1)) <= len(digestRE.FindAllString(stagingTree, -1)) {
		t.Errorf("cosign tree of the mirror lists no more than staging's: its own signature is gone?\n%s", s.tree(mirror, idxD))
	}
	if Crane(t, "digest", mirror+":"+sigTag) == Crane(t, "digest", staging+":"+sigTag) {
		t.Errorf("the mirror's %s is staging's: its own signature was dropped", sigTag)
	}

	// Nothing left to do.
	Cip(t, 0, "--db", db, "promote", "--manifest", mf, "--plan", "--exit-code")
	// The questions on signatures, answered from the inventory (the plan above synced the
	// destinations).
	prodReg := dstSrv.Host + "/prod"
	if out, _ := Cip(t, 0, "--db", db, "query", "-o", "csv", "which images in "+prodReg+" are signed"); !strings.Contains(out, "app,"+idxD+",v1,") {
		t.Errorf("which images are signed:\n%s", out)
	}
	if out, _ := Cip(t, 0, "--db", db, "query", "-o", "csv", "which images in "+prodReg+" are unsigned"); strings.Count(out, "\n") != 1 {
		t.Errorf("which images are unsigned: want none (the index is signed; children go with it):\n%s", out)
	}
	if out, _ := Cip(t, 0, "--db", db, "query", "-o", "csv", "what refers to "+idxD+" in "+prodReg); strings.Count(out, "\n") != 1+4 {
		t.Errorf("what refers to the index in prod: want its bundle, .sig, .att and SBOM:\n%s", out)
	}

	// verify checks the digests, their tags and every referrer in both
	// destinations: all match.
	vout, _ := Cip(t, 0, "--db", db, "verify", "--manifest", mf)
	if !strings.Contains(vout, "all match") {
		t.Errorf("verify: %s", vout)
	}

	// An OCI artifact that is no image, pushed by oras: a Helm chart (its
	// own config and layer media types) travels byte for byte.
	chartDir := filepath.Join(s.dir, "chart")
	if err := os.MkdirAll(chartDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for f, body := range map[string]string{"config.json": `{"name":"demo","version":"1.0.0"}`, "demo-1.0.0.tgz": "not really a tarball"} {
		if err := os.WriteFile(filepath.Join(chartDir, f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	chartRef := srcSrv.Host + "/staging/chart:1.0.0"
	cmd := exec.Command(s.oras, "push", "--plain-http", "--config", "config.json:application/vnd.cncf.helm.config.v1+json",
		chartRef, "demo-1.0.0.tgz:application/vnd.cncf.helm.chart.content.v1.tar+gzip")
	cmd.Dir = chartDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oras push: %v\n%s", err, out)
	}
	chartD := Crane(t, "digest", chartRef)
	charts := filepath.Join(dir, "charts.yaml")
	if err := os.WriteFile(charts, []byte(fmt.Sprintf("registries:\n- name: %s/staging\n  src: true\n- name: %s/prod\nimages:\n- name: chart\n  dmap:\n    %q: [\"1.0.0\"]\n",
		srcSrv.Host, dstSrv.Host, chartD)), 0o644); err != nil {
		t.Fatal(err)
	}
	Cip(t, 0, "--db", db, "promote", "--manifest", charts, "--confirm")
	prodChart := dstSrv.Host + "/prod/chart:1.0.0"
	if got := Crane(t, "digest", prodChart); got != chartD {
		t.Errorf("the chart in prod is %s, want %s", got, chartD)
	}
	if got, want := s.run(s.oras, "manifest", "fetch", "--plain-http", prodChart), s.run(s.oras, "manifest", "fetch", "--plain-http", chartRef); got != want {
		t.Errorf("the chart's manifest in prod differs:\n%s\nstaging:\n%s", got, want)
	}
	pulled := filepath.Join(s.dir, "pulled")
	s.run(s.oras, "pull", "--plain-http", "-o", pulled, prodChart)
	if b, err := os.ReadFile(filepath.Join(pulled, "demo-1.0.0.tgz")); err != nil || string(b) != "not really a tarball" {
		t.Errorf("oras pull of the promoted chart: %q, %v", b, err)
	}

	// --referrers none: the image alone.
	none := writeManifest("none.yaml", "none")
	Cip(t, 0, "--db", db, "promote", "--manifest", none, "--confirm", "--referrers", "none")
	if got := Crane(t, "ls", dstSrv.Host+"/none/app"); got != "v1" {
		t.Errorf("--referrers none: tags %q, want only v1", got)
	}
	// Then only referrers are pending: --exit-code says so, the table and
	// the yaml list them.
	table, planErr := Cip(t, 3, "--db", db, "promote", "--manifest", none, "--plan", "--exit-code")
	if n := strings.Count(table, "\nrefer "); n != want {
		t.Errorf("plan table has %d refer rows, want %d:\n%s", n, want, table)
	}
	if !strings.Contains(planErr, fmt.Sprintf("0 copy, 0 tag, 1 skip, 0 lost, %d refer", want)) {
		t.Errorf("plan summary: %s", planErr)
	}
	yamlOut, _ := Cip(t, 3, "--db", db, "promote", "--manifest", none, "--plan", "--exit-code", "-o", "yaml")
	if n := strings.Count(yamlOut, "action: refer"); n != want || !strings.Contains(yamlOut, "found_by: cosign-tag") {
		t.Errorf("plan yaml has %d refer rows, want %d:\n%s", n, want, yamlOut)
	}
	// --referrers signatures: bundles and .sig, no attestation, no SBOM.
	sigs := writeManifest("sigs.yaml", "sigs")
	Cip(t, 0, "--db", db, "promote", "--manifest", sigs, "--confirm", "--referrers", "signatures")
	sigRepo := dstSrv.Host + "/sigs/app"
	tags := Crane(t, "ls", sigRepo)
	if strings.Contains(tags, ".att") || !strings.Contains(tags, ".sig") {
		t.Errorf("--referrers signatures: tags\n%s\nwant the .sig tags and no .att", tags)
	}
	s.verify("k1", sigRepo+"@"+idxD, false)
	s.verify("k2", sigRepo+"@"+idxD, true)
	if d := s.discover(sigRepo, idxD); strings.Contains(d, "spdx") || !strings.Contains(d, "sigstore.bundle") {
		t.Errorf("--referrers signatures: oras discover\n%s\nwant the bundle and no SBOM", d)
	}
}

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipdev/cip/internal/regtest"
)

// TestSignaturePolicyCosign is issue 16's check of --signature-policy on
// docker-registry with signatures the real cosign made: staging images
// signed with key k1 (a sigstore bundle, an old-format .sig) pass a
// policy requiring k1 and are promoted; an image signed only with k2 and
// an unsigned one are refused under require, exit 2, dry run and
// --confirm alike, and nothing of theirs is written; under if-present the
// unsigned one passes. Policy files with mistakes exit 2 with file and
// line.
func TestSignaturePolicyCosign(t *testing.T) {
	s := newSigner(t)
	srcSrv, dstSrv := StartRegistry(t), StartRegistry(t)
	src := &regtest.Registry{Host: srcSrv.Host}
	digests := map[string]string{}
	for i, img := range []string{"bundled", "old", "byk2", "unsigned"} {
		digests[img] = src.Push(t, "staging/"+img, "v1", regtest.Image(t, int64(512+i), 1, true)).String()
	}
	at := func(img string) string { return srcSrv.Host + "/staging/" + img + "@" + digests[img] }
	s.sign("k1", at("bundled"), false)
	s.sign("k1", at("old"), true)
	s.sign("k2", at("byk2"), false)
	s.sign("k2", at("byk2"), true)

	dir := t.TempDir()
	db := filepath.Join(dir, "inventory.db")
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	manifest := func(name string, images ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "registries:\n- name: %s/staging\n  src: true\n- name: %s/prod\nimages:\n", srcSrv.Host, dstSrv.Host)
		for _, img := range images {
			fmt.Fprintf(&b, "- name: %s\n  dmap:\n    %q: [\"v1\"]\n", img, digests[img])
		}
		return write(name, b.String())
	}
	policy := func(name, mode string) string {
		return write(name, fmt.Sprintf("rules:\n  - name: staging\n    source: %q\n    mode: %s\n    keys: [%s]\n", srcSrv.Host+"/staging", mode, s.key("k1", "pub")))
	}
	require, ifPresent := policy("require.yaml", "require"), policy("if-present.yaml", "if-present")
	all := manifest("all.yaml", "bundled", "old", "byk2", "unsigned")
	prodCatalog := func() string { return Crane(t, "catalog", dstSrv.Host) }

	// require: refused in a dry run and with --confirm, each named.
	for _, mode := range []string{"--plan", "--confirm"} {
		out, errOut := Cip(t, 2, "--db", db, "promote", "--manifest", all, mode, "--signature-policy", require)
		for _, want := range []string{
			"2 digest(s) refused by the signature policy",
			"/byk2@" + digests["byk2"] + ": rule staging (require): signed by an unknown key",
			"/unsigned@" + digests["unsigned"] + ": rule staging (require): no signature",
		} {
			if !strings.Contains(errOut, want) {
				t.Errorf("promote %s: stderr lacks %q:\n%s", mode, want, errOut)
			}
		}
		if !strings.Contains(errOut, all+":") {
			t.Errorf("promote %s: refusals do not name the manifest file:\n%s", mode, errOut)
		}
		// The plan is printed, each checked digest with its rule.
		for _, want := range []string{"SIGNATURE", "staging: " + s.key("k1", "pub") + " (sigstore-bundle)", "(simple-signing)", "REFUSED by staging: no signature"} {
			if !strings.Contains(out, want) {
				t.Errorf("promote %s: plan lacks %q:\n%s", mode, want, out)
			}
		}
		if got := prodCatalog(); got != "" {
			t.Fatalf("promote %s refused, but prod holds: %s", mode, got)
		}
	}
	// if-present: the unsigned image passes, the one signed by k2 is still
	// refused.
	_, errOut := Cip(t, 2, "--db", db, "promote", "--manifest", all, "--plan", "--signature-policy", ifPresent)
	if !strings.Contains(errOut, "1 digest(s) refused") || !strings.Contains(errOut, "/byk2@") || strings.Contains(errOut, "/unsigned@") {
		t.Errorf("if-present: want only byk2 refused:\n%s", errOut)
	}
	passing := manifest("passing.yaml", "bundled", "old", "unsigned")
	out, _ := Cip(t, 0, "--db", db, "promote", "--manifest", passing, "--plan", "-o", "json", "--signature-policy", ifPresent)
	if !strings.Contains(out, `"signature": "staging: unsigned (if-present)"`) {
		t.Errorf("if-present plan: the unsigned row does not say it passed unsigned:\n%s", out)
	}
	Cip(t, 0, "--db", db, "promote", "--manifest", passing, "--confirm", "--signature-policy", ifPresent)
	got := prodCatalog()
	for _, img := range []string{"bundled", "old", "unsigned"} {
		if !strings.Contains(got, "prod/"+img) {
			t.Errorf("prod catalog %q lacks prod/%s", got, img)
		}
	}
	if strings.Contains(got, "byk2") {
		t.Errorf("prod holds the refused byk2: %q", got)
	}
	// The signatures travelled: cosign verifies them in prod.
	s.verify("k1", dstSrv.Host+"/prod/bundled@"+digests["bundled"], false)
	s.verify("k1", dstSrv.Host+"/prod/old@"+digests["old"], true)

	// Policy files with mistakes: file and line, exit 2.
	for _, c := range []struct{ name, body, want string }{
		{"unknown-field.yaml", "rules:\n  - source: x\n    mode: require\n    keys: [" + s.key("k1", "pub") + "]\n    colour: red\n", `:5: rule: unknown field "colour"`},
		{"private-key.yaml", "rules:\n  - source: x\n    mode: require\n    keys:\n      - " + s.key("k1", "key") + "\n", ":5: key " + s.key("k1", "key") + " is not a public key"},
		{"bad-glob.yaml", "rules:\n  - source: \"gcr.io/[x\"\n    mode: require\n    keys: [" + s.key("k1", "pub") + "]\n", `:2: source: bad glob "gcr.io/[x"`},
	} {
		p := write(c.name, c.body)
		_, errOut := Cip(t, 2, "--db", db, "promote", "--manifest", passing, "--plan", "--signature-policy", p)
		if !strings.Contains(errOut, p+c.want) {
			t.Errorf("%s: stderr lacks %q:\n%s", c.name, p+c.want, errOut)
		}
	}
}

// TestSignKeyCosignVerify is issue 16's check of --sign-key: after a
// promotion into two destinations (on two registries), `cosign verify
// --key` (the real cosign v3.1.3, not cip) passes for every promoted tag
// in every destination, and `cosign verify-attestation` for the
// promotion record (--attest-promotion); a second run signs nothing and
// copies nothing.
func TestSignKeyCosignVerify(t *testing.T) {
	s := newSigner(t)
	srcSrv, dstA, dstB := StartRegistry(t), StartRegistry(t), StartRegistry(t)
	src := &regtest.Registry{Host: srcSrv.Host}
	idxD := src.Push(t, "staging/app", "v1", platformIndex(t, true)).String()
	imgD := src.Push(t, "staging/tool", "v2", regtest.Image(t, 700, 2, false)).String()
	src.Tag(t, "staging/tool", mustHash(t, imgD), "latest")
	s.sign("k1", srcSrv.Host+"/staging/app@"+idxD, false) // staging's own signature travels too

	dir := t.TempDir()
	db := filepath.Join(dir, "inventory.db")
	mf := filepath.Join(dir, "promoter-manifest.yaml")
	body := fmt.Sprintf("registries:\n- name: %s/staging\n  src: true\n- name: %s/prod\n- name: %s/mirror\nimages:\n- name: app\n  dmap:\n    %q: [\"v1\"]\n- name: tool\n  dmap:\n    %q: [\"v2\", \"latest\"]\n",
		srcSrv.Host, dstA.Host, dstB.Host, idxD, imgD)
	if err := os.WriteFile(mf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CIP_SIGN_KEY_PASSWORD", "e2e")
	args := []string{"--db", db, "promote", "--manifest", mf, "--confirm", "--sign-key", s.key("k3", "key"), "--sign-identity", "registry.example/{image}", "--attest-promotion"}
	_, errOut := Cip(t, 0, args...)
	if !strings.Contains(errOut, "signed: 2 digest(s), 0 already signed by this key; signatures copied to 2 other destination(s)") {
		t.Errorf("first run: stderr lacks the signing summary:\n%s", errOut)
	}
	for _, host := range []string{dstA.Host + "/prod", dstB.Host + "/mirror"} {
		for _, ref := range []string{host + "/app:v1", host + "/tool:v2", host + "/tool:latest"} {
			// cosign shows the statement's subject annotations: cip's version.
			if out := s.run(s.cosign, "verify", "--key", s.key("k3", "pub"), "--insecure-ignore-tlog=true", ref); !strings.Contains(out, `"dev.cip.version":`) {
				t.Errorf("cosign verify %s shows no dev.cip.version:\n%s", ref, out)
			}
		}
		// Staging's signature came along, and was not replaced.
		s.verify("k1", host+"/app@"+idxD, false)
		// The promotion record, by cosign too.
		out := s.run(s.cosign, "verify-attestation", "--key", s.key("k3", "pub"), "--insecure-ignore-tlog=true", "--type", "https://github.com/cipdev/cip/promotion/v1", host+"/tool:v2")
		if !strings.Contains(out, "payload") {
			t.Errorf("cosign verify-attestation %s/tool:v2 printed no attestation:\n%s", host, out)
		}
	}
	// The second run signs nothing.
	_, errOut = Cip(t, 0, args...)
	if !strings.Contains(errOut, "signed: 0 digest(s), 2 already signed by this key; signatures copied to 0 other destination(s)") {
		t.Errorf("second run: stderr lacks the no-op signing summary:\n%s", errOut)
	}
	// cosign itself counts one signature by k3 per digest in each
	// destination: nothing was signed twice.
	for _, host := range []string{dstA.Host + "/prod", dstB.Host + "/mirror"} {
		out := s.run(s.cosign, "verify", "--key", s.key("k3", "pub"), "--insecure-ignore-tlog=true", "--output", "json", host+"/tool:v2")
		// cosign lists every bundle by the key, the promotion record too
		// (by its predicate type): one of each.
		for _, typ := range []string{"https://sigstore.dev/cosign/sign/v1", "https://github.com/cipdev/cip/promotion/v1"} {
			if n := strings.Count(out, `"type":"`+typ+`"`); n != 1 {
				t.Errorf("%s/tool:v2: cosign verify found %d bundles by k3 of type %s, want 1:\n%s", host, n, typ, out)
			}
		}
	}
}

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

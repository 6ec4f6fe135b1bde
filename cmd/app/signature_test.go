package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The signature flags' mistakes exit 2 before any request, each saying
// what is wrong.
func TestSignatureFlagErrors(t *testing.T) {
	mf := writeManifest(t, "registries:\n- name: 127.0.0.1:1/staging\n  src: true\n- name: 127.0.0.1:1/prod\nimages: []\n")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	policy := write("policy.yaml", "rules:\n  - source: x\n    mode: sometimes\n")
	notKey := write("cosign.key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
	badRoot := write("trusted_root.json", `{"mediaType": "x"}`)
	db := filepath.Join(dir, "inv.db")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"policy mistakes", []string{"--signature-policy", policy}, policy + `:3: mode "sometimes": want require or if-present`},
		{"policy with --offline", []string{"--signature-policy", write("ok.yaml", "rules:\n  - {source: x, mode: require, keys: ["+write("k.pub", testPub(t))+"]}\n"), "--offline"}, "cannot be used with --offline"},
		{"trusted root alone", []string{"--trusted-root", badRoot}, "--trusted-root is only read with --signature-policy or --sign-oidc-token"},
		{"key and token", []string{"--sign-key", notKey, "--sign-oidc-token", notKey}, "give --sign-key or --sign-oidc-token, not both"},
		{"token without fulcio", []string{"--sign-oidc-token", notKey}, "--sign-oidc-token needs --fulcio-url"},
		{"token not a JWT", []string{"--sign-oidc-token", notKey, "--fulcio-url", "http://127.0.0.1:1"}, "the identity token is no JWT"},
		{"fulcio without token", []string{"--fulcio-url", "http://127.0.0.1:1"}, "only used with --sign-oidc-token"},
		{"bad trusted root", []string{"--signature-policy", policy, "--trusted-root", badRoot}, "read trusted root " + badRoot},
		{"sign key not a private key", []string{"--sign-key", notKey}, "not a cosign private key"},
		{"sign key absent", []string{"--sign-key", filepath.Join(dir, "absent.key")}, "read --sign-key"},
		{"identity alone", []string{"--sign-identity", "r/{image}"}, "--sign-identity and --attest-promotion are only used with --sign-key or --sign-oidc-token"},
		{"attestation alone", []string{"--attest-promotion"}, "--attest-promotion are only used with"},
	} {
		code, _, errOut := cip(t, append([]string{"--db", db, "promote", "--manifest", mf, "--plan"}, c.args...)...)
		if code != ExitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", c.name, code, errOut, ExitUsage, c.want)
		}
	}
}

// testPub is a new P-256 public key (PEM).
func testPub(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

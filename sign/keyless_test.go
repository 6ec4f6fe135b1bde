package sign

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore-go/pkg/root"
	sgsign "github.com/sigstore/sigstore-go/pkg/sign"
)

// testCA is a private certificate authority standing in for Fulcio.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := mustECDSA(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name, Organization: []string{"cip test"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

// oidIssuerV2 is Fulcio's OIDC issuer extension (a DER UTF8String).
var oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}

// leaf issues a code signing certificate for email, vouched for by
// issuer, to a new key: the certificate (DER) and the key.
func (ca *testCA) leaf(t *testing.T, email, issuer string) ([]byte, *Key) {
	t.Helper()
	priv := mustECDSA(t)
	iss, _ := asn1.MarshalWithParams(issuer, "utf8")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), EmailAddresses: []string{email},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{{Id: oidIssuerV2, Value: iss}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &priv.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKey(email, priv)
	if err != nil {
		t.Fatal(err)
	}
	return der, k
}

// trustedRoot writes a sigstore trusted_root.json trusting ca (and no
// transparency log, CT log or timestamp authority).
func trustedRoot(t *testing.T, ca *testCA) string {
	t.Helper()
	body := fmt.Sprintf(`{
  "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
  "tlogs": [],
  "certificateAuthorities": [{
    "subject": {"organization": "cip test", "commonName": %q},
    "uri": "https://fulcio.invalid",
    "certChain": {"certificates": [{"rawBytes": %q}]},
    "validFor": {"start": %q}
  }],
  "ctlogs": [],
  "timestampAuthorities": []
}`, ca.cert.Subject.CommonName, base64.StdEncoding.EncodeToString(ca.cert.Raw), time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339))
	p := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fixedCert is a certificate provider that hands out one certificate.
type fixedCert []byte

func (c fixedCert) GetCertificate(context.Context, sgsign.Keypair, *sgsign.CertificateProviderOptions) ([]byte, error) {
	return c, nil
}

func keylessBundle(t *testing.T, cert []byte, k *Key, digest string) []byte {
	t.Helper()
	b, err := signBundle(keypair{k}, digest, "registry.k8s.io/pause", nil, sgsign.BundleOptions{CertificateProvider: fixedCert(cert)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Keyless signatures, offline: a bundle whose certificate chains to the
// trusted root passes for its identity (exact or by regular expression),
// is an identity mismatch for another, and a certificate of an unknown CA
// is refused; the same for a .sig layer with its certificate annotation.
func TestVerifyKeyless(t *testing.T) {
	ca, rogue := newCA(t, "test-fulcio"), newCA(t, "rogue")
	tr, err := LoadTrustedRoot(trustedRoot(t, ca))
	if err != nil {
		t.Fatal(err)
	}
	dg := digestOf("image")
	const issuer = "https://accounts.example"
	cert, k := ca.leaf(t, "releaser@example.com", issuer)
	rogueCert, rk := rogue.leaf(t, "releaser@example.com", issuer)
	good := Signature{Format: Bundle, Bundle: keylessBundle(t, cert, k, dg)}
	bad := Signature{Format: Bundle, Bundle: keylessBundle(t, rogueCert, rk, dg)}
	payload, sig, err := k.SignSimple(dg, "registry.k8s.io/pause", nil)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert})
	oldGood := Signature{Format: SimpleSigning, Payload: payload, Sig: sig, Certificate: certPEM}
	roguePEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rogueCert})
	oldRogue := Signature{Format: SimpleSigning, Payload: payload, Sig: sig, Certificate: roguePEM}
	// A .sig whose certificate is genuine but whose signature is by
	// another key.
	p2, s2, _ := newKey(t, "other").SignSimple(dg, "registry.k8s.io/pause", nil)
	oldForged := Signature{Format: SimpleSigning, Payload: p2, Sig: s2, Certificate: certPEM}

	who := &Trust{Root: tr, Identities: []Identity{{Subject: "releaser@example.com", Issuer: issuer}}}
	byRegexp := &Trust{Root: tr, Identities: []Identity{{SubjectRegexp: `^.*@example\.com$`, IssuerRegexp: `^https://accounts\.`}}}
	other := &Trust{Root: tr, Identities: []Identity{{Subject: "someone@example.com", Issuer: issuer}}}
	otherIssuer := &Trust{Root: tr, Identities: []Identity{{Subject: "releaser@example.com", Issuer: "https://elsewhere"}}}
	keysOnly := &Trust{Keys: []*PublicKey{k.Public}}
	for _, c := range []struct {
		name  string
		trust *Trust
		sig   Signature
		want  Reason
	}{
		{"bundle, identity", who, good, ""},
		{"bundle, regexp", byRegexp, good, ""},
		{"bundle, other subject", other, good, IdentityMismatch},
		{"bundle, other issuer", otherIssuer, good, IdentityMismatch},
		{"bundle, rogue CA", who, bad, UnknownKey},
		{"bundle, keys only", keysOnly, good, UnknownKey},
		{".sig, identity", who, oldGood, ""},
		{".sig, other subject", other, oldGood, IdentityMismatch},
		{".sig, rogue CA", who, oldRogue, UnknownKey},
		{".sig, signed by another key", who, oldForged, BadSignature},
	} {
		v, err := c.trust.Verify(c.sig, dg)
		if reason(err) != c.want || (c.want == "" && err != nil) {
			t.Errorf("%s: Verify = %+v, %v; want %q", c.name, v, err, c.want)
		}
		if c.want == "" && v.By == "" {
			t.Errorf("%s: verified by nobody", c.name)
		}
	}
	if _, err := who.Verify(good, digestOf("other")); reason(err) != BadSignature {
		t.Errorf("bundle for another digest: %v, want %s", err, BadSignature)
	}

	// Through a policy file with --trusted-root.
	dir := t.TempDir()
	pf := filepath.Join(dir, "policy.yaml")
	os.WriteFile(pf, []byte("rules:\n  - name: keyless\n    source: \"*\"\n    mode: require\n    identities:\n      - subject: releaser@example.com\n        issuer: "+issuer+"\n"), 0o644)
	p, err := LoadPolicy(pf, PolicyOptions{TrustedRoot: tr})
	if err != nil {
		t.Fatal(err)
	}
	v, signed, err := p.Match("reg", "img").Check(dg, []Signature{bad, good})
	if err != nil || !signed || v.By != "releaser@example.com (https://accounts.example)" {
		t.Errorf("policy Check = %+v, %v, %v", v, signed, err)
	}
	var _ root.TrustedMaterial = tr
}

func TestLoadTrustedRootErrors(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tr.json")
	os.WriteFile(p, []byte(`{"mediaType": "nope"}`), 0o644)
	if _, err := LoadTrustedRoot(p); err == nil {
		t.Error("LoadTrustedRoot(bad media type) = nil error")
	}
	if _, err := LoadTrustedRoot(filepath.Join(t.TempDir(), "absent.json")); err == nil {
		t.Error("LoadTrustedRoot(absent) = nil error")
	}
}

// fakeFulcio serves Fulcio's signing certificate API, issuing from ca a
// certificate for the requested key to the token's email.
func fakeFulcio(t *testing.T, ca *testCA, issuer string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/signingCert" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		var req struct {
			PublicKeyRequest struct {
				PublicKey struct{ Content string } `json:"publicKey"`
			} `json:"publicKeyRequest"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var claims struct{ Email string }
		_ = json.Unmarshal(payload, &claims)
		pub, err := ParsePublicKey("request", []byte(req.PublicKeyRequest.PublicKey.Content))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		iss, _ := asn1.MarshalWithParams(issuer, "utf8")
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), EmailAddresses: []string{claims.Email},
			NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(10 * time.Minute),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
			ExtraExtensions: []pkix.Extension{{Id: oidIssuerV2, Value: iss}},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub.key, ca.key)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		leaf := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		root := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"signedCertificateEmbeddedSct": map[string]any{"chain": map[string]any{"certificates": []string{leaf, root}}}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// idToken is an (unsigned) OIDC identity token for email from issuer:
// the fake Fulcio does not check signatures.
func idToken(issuer, email string) string {
	enc := base64.RawURLEncoding.EncodeToString
	claims, _ := json.Marshal(map[string]any{"iss": issuer, "sub": "1234", "email": email, "email_verified": true, "aud": "sigstore"})
	return enc([]byte(`{"alg":"ES256","typ":"JWT"}`)) + "." + enc(claims) + "." + enc([]byte("sig"))
}

// closedURL is an http URL nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

// The keyless signer seam, offline: a fake Fulcio (a private CA) issues
// the certificate; the bundle verifies for the token's identity against
// the trusted root, and the signer knows its own signature (Trust). An
// unreachable Fulcio or Rekor is a clear error naming it.
func TestKeylessSigner(t *testing.T) {
	const issuer = "https://oidc.example"
	ca := newCA(t, "test-fulcio")
	tr, err := LoadTrustedRoot(trustedRoot(t, ca))
	if err != nil {
		t.Fatal(err)
	}
	fulcio := fakeFulcio(t, ca, issuer)
	tok := idToken(issuer, "releaser@example.com")
	k, err := NewKeyless(fulcio.URL, "", tok, tr)
	if err != nil {
		t.Fatal(err)
	}
	dg := digestOf("image")
	b, err := k.SignBundle(context.Background(), dg, "registry.k8s.io/pause", map[string]string{"dev.cip.version": "t"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := k.Trust().Verify(Signature{Format: Bundle, Bundle: b}, dg)
	if err != nil || v.Identity != "registry.k8s.io/pause" || v.By != "releaser@example.com (https://oidc.example)" {
		t.Errorf("Verify(keyless bundle) = %+v, %v", v, err)
	}
	other := &Trust{Root: tr, Identities: []Identity{{Subject: "intruder@example.com", Issuer: issuer}}}
	if _, err := other.Verify(Signature{Format: Bundle, Bundle: b}, dg); reason(err) != IdentityMismatch {
		t.Errorf("Verify(keyless bundle, another identity) = %v, want %s", err, IdentityMismatch)
	}
	if noRoot, _ := NewKeyless(fulcio.URL, "", tok, nil); noRoot.Trust() != nil {
		t.Error("a keyless signer without a trusted root claims to know its signatures")
	}

	down := closedURL(t)
	for _, c := range []struct{ name, fulcio, rekor, want string }{
		{"fulcio down", down, "", "get a certificate from Fulcio at " + down},
		{"rekor down", fulcio.URL, down, "log the signature in Rekor at " + down},
	} {
		k, err := NewKeyless(c.fulcio, c.rekor, tok, tr)
		if err != nil {
			t.Fatal(err)
		}
		k.Timeout = 2 * time.Second
		start := time.Now()
		_, err = k.SignBundle(context.Background(), dg, "x", nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: SignBundle = %v, want an error naming %q", c.name, err, c.want)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%s: failing took %v", c.name, d)
		}
	}
	for _, c := range []struct{ name, fulcio, token string }{
		{"no JWT", fulcio.URL, "abc"},
		{"no issuer", fulcio.URL, idToken("", "a@b")},
		{"bad URL", "fulcio.example", tok},
	} {
		if _, err := NewKeyless(c.fulcio, "", c.token, nil); err == nil {
			t.Errorf("%s: NewKeyless = nil error", c.name)
		}
	}
}

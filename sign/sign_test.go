package sign

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgsign "github.com/sigstore/sigstore-go/pkg/sign"
)

// privs keeps the private keys newKey makes, for tests that write them.
var privs = map[*Key]*ecdsa.PrivateKey{}

func newKey(t *testing.T, name string) *Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewKey(name, priv)
	if err != nil {
		t.Fatal(err)
	}
	privs[k] = priv
	return k
}

// attestation is a bundle by k of an in-toto statement about digest
// with another predicate type than cosign's signature.
func attestation(t *testing.T, k *Key, digest string) []byte {
	t.Helper()
	st, _ := json.Marshal(statement{Type: "https://in-toto.io/Statement/v1", PredicateType: "https://slsa.dev/provenance/v1",
		Subject: []subject{{Digest: map[string]string{"sha256": strings.TrimPrefix(digest, "sha256:")}}}, Predicate: map[string]any{}})
	pb, err := sgsign.Bundle(&sgsign.DSSEData{Data: st, PayloadType: inTotoPayloadType}, keypair{k}, sgsign.BundleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&sgbundle.Bundle{Bundle: pb}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func reason(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func TestKeyFileRoundTrip(t *testing.T) {
	k := newKey(t, "k")
	enc, err := EncryptKey(privs[k], []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseKey("cosign.key", enc, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Public.Equal(k.Public) {
		t.Errorf("ParseKey(EncryptKey(k)) has another public key")
	}
	if _, err := ParseKey("cosign.key", enc, []byte("wrong")); err == nil || !strings.Contains(err.Error(), "wrong password") {
		t.Errorf("ParseKey with a wrong password = %v, want a decrypt error", err)
	}
	if _, err := ParseKey("cosign.pub", k.Public.PEM(), nil); err == nil || !strings.Contains(err.Error(), "not a cosign private key") {
		t.Errorf("ParseKey(public key) = %v", err)
	}
	pub, err := ParsePublicKey("cosign.pub", k.Public.PEM())
	if err != nil || !pub.Equal(k.Public) {
		t.Errorf("ParsePublicKey(PEM()) = %v, %v", pub, err)
	}
	if _, err := ParsePublicKey("cosign.key", enc); err == nil || !strings.Contains(err.Error(), "not a PUBLIC KEY") {
		t.Errorf("ParsePublicKey(private key) = %v", err)
	}
	if _, err := ParsePublicKey("x", []byte("hello")); err == nil {
		t.Errorf("ParsePublicKey(garbage) = nil error")
	}
}

func TestVerifySimpleSigning(t *testing.T) {
	a, b := newKey(t, "a.pub"), newKey(t, "b.pub")
	dg, other := digestOf("image"), digestOf("other")
	payload, sig, err := a.SignSimple(dg, "registry.k8s.io/pause", map[string]string{"dev.cip.version": "test"})
	if err != nil {
		t.Fatal(err)
	}
	s := Signature{Format: SimpleSigning, Payload: payload, Sig: sig}
	trustA := &Trust{Keys: []*PublicKey{a.Public}}
	v, err := trustA.Verify(s, dg)
	if err != nil || v.By != "a.pub" || v.Identity != "registry.k8s.io/pause" || v.Format != SimpleSigning {
		t.Errorf("Verify(signed by a) = %+v, %v; want by a.pub for registry.k8s.io/pause", v, err)
	}
	for _, c := range []struct {
		name   string
		trust  *Trust
		sig    Signature
		digest string
		want   Reason
	}{
		{"other key", &Trust{Keys: []*PublicKey{b.Public}}, s, dg, UnknownKey},
		{"no keys", &Trust{}, s, dg, UnknownKey},
		{"other digest", trustA, s, other, BadSignature},
		{"tampered payload", trustA, Signature{Format: SimpleSigning, Payload: []byte(strings.Replace(string(payload), "pause", "pausx", 1)), Sig: sig}, dg, UnknownKey},
		{"no signature annotation", trustA, Signature{Format: SimpleSigning, Payload: payload}, dg, BadSignature},
		{"not JSON", trustA, Signature{Format: SimpleSigning, Payload: []byte("{"), Sig: sig}, dg, BadSignature},
		{"bad digest", trustA, s, "sha256:xyz", BadSignature},
	} {
		if _, err := c.trust.Verify(c.sig, c.digest); reason(err) != c.want {
			t.Errorf("%s: Verify = %v, want %s", c.name, err, c.want)
		}
	}
}

func TestVerifyBundle(t *testing.T) {
	a, b := newKey(t, "a.pub"), newKey(t, "b.pub")
	dg, other := digestOf("image"), digestOf("other")
	raw, err := a.SignBundle(context.Background(), dg, "registry.k8s.io/pause", map[string]string{"dev.cip.version": "test"})
	if err != nil {
		t.Fatal(err)
	}
	s := Signature{Format: Bundle, Bundle: raw}
	trustA := &Trust{Keys: []*PublicKey{b.Public, a.Public}}
	v, err := trustA.Verify(s, dg)
	if err != nil || v.By != "a.pub" || v.Identity != "registry.k8s.io/pause" || v.Format != Bundle {
		t.Errorf("Verify(bundle by a) = %+v, %v", v, err)
	}
	// A bundle whose payload is changed: its signature no longer verifies.
	var bj map[string]any
	if err := json.Unmarshal(raw, &bj); err != nil {
		t.Fatal(err)
	}
	env := bj["dsseEnvelope"].(map[string]any)
	sigs := env["signatures"].([]any)
	sig0 := sigs[0].(map[string]any)
	sig0["sig"] = "MEUCIQDx" + strings.Repeat("A", 88) // syntactically fine, wrong
	tampered, _ := json.Marshal(bj)
	// An attestation by a (another predicate type) is no image signature.
	att := attestation(t, a, dg)
	for _, c := range []struct {
		name   string
		trust  *Trust
		sig    Signature
		digest string
		want   Reason
	}{
		{"other key", &Trust{Keys: []*PublicKey{b.Public}}, s, dg, UnknownKey},
		{"other digest", trustA, s, other, BadSignature},
		{"tampered", trustA, Signature{Format: Bundle, Bundle: tampered}, dg, BadSignature},
		{"garbage", trustA, Signature{Format: Bundle, Bundle: []byte(`{"mediaType":"x"}`)}, dg, BadSignature},
		{"attestation", trustA, Signature{Format: Bundle, Bundle: att}, dg, BadSignature},
		{"keyless only", &Trust{Identities: []Identity{{Subject: "x", Issuer: "y"}}}, s, dg, UnknownKey},
	} {
		if _, err := c.trust.Verify(c.sig, c.digest); reason(err) != c.want {
			t.Errorf("%s: Verify = %v, want %s", c.name, err, c.want)
		}
	}
}

func TestReadReferrers(t *testing.T) {
	a := newKey(t, "a.pub")
	dg := digestOf("image")
	raw, err := a.SignBundle(context.Background(), dg, "r/i", nil)
	if err != nil {
		t.Fatal(err)
	}
	art, err := BundleReferrer(raw, Subject{Digest: dg, MediaType: ociManifest, Size: 5}, time.Unix(0, 0), CosignSignPredicate, map[string]string{"dev.cip.version": "t"})
	if err != nil {
		t.Fatal(err)
	}
	p1, s1, _ := a.SignSimple(dg, "r/i", nil)
	p2, s2, _ := newKey(t, "b").SignSimple(dg, "r/i", nil)
	img, err := SimpleSigningImage([]Signature{{Payload: p1, Sig: s1}, {Payload: p2, Sig: s2}})
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[string][]byte{}
	for _, x := range []Artifact{art, img} {
		for _, b := range x.Blobs {
			blobs[b.Digest] = b.Data
		}
	}
	fetched := 0
	fetch := func(_ context.Context, d string, size int64) ([]byte, error) {
		fetched++
		b, ok := blobs[d]
		if !ok || int64(len(b)) != size {
			return nil, fmt.Errorf("no blob %s of %d bytes", d, size)
		}
		return b, nil
	}
	trust := &Trust{Keys: []*PublicKey{a.Public}}
	bs, err := Read(context.Background(), art.Digest, art.Manifest, fetch)
	if err != nil || len(bs) != 1 || bs[0].Format != Bundle {
		t.Fatalf("Read(bundle referrer) = %+v, %v", bs, err)
	}
	if _, err := trust.Verify(bs[0], dg); err != nil {
		t.Errorf("Verify(read bundle) = %v", err)
	}
	ss, err := Read(context.Background(), img.Digest, img.Manifest, fetch)
	if err != nil || len(ss) != 2 {
		t.Fatalf("Read(.sig image) = %+v, %v", ss, err)
	}
	if _, err := trust.Verify(ss[0], dg); err != nil {
		t.Errorf("Verify(first .sig layer) = %v", err)
	}
	if _, err := trust.Verify(ss[1], dg); reason(err) != UnknownKey {
		t.Errorf("Verify(second .sig layer, by b) = %v, want %s", err, UnknownKey)
	}
	if fetched != 3 {
		t.Errorf("Read fetched %d blobs, want 3 (the config and empty blobs are never read)", fetched)
	}
	var m ociImage
	_ = json.Unmarshal(art.Manifest, &m)
	if m.Subject == nil || m.Subject.Digest != dg || m.ArtifactType != BundleMediaType || m.Annotations["dev.cip.version"] != "t" {
		t.Errorf("BundleReferrer manifest = %s", art.Manifest)
	}
	// A layer over MaxBlob is refused before any read.
	m.Layers[0].Size = MaxBlob + 1
	big, _ := json.Marshal(m)
	if _, err := Read(context.Background(), "x", big, fetch); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("Read(huge layer) = %v", err)
	}
}

func mustECDSA(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return priv
}

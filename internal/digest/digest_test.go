package digest_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cipdev/cip/internal/digest"
	"github.com/cipdev/cip/internal/regtest"
)

const schema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"

func TestValidate(t *testing.T) {
	hex64, hex128 := strings.Repeat("ab", 32), strings.Repeat("cd", 64)
	tests := []struct {
		d    string
		want string // "" for valid, else a part of the error
	}{
		{"sha256:" + hex64, ""},
		{"sha512:" + hex128, ""},
		{"md5:" + strings.Repeat("a", 32), `algorithm "md5"`},
		{"sha1:" + strings.Repeat("a", 40), `algorithm "sha1"`},
		{"sha256:" + hex64[:63], "want 64 hex"},
		{"sha512:" + hex64, "want 128 hex"},
		{"sha256:" + strings.ToUpper(hex64), "not lowercase hex"},
		{"sha256" + hex64, "want algorithm:hex"},
		{"", "want algorithm:hex"},
	}
	for _, tt := range tests {
		err := digest.Validate(tt.d)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Validate(%q) = %v, want nil", tt.d, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, digest.ErrUnsupported)):
			t.Errorf("Validate(%q) = %v, want an ErrUnsupported naming %q", tt.d, err, tt.want)
		}
	}
}

func TestVerify(t *testing.T) {
	b := []byte(`{"schemaVersion":2}`)
	s256 := digest.SHA256(b)
	s512, err := digest.Of("sha512", b)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{s256, s512} {
		if err := digest.Verify(d, b); err != nil {
			t.Errorf("Verify(%s) = %v, want nil", d, err)
		}
		if err := digest.Verify(d, append(b, ' ')); !errors.Is(err, digest.ErrMismatch) {
			t.Errorf("Verify(%s, other bytes) = %v, want ErrMismatch", d, err)
		}
	}
	if err := digest.Verify("md5:"+strings.Repeat("0", 32), b); !errors.Is(err, digest.ErrUnsupported) {
		t.Errorf("Verify(md5) = %v, want ErrUnsupported", err)
	}
}

func TestSchema1(t *testing.T) {
	layer := "sha256:" + strings.Repeat("1", 64)
	raw, payloadDigest := regtest.Schema1(t, "old/app", "v1", []string{layer})
	full := digest.SHA256(raw)
	if full == payloadDigest {
		t.Fatal("the test manifest's payload is its whole body")
	}
	payload, err := digest.Payload(raw)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(payload, []byte("signatures")) || !bytes.HasSuffix(payload, []byte("\n}")) {
		t.Errorf("Payload = %s, want the manifest without signatures", payload)
	}
	// Distribution's name, and the full-bytes hash, both verify.
	for _, d := range []string{payloadDigest, full} {
		if err := digest.VerifyManifest(d, schema1Signed, raw); err != nil {
			t.Errorf("VerifyManifest(%s) = %v, want nil", d, err)
		}
	}
	if got, err := digest.Manifest(schema1Signed, raw); err != nil || got != payloadDigest {
		t.Errorf("Manifest = %s, %v, want the payload digest %s", got, err, payloadDigest)
	}
	// Another digest, or a broken signature block, cannot be verified.
	other := "sha256:" + strings.Repeat("2", 64)
	if err := digest.VerifyManifest(other, schema1Signed, raw); !errors.Is(err, digest.ErrUnverifiable) {
		t.Errorf("VerifyManifest(other digest) = %v, want ErrUnverifiable", err)
	}
	broken := bytes.Replace(raw, []byte(`"protected": "`), []byte(`"protected": "!`), 1)
	if err := digest.VerifyManifest(payloadDigest, schema1Signed, broken); !errors.Is(err, digest.ErrUnverifiable) {
		t.Errorf("VerifyManifest(broken protected header) = %v, want ErrUnverifiable", err)
	}
	if _, err := digest.Manifest(schema1Signed, broken); !errors.Is(err, digest.ErrUnverifiable) {
		t.Errorf("Manifest(broken protected header) = %v, want ErrUnverifiable", err)
	}
	// A changed payload byte changes the payload digest.
	changed := bytes.Replace(raw, []byte(`"v1"`), []byte(`"v2"`), 1)
	if err := digest.VerifyManifest(payloadDigest, schema1Signed, changed); err == nil {
		t.Error("VerifyManifest(changed payload) = nil, want an error")
	}
	// The payload rule is schema 1's only: an OCI manifest is its bytes.
	if err := digest.VerifyManifest(payloadDigest, "application/vnd.oci.image.manifest.v1+json", raw); !errors.Is(err, digest.ErrMismatch) {
		t.Errorf("VerifyManifest(OCI type) = %v, want ErrMismatch", err)
	}
}

func TestPayloadRefusesDisagreement(t *testing.T) {
	for name, raw := range map[string]string{
		"no signatures":       `{"schemaVersion":1,"signatures":[]}`,
		"no formatLength":     `{"schemaVersion":1,"signatures":[{"protected":"e30"}]}`,
		"length past the end": `{"schemaVersion":1,"signatures":[{"protected":"eyJmb3JtYXRMZW5ndGgiOjk5OTksImZvcm1hdFRhaWwiOiJmUSJ9"}]}`,
		"disagreeing":         `{"schemaVersion":1,"signatures":[{"protected":"eyJmb3JtYXRMZW5ndGgiOjEsImZvcm1hdFRhaWwiOiJmUSJ9"},{"protected":"eyJmb3JtYXRMZW5ndGgiOjIsImZvcm1hdFRhaWwiOiJmUSJ9"}]}`,
	} {
		if _, err := digest.Payload([]byte(raw)); err == nil {
			t.Errorf("Payload(%s) = nil error, want one", name)
		}
	}
}

package digest_test

import (
	"testing"

	"github.com/cipdev/cip/internal/digest"
	"github.com/cipdev/cip/internal/regtest"
)

// FuzzManifestDigest: whatever bytes a registry sends, the digest rules
// never panic, and the digest Manifest names a manifest by always
// verifies it (the rule a crawl records by is the rule every read checks).
func FuzzManifestDigest(f *testing.F) {
	signed, _ := regtest.Schema1(f, "old/app", "v1", []string{"sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"})
	f.Add(signed, schema1Signed)
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`), "application/vnd.oci.image.manifest.v1+json")
	f.Add([]byte(`{"schemaVersion":1,"signatures":[{"protected":"eyJmb3JtYXRMZW5ndGgiOjEsImZvcm1hdFRhaWwiOiJmUSJ9"}]}`), "")
	f.Fuzz(func(t *testing.T, raw []byte, mediaType string) {
		d, err := digest.Manifest(mediaType, raw)
		if err != nil {
			return
		}
		if err := digest.Validate(d); err != nil {
			t.Fatalf("Manifest gave %q, which Validate refuses: %v", d, err)
		}
		if err := digest.VerifyManifest(d, mediaType, raw); err != nil {
			t.Fatalf("Manifest(%q) = %s, but VerifyManifest refuses it: %v", mediaType, d, err)
		}
		_, _ = digest.Payload(raw)
	})
}

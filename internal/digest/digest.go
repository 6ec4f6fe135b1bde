// Package digest checks content digests as registries name content: the
// algorithms cip verifies (sha256 and sha512; every other one is refused
// by name), and the digest of a manifest, which for a signed Docker schema
// 1 manifest is the hash of its payload without the signatures, as
// distribution computes it. Nothing that does not verify under these rules
// enters the inventory.
//
// It imports nothing of cip's, so that registry (which reads manifests off
// the wire), inventory (which re-hashes what it stored) and sync share one
// rule.
package digest

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// ErrUnsupported is wrapped by the errors for a digest cip cannot check: an
// algorithm other than sha256 and sha512 (md5, say), or a malformed digest.
var ErrUnsupported = errors.New("unsupported digest")

// ErrMismatch is wrapped by the errors for content that does not hash to
// the digest it is named by.
var ErrMismatch = errors.New("content does not match its digest")

// ErrUnverifiable is wrapped by the errors for a signed schema 1 manifest
// whose digest neither rule gives: not the hash of its bytes, and its
// payload cannot be recovered from its signatures (or does not hash to it
// either). Registries have named such manifests by rules of their own;
// cip cannot tell a rule it does not know from a forgery, so it keeps none.
var ErrUnverifiable = errors.New("manifest cannot be verified")

// algorithms are the digest algorithms cip verifies, with the length of
// their hex encoding.
var algorithms = map[string]struct {
	hexLen int
	new    func() hash.Hash
}{
	"sha256": {64, sha256.New},
	"sha512": {128, sha512.New},
}

// Validate checks that d is sha256:<64 lowercase hex> or sha512:<128
// lowercase hex>. The error names what is wrong (the algorithm, when it is
// another one) and wraps ErrUnsupported.
func Validate(d string) error {
	alg, hx, ok := strings.Cut(d, ":")
	if !ok {
		return fmt.Errorf("%w %q: want algorithm:hex", ErrUnsupported, d)
	}
	a, known := algorithms[alg]
	if !known {
		return fmt.Errorf("%w %q: algorithm %q is not one cip verifies (sha256, sha512)", ErrUnsupported, d, alg)
	}
	if len(hx) != a.hexLen {
		return fmt.Errorf("%w %q: want %d hex characters after %s:, got %d", ErrUnsupported, d, a.hexLen, alg, len(hx))
	}
	for i := 0; i < len(hx); i++ {
		if c := hx[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("%w %q: %q is not lowercase hex", ErrUnsupported, d, c)
		}
	}
	return nil
}

// Of returns the digest of b under algorithm alg (sha256 or sha512).
func Of(alg string, b []byte) (string, error) {
	a, ok := algorithms[alg]
	if !ok {
		return "", fmt.Errorf("%w: algorithm %q is not one cip verifies (sha256, sha512)", ErrUnsupported, alg)
	}
	h := a.new()
	h.Write(b)
	return alg + ":" + hex.EncodeToString(h.Sum(nil)), nil
}

// SHA256 returns the sha256 digest of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Verify checks that b hashes to d.
func Verify(d string, b []byte) error {
	if err := Validate(d); err != nil {
		return err
	}
	alg, _, _ := strings.Cut(d, ":")
	got, _ := Of(alg, b)
	if got != d {
		return fmt.Errorf("%w: bytes have digest %s, not %s", ErrMismatch, got, d)
	}
	return nil
}

// schema1Signed is the media type of a signed Docker schema 1 manifest.
const schema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"

// isSchema1 reports whether mediaType is Docker schema 1, or a generic
// type (distribution reads a manifest sent as application/json, or with
// no type, as schema 1 too).
func isSchema1(mediaType string) bool {
	switch mediaType {
	case schema1Signed, "application/vnd.docker.distribution.manifest.v1+json", "application/json", "":
		return true
	}
	return false
}

// VerifyManifest checks that raw, a manifest of the given media type, is
// the manifest named d: its bytes hash to d (under d's algorithm), or, for
// a signed schema 1 manifest, its payload does (Payload: distribution names
// schema 1 manifests so). The error wraps ErrUnsupported for a digest cip
// cannot check, ErrUnverifiable for a schema 1 manifest neither rule
// verifies, and ErrMismatch otherwise.
func VerifyManifest(d, mediaType string, raw []byte) error {
	err := Verify(d, raw)
	if err == nil || !errors.Is(err, ErrMismatch) || !isSchema1(mediaType) || !hasSignatures(raw) {
		return err
	}
	payload, perr := Payload(raw)
	if perr != nil {
		return fmt.Errorf("%w: schema 1 manifest: %v (and its bytes have another digest than %s)", ErrUnverifiable, perr, d)
	}
	alg, _, _ := strings.Cut(d, ":")
	got, _ := Of(alg, payload)
	if got != d {
		return fmt.Errorf("%w: schema 1 manifest: neither its bytes nor its payload (%s) have digest %s", ErrUnverifiable, got, d)
	}
	return nil
}

// Manifest returns the digest a registry names raw by when it does not
// say: the sha256 of its bytes or, for a signed schema 1 manifest, of its
// payload (as distribution does). A signed schema 1 manifest whose payload
// cannot be recovered is ErrUnverifiable.
func Manifest(mediaType string, raw []byte) (string, error) {
	if !isSchema1(mediaType) || !hasSignatures(raw) {
		return SHA256(raw), nil
	}
	payload, err := Payload(raw)
	if err != nil {
		return "", fmt.Errorf("%w: schema 1 manifest: %v", ErrUnverifiable, err)
	}
	return SHA256(payload), nil
}

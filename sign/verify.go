package sign

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Format is how a signature is stored beside its image.
type Format string

// The two formats cosign writes.
const (
	// SimpleSigning is cosign's sha256-<hex>.sig tag: an image whose
	// layers are simple signing payloads, each signature in an annotation.
	SimpleSigning Format = "simple-signing"
	// Bundle is a sigstore bundle (v0.3) in an OCI referrer: a DSSE
	// envelope around an in-toto statement naming the image's digest.
	Bundle Format = "sigstore-bundle"
)

// Signature is one signature of an image, as read from its referrer.
type Signature struct {
	Format Format
	// Referrer is the digest of the manifest holding it (for messages).
	Referrer string
	// SimpleSigning: the payload (a layer blob), its signature (base64,
	// the dev.cosignproject.cosign/signature annotation) and, for keyless
	// signatures, the certificate and chain (PEM annotations).
	Payload     []byte
	Sig         string
	Certificate []byte
	Chain       []byte
	// Bundle: the bundle's JSON (a layer blob).
	Bundle []byte
}

// Reason says why a signature or a digest is refused.
type Reason string

// Reasons.
const (
	NoSignature      Reason = "no signature"
	UnknownKey       Reason = "signed by an unknown key"
	IdentityMismatch Reason = "identity mismatch"
	BadSignature     Reason = "bad signature"
)

// Error is a refused signature: the reason, and what was found.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return string(e.Reason)
	}
	return string(e.Reason) + ": " + e.Detail
}

func refuse(r Reason, format string, a ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, a...)}
}

// Identity is a keyless signer: the certificate's subject (SAN: an email,
// a URI such as a workflow's) and the OIDC issuer that vouched for it,
// each given exactly or as a regular expression.
type Identity struct {
	Subject, SubjectRegexp string
	Issuer, IssuerRegexp   string
}

func (id Identity) String() string {
	s, i := id.Subject, id.Issuer
	if s == "" {
		s = "~" + id.SubjectRegexp
	}
	if i == "" {
		i = "~" + id.IssuerRegexp
	}
	return s + " (" + i + ")"
}

// Trust is what a signature may be made by: any of the keys, or any of the
// identities with a certificate chaining to Root (a sigstore trusted root).
type Trust struct {
	Keys       []*PublicKey
	Identities []Identity
	Root       root.TrustedMaterial
}

// Verified says who made a signature that verified.
type Verified struct {
	Format Format
	// By is the key's name or the identity that signed.
	By string
	// Identity is the image reference the signature claims (the simple
	// signing payload's docker-reference, a bundle's subject name); "" when
	// it claims none.
	Identity string
}

// CosignSignPredicate is the predicate type of the in-toto statement
// cosign v3 signs images with (the new bundle format): a statement with
// another predicate is an attestation, not a signature of the image.
const CosignSignPredicate = "https://sigstore.dev/cosign/sign/v1"

// Verify checks sig against digest (sha256:<hex>, the image's): that it
// binds the digest and that one of t's keys or identities made it. The
// error is an *Error.
func (t *Trust) Verify(sig Signature, digest string) (Verified, error) {
	hexDigest, ok := strings.CutPrefix(digest, "sha256:")
	raw, err := hex.DecodeString(hexDigest)
	if !ok || err != nil || len(raw) != 32 {
		return Verified{}, refuse(BadSignature, "%q is no sha256 digest", digest)
	}
	switch sig.Format {
	case SimpleSigning:
		return t.verifySimple(sig, digest)
	case Bundle:
		return t.verifyBundle(sig, raw, CosignSignPredicate)
	}
	return Verified{}, refuse(BadSignature, "unknown signature format %q", sig.Format)
}

// VerifyAttestation checks a bundle attestation of digest with predicate
// type predicateType (Promotion's, say) as Verify checks a signature.
func (t *Trust) VerifyAttestation(sig Signature, digest, predicateType string) (Verified, error) {
	hexDigest, ok := strings.CutPrefix(digest, "sha256:")
	raw, err := hex.DecodeString(hexDigest)
	if !ok || err != nil || len(raw) != 32 {
		return Verified{}, refuse(BadSignature, "%q is no sha256 digest", digest)
	}
	if sig.Format != Bundle {
		return Verified{}, refuse(BadSignature, "an attestation is a sigstore bundle, not %s", sig.Format)
	}
	return t.verifyBundle(sig, raw, predicateType)
}

// simplePayload is cosign's simple signing payload (the "critical" part
// is what the signature vouches for).
type simplePayload struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// simpleSigningType is the critical.type of a cosign image signature.
const simpleSigningType = "cosign container image signature"

func (t *Trust) verifySimple(sig Signature, digest string) (Verified, error) {
	var p simplePayload
	if err := json.Unmarshal(sig.Payload, &p); err != nil {
		return Verified{}, refuse(BadSignature, "payload is no simple signing JSON: %v", err)
	}
	if p.Critical.Type != simpleSigningType {
		return Verified{}, refuse(BadSignature, "payload type %q, not %q", p.Critical.Type, simpleSigningType)
	}
	if got := p.Critical.Image.DockerManifestDigest; got != digest {
		return Verified{}, refuse(BadSignature, "payload signs %s, not %s", got, digest)
	}
	sigBytes, err := base64.StdEncoding.DecodeString(sig.Sig)
	if err != nil || len(sigBytes) == 0 {
		return Verified{}, refuse(BadSignature, "signature annotation is no base64")
	}
	v := Verified{Format: SimpleSigning, Identity: p.Critical.Identity.DockerReference}
	if len(sig.Certificate) > 0 {
		by, err := t.verifySimpleKeyless(sig, sigBytes)
		if err != nil {
			return Verified{}, err
		}
		v.By = by
		return v, nil
	}
	for _, k := range t.Keys {
		if k.verifier.VerifySignature(bytesReader(sigBytes), bytesReader(sig.Payload)) == nil {
			v.By = k.Name
			return v, nil
		}
	}
	// The .sig format carries no key id: a tampered signature and one by
	// another key look alike.
	return Verified{}, refuse(UnknownKey, "no trusted key verifies the simple signing signature")
}

// verifySimpleKeyless checks a .sig signature made with a certificate:
// the chain against the trusted root's certificate authorities now (cip
// does not check the Rekor bundle annotation a .sig may carry, so it has
// no proof of when the signature was made: a certificate valid today, a
// private CA's, passes; a Fulcio certificate, valid ten minutes, needs
// the bundle format, whose transparency log entry is checked), the
// signature with the certificate's key, and the identity.
func (t *Trust) verifySimpleKeyless(sig Signature, sigBytes []byte) (string, error) {
	if len(t.Identities) == 0 || t.Root == nil {
		return "", refuse(UnknownKey, "signed with a certificate; the rule trusts keys only")
	}
	block, _ := pem.Decode(sig.Certificate)
	if block == nil {
		return "", refuse(BadSignature, "certificate annotation is no PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", refuse(BadSignature, "certificate: %v", err)
	}
	at := time.Now()
	var chained bool
	for _, ca := range t.Root.FulcioCertificateAuthorities() {
		if _, err := ca.Verify(cert, at); err == nil {
			chained = true
			break
		}
	}
	if !chained {
		return "", refuse(UnknownKey, "certificate of %s does not chain to the trusted root", sanOf(cert))
	}
	v, err := signature.LoadDefaultVerifier(cert.PublicKey)
	if err != nil {
		return "", refuse(BadSignature, "certificate key: %v", err)
	}
	if err := v.VerifySignature(bytesReader(sigBytes), bytesReader(sig.Payload)); err != nil {
		return "", refuse(BadSignature, "signature does not verify with its certificate")
	}
	return t.matchIdentity(cert)
}

func (t *Trust) verifyBundle(sig Signature, digest []byte, predicateType string) (Verified, error) {
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(sig.Bundle); err != nil {
		return Verified{}, refuse(BadSignature, "bundle: %v", err)
	}
	vc, err := b.VerificationContent()
	if err != nil {
		return Verified{}, refuse(BadSignature, "bundle: %v", err)
	}
	policy := verify.NewPolicy(verify.WithArtifactDigest("sha256", digest), verify.WithKey())
	var (
		res *verify.VerificationResult
		by  string
	)
	if vc.Certificate() != nil {
		res, by, err = t.verifyBundleKeyless(&b, digest)
		if err != nil {
			return Verified{}, err
		}
	} else {
		hint := vc.PublicKey()
		if hint == nil {
			return Verified{}, refuse(BadSignature, "bundle has neither a public key hint nor a certificate")
		}
		var known *PublicKey
		for _, k := range t.Keys {
			if hint.Hint() == k.hint {
				known = k
			}
		}
		if known == nil {
			// cosign and sigstore-go set the hint to the key's fingerprint;
			// a bundle naming another key may still be by one of ours (a
			// hint is not signed), so every key is tried.
			for _, k := range t.Keys {
				if res, err = verifyWithKey(&b, k, policy); err == nil {
					by = k.Name
					break
				}
			}
			if by == "" {
				return Verified{}, refuse(UnknownKey, "bundle by key %s, which no trusted key is", hint.Hint())
			}
		} else {
			if res, err = verifyWithKey(&b, known, policy); err != nil {
				return Verified{}, bundleRefusal(err)
			}
			by = known.Name
		}
	}
	if res.Statement == nil {
		return Verified{}, refuse(BadSignature, "bundle signs no in-toto statement (a message signature is no cosign image signature)")
	}
	if res.Statement.PredicateType != predicateType {
		if predicateType == CosignSignPredicate {
			return Verified{}, refuse(BadSignature, "bundle is an attestation (%s), not a signature (%s)", res.Statement.PredicateType, CosignSignPredicate)
		}
		return Verified{}, refuse(BadSignature, "bundle's predicate is %s, not %s", res.Statement.PredicateType, predicateType)
	}
	v := Verified{Format: Bundle, By: by}
	for _, s := range res.Statement.Subject {
		if hex.EncodeToString(digest) == s.GetDigest()["sha256"] {
			v.Identity = s.GetName()
		}
	}
	return v, nil
}

func verifyWithKey(b *sgbundle.Bundle, k *PublicKey, policy verify.PolicyBuilder) (*verify.VerificationResult, error) {
	ek := root.NewExpiringKey(k.verifier, time.Time{}, time.Time{})
	tm := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return ek, nil })
	// A key does not expire: no timestamp is needed (cosign's
	// --insecure-ignore-tlog), and a transparency log entry, when the
	// bundle has one, is not checked (the key alone is trusted).
	v, err := verify.NewVerifier(tm, verify.WithNoObserverTimestamps())
	if err != nil {
		return nil, err
	}
	return v.Verify(b, policy)
}

// verifyBundleKeyless checks a bundle made with a certificate against
// the trusted root, with the time the bundle can prove offline: its
// transparency log entry's integrated time (checked against the root's
// logs), else its signed timestamps (the root's timestamping
// authorities), else now (a certificate valid today: a private CA's).
func (t *Trust) verifyBundleKeyless(b *sgbundle.Bundle, digest []byte) (*verify.VerificationResult, string, error) {
	if len(t.Identities) == 0 || t.Root == nil {
		return nil, "", refuse(UnknownKey, "signed with a certificate; the rule trusts keys only")
	}
	var opts []verify.VerifierOption
	entries, _ := b.TlogEntries()
	stamps, _ := b.Timestamps()
	switch {
	case len(entries) > 0:
		opts = append(opts, verify.WithTransparencyLog(1), verify.WithIntegratedTimestamps(1))
	case len(stamps) > 0:
		opts = append(opts, verify.WithSignedTimestamps(1))
	default:
		opts = append(opts, verify.WithCurrentTime())
	}
	v, err := verify.NewVerifier(t.Root, opts...)
	if err != nil {
		return nil, "", refuse(BadSignature, "%v", err)
	}
	var ids []verify.CertificateIdentity
	for _, id := range t.Identities {
		ci, err := verify.NewShortCertificateIdentity(id.Issuer, id.IssuerRegexp, id.Subject, id.SubjectRegexp)
		if err != nil {
			return nil, "", refuse(BadSignature, "identity %s: %v", id, err)
		}
		ids = append(ids, ci)
	}
	// Verified without an identity first, then matched, to tell a bad
	// chain or signature from a good signature by someone else.
	res, err := v.Verify(b, verify.NewPolicy(verify.WithArtifactDigest("sha256", digest), verify.WithoutIdentitiesUnsafe()))
	if err != nil {
		return nil, "", bundleRefusal(err)
	}
	for i, ci := range ids {
		if res.Signature != nil && res.Signature.Certificate != nil && ci.Verify(*res.Signature.Certificate) == nil {
			return res, t.Identities[i].String(), nil
		}
	}
	san, iss := "?", "?"
	if res.Signature != nil && res.Signature.Certificate != nil {
		san, iss = res.Signature.Certificate.SubjectAlternativeName, res.Signature.Certificate.Issuer
	}
	return nil, "", refuse(IdentityMismatch, "signed by %s (%s), which no trusted identity matches", san, iss)
}

// bundleRefusal classifies sigstore-go's verification error.
func bundleRefusal(err error) *Error {
	var idErr *verify.ErrNoMatchingCertificateIdentity
	if errors.As(err, &idErr) {
		return refuse(IdentityMismatch, "%v", err)
	}
	// sigstore-go says "failed to verify leaf certificate" (or names the
	// chain) when the certificate does not chain to the trusted root: a
	// signer cip does not know, rather than a broken signature.
	msg := err.Error()
	if strings.Contains(msg, "leaf certificate") || strings.Contains(msg, "certificate chain") || strings.Contains(msg, "x509:") {
		return refuse(UnknownKey, "%v", err)
	}
	return refuse(BadSignature, "%v", err)
}

// matchIdentity checks a certificate's subject and issuer against the
// identities (sigstore-go's matchers, as for bundles).
func (t *Trust) matchIdentity(cert *x509.Certificate) (string, error) {
	sum, err := certSummary(cert)
	if err != nil {
		return "", refuse(BadSignature, "certificate: %v", err)
	}
	for _, id := range t.Identities {
		ci, err := verify.NewShortCertificateIdentity(id.Issuer, id.IssuerRegexp, id.Subject, id.SubjectRegexp)
		if err != nil {
			return "", refuse(BadSignature, "identity %s: %v", id, err)
		}
		if ci.Verify(sum) == nil {
			return id.String(), nil
		}
	}
	return "", refuse(IdentityMismatch, "signed by %s (%s), which no trusted identity matches", sum.SubjectAlternativeName, sum.Issuer)
}

func sanOf(cert *x509.Certificate) string {
	if sum, err := certSummary(cert); err == nil {
		return sum.SubjectAlternativeName
	}
	return cert.Subject.String()
}

func certSummary(cert *x509.Certificate) (certificate.Summary, error) {
	return certificate.SummarizeCertificate(cert)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

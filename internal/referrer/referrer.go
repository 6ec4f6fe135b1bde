// Package referrer names what refers to a manifest: the tags that hold
// referrers beside their subject (the OCI referrers tag schema's
// sha256-<hex>, cosign's sha256-<hex>.sig, .att and .sbom), the artifact
// types that are signatures, and the selection a user makes with
// --referrers. It imports nothing of cip's, so that inventory (which derives
// referrers from tags), sync, promote, snapshot and cmd/app share one
// definition.
package referrer

import (
	"fmt"
	"slices"
	"strings"
)

// Kind is how a referrer tag holds its referrers.
type Kind int

// Kinds of referrer tags.
const (
	// TagSchema is the OCI 1.1 fallback: tag sha256-<hex> is an index whose
	// manifests are the referrers of sha256:<hex>.
	TagSchema Kind = iota + 1
	// CosignSignature is cosign's sha256-<hex>.sig: one image manifest whose
	// layers are the signatures (simple signing payloads).
	CosignSignature
	// CosignAttestation is cosign's sha256-<hex>.att (DSSE envelopes).
	CosignAttestation
	// CosignSBOM is cosign's sha256-<hex>.sbom (an attached SBOM).
	CosignSBOM
)

// cosignSuffixes are cosign's tag suffixes, by kind.
var cosignSuffixes = map[Kind]string{CosignSignature: ".sig", CosignAttestation: ".att", CosignSBOM: ".sbom"}

// Cosign reports whether k is one of cosign's tags.
func (k Kind) Cosign() bool { return k >= CosignSignature && k <= CosignSBOM }

// ParseTag reads a referrer tag: the subject digest it holds referrers of,
// and its kind. ok is false for every other tag.
func ParseTag(tag string) (subject string, kind Kind, ok bool) {
	const prefix = "sha256-"
	if len(tag) < len(prefix)+64 || tag[:len(prefix)] != prefix {
		return "", 0, false
	}
	hex, rest := tag[len(prefix):len(prefix)+64], tag[len(prefix)+64:]
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", 0, false
		}
	}
	switch rest {
	case "":
		kind = TagSchema
	case ".sig":
		kind = CosignSignature
	case ".att":
		kind = CosignAttestation
	case ".sbom":
		kind = CosignSBOM
	default:
		return "", 0, false
	}
	return "sha256:" + hex, kind, true
}

// IsTag reports whether tag is a referrer tag (ParseTag).
func IsTag(tag string) bool {
	_, _, ok := ParseTag(tag)
	return ok
}

// Tag returns the referrer tag of kind for subject (a sha256 digest): ""
// for a digest of another algorithm, which neither scheme can name.
func Tag(subject string, kind Kind) string {
	hex, ok := strings.CutPrefix(subject, "sha256:")
	if !ok || len(hex) != 64 {
		return ""
	}
	if kind == TagSchema {
		return "sha256-" + hex
	}
	return "sha256-" + hex + cosignSuffixes[kind]
}

// Artifact types cip names.
const (
	// CosignSimpleSigning is the layer media type of cosign's .sig images.
	CosignSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	// DSSEEnvelope is the layer media type of cosign's .att images.
	DSSEEnvelope = "application/vnd.dsse.envelope.v1+json"
	// CosignSBOMType stands for an SBOM attached as .sbom whose layer names
	// no media type.
	CosignSBOMType = "application/vnd.dev.cosign.sbom"
	// SigstoreBundle is the sigstore bundle v0.3 media type: cosign's
	// signatures and attestations as OCI referrers (its new bundle format).
	SigstoreBundle = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// sigstoreBundleBase is the media type of bundles v0.1 and v0.2, which
	// carry the version as a parameter (";version=0.1").
	sigstoreBundleBase = "application/vnd.dev.sigstore.bundle+json"
	// NotarySignature is notation's signature artifact type.
	NotarySignature = "application/vnd.cncf.notary.signature"
)

// CosignType is the artifact type of a cosign tag's referrer whose first
// layer has media type layer ("" when it has none): the layer's type, or
// the kind's usual one.
func CosignType(kind Kind, layer string) string {
	if layer != "" {
		return layer
	}
	switch kind {
	case CosignSignature:
		return CosignSimpleSigning
	case CosignAttestation:
		return DSSEEnvelope
	default:
		return CosignSBOMType
	}
}

// IsSignature reports whether an artifact type is a signature: cosign's
// simple signing, a sigstore bundle (any version) or a notation signature.
// cosign's new bundle format writes attestations as sigstore bundles too,
// so they count as signatures here (the artifact type cannot tell them
// apart); its older .att attestations do not.
func IsSignature(artifactType string) bool {
	base, _, _ := strings.Cut(artifactType, ";")
	switch strings.TrimSpace(base) {
	case CosignSimpleSigning, SigstoreBundle, sigstoreBundleBase, NotarySignature:
		return true
	}
	return false
}

// Selection is what --referrers chooses to travel with an image: every
// referrer, none, or those of some artifact types (Signatures for the
// signature types).
type Selection struct {
	all, signatures bool
	types           []string // sorted
}

// All selects every referrer (the default).
var All = Selection{all: true}

// ParseSelection reads --referrers: "all", "none", "signatures", or a
// comma-separated list of artifact types ("signatures" may be one of them).
func ParseSelection(s string) (Selection, error) {
	switch strings.TrimSpace(s) {
	case "", "all":
		return All, nil
	case "none":
		return Selection{}, nil
	}
	var sel Selection
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == "":
			return Selection{}, fmt.Errorf("--referrers %q: empty artifact type", s)
		case t == "signatures":
			sel.signatures = true
		case t == "all" || t == "none":
			return Selection{}, fmt.Errorf("--referrers %q: %s cannot be combined with artifact types", s, t)
		case !strings.Contains(t, "/"):
			return Selection{}, fmt.Errorf("--referrers %q: %q is not all, none, signatures or a media type (type/subtype)", s, t)
		default:
			sel.types = append(sel.types, t)
		}
	}
	slices.Sort(sel.types)
	sel.types = slices.Compact(sel.types)
	return sel, nil
}

// None reports whether the selection chooses no referrer at all.
func (s Selection) None() bool { return !s.all && !s.signatures && len(s.types) == 0 }

// Match reports whether a referrer of artifactType travels.
func (s Selection) Match(artifactType string) bool {
	if s.all {
		return true
	}
	if s.signatures && IsSignature(artifactType) {
		return true
	}
	_, ok := slices.BinarySearch(s.types, artifactType)
	return ok
}

// String is the selection as --referrers spells it.
func (s Selection) String() string {
	switch {
	case s.all:
		return "all"
	case s.None():
		return "none"
	}
	var parts []string
	if s.signatures {
		parts = append(parts, "signatures")
	}
	return strings.Join(append(parts, s.types...), ",")
}

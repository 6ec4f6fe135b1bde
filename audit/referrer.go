package audit

import (
	"context"
	"strings"
)

// referrerSuffixes are the tag suffixes cosign gives what it attaches to an
// image by tag: signatures, attestations and SBOMs.
var referrerSuffixes = []string{".sig", ".att", ".sbom"}

// referrerSubject reads the digest a referrer tag names: cosign's
// sha256-<hex>.sig, .att and .sbom, and the OCI referrers tag schema
// sha256-<hex> (what clients write where a registry has no referrers API,
// as docker-registry 2.8 has not). It reports false for any other tag.
func referrerSubject(tag string) (string, bool) {
	hex, ok := strings.CutPrefix(tag, "sha256-")
	if !ok {
		return "", false
	}
	for _, s := range referrerSuffixes {
		if h, ok := strings.CutSuffix(hex, s); ok {
			hex = h
			break
		}
	}
	if len(hex) != 64 {
		return "", false
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", false
		}
	}
	return "sha256:" + hex, true
}

// referrer is the one place that decides whether a manifest held or pushed
// in repo as digest with tags is a referrer (signature, attestation, SBOM)
// of something that belongs there: it returns the subject, promoted into
// repo or a child of an index promoted there, and the manifest entry that
// accounts for it. Referrers are known here only by cosign's tag scheme,
// read by referrerSubject; once the inventory records referrers with their
// subject (issue 15), this is where a referrer pushed by digest, untagged,
// will be looked up by digest too.
func (p *Policy) referrer(ctx context.Context, inv Inventory, repo, digest string, tags []string) (string, wanted, bool, error) {
	_ = digest // the referrer's own digest: the key for the inventory's referrers, once it has them
	for _, t := range tags {
		subject, ok := referrerSubject(t)
		if !ok {
			continue
		}
		reason, w, err := p.account(ctx, inv, repo, subject)
		if err != nil {
			return "", wanted{}, false, err
		}
		if reason != "" {
			return subject, w, true, nil
		}
	}
	return "", wanted{}, false, nil
}

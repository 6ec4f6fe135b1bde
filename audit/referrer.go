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

// referrerTag says whether tag, in repo, makes the digest it is on a
// referrer of something that belongs there: a referrer tag (see
// referrerSubject) whose subject is promoted into repo, a child of an index
// promoted there, or itself a referrer of such (Policy.account). It
// returns the subject and the manifest entry that accounts for it.
//
// A referrer found without a tag (pushed by digest through a registry's
// referrers API, or listed in a sha256-<hex> index) is accounted for by
// Policy.account, from what the inventory records of its subject.
func (p *Policy) referrerTag(ctx context.Context, inv Inventory, repo, tag string) (string, wanted, bool, error) {
	subject, ok := referrerSubject(tag)
	if !ok {
		return "", wanted{}, false, nil
	}
	a, err := p.walk(ctx, inv, repo, subject, subject, 1)
	if err != nil || a.reason == "" {
		return "", wanted{}, false, err
	}
	return subject, a.w, true, nil
}

package promote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	gosync "sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
	"github.com/cipdev/cip/sign"
)

// Signing is --sign-key: Promote signs each promoted digest once, in its
// first destination (by name), and copies that signature to its other
// destinations as a referrer.
type Signing struct {
	// Signer signs: a cosign key pair (*sign.Key) or keyless
	// (*sign.Keyless).
	Signer sign.Signer
	// Identity is the image reference the signature claims (the in-toto
	// subject's name: what a user pulls), with {image} replaced by the
	// image's name, e.g. registry.k8s.io/{image}; "" claims the first
	// destination's repository.
	Identity string
	// Version is cip's version, put in an annotation of each signature.
	Version string
	// Now stamps the signature's referrer (nil: time.Now).
	Now func() time.Time
	// Attest adds a promotion record (an in-toto attestation: source,
	// destinations, time, cip's version) beside each signature, once per
	// digest as well.
	Attest bool
}

// VersionAnnotation carries the version of cip that made a signature.
const VersionAnnotation = "dev.cip.version"

// identityAnnotation repeats, on the referrer manifest, the identity the
// signature claims (the claim itself is in the signed statement).
const identityAnnotation = "dev.cip.identity"

// identity is the reference a signature of image claims.
func (s *Signing) identity(firstRepo, image string) string {
	if s.Identity == "" {
		return firstRepo
	}
	return strings.ReplaceAll(s.Identity, "{image}", image)
}

// SignRecord is one promoted digest --sign-key looked at.
type SignRecord struct {
	Destination string `json:"destination"` // where it was (or had been) signed
	Image       string `json:"image"`
	Digest      string `json:"digest"`
	Identity    string `json:"identity"`
	Referrer    string `json:"referrer"` // the signature's referrer manifest
	// Signed is true when this run made the signature, false when the
	// destination already held one by the key for the identity.
	Signed bool `json:"signed"`
	// Attestation is the promotion record's referrer (with Signing.Attest),
	// Attested true when this run made it.
	Attestation string `json:"attestation,omitempty"`
	Attested    bool   `json:"attested,omitempty"`
	// CopiedTo counts the other destinations the signature was copied to.
	CopiedTo int    `json:"copied_to"`
	Error    string `json:"error,omitempty"`
}

// signGroup is one (image, digest) and the destination repositories that
// hold it after the copy, by destination name.
type signGroup struct {
	image, digest string
	rows          []inventory.PlanRow
}

// signPromoted signs the promoted digests (rows: those done, and skip rows) and
// copies each signature to the digest's other destinations. It returns
// what it did, the referrer rows it copied (for the verification) and
// the errors.
func (e *engine) signPromoted(ctx context.Context, s *Signing, dests map[string]*destStats, rows []inventory.PlanRow) ([]SignRecord, []inventory.ReferRow, []error) {
	var groups []*signGroup
	at := map[[2]string]*signGroup{}
	for _, r := range rows {
		k := [2]string{r.Image, r.Digest}
		g := at[k]
		if g == nil {
			g = &signGroup{image: r.Image, digest: r.Digest}
			at[k] = g
			groups = append(groups, g)
		}
		g.rows = append(g.rows, r)
	}
	slices.SortFunc(groups, func(a, b *signGroup) int { return strings.Compare(a.image+"@"+a.digest, b.image+"@"+b.digest) })
	for _, g := range groups {
		slices.SortFunc(g.rows, func(a, b inventory.PlanRow) int { return strings.Compare(a.Dst, b.Dst) })
	}
	recs := make([]SignRecord, len(groups))
	var mu gosync.Mutex
	var copies []inventory.ReferRow
	var errs []error
	blobs := &blobCache{client: e.client, data: map[string][]byte{}}
	var eg errgroup.Group
	eg.SetLimit(e.jobs)
	for i, g := range groups {
		eg.Go(func() error {
			first := g.rows[0]
			st := dests[first.Dst]
			rec := SignRecord{Destination: first.Dst, Image: g.image, Digest: g.digest, Identity: s.identity(first.DstRepo, g.image)}
			more, err := e.signOne(registry.WithRequestCounter(ctx, &st.requests), s, st, blobs, g, &rec)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				err = fmt.Errorf("sign %s@%s: %w", first.DstRepo, g.digest, err)
				rec.Error = err.Error()
				errs = append(errs, err)
			}
			recs[i] = rec
			copies = append(copies, more...)
			return nil
		})
	}
	_ = eg.Wait()
	if len(copies) == 0 || ctx.Err() != nil {
		return recs, nil, errs
	}
	for _, r := range copies {
		dests[r.Dst].rowsAll.Add(1)
	}
	copied, rerrs := e.referrers(ctx, dests, copies)
	// Destinations, not referrers: a signature and its promotion record
	// go to each together.
	to := map[[3]string]bool{}
	n := map[[2]string]int{}
	for _, r := range copied {
		if k := [3]string{r.Image, r.Digest, r.DstRepo}; !to[k] {
			to[k] = true
			n[[2]string{r.Image, r.Digest}]++
		}
	}
	for i := range recs {
		recs[i].CopiedTo = n[[2]string{recs[i].Image, recs[i].Digest}]
	}
	return recs, copied, append(errs, rerrs...)
}

// signOne finds or makes g's signature (and, with s.Attest, its
// promotion record) in its first destination and returns the refer rows
// that bring them to the others that lack them.
func (e *engine) signOne(ctx context.Context, s *Signing, st *destStats, blobs *blobCache, g *signGroup, rec *SignRecord) ([]inventory.ReferRow, error) {
	first := g.rows[0]
	trust := s.Signer.Trust()
	isSignature := func(sig sign.Signature) bool {
		v, err := trust.Verify(sig, g.digest)
		return err == nil && v.Identity == rec.Identity
	}
	sigDigest, foundBy, err := e.existingBundle(ctx, trust, blobs, first.DstRepo, g.digest, rec.Identity, isSignature)
	if err != nil {
		return nil, err
	}
	if sigDigest == "" {
		bundle, err := s.Signer.SignBundle(ctx, g.digest, rec.Identity, map[string]string{VersionAnnotation: s.Version})
		if err != nil {
			return nil, err
		}
		if sigDigest, foundBy, err = e.putBundle(ctx, s, st, first.DstRepo, g.digest, bundle, sign.CosignSignPredicate, rec.Identity); err != nil {
			return nil, err
		}
		rec.Signed = true
	}
	rec.Referrer = sigDigest
	put := []struct{ digest, foundBy string }{{sigDigest, foundBy}}
	if s.Attest {
		isRecord := func(sig sign.Signature) bool {
			_, err := trust.VerifyAttestation(sig, g.digest, sign.PromotionPredicate)
			return err == nil
		}
		attDigest, attFoundBy, err := e.existingBundle(ctx, trust, blobs, first.DstRepo, g.digest, rec.Identity, isRecord)
		if err != nil {
			return nil, err
		}
		if attDigest == "" {
			bundle, err := sign.Attest(ctx, s.Signer, g.digest, rec.Identity, s.promotion(g))
			if err != nil {
				return nil, err
			}
			if attDigest, attFoundBy, err = e.putBundle(ctx, s, st, first.DstRepo, g.digest, bundle, sign.PromotionPredicate, rec.Identity); err != nil {
				return nil, err
			}
			rec.Attested = true
		}
		rec.Attestation = attDigest
		put = append(put, struct{ digest, foundBy string }{attDigest, attFoundBy})
	}
	var out []inventory.ReferRow
	for _, r := range g.rows[1:] {
		held, err := e.db.Referrers(ctx, r.DstRepo, g.digest)
		if err != nil {
			return nil, err
		}
		for _, p := range put {
			if slices.ContainsFunc(held, func(f inventory.Referrer) bool { return f.Digest == p.digest }) {
				continue
			}
			out = append(out, inventory.ReferRow{Dst: r.Dst, Image: r.Image, DstRepo: r.DstRepo, SrcRepo: first.DstRepo, Digest: g.digest,
				Subject: g.digest, Referrer: p.digest, ArtifactType: sign.BundleMediaType, FoundBy: p.foundBy, Depth: 1, File: r.File, Line: r.Line})
		}
	}
	return out, nil
}

// promotion is the record of g's promotion.
func (s *Signing) promotion(g *signGroup) sign.Promotion {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	p := sign.Promotion{Time: now().UTC(), CipVersion: s.Version}
	for _, r := range g.rows {
		p.Destinations = append(p.Destinations, r.DstRepo)
		if p.Source == "" {
			p.Source = r.SrcRepo
			if p.Source == "" {
				p.Source = r.Src + "/" + r.Image
			}
		}
	}
	return p
}

// existingBundle looks, among the bundles the inventory knows repo holds
// for digest that cip put for identity, for one that trust verifies and
// ok accepts (its blob read from repo); it returns its digest and how it is found, or "". A nil
// trust (a keyless signer without a trusted root, which cannot tell its
// own bundles) finds none: it signs every time.
func (e *engine) existingBundle(ctx context.Context, trust *sign.Trust, blobs *blobCache, repo, digest, identity string, ok func(sign.Signature) bool) (string, string, error) {
	if trust == nil {
		return "", "", nil
	}
	refs, err := e.db.Referrers(ctx, repo, digest)
	if err != nil {
		return "", "", err
	}
	for _, f := range refs {
		base, _, _ := strings.Cut(f.ArtifactType, ";")
		if strings.TrimSpace(base) != sign.BundleMediaType {
			continue
		}
		m, err := e.manifest(ctx, f.Digest, repo)
		if err != nil {
			return "", "", err
		}
		// Only bundles cip put for this identity (its annotation on the
		// referrer manifest, which the inventory holds) are read: staging's
		// signatures and anyone else's cost no request. A bundle by the same
		// key that cip did not put does not stop cip from signing.
		var ann struct {
			Annotations map[string]string `json:"annotations"`
		}
		if json.Unmarshal(m.Raw, &ann) != nil || ann.Annotations[identityAnnotation] != identity {
			continue
		}
		sigs, err := sign.Read(ctx, f.Digest, m.Raw, func(ctx context.Context, d string, size int64) ([]byte, error) {
			return blobs.get(ctx, repo, d, size)
		})
		if err != nil {
			return "", "", err
		}
		for _, sig := range sigs {
			if ok(sig) {
				return f.Digest, f.FoundBy, nil
			}
		}
	}
	return "", "", nil
}

// putBundle puts a bundle beside digest in repo: in an OCI referrer (the
// form cosign v3 writes and verifies by default), its blobs uploaded, put
// by digest, listed in the sha256-<hex> index when the registry does not
// index it itself; then recorded. It returns the referrer's digest and
// how it is found.
func (e *engine) putBundle(ctx context.Context, s *Signing, st *destStats, repo, digest string, bundle []byte, predicateType, identity string) (string, string, error) {
	subj, err := e.manifest(ctx, digest, repo)
	if err != nil {
		return "", "", err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	art, err := sign.BundleReferrer(bundle, sign.Subject{Digest: digest, MediaType: subj.MediaType, Size: int64(len(subj.Raw))}, now(),
		predicateType, map[string]string{VersionAnnotation: s.Version, identityAnnotation: identity})
	if err != nil {
		return "", "", err
	}
	m, err := inventory.ParseManifest(art.Digest, art.MediaType, art.Manifest)
	if err != nil {
		return "", "", err
	}
	dst, err := e.client.ParseRepository(repo)
	if err != nil {
		return "", "", err
	}
	for _, b := range art.Blobs {
		data := b.Data
		_, err := e.client.UploadBlob(ctx, dst, b.Digest, func() (io.ReadCloser, int64, error) {
			return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
		}, registry.UploadOptions{})
		if err != nil {
			return "", "", err
		}
	}
	got, indexedAs, err := e.client.PutReferrer(ctx, dst, m.Digest, m.MediaType, m.Raw)
	if err != nil {
		return "", "", err
	}
	if got != m.Digest {
		return "", "", fmt.Errorf("put manifest %s@%s: the registry computed %s", repo, m.Digest, got)
	}
	st.manifests.Add(1)
	// The referrer copy and the fallback merge read it as any manifest.
	e.mu.Lock()
	e.read[m.Digest] = m
	e.mu.Unlock()
	built := []*inventory.Manifest{m}
	var tags []inventory.Copy
	foundBy := inventory.FoundByAPI
	if indexedAs != digest {
		foundBy = inventory.FoundByTagSchema
		idx, err := e.mergeFallback(ctx, dst, digest, []inventory.ReferRow{{DstRepo: repo, SrcRepo: repo, Subject: digest, Referrer: m.Digest, ArtifactType: sign.BundleMediaType}})
		if err != nil {
			return "", "", err
		}
		if idx != nil {
			built = append(built, idx)
			tags = append(tags, inventory.Copy{Repository: repo, Digest: idx.Digest, Tag: referrer.Tag(digest, referrer.TagSchema)})
		}
	}
	if _, err := e.db.RecordReferrers(ctx, e.runID, built, []inventory.RecordedReferrer{{Repository: repo, Subject: digest, Digest: m.Digest, FoundBy: foundBy}}, tags, nil); err != nil {
		return "", "", err
	}
	e.completed(repo, m.Digest)
	return m.Digest, foundBy, nil
}

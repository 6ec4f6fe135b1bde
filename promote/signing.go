package promote

import (
	"bytes"
	"context"
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
	n := map[[2]string]int{}
	for _, r := range copied {
		n[[2]string{r.Image, r.Digest}]++
	}
	for i := range recs {
		recs[i].CopiedTo = n[[2]string{recs[i].Image, recs[i].Digest}]
	}
	return recs, copied, append(errs, rerrs...)
}

// signOne finds or makes g's signature in its first destination and
// returns the refer rows that bring it to the others that lack it.
func (e *engine) signOne(ctx context.Context, s *Signing, st *destStats, blobs *blobCache, g *signGroup, rec *SignRecord) ([]inventory.ReferRow, error) {
	first := g.rows[0]
	sigDigest, foundBy, err := e.existingSignature(ctx, s, blobs, first.DstRepo, g.digest, rec.Identity)
	if err != nil {
		return nil, err
	}
	if sigDigest == "" {
		if sigDigest, foundBy, err = e.putSignature(ctx, s, st, first.DstRepo, g.digest, rec.Identity); err != nil {
			return nil, err
		}
		rec.Signed = true
	}
	rec.Referrer = sigDigest
	var out []inventory.ReferRow
	for _, r := range g.rows[1:] {
		held, err := e.db.Referrers(ctx, r.DstRepo, g.digest)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(held, func(f inventory.Referrer) bool { return f.Digest == sigDigest }) {
			continue
		}
		out = append(out, inventory.ReferRow{Dst: r.Dst, Image: r.Image, DstRepo: r.DstRepo, SrcRepo: first.DstRepo, Digest: g.digest,
			Subject: g.digest, Referrer: sigDigest, ArtifactType: sign.BundleMediaType, FoundBy: foundBy, Depth: 1, File: r.File, Line: r.Line})
	}
	return out, nil
}

// existingSignature looks, among the bundles the inventory knows repo
// holds for digest, for one that verifies as s's signer's and claims
// identity (its blob read from repo); it returns its digest and how it is
// found, or "".
func (e *engine) existingSignature(ctx context.Context, s *Signing, blobs *blobCache, repo, digest, identity string) (string, string, error) {
	refs, err := e.db.Referrers(ctx, repo, digest)
	if err != nil {
		return "", "", err
	}
	trust := s.Signer.Trust()
	if trust == nil {
		// A keyless signer without a trusted root cannot tell its own
		// signatures: it signs every time.
		return "", "", nil
	}
	for _, f := range refs {
		base, _, _ := strings.Cut(f.ArtifactType, ";")
		if strings.TrimSpace(base) != sign.BundleMediaType {
			continue
		}
		m, err := e.manifest(ctx, f.Digest)
		if err != nil {
			return "", "", err
		}
		sigs, err := sign.Read(ctx, f.Digest, m.Raw, func(ctx context.Context, d string, size int64) ([]byte, error) {
			return blobs.get(ctx, repo, d, size)
		})
		if err != nil {
			return "", "", err
		}
		for _, sig := range sigs {
			if v, err := trust.Verify(sig, digest); err == nil && v.Identity == identity {
				return f.Digest, f.FoundBy, nil
			}
		}
	}
	return "", "", nil
}

// putSignature signs digest in repo: a sigstore bundle (what cosign v3
// writes and verifies by default) in an OCI referrer, its blobs uploaded,
// put by digest, listed in the sha256-<hex> index when the registry does
// not index it itself; then recorded. It returns the referrer's digest
// and how it is found.
func (e *engine) putSignature(ctx context.Context, s *Signing, st *destStats, repo, digest, identity string) (string, string, error) {
	subj, err := e.manifest(ctx, digest)
	if err != nil {
		return "", "", err
	}
	ann := map[string]string{VersionAnnotation: s.Version}
	bundle, err := s.Signer.SignBundle(ctx, digest, identity, ann)
	if err != nil {
		return "", "", err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	art, err := sign.BundleReferrer(bundle, sign.Subject{Digest: digest, MediaType: subj.MediaType, Size: int64(len(subj.Raw))}, now(),
		map[string]string{VersionAnnotation: s.Version, identityAnnotation: identity})
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
		release, err := e.slot(ctx)
		if err != nil {
			return "", "", err
		}
		data := b.Data
		_, err = e.client.UploadBlob(ctx, dst, b.Digest, func() (io.ReadCloser, int64, error) {
			return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
		}, registry.UploadOptions{})
		release()
		if err != nil {
			return "", "", err
		}
	}
	release, err := e.slot(ctx)
	if err != nil {
		return "", "", err
	}
	got, indexedAs, err := e.client.PutReferrer(ctx, dst, m.Digest, m.MediaType, m.Raw)
	release()
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

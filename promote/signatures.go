package promote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	gosync "sync"

	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
	"github.com/cipdev/cip/sign"
)

// SignatureCheck is how the signature policy judged one promoted digest
// (a digest of a copy or tag row whose source image a rule matches).
type SignatureCheck struct {
	Source     string `json:"source"` // source registry
	Image      string `json:"image"`
	Digest     string `json:"digest"`
	Repository string `json:"source_repository"` // where its signatures were read
	Rule       string `json:"rule"`
	Mode       string `json:"mode"` // require or if-present
	// Signed says a signature verified: by Format, made by By (a key file
	// or an identity).
	Signed bool   `json:"signed"`
	Format string `json:"format,omitempty"`
	By     string `json:"by,omitempty"`
	// Reason and Detail say why the digest is refused ("" when it passed).
	Reason string `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
	File   string `json:"file"`
	Line   int    `json:"line"`
}

// Passed reports whether the digest may be promoted.
func (c SignatureCheck) Passed() bool { return c.Reason == "" }

// Summary is how the plan shows the check: the rule and who signed, or
// that an if-present rule let it pass unsigned, or the refusal.
func (c SignatureCheck) Summary() string {
	switch {
	case !c.Passed():
		return "REFUSED by " + c.Rule + ": " + c.Reason
	case c.Signed:
		return c.Rule + ": " + c.By + " (" + c.Format + ")"
	}
	return c.Rule + ": unsigned (" + c.Mode + ")"
}

// SignatureError refuses a plan in which promoted digests fail the
// signature policy: nothing is written.
type SignatureError struct {
	Refused []SignatureCheck
}

func (e *SignatureError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d digest(s) refused by the signature policy (nothing written):", len(e.Refused))
	for _, c := range e.Refused {
		fmt.Fprintf(&b, "\n  %s:%d: %s/%s@%s: rule %s (%s): %s", c.File, c.Line, c.Source, c.Image, c.Digest, c.Rule, c.Mode, c.Reason)
		if c.Detail != "" {
			b.WriteString(": " + c.Detail)
		}
	}
	return b.String()
}

// checkSignatures judges every digest the plan would write (copy and tag
// rows) whose source image a rule of opts.Signatures matches, once per
// (source repository, digest), from the source's signature referrers the
// inventory holds (planReferrers looked them up): their manifests are
// stored; their signature blobs are read from the source (bounded,
// re-hashed). It sets p.Signatures (by image, digest) and returns a
// *SignatureError when any is refused.
func checkSignatures(ctx context.Context, db *inventory.DB, client *registry.Client, p *Plan, opts Options) error {
	pol := opts.Signatures
	if pol == nil {
		return nil
	}
	type key struct{ repo, digest string }
	var todo []*SignatureCheck
	seen := map[key]bool{}
	rules := map[*SignatureCheck]*sign.Rule{}
	for _, r := range p.Rows {
		if r.Action != inventory.ActionCopy && r.Action != inventory.ActionTag {
			continue
		}
		rule := pol.Match(r.Src, r.Image)
		if rule == nil {
			continue
		}
		repo := r.SrcRepo
		if repo == "" {
			repo = r.Src + "/" + r.Image
		}
		k := key{repo, r.Digest}
		if seen[k] {
			continue
		}
		seen[k] = true
		c := &SignatureCheck{Source: r.Src, Image: r.Image, Digest: r.Digest, Repository: repo, Rule: rule.Name, Mode: string(rule.Mode), File: r.File, Line: r.Line}
		rules[c] = rule
		todo = append(todo, c)
	}
	if len(todo) == 0 {
		p.Signatures = []SignatureCheck{}
		return nil
	}
	blobs := &blobCache{client: client, data: map[string][]byte{}}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.jobs())
	for _, c := range todo {
		g.Go(func() error {
			sigs, err := sourceSignatures(gctx, db, blobs, c.Repository, c.Digest)
			if err != nil {
				return err
			}
			v, signed, err := rules[c].Check(c.Digest, sigs)
			var se *sign.Error
			switch {
			case errors.As(err, &se):
				c.Reason, c.Detail = string(se.Reason), se.Detail
			case err != nil:
				return err
			}
			c.Signed, c.By, c.Format = signed, v.By, string(v.Format)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var refused []SignatureCheck
	p.Signatures = make([]SignatureCheck, len(todo))
	for i, c := range todo {
		p.Signatures[i] = *c
		if !c.Passed() {
			refused = append(refused, *c)
		}
	}
	slices.SortFunc(p.Signatures, func(a, b SignatureCheck) int {
		return strings.Compare(a.Image+"@"+a.Digest+" "+a.Repository, b.Image+"@"+b.Digest+" "+b.Repository)
	})
	if len(refused) > 0 {
		slices.SortFunc(refused, func(a, b SignatureCheck) int {
			return strings.Compare(a.Image+"@"+a.Digest+" "+a.Repository, b.Image+"@"+b.Digest+" "+b.Repository)
		})
		return &SignatureError{Refused: refused}
	}
	return nil
}

// sourceSignatures reads the signatures repo holds for digest: every
// referrer the inventory records whose artifact type is cosign's simple
// signing or a sigstore bundle, in referrer digest order.
func sourceSignatures(ctx context.Context, db *inventory.DB, blobs *blobCache, repo, digest string) ([]sign.Signature, error) {
	refs, err := db.Referrers(ctx, repo, digest)
	if err != nil {
		return nil, err
	}
	var out []sign.Signature
	for _, f := range refs {
		base, _, _ := strings.Cut(f.ArtifactType, ";")
		switch strings.TrimSpace(base) {
		case referrer.CosignSimpleSigning, referrer.SigstoreBundle, "application/vnd.dev.sigstore.bundle+json":
		default:
			continue
		}
		m, err := db.Manifest(ctx, f.Digest)
		if err != nil {
			return nil, fmt.Errorf("read signatures of %s@%s: %w", repo, digest, err)
		}
		sigs, err := sign.Read(ctx, f.Digest, m.Raw, func(ctx context.Context, d string, size int64) ([]byte, error) {
			return blobs.get(ctx, repo, d, size)
		})
		if err != nil {
			return nil, fmt.Errorf("read signatures of %s@%s: %w", repo, digest, err)
		}
		out = append(out, sigs...)
	}
	return out, nil
}

// blobCache reads signature blobs once per run: a .sig image's payloads
// and a bundle are a few KiB, and an image signed in several
// repositories shares nothing, so the cache is by repository and digest.
type blobCache struct {
	client *registry.Client
	mu     gosync.Mutex
	data   map[string][]byte
}

// get reads blob digest of repo: exactly size bytes (at most
// sign.MaxBlob) whose SHA-256 is digest.
func (b *blobCache) get(ctx context.Context, repo, digest string, size int64) ([]byte, error) {
	k := repo + "@" + digest
	b.mu.Lock()
	data, ok := b.data[k]
	b.mu.Unlock()
	if ok {
		return data, nil
	}
	if size < 0 || size > sign.MaxBlob {
		return nil, fmt.Errorf("get blob %s@%s: %d bytes, over the limit of %d", repo, digest, size, sign.MaxBlob)
	}
	r, err := b.client.ParseRepository(repo)
	if err != nil {
		return nil, err
	}
	body, _, err := b.client.GetBlob(ctx, r, digest)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(body, size+1)); err != nil {
		return nil, fmt.Errorf("get blob %s@%s: %w", repo, digest, err)
	}
	if int64(buf.Len()) != size {
		return nil, fmt.Errorf("get blob %s@%s: %d bytes, the manifest says %d", repo, digest, buf.Len(), size)
	}
	sum := sha256.Sum256(buf.Bytes())
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return nil, fmt.Errorf("get blob %s@%s: the bytes have digest %s", repo, digest, got)
	}
	b.mu.Lock()
	b.data[k] = buf.Bytes()
	b.mu.Unlock()
	return buf.Bytes(), nil
}

package sync

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/registry"
)

// confirmUntagged returns the digests repo still holds of those the
// inventory knows it holds without a tag (inventory.UntaggedDigests: cip
// put them there, a live HEAD found them because a manifest names them,
// or GCR's listing showed them). A tag listing outside GCR cannot show
// them, so without this a crawl would forget them and every plan would
// copy them again. tagged are the digests the crawl's tags name: those,
// and the children of those, need no check.
//
// Each digest costs one HEAD by digest, per crawl, and only these: an
// index is checked before its children, which follow it when it is there;
// a child is checked itself only when its index is gone. A digest is
// dropped only when the registry answers 404. This is the crawl's one
// per-digest cost for untagged manifests; a caller that already trusts
// the repository's content can skip it and keep them all.
func (s *syncer) confirmUntagged(ctx context.Context, repo name.Repository, tagged map[string]string) ([]string, error) {
	known, err := s.db.UntaggedDigests(ctx, repo.Name())
	if err != nil || len(known) == 0 {
		return nil, err
	}
	children := make(map[string][]string, len(known))
	pending := make(map[string]bool, len(known))
	for _, u := range known {
		children[u.Digest] = u.Children
		pending[u.Digest] = true
	}
	// below drops dg's descendants from pending: they are held through dg.
	seen := map[string]bool{}
	var below func(dg string)
	below = func(dg string) {
		for _, c := range children[dg] {
			if !seen[c] {
				seen[c] = true
				delete(pending, c)
				below(c)
			}
		}
	}
	for _, dg := range tagged {
		delete(pending, dg)
		below(dg)
	}
	var kept []string
	if s.opts.TrustReferrerTags {
		// Referrers cip put (or found) in this repository, such as
		// sigstore bundles a registry with the referrers API indexes: no
		// tag names them, and a HEAD each per crawl is the cost
		// TrustReferrerTags exists to avoid (cip verify checks them live).
		refs, err := s.db.ReferrerDigests(ctx, repo.Name())
		if err != nil {
			return nil, err
		}
		for _, dg := range slices.Sorted(maps.Keys(pending)) {
			if refs[dg] {
				delete(pending, dg)
				kept = append(kept, dg)
				below(dg)
			}
		}
	}
	// Each round checks at least one pending digest, so this ends.
	for len(pending) > 0 {
		isChild := map[string]bool{}
		for p := range pending {
			for _, c := range children[p] {
				isChild[c] = true
			}
		}
		var roots []string
		for p := range pending {
			if !isChild[p] {
				roots = append(roots, p)
			}
		}
		if len(roots) == 0 {
			// Content addressing rules out a cycle; should the recorded
			// children hold one anyway, check them all.
			for p := range pending {
				roots = append(roots, p)
			}
		}
		slices.Sort(roots)
		present, err := s.headDigests(ctx, repo, roots)
		if err != nil {
			return nil, err
		}
		for i, r := range roots {
			delete(pending, r)
			if present[i] {
				kept = append(kept, r)
				below(r)
			}
		}
	}
	slices.Sort(kept)
	return kept, nil
}

// headDigests reports, for each digest, whether repo holds it: a HEAD by
// digest, and a GET when the HEAD fails otherwise than with a 404 (some
// registries answer HEAD badly). Only a 404 means absent.
func (s *syncer) headDigests(ctx context.Context, repo name.Repository, digests []string) ([]bool, error) {
	present := make([]bool, len(digests)) // each goroutine writes its own
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Jobs)
	for i, dg := range digests {
		g.Go(func() error {
			_, err := s.client.Head(gctx, repo, dg)
			if err != nil && !errors.Is(err, registry.ErrNotFound) {
				if _, gerr := s.client.GetManifest(gctx, repo, dg); gerr == nil || errors.Is(gerr, registry.ErrNotFound) {
					err = gerr
				}
			}
			if errors.Is(err, registry.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			present[i] = true
			return nil
		})
	}
	return present, g.Wait()
}

package promote

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	gosync "sync"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
)

// expectSources tells the client that the look-ups will read refs'
// repositories: one token request may then ask for several (a run that
// copies nothing crawls no source, and would otherwise fetch a token per
// source repository here).
func expectSources(client *registry.Client, refs []cipsync.Ref) {
	repos := make([]string, len(refs))
	for i, r := range refs {
		repos[i] = r.Repository
	}
	slices.Sort(repos)
	client.Expect(slices.Compact(repos), false)
}

// prefetchReferrers starts asking the sources' referrers APIs about the
// wanted digests that planReferrers will ask about (none offline, none
// when no referrer travels and no signature policy reads them, none
// answered within the TTL), each in its first source repository (the one
// that holds it, as far as the inventory knows): a fresh inventory's plan
// asks the source once per wanted digest, at the source's quota, and
// could otherwise start only once the destinations are crawled.
func prefetchReferrers(ctx context.Context, db *inventory.DB, client *registry.Client, loadID int64, opts Options) (*cipsync.Prefetch, error) {
	if opts.Offline || (opts.Referrers.None() && opts.Signatures == nil) {
		return nil, nil
	}
	sourced, err := db.WantedSourceDigests(ctx, loadID)
	if err != nil {
		return nil, err
	}
	unsourced, err := db.UnsourcedDigests(ctx, loadID)
	if err != nil {
		return nil, err
	}
	var refs []cipsync.Ref
	fresh := map[string]map[string]bool{}
	for _, s := range slices.Concat(sourced, unsourced) {
		if ttl := opts.confirmTTL(); ttl > 0 {
			checked, ok := fresh[s.Repository]
			if !ok {
				if checked, err = db.FreshReferrerChecks(ctx, s.Repository, db.Now().Add(-ttl)); err != nil {
					return nil, err
				}
				fresh[s.Repository] = checked
			}
			if _, ok := checked[s.Digest]; ok {
				continue
			}
		}
		refs = append(refs, cipsync.Ref{Repository: s.Repository, Digest: s.Digest})
	}
	if len(refs) == 0 {
		return nil, nil
	}
	expectSources(client, refs)
	return cipsync.StartPrefetch(ctx, client, refs, cipsync.PrefetchOptions{Jobs: opts.Jobs, DB: db}), nil
}

// planReferrers adds the refer rows to p: the referrers opts.Referrers
// selects that the sources hold for the wanted digests and the
// destinations lack. Online it first makes sure the inventory knows each
// wanted digest in its source (sync.Locate for those it does not: a
// destination holding them all means no crawl read the source), then
// looks the sources' referrers up
// (sync.Referrers: their referrer tags, without a listing for a source
// this run crawled, and their referrers APIs), then asks the referrers
// APIs of destinations that already hold a subject with pending
// referrers (a referrer pushed there by someone else is untagged, and no
// listing shows it), and records both: a later run plans from the
// inventory, asking a destination again only while something is pending.
// With a signature policy the sources' referrers are looked up even when
// none travels (--referrers none): the policy reads their signatures.
func planReferrers(ctx context.Context, db *inventory.DB, client *registry.Client, p *Plan, opts Options, crawled map[string]bool, answers *cipsync.ReferrerAnswers) error {
	if opts.Referrers.None() && opts.Signatures == nil {
		return nil
	}
	if !opts.Offline {
		// Wanted digests the inventory does not know in their source (every
		// destination had them, so no crawl read the source): a listing of
		// each such source repository, and a look-up of each digest the
		// listing cannot vouch for, once; what it finds is recorded, and the
		// listings serve the referrer look-ups below.
		gaps, err := db.UnsourcedDigests(ctx, p.LoadID)
		if err != nil {
			return err
		}
		listings := cipsync.NewListings()
		if len(gaps) > 0 {
			refs := make([]cipsync.Ref, len(gaps))
			for i, s := range gaps {
				refs[i] = cipsync.Ref{Repository: s.Repository, Digest: s.Digest}
			}
			expectSources(client, refs)
			if _, err := cipsync.Locate(ctx, db, client, refs, cipsync.Options{Jobs: opts.Jobs}, listings); err != nil {
				return err
			}
		}
		srcs, err := db.WantedSourceDigests(ctx, p.LoadID)
		if err != nil {
			return err
		}
		refs := make([]cipsync.Ref, len(srcs))
		for i, s := range srcs {
			refs[i] = cipsync.Ref{Repository: s.Repository, Digest: s.Digest}
		}
		expectSources(client, refs)
		found, err := cipsync.Referrers(ctx, db, client, refs, cipsync.ReferrerOptions{
			Jobs: opts.Jobs, ConfirmTTL: opts.confirmTTL(), Listed: func(repo string) bool { return crawled[repo] }, Listings: listings,
			Answers: answers})
		if err != nil {
			return err
		}
		found.APIRequests += answers.Requests()
		p.Referrers = append(p.Referrers, found)
	}
	if opts.Referrers.None() {
		// Looked up for the signature policy only: none travels.
		return nil
	}
	rows, err := db.Refers(ctx, p.LoadID, opts.Referrers, cipsync.MaxReferrerDepth, false)
	if err != nil {
		return err
	}
	if !opts.Offline && len(rows) > 0 {
		var ask []cipsync.Ref
		seen := map[cipsync.Ref]bool{}
		for _, r := range rows {
			k := cipsync.Ref{Repository: r.DstRepo, Digest: r.Subject}
			if seen[k] {
				continue
			}
			seen[k] = true
			if has, err := db.HasDigest(ctx, r.DstRepo, r.Subject); err != nil {
				return err
			} else if has {
				ask = append(ask, k)
			}
		}
		if len(ask) > 0 {
			found, err := cipsync.Referrers(ctx, db, client, ask, cipsync.ReferrerOptions{
				Jobs: opts.Jobs, Depth: 1, Listed: func(string) bool { return true }})
			if err != nil {
				return err
			}
			p.Referrers = append(p.Referrers, found)
			if found.Referrers > 0 {
				if rows, err = db.Refers(ctx, p.LoadID, opts.Referrers, cipsync.MaxReferrerDepth, false); err != nil {
					return err
				}
			}
		}
	}
	p.Refers = rows
	at := map[string]int{}
	for i, c := range p.Counts {
		at[c.Destination] = i
	}
	for _, r := range rows {
		if i, ok := at[r.Dst]; ok {
			p.Counts[i].Refer++
		}
	}
	return nil
}

// subjectWork is the referrers of one subject to copy into one
// destination repository: one writer for the subject's sha256-<hex> index
// and cosign tags there.
type subjectWork struct {
	dstRepo, subject string
	rows             []inventory.ReferRow
}

// referrers copies the plan's refer rows, level by level (referrers of
// referrers after the referrers they refer to), each subject's once its
// subject is complete in the destination: copied by this run or held
// before. It returns the rows it copied and the errors.
func (e *engine) referrers(ctx context.Context, dests map[string]*destStats, rows []inventory.ReferRow) ([]inventory.ReferRow, []error) {
	var copied []inventory.ReferRow
	var errs []error
	var mu gosync.Mutex
	for depth := 1; ; depth++ {
		var level []inventory.ReferRow
		for _, r := range rows {
			if r.Depth == depth {
				level = append(level, r)
			}
		}
		if len(level) == 0 {
			if slices.ContainsFunc(rows, func(r inventory.ReferRow) bool { return r.Depth > depth }) {
				continue
			}
			return copied, errs
		}
		var work []*subjectWork
		byKey := map[[2]string]*subjectWork{}
		for _, r := range level {
			k := [2]string{r.DstRepo, r.Subject}
			w := byKey[k]
			if w == nil {
				w = &subjectWork{dstRepo: r.DstRepo, subject: r.Subject}
				byKey[k] = w
				work = append(work, w)
			}
			w.rows = append(w.rows, r)
		}
		var g errgroup.Group
		g.SetLimit(rowsPerJob * e.jobs)
		for _, w := range work {
			st := dests[w.rows[0].Dst]
			g.Go(func() error {
				defer st.rowsDone.Add(int64(len(w.rows)))
				ok, err := e.subjectComplete(ctx, w.dstRepo, w.subject)
				if err == nil && !ok {
					err = fmt.Errorf("%s@%s is not complete there", w.dstRepo, w.subject)
				}
				if err == nil {
					err = e.copySubject(registry.WithRequestCounter(ctx, &st.requests), st, w)
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if ctx.Err() == nil {
						err = fmt.Errorf("copy referrers of %s@%s: %w", w.dstRepo, w.subject, err)
						st.mu.Lock()
						st.errors = append(st.errors, err.Error())
						st.mu.Unlock()
						errs = append(errs, err)
					}
					return nil
				}
				st.referred.Add(int64(len(w.rows)))
				copied = append(copied, w.rows...)
				for _, r := range w.rows {
					e.completed(r.DstRepo, r.Referrer)
				}
				return nil
			})
		}
		_ = g.Wait()
	}
}

// completed notes that dstRepo holds digest complete (this run put it).
func (e *engine) completed(dstRepo, digest string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.complete == nil {
		e.complete = map[string]bool{}
	}
	e.complete[dstRepo+"@"+digest] = true
}

// subjectComplete reports whether dstRepo holds subject complete: this
// run copied it (a wanted digest, an index child, a referrer), or the
// inventory records it there from before.
func (e *engine) subjectComplete(ctx context.Context, dstRepo, subject string) (bool, error) {
	e.mu.Lock()
	ok := e.complete[dstRepo+"@"+subject]
	e.mu.Unlock()
	if ok {
		return true, nil
	}
	return e.db.HasDigest(ctx, dstRepo, subject)
}

// copySubject copies one subject's referrers into a destination
// repository: cosign's tags as they are, or merged with the destination's
// own; other referrers by digest, listed in the destination's
// sha256-<hex> index when its registry does not index them itself (no
// OCI-Subject in the PUT's answer). Then it records them.
func (e *engine) copySubject(ctx context.Context, st *destStats, w *subjectWork) error {
	dst, err := e.client.ParseRepository(w.dstRepo)
	if err != nil {
		return err
	}
	var built []*inventory.Manifest
	var recorded []inventory.RecordedReferrer
	var tags, forget []inventory.Copy
	var fallback []inventory.ReferRow
	for _, r := range w.rows {
		if r.FoundBy == inventory.FoundByCosignTag {
			m, tag, replaced, err := e.copyCosign(ctx, st, dst, r)
			if err != nil {
				return err
			}
			if m != nil {
				built = append(built, m)
			}
			tags = append(tags, tag)
			if replaced != "" {
				forget = append(forget, inventory.Copy{Repository: w.dstRepo, Digest: replaced})
			}
			continue
		}
		indexed, err := e.copyReferrer(ctx, st, r)
		if err != nil {
			return err
		}
		if indexed {
			recorded = append(recorded, inventory.RecordedReferrer{Repository: w.dstRepo, Subject: w.subject, Digest: r.Referrer, FoundBy: inventory.FoundByAPI})
		} else {
			recorded = append(recorded, inventory.RecordedReferrer{Repository: w.dstRepo, Subject: w.subject, Digest: r.Referrer, FoundBy: inventory.FoundByTagSchema})
			fallback = append(fallback, r)
		}
	}
	if len(fallback) > 0 {
		m, err := e.mergeFallback(ctx, dst, w.subject, fallback)
		if err != nil {
			return err
		}
		if m != nil {
			built = append(built, m)
			tags = append(tags, inventory.Copy{Repository: w.dstRepo, Digest: m.Digest, Tag: referrer.Tag(w.subject, referrer.TagSchema)})
		}
	}
	_, err = e.db.RecordReferrers(ctx, e.runID, built, recorded, tags, forget)
	return err
}

// copyReferrer copies referrer r by digest (children or blobs first, like
// any manifest) and reports whether the destination's registry indexed it
// under its subject (it answered the PUT with OCI-Subject).
func (e *engine) copyReferrer(ctx context.Context, st *destStats, r inventory.ReferRow) (bool, error) {
	m, err := e.manifest(ctx, r.Referrer, r.SrcRepo)
	if err != nil {
		return false, err
	}
	if err := e.contents(ctx, st, r.SrcRepo, r.DstRepo, m); err != nil {
		return false, err
	}
	dst, err := e.client.ParseRepository(r.DstRepo)
	if err != nil {
		return false, err
	}
	got, subject, err := e.client.PutReferrer(ctx, dst, m.Digest, m.MediaType, m.Raw)
	if err != nil {
		return false, err
	}
	if got != m.Digest {
		return false, fmt.Errorf("put manifest %s@%s: the inventory's bytes have digest %s", r.DstRepo, m.Digest, got)
	}
	st.manifests.Add(1)
	return subject != "" && subject == m.Subject, nil
}

// contents makes m's children (an index) or blobs (an image) present in
// dstRepo, as a copy of m would before its PUT.
func (e *engine) contents(ctx context.Context, st *destStats, srcRepo, dstRepo string, m *inventory.Manifest) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.jobs)
	if m.IsIndex {
		for _, c := range m.Children {
			g.Go(func() error {
				return e.copyManifest(gctx, st, srcRepo, dstRepo, c.Digest)
			})
		}
	} else {
		for _, b := range m.Blobs {
			g.Go(func() error { return e.copyBlob(gctx, st, srcRepo, dstRepo, b) })
		}
	}
	return g.Wait()
}

// cosignKind finds which of cosign's tags for subject the source
// repository holds referrer at.
func (e *engine) cosignKind(ctx context.Context, srcRepo, subject, dg string) (referrer.Kind, error) {
	tags, err := e.db.Tags(ctx, srcRepo)
	if err != nil {
		return 0, err
	}
	for _, k := range []referrer.Kind{referrer.CosignSignature, referrer.CosignAttestation, referrer.CosignSBOM} {
		if tags[referrer.Tag(subject, k)] == dg {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%s has no cosign tag of %s at %s any more", srcRepo, subject, dg)
}

// copyCosign brings the source's cosign tag of r's subject into the
// destination: as it is when the destination has no such tag (the digest
// kept), nothing when the destination's already holds every layer of it,
// else merged the way cosign attaches another signature: the
// destination's manifest with the source's layers appended (the
// destination keeps every signature it had), a new config listing them,
// pushed and the tag moved. It returns the manifest it built (nil when
// none), the tag to record, and the digest a merge replaced at the tag.
func (e *engine) copyCosign(ctx context.Context, st *destStats, dst name.Repository, r inventory.ReferRow) (*inventory.Manifest, inventory.Copy, string, error) {
	kind, err := e.cosignKind(ctx, r.SrcRepo, r.Subject, r.Referrer)
	if err != nil {
		return nil, inventory.Copy{}, "", err
	}
	tag := referrer.Tag(r.Subject, kind)
	src, err := e.manifest(ctx, r.Referrer, r.SrcRepo)
	if err != nil {
		return nil, inventory.Copy{}, "", err
	}
	live, err := e.liveTag(ctx, dst, r.DstRepo, tag)
	if errors.Is(err, registry.ErrNotFound) {
		if err := e.contents(ctx, st, r.SrcRepo, r.DstRepo, src); err != nil {
			return nil, inventory.Copy{}, "", err
		}
		if err := e.putTagged(ctx, dst, tag, src, ""); err != nil {
			return nil, inventory.Copy{}, "", err
		}
		st.manifests.Add(1)
		return nil, inventory.Copy{Repository: r.DstRepo, Digest: src.Digest, Tag: tag}, "", nil
	}
	if err != nil {
		return nil, inventory.Copy{}, "", err
	}
	base, err := inventory.ParseManifest(live.Digest, live.MediaType, live.Raw)
	if err != nil {
		return nil, inventory.Copy{}, "", fmt.Errorf("%s:%s: %w", r.DstRepo, tag, err)
	}
	if base.Digest == src.Digest || coversLayers(base, src) {
		// Already there (or merged before): record what the tag holds.
		return base, inventory.Copy{Repository: r.DstRepo, Digest: base.Digest, Tag: tag}, "", nil
	}
	merged, cfg, err := e.mergeCosign(ctx, dst, r.SrcRepo, base, src)
	if err != nil {
		return nil, inventory.Copy{}, "", fmt.Errorf("merge %s:%s: %w", r.DstRepo, tag, err)
	}
	for _, b := range src.Blobs[1:] {
		if err := e.copyBlob(ctx, st, r.SrcRepo, r.DstRepo, b); err != nil {
			return nil, inventory.Copy{}, "", err
		}
	}
	_, err = e.client.UploadBlob(ctx, dst, cfg.digest, func() (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(cfg.raw)), int64(len(cfg.raw)), nil
	}, registry.UploadOptions{})
	if err != nil {
		return nil, inventory.Copy{}, "", err
	}
	if err := e.putTagged(ctx, dst, tag, merged, base.Digest); err != nil {
		return nil, inventory.Copy{}, "", err
	}
	st.manifests.Add(1)
	return merged, inventory.Copy{Repository: r.DstRepo, Digest: merged.Digest, Tag: tag}, base.Digest, nil
}

// liveTag reads dstRepo:tag as the registry has it now (another signer
// may have moved it since the crawl): ErrNotFound when it has none. A
// repository the crawl found absent holds only what this run put, so
// it has what this run put at the tag, or none: no request. (Each
// subject's referrers have one writer while they are copied; --sign-key
// adds its signature to the same sha256-<hex> index afterwards.)
func (e *engine) liveTag(ctx context.Context, dst name.Repository, dstRepo, tag string) (registry.Manifest, error) {
	if e.absent[dstRepo] {
		e.mu.Lock()
		m, ok := e.tagsPut[dst.Name()+":"+tag]
		e.mu.Unlock()
		if ok {
			return registry.Manifest{Digest: m.Digest, MediaType: m.MediaType, Raw: m.Raw}, nil
		}
		return registry.Manifest{}, fmt.Errorf("%s:%s: %w", dstRepo, tag, registry.ErrNotFound)
	}
	return e.client.GetManifest(ctx, dst, tag)
}

// coversLayers reports whether every layer of src is a layer of m.
func coversLayers(m, src *inventory.Manifest) bool {
	have := map[string]bool{}
	for _, b := range m.Blobs {
		if b.Kind == "layer" {
			have[b.Digest] = true
		}
	}
	for _, b := range src.Blobs {
		if b.Kind == "layer" && !have[b.Digest] {
			return false
		}
	}
	return true
}

// blob is a config cip builds.
type blob struct {
	digest string
	raw    []byte
}

// maxConfigSize caps the cosign configs a merge reads: they list a diff
// ID per signature, a few KiB; MaxManifestSize is plenty.
const maxConfigSize = registry.MaxManifestSize

// mergeCosign builds base with src's layers that base lacks appended, in
// src's order, and base's config with their diff IDs (and history
// entries, when both configs keep one per layer) appended.
func (e *engine) mergeCosign(ctx context.Context, dst name.Repository, srcRepo string, base, src *inventory.Manifest) (*inventory.Manifest, blob, error) {
	var b struct {
		fields map[string]json.RawMessage
	}
	var srcBody struct {
		Layers []json.RawMessage `json:"layers"`
	}
	if err := json.Unmarshal(base.Raw, &b.fields); err != nil {
		return nil, blob{}, err
	}
	if err := json.Unmarshal(src.Raw, &srcBody); err != nil {
		return nil, blob{}, err
	}
	var baseLayers []json.RawMessage
	if err := json.Unmarshal(b.fields["layers"], &baseLayers); err != nil {
		return nil, blob{}, fmt.Errorf("layers: %w", err)
	}
	have := map[string]bool{}
	for _, l := range base.Blobs {
		if l.Kind == "layer" {
			have[l.Digest] = true
		}
	}
	srcRepoName, err := e.client.ParseRepository(srcRepo)
	if err != nil {
		return nil, blob{}, err
	}
	baseCfg, err := e.readConfig(ctx, dst, base.ConfigDigest)
	if err != nil {
		return nil, blob{}, err
	}
	srcCfg, err := e.readConfig(ctx, srcRepoName, src.ConfigDigest)
	if err != nil {
		return nil, blob{}, err
	}
	diffIDs, _ := baseCfg.list("rootfs", "diff_ids")
	history, histOK := baseCfg.list("history")
	srcDiffIDs, _ := srcCfg.list("rootfs", "diff_ids")
	srcHistory, srcHistOK := srcCfg.list("history")
	histOK = histOK && srcHistOK && len(history) == len(baseLayers) && len(srcHistory) == len(srcBody.Layers)
	layers := baseLayers
	for i, l := range src.Blobs[1:] {
		if have[l.Digest] {
			continue
		}
		layers = append(layers, srcBody.Layers[i])
		id := json.RawMessage(fmt.Sprintf("%q", l.Digest)) // cosign's layers are uncompressed: the digest is the diff ID
		if i < len(srcDiffIDs) {
			id = srcDiffIDs[i]
		}
		diffIDs = append(diffIDs, id)
		if histOK {
			history = append(history, srcHistory[i])
		}
	}
	baseCfg.set(diffIDs, "rootfs", "diff_ids")
	if histOK {
		baseCfg.set(history, "history")
	}
	cfgRaw, err := json.Marshal(baseCfg.m)
	if err != nil {
		return nil, blob{}, err
	}
	cfg := blob{digest: fmt.Sprintf("sha256:%x", sha256Sum(cfgRaw)), raw: cfgRaw}
	var cfgDesc map[string]json.RawMessage
	if err := json.Unmarshal(b.fields["config"], &cfgDesc); err != nil {
		return nil, blob{}, fmt.Errorf("config: %w", err)
	}
	cfgDesc["digest"] = json.RawMessage(fmt.Sprintf("%q", cfg.digest))
	cfgDesc["size"] = json.RawMessage(fmt.Sprint(len(cfgRaw)))
	if b.fields["config"], err = json.Marshal(cfgDesc); err != nil {
		return nil, blob{}, err
	}
	if b.fields["layers"], err = json.Marshal(layers); err != nil {
		return nil, blob{}, err
	}
	raw, err := json.Marshal(b.fields)
	if err != nil {
		return nil, blob{}, err
	}
	m, err := inventory.ParseManifest(fmt.Sprintf("sha256:%x", sha256Sum(raw)), base.MediaType, raw)
	return m, cfg, err
}

// config is a JSON config read generically, so that a merge keeps every
// field it does not change.
type config struct{ m map[string]json.RawMessage }

func (e *engine) readConfig(ctx context.Context, repo name.Repository, digest string) (config, error) {
	rc, _, err := e.client.GetBlob(ctx, repo, digest)
	if err != nil {
		return config{}, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if err != nil {
		return config{}, err
	}
	if len(raw) > maxConfigSize {
		return config{}, fmt.Errorf("config %s larger than %d bytes", digest, maxConfigSize)
	}
	if got := fmt.Sprintf("sha256:%x", sha256Sum(raw)); got != digest {
		return config{}, fmt.Errorf("config %s: body has digest %s", digest, got)
	}
	c := config{m: map[string]json.RawMessage{}}
	if err := json.Unmarshal(raw, &c.m); err != nil {
		return config{}, fmt.Errorf("config %s: %w", digest, err)
	}
	return c, nil
}

// list reads the JSON array at path (false when absent or not an array).
func (c config) list(path ...string) ([]json.RawMessage, bool) {
	m := c.m
	for _, p := range path[:len(path)-1] {
		var sub map[string]json.RawMessage
		if json.Unmarshal(m[p], &sub) != nil || sub == nil {
			return nil, false
		}
		m = sub
	}
	var out []json.RawMessage
	if json.Unmarshal(m[path[len(path)-1]], &out) != nil {
		return nil, false
	}
	return out, out != nil
}

// set writes v at path, creating objects on the way.
func (c config) set(v []json.RawMessage, path ...string) {
	raw, _ := json.Marshal(v)
	if len(path) == 1 {
		c.m[path[0]] = raw
		return
	}
	sub := map[string]json.RawMessage{}
	_ = json.Unmarshal(c.m[path[0]], &sub)
	if sub == nil {
		sub = map[string]json.RawMessage{}
	}
	sub[path[1]] = raw
	c.m[path[0]], _ = json.Marshal(sub)
}

// mergeFallback lists rows' referrers in the destination's sha256-<hex>
// index of subject, keeping every entry it has (in its order) and
// appending the others: the source's index bytes as they are when the
// destination has none and the source lists exactly these referrers (the
// digest kept), else a new index. It returns the index it put, or nil when
// the destination's already listed them all.
func (e *engine) mergeFallback(ctx context.Context, dst name.Repository, subject string, rows []inventory.ReferRow) (*inventory.Manifest, error) {
	tag := referrer.Tag(subject, referrer.TagSchema)
	if tag == "" {
		return nil, fmt.Errorf("subject %s: the referrers tag schema names sha256 digests only", subject)
	}
	live, err := e.liveTag(ctx, dst, dst.Name(), tag)
	var entries []json.RawMessage
	listed := map[string]bool{}
	var existing map[string]json.RawMessage
	switch {
	case errors.Is(err, registry.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(live.Raw, &existing); err != nil {
			return nil, fmt.Errorf("%s:%s: %w", dst.Name(), tag, err)
		}
		if _, err := registry.ParseReferrers(live.Raw); err != nil {
			return nil, fmt.Errorf("%s:%s: %w", dst.Name(), tag, err)
		}
		if err := json.Unmarshal(existing["manifests"], &entries); err != nil {
			return nil, fmt.Errorf("%s:%s: manifests: %w", dst.Name(), tag, err)
		}
		for _, raw := range entries {
			var d struct {
				Digest string `json:"digest"`
			}
			_ = json.Unmarshal(raw, &d)
			listed[d.Digest] = true
		}
	}
	// The source's own entries, when its sha256-<hex> index lists them.
	srcEntries, srcIndex, err := e.sourceFallback(ctx, rows[0].SrcRepo, subject)
	if err != nil {
		return nil, err
	}
	var add []string
	for _, r := range rows {
		if !listed[r.Referrer] && !slices.Contains(add, r.Referrer) {
			add = append(add, r.Referrer)
		}
	}
	if len(add) == 0 {
		return nil, nil
	}
	if existing == nil && srcIndex != nil && len(srcEntries) == len(add) && !slices.ContainsFunc(add, func(d string) bool { _, ok := srcEntries[d]; return !ok }) {
		if err := e.putTagged(ctx, dst, tag, srcIndex, ""); err != nil {
			return nil, err
		}
		return srcIndex, nil
	}
	slices.SortStableFunc(add, func(a, b string) int { return cmp.Compare(srcEntries[a].pos, srcEntries[b].pos) })
	for _, d := range add {
		if se, ok := srcEntries[d]; ok {
			entries = append(entries, se.raw)
			continue
		}
		from := rows[slices.IndexFunc(rows, func(r inventory.ReferRow) bool { return r.Referrer == d })].SrcRepo
		m, err := e.manifest(ctx, d, from)
		if err != nil {
			return nil, err
		}
		raw, err := descriptorOf(m)
		if err != nil {
			return nil, err
		}
		entries = append(entries, raw)
	}
	if existing == nil {
		existing = map[string]json.RawMessage{
			"schemaVersion": json.RawMessage("2"),
			"mediaType":     json.RawMessage(`"application/vnd.oci.image.index.v1+json"`),
		}
	}
	if existing["manifests"], err = json.Marshal(entries); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(existing)
	if err != nil {
		return nil, err
	}
	m, err := inventory.ParseManifest(fmt.Sprintf("sha256:%x", sha256Sum(raw)), "application/vnd.oci.image.index.v1+json", raw)
	if err != nil {
		return nil, err
	}
	if err := e.putTagged(ctx, dst, tag, m, live.Digest); err != nil {
		return nil, err
	}
	return m, nil
}

// sourceEntry is an entry of the source's sha256-<hex> index.
type sourceEntry struct {
	raw json.RawMessage
	pos int
}

// sourceFallback reads the source's sha256-<hex> index of subject from the
// inventory: its entries by digest, and the index (nil when it has none).
func (e *engine) sourceFallback(ctx context.Context, srcRepo, subject string) (map[string]sourceEntry, *inventory.Manifest, error) {
	tags, err := e.db.Tags(ctx, srcRepo)
	if err != nil {
		return nil, nil, err
	}
	dg, ok := tags[referrer.Tag(subject, referrer.TagSchema)]
	if !ok {
		return map[string]sourceEntry{}, nil, nil
	}
	m, err := e.manifest(ctx, dg, srcRepo)
	if err != nil {
		return nil, nil, err
	}
	var body struct {
		Manifests []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(m.Raw, &body); err != nil {
		return nil, nil, err
	}
	out := map[string]sourceEntry{}
	for i, raw := range body.Manifests {
		var d struct {
			Digest string `json:"digest"`
		}
		_ = json.Unmarshal(raw, &d)
		out[d.Digest] = sourceEntry{raw: raw, pos: i}
	}
	return out, m, nil
}

// descriptorOf is the referrers listing entry of m: its media type,
// digest, size, artifact type and annotations (as the referrers API
// lists it).
func descriptorOf(m *inventory.Manifest) (json.RawMessage, error) {
	var body struct {
		Annotations map[string]string `json:"annotations"`
	}
	_ = json.Unmarshal(m.Raw, &body)
	return json.Marshal(registry.Referrer{MediaType: m.MediaType, Digest: m.Digest, Size: int64(len(m.Raw)), ArtifactType: m.ArtifactType, Annotations: body.Annotations})
}

// ReferrerMismatch is a referrer a destination does not serve with its
// subject.
type ReferrerMismatch struct {
	Destination  string `json:"destination"`
	Image        string `json:"image"`
	Subject      string `json:"subject"`
	Referrer     string `json:"referrer"`
	ArtifactType string `json:"artifact_type"`
	Got          string `json:"got"` // "not listed", "absent", or "error: ..."
	File         string `json:"file"`
	Line         int    `json:"line"`
}

// Ref is the subject checked: dst/image@subject.
func (m ReferrerMismatch) Ref() string { return m.Destination + "/" + m.Image + "@" + m.Subject }

// VerifyReferrers checks, live, that each destination serves the
// referrers that the load's wanted digests have in their source (as the
// inventory knows them: the last promote or sync of the source) with
// their subjects, as sel selects: listed by the destination's referrers
// API or its sha256-<hex> index, or at cosign's tag (that manifest, or a
// merge holding its layers). It returns how many referrers it checked and
// every mismatch.
func VerifyReferrers(ctx context.Context, db *inventory.DB, client *registry.Client, loadID int64, opts Options) (int, []ReferrerMismatch, error) {
	if opts.Referrers.None() {
		return 0, nil, nil
	}
	rows, err := db.Refers(ctx, loadID, opts.Referrers, cipsync.MaxReferrerDepth, true)
	if err != nil {
		return 0, nil, err
	}
	return len(rows), verifyReferrerRows(ctx, db, client, rows, opts.jobs()), nil
}

// verifyReferrerRows checks rows live: one listing per (destination
// repository, subject), one GET per cosign tag.
func verifyReferrerRows(ctx context.Context, db *inventory.DB, client *registry.Client, rows []inventory.ReferRow, jobs int) []ReferrerMismatch {
	type key struct{ repo, subject string }
	var keys []key
	by := map[key][]inventory.ReferRow{}
	for _, r := range rows {
		k := key{r.DstRepo, r.Subject}
		if _, ok := by[k]; !ok {
			keys = append(keys, k)
		}
		by[k] = append(by[k], r)
	}
	got := make([][]string, len(keys))
	hosts := &apiHosts{no: map[string]bool{}}
	var g errgroup.Group
	g.SetLimit(jobs)
	for i, k := range keys {
		g.Go(func() error {
			got[i] = checkSubject(ctx, db, client, hosts, k.repo, k.subject, by[k])
			return nil
		})
	}
	_ = g.Wait()
	var out []ReferrerMismatch
	for i, k := range keys {
		for j, r := range by[k] {
			if got[i][j] != "" {
				out = append(out, ReferrerMismatch{Destination: r.Dst, Image: r.Image, Subject: r.Subject, Referrer: r.Referrer,
					ArtifactType: r.ArtifactType, Got: got[i][j], File: r.File, Line: r.Line})
			}
		}
	}
	slices.SortFunc(out, func(a, b ReferrerMismatch) int {
		return cmp.Or(strings.Compare(a.Destination, b.Destination), strings.Compare(a.Image, b.Image),
			strings.Compare(a.Subject, b.Subject), strings.Compare(a.Referrer, b.Referrer))
	})
	return out
}

// apiHosts remembers the registry hosts that answered a referrers
// request with 404 (no API): their other subjects are read from the
// sha256-<hex> tags at once, a request each saved.
type apiHosts struct {
	mu gosync.Mutex
	no map[string]bool
}

func (h *apiHosts) served(host string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.no[host]
}

func (h *apiHosts) none(host string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.no[host] = true
}

// checkSubject returns, for each row, "" when repo serves its referrer
// with its subject, else what it found.
func checkSubject(ctx context.Context, db *inventory.DB, client *registry.Client, hosts *apiHosts, repoName, subject string, rows []inventory.ReferRow) []string {
	out := make([]string, len(rows))
	repo, err := client.ParseRepository(repoName)
	if err != nil {
		for i := range out {
			out[i] = "error: " + err.Error()
		}
		return out
	}
	var listed map[string]bool
	list := func() error {
		if listed != nil {
			return nil
		}
		listed = map[string]bool{}
		var rs []registry.Referrer
		err := registry.ErrNoReferrersAPI
		if hosts.served(repo.RegistryStr()) {
			rs, err = client.Referrers(ctx, repo, subject, "")
		}
		if errors.Is(err, registry.ErrNoReferrersAPI) {
			hosts.none(repo.RegistryStr())
			m, gerr := client.GetManifest(ctx, repo, referrer.Tag(subject, referrer.TagSchema))
			if errors.Is(gerr, registry.ErrNotFound) {
				return nil
			}
			if gerr != nil {
				return gerr
			}
			rs, err = registry.ParseReferrers(m.Raw)
		}
		if err != nil {
			return err
		}
		for _, r := range rs {
			listed[r.Digest] = true
		}
		return nil
	}
	for i, r := range rows {
		if r.FoundBy == inventory.FoundByCosignTag {
			out[i] = checkCosign(ctx, db, client, repo, r)
			continue
		}
		if err := list(); err != nil {
			out[i] = "error: " + err.Error()
		} else if !listed[r.Referrer] {
			out[i] = "not listed"
		}
	}
	return out
}

func checkCosign(ctx context.Context, db *inventory.DB, client *registry.Client, repo name.Repository, r inventory.ReferRow) string {
	src, err := db.Manifest(ctx, r.Referrer)
	if err != nil {
		return "error: " + err.Error()
	}
	tags, err := db.Tags(ctx, r.SrcRepo)
	if err != nil {
		return "error: " + err.Error()
	}
	for _, k := range []referrer.Kind{referrer.CosignSignature, referrer.CosignAttestation, referrer.CosignSBOM} {
		tag := referrer.Tag(r.Subject, k)
		if tags[tag] != r.Referrer {
			continue
		}
		live, err := client.GetManifest(ctx, repo, tag)
		if errors.Is(err, registry.ErrNotFound) {
			return "absent"
		}
		if err != nil {
			return "error: " + err.Error()
		}
		m, err := inventory.ParseManifest(live.Digest, live.MediaType, live.Raw)
		if err != nil {
			return "error: " + err.Error()
		}
		if m.Digest != src.Digest && !coversLayers(m, src) {
			return "tag " + tag + " at " + m.Digest + " lacks its layers"
		}
		return ""
	}
	return "error: the source's cosign tag of " + r.Subject + " is no longer at " + r.Referrer
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// ReferrerVerifyError lists the referrers a promotion put that a
// destination does not serve with their subject.
type ReferrerVerifyError struct {
	Mismatches []ReferrerMismatch
}

func (e *ReferrerVerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "verify: %d referrer mismatch(es):", len(e.Mismatches))
	for _, m := range e.Mismatches {
		fmt.Fprintf(&b, "\n  %s: referrer %s (%s): %s", m.Ref(), m.Referrer, m.ArtifactType, m.Got)
	}
	return b.String()
}

package inventory_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
)

// parsed makes a manifest of raw JSON with its real digest.
func parsed(t *testing.T, raw string) *inventory.Manifest {
	t.Helper()
	m, err := inventory.ParseManifest(fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(raw))), "", []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func imageRaw(config string, layers ...string) string {
	return `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + config + `,"layers":[` + strings.Join(layers, ",") + `]}`
}

func desc(mt string, c byte, size int) string {
	return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d}`, mt, digest(c), size)
}

// referrerWorld is a source repository with an image, a cosign .sig, a
// bundle referrer listed in the sha256-<hex> index and a signature on
// that bundle, and a destination holding the image and a merged .sig.
type referrerWorld struct {
	img, sig, bundle, bundleSig, fallback, merged *inventory.Manifest
}

func newReferrerWorld(t *testing.T) referrerWorld {
	var w referrerWorld
	w.img = parsed(t, imageRaw(desc("application/vnd.oci.image.config.v1+json", 'c', 10), desc("application/vnd.oci.image.layer.v1.tar+gzip", 'a', 100)))
	w.sig = parsed(t, imageRaw(desc("application/vnd.oci.image.config.v1+json", 'd', 10), desc(referrer.CosignSimpleSigning, '1', 200)))
	subject := fmt.Sprintf(`,"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d}`, w.img.Digest, len(w.img.Raw))
	w.bundle = parsed(t, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"`+referrer.SigstoreBundle+
		`","config":`+desc("application/vnd.oci.empty.v1+json", 'e', 2)+`,"layers":[`+desc(referrer.SigstoreBundle, 'b', 300)+`]`+subject+`}`)
	w.fallback = parsed(t, fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"artifactType":%q}]}`,
		w.bundle.Digest, len(w.bundle.Raw), referrer.SigstoreBundle))
	w.bundleSig = parsed(t, imageRaw(desc("application/vnd.oci.image.config.v1+json", 'f', 10), desc(referrer.CosignSimpleSigning, '2', 200)))
	// The destination's own signature plus the source's: a merged .sig.
	w.merged = parsed(t, imageRaw(desc("application/vnd.oci.image.config.v1+json", '3', 10), desc(referrer.CosignSimpleSigning, '4', 200), desc(referrer.CosignSimpleSigning, '1', 200)))
	return w
}

func TestReferrersDerivedPlannedAndRecorded(t *testing.T) {
	ctx := context.Background()
	db, _ := mustOpen(t)
	w := newReferrerWorld(t)
	src, dst := "reg.example/staging/app", "reg.example/prod/app"
	sigTag := referrer.Tag(w.img.Digest, referrer.CosignSignature)
	if _, err := db.WriteRepository(ctx, 0, inventory.RepositoryState{Name: src,
		Tags: map[string]string{"v1": w.img.Digest, sigTag: w.sig.Digest, referrer.Tag(w.img.Digest, referrer.TagSchema): w.fallback.Digest,
			referrer.Tag(w.bundle.Digest, referrer.CosignSignature): w.bundleSig.Digest},
		New: []*inventory.Manifest{w.img, w.sig, w.bundle, w.fallback, w.bundleSig}}); err != nil {
		t.Fatal(err)
	}
	got, err := db.Referrers(ctx, src, w.img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	want := []inventory.Referrer{
		{Subject: w.img.Digest, Digest: w.sig.Digest, ArtifactType: referrer.CosignSimpleSigning, FoundBy: "cosign-tag"},
		{Subject: w.img.Digest, Digest: w.bundle.Digest, ArtifactType: referrer.SigstoreBundle, FoundBy: "tag-schema"},
	}
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b inventory.Referrer) bool { return a.Digest < b.Digest })); diff != "" {
		t.Fatalf("Referrers(src) (-want +got):\n%s", diff)
	}

	if _, err := db.WriteRepository(ctx, 0, inventory.RepositoryState{Name: dst,
		Tags: map[string]string{"v1": w.img.Digest, sigTag: w.merged.Digest}, New: []*inventory.Manifest{w.merged}}); err != nil {
		t.Fatal(err)
	}
	load, err := db.LoadRoutes(ctx, "m.yaml", []inventory.Route{{Src: "reg.example/staging", Dsts: []string{"reg.example/prod"}, File: "m.yaml",
		Images: []inventory.WantedImage{{Name: "app", Digests: []inventory.WantedDigest{{Digest: w.img.Digest, Tags: []string{"v1"}, Line: 3}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Referrer, FoundBy string
		Depth             int
		Held              bool
	}
	rowsOf := func(sel referrer.Selection, all bool) []row {
		t.Helper()
		rs, err := db.Refers(ctx, load, sel, 4, all)
		if err != nil {
			t.Fatal(err)
		}
		var out []row
		for _, r := range rs {
			if r.DstRepo != dst || r.SrcRepo != src || r.Digest != w.img.Digest {
				t.Errorf("Refers row %+v: wrong repositories or wanted digest", r)
			}
			out = append(out, row{r.Referrer, r.FoundBy, r.Depth, r.Held})
		}
		return out
	}
	// The merged .sig covers the source's (its layers include the
	// source's): only the bundle and the signature on it are pending.
	if diff := cmp.Diff([]row{{w.bundle.Digest, "tag-schema", 1, false}, {w.bundleSig.Digest, "cosign-tag", 2, false}}, rowsOf(referrer.All, false)); diff != "" {
		t.Errorf("Refers(all) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]row{{w.sig.Digest, "cosign-tag", 1, true}, {w.bundle.Digest, "tag-schema", 1, false}, {w.bundleSig.Digest, "cosign-tag", 2, false}},
		rowsOf(referrer.All, true), cmpopts.SortSlices(func(a, b row) bool { return a.Referrer < b.Referrer })); diff != "" {
		t.Errorf("Refers(all, held too) (-want +got):\n%s", diff)
	}
	sigsOnly, _ := referrer.ParseSelection("signatures")
	if diff := cmp.Diff([]row{{w.bundle.Digest, "tag-schema", 1, false}, {w.bundleSig.Digest, "cosign-tag", 2, false}}, rowsOf(sigsOnly, false)); diff != "" {
		t.Errorf("Refers(signatures) (-want +got):\n%s", diff)
	}
	sbom, _ := referrer.ParseSelection("text/spdx+json")
	if got := rowsOf(sbom, false); len(got) != 0 {
		t.Errorf("Refers(text/spdx+json) = %v, want none", got)
	}
	// A signature on the bundle stays behind when bundles do not travel.
	simple, _ := referrer.ParseSelection(referrer.CosignSimpleSigning)
	if got := rowsOf(simple, false); len(got) != 0 {
		t.Errorf("Refers(simple signing) = %v, want none (the merged .sig covers the image's; the bundle's needs the bundle)", got)
	}

	// The destination's API lists the bundle: then only the signature on
	// it is pending.
	if _, err := db.WriteReferrers(ctx, 0, []inventory.ReferrerState{{Repository: dst, API: map[string][]string{w.img.Digest: {w.bundle.Digest}},
		New: []*inventory.Manifest{w.bundle}}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]row{{w.bundleSig.Digest, "cosign-tag", 2, false}}, rowsOf(referrer.All, false)); diff != "" {
		t.Errorf("Refers(all) after the API answer (-want +got):\n%s", diff)
	}
	checks, err := db.FreshReferrerChecks(ctx, dst, db.Now().Add(-1))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]bool{w.img.Digest: true}, checks); diff != "" {
		t.Errorf("FreshReferrerChecks (-want +got):\n%s", diff)
	}

	// cip's own copy of the signature on the bundle, by its cosign tag.
	tag := referrer.Tag(w.bundle.Digest, referrer.CosignSignature)
	changes, err := db.RecordReferrers(ctx, 0, nil, nil, []inventory.Copy{{Repository: dst, Digest: w.bundleSig.Digest, Tag: tag}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Tag != tag || changes[0].Change != "added" {
		t.Errorf("RecordReferrers changes = %+v, want %s added", changes, tag)
	}
	if got := rowsOf(referrer.All, false); len(got) != 0 {
		t.Errorf("Refers(all) after every copy = %v, want none", got)
	}

	srcs, err := db.WantedSourceDigests(ctx, load)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]inventory.SourceDigest{{Repository: src, Digest: w.img.Digest}}, srcs); diff != "" {
		t.Errorf("WantedSourceDigests (-want +got):\n%s", diff)
	}
}

func TestWriteReferrersTags(t *testing.T) {
	ctx := context.Background()
	db, _ := mustOpen(t)
	w := newReferrerWorld(t)
	repo := "reg.example/staging/app"
	if _, err := db.WriteRepository(ctx, 0, inventory.RepositoryState{Name: repo, Tags: map[string]string{"v1": w.img.Digest}, New: []*inventory.Manifest{w.img}}); err != nil {
		t.Fatal(err)
	}
	sigTag := referrer.Tag(w.img.Digest, referrer.CosignSignature)
	write := func(tags map[string]string, ms ...*inventory.Manifest) []inventory.TagChange {
		t.Helper()
		ch, err := db.WriteReferrers(ctx, 0, []inventory.ReferrerState{{Repository: repo, TagSubjects: []string{w.img.Digest}, Tags: tags, New: ms}})
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	if ch := write(map[string]string{sigTag: w.sig.Digest}, w.sig); len(ch) != 1 || ch[0].Change != "added" {
		t.Fatalf("first write changes = %+v, want the .sig added", ch)
	}
	if ch := write(map[string]string{sigTag: w.merged.Digest}, w.merged); len(ch) != 1 || ch[0].Change != "moved" {
		t.Fatalf("second write changes = %+v, want the .sig moved", ch)
	}
	tags, err := db.Tags(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"v1": w.img.Digest, sigTag: w.merged.Digest}, tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	if ch := write(nil); len(ch) != 1 || ch[0].Change != "removed" {
		t.Fatalf("third write changes = %+v, want the .sig removed", ch)
	}
	got, err := db.Referrers(ctx, repo, w.img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("Referrers after the .sig went = %v, want none", got)
	}
	tags, _ = db.Tags(ctx, repo)
	if diff := cmp.Diff(map[string]string{"v1": w.img.Digest}, tags); diff != "" {
		t.Errorf("tags (-want +got): the image's tag must stay\n%s", diff)
	}
}

func TestParseManifestSubject(t *testing.T) {
	w := newReferrerWorld(t)
	if w.bundle.Subject != w.img.Digest || w.bundle.ArtifactType != referrer.SigstoreBundle {
		t.Errorf("bundle: Subject, ArtifactType = %q, %q; want %q, %q", w.bundle.Subject, w.bundle.ArtifactType, w.img.Digest, referrer.SigstoreBundle)
	}
	if w.img.Subject != "" || w.img.ArtifactType != "application/vnd.oci.image.config.v1+json" {
		t.Errorf("image: Subject, ArtifactType = %q, %q; want none and the config's media type", w.img.Subject, w.img.ArtifactType)
	}
	if w.fallback.ArtifactType != "" {
		t.Errorf("index: ArtifactType = %q, want none", w.fallback.ArtifactType)
	}
}

package sync_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/cipdev/cip/internal/digest"
	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
	cipsync "github.com/cipdev/cip/sync"
)

// A GCR-style registry whose every repository names a child, without end:
// the walk stops at the repositories cap with an error naming the prefix,
// after as many listings.
func TestGCRWalkBounded(t *testing.T) {
	var lists atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
		case strings.HasSuffix(r.URL.Path, "/_catalog"):
			w.WriteHeader(http.StatusNotFound)
		case strings.HasSuffix(r.URL.Path, "/tags/list"):
			lists.Add(1)
			json.NewEncoder(w).Encode(map[string]any{"child": []string{"a", "b"}, "tags": []string{}, "manifest": map[string]any{}})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := registry.New(registry.Options{MaxRepositories: 20})
	_, err := cipsync.Run(context.Background(), mustOpen(t), c, []cipsync.Target{{Ref: host + "/proj"}}, cipsync.Options{Jobs: 2})
	if err == nil || !strings.Contains(err.Error(), "listing too large: more than 20 (--max-repositories)") || !strings.Contains(err.Error(), host+"/proj") {
		t.Fatalf("sync of an endless GCR tree = %v, want the repositories cap named", err)
	}
	if n := lists.Load(); n > 20 {
		t.Errorf("tags/list requests = %d, want at most 20", n)
	}
}

// One hostile registry among good ones: it answers 429 with Retry-After:
// 3600, or echoes the credentials it was sent in a 401. The good registry's
// repositories are written; the hostile one's fail, named, at once; the
// run's recorded errors hold no credential.
func TestHostileRegistryAmongGood(t *testing.T) {
	good := regtest.New(t)
	good.Push(t, "p/app", "v1", regtest.Image(t, 64, 1, true))
	throttle := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer throttle.Close()
	const user, pass = "robot", "s3cret-passw0rd"
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/v2/" {
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials","detail":%q}]}`, "Authorization: "+r.Header.Get("Authorization")+" = "+user+":"+pass)
	}))
	defer echo.Close()
	throttled, echoing := strings.TrimPrefix(throttle.URL, "http://"), strings.TrimPrefix(echo.URL, "http://")

	kc := keychain{authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})}
	c := registry.New(registry.Options{Keychain: kc})
	db := mustOpen(t)
	start := time.Now()
	_, err := cipsync.Run(context.Background(), db, c, []cipsync.Target{
		{Ref: good.Host + "/p/app", Exact: true}, {Ref: throttled + "/p/a", Exact: true}, {Ref: throttled + "/p/b", Exact: true},
		{Ref: echoing + "/p/app", Exact: true},
	}, cipsync.Options{Jobs: 4})
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("sync took %v, want the hostile registries to fail at once", d)
	}
	if err == nil {
		t.Fatal("sync with hostile registries succeeded")
	}
	for _, want := range []string{"gave up on " + throttled + ": it asks to wait 1h0m0s", throttled + "/p/a", throttled + "/p/b", echoing + "/p/app"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("sync error does not name %q:\n%v", want, err)
		}
	}
	tags, _ := db.Tags(context.Background(), good.Host+"/p/app")
	if len(tags) != 1 {
		t.Errorf("good registry's tags = %v, want v1", tags)
	}
	recorded := strings.Join(queryStrings(t, db, `SELECT errors FROM sync_runs ORDER BY id`), "\n")
	if !strings.Contains(recorded, echoing+"/p/app") {
		t.Errorf("sync_runs.errors = %q, want the echoing registry's failure", recorded)
	}
	for _, secret := range []string{basic, pass} {
		if strings.Contains(err.Error(), secret) || strings.Contains(recorded, secret) {
			t.Errorf("a credential (%q) reached the error or sync_runs.errors:\n%v\n%s", secret, err, recorded)
		}
	}
	if diff := cmp.Diff([]string{good.Host + "/p/app"}, mustRepos(t, db, good.Host)); diff != "" {
		t.Errorf("repositories of the good registry (-want +got):\n%s", diff)
	}
}

// keychain hands every registry the same credentials (only the echoing
// one asks for them).
type keychain struct{ a authn.Authenticator }

func (k keychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

func mustRepos(t *testing.T, db interface {
	Repositories(context.Context, string) ([]string, error)
}, prefix string) []string {
	t.Helper()
	repos, err := db.Repositories(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return repos
}

const (
	ociManifest   = "application/vnd.oci.image.manifest.v1+json"
	ociIndex      = "application/vnd.oci.image.index.v1+json"
	schema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// ociImage returns the bytes of an OCI image manifest; n makes them
// distinct.
func ociImage(n int) []byte {
	return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%064x","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%064x","size":%d}]}`,
		ociManifest, n, n+1000, n+10)
}

// ociIndexOf returns the bytes of an OCI index of children (digest, size).
func ociIndexOf(children ...[2]string) []byte {
	var parts []string
	for i, c := range children {
		parts = append(parts, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%s,"platform":{"os":"linux","architecture":"arch%d"}}`, ociManifest, c[0], c[1], i))
	}
	return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"manifests":[%s]}`, ociIndex, strings.Join(parts, ","))
}

func syncAll(t *testing.T, db *inventory.DB, targets ...cipsync.Target) (*cipsync.Result, error) {
	t.Helper()
	return cipsync.Run(context.Background(), db, client(), targets, cipsync.Options{Jobs: 4})
}

func hasWarning(res *cipsync.Result, parts ...string) bool {
	return slices.ContainsFunc(res.Warnings, func(w string) bool {
		for _, p := range parts {
			if !strings.Contains(w, p) {
				return false
			}
		}
		return true
	})
}

// A signed schema 1 tag is named by its payload's digest (distribution) or
// by its bytes' (go-containerregistry's registry): both verify and are
// recorded with the exact bytes. One that neither rule verifies is skipped
// with a warning, and the rest of its repository is synced.
func TestSchema1Digests(t *testing.T) {
	reg := regtest.NewStatic(t)
	layer := fmt.Sprintf("sha256:%064x", 7)
	s1, payloadDigest := regtest.Schema1(t, "old/app", "v1", []string{layer})
	s1full := digest.SHA256(s1)
	// The one distribution would serve, and one whose signature block is
	// damaged so that its payload cannot be recovered.
	s1bad, badDigest := regtest.Schema1(t, "old/app", "bad", []string{layer})
	s1bad = []byte(strings.Replace(string(s1bad), `"protected": "`, `"protected": "!!`, 1))
	img := ociImage(1)
	imgDigest := digest.SHA256(img)
	reg.Tags("old/app", "v1", "v2", "bad")
	reg.Manifest("old/app", "v1", schema1Signed, payloadDigest, s1)
	reg.Manifest("old/app", payloadDigest, schema1Signed, payloadDigest, s1)
	reg.Manifest("old/app", "v2", ociManifest, imgDigest, img)
	reg.Manifest("old/app", imgDigest, ociManifest, imgDigest, img)
	reg.Manifest("old/app", "bad", schema1Signed, badDigest, s1bad)
	reg.Manifest("old/app", badDigest, schema1Signed, badDigest, s1bad)
	// go-containerregistry's registry names schema 1 by the whole body.
	reg.Tags("ggcr/app", "v1")
	reg.Manifest("ggcr/app", "v1", schema1Signed, s1full, s1)
	reg.Manifest("ggcr/app", s1full, schema1Signed, s1full, s1)

	db := mustOpen(t)
	targets := []cipsync.Target{{Ref: reg.Host + "/old/app", Exact: true}, {Ref: reg.Host + "/ggcr/app", Exact: true}}
	// First crawl: new repositories, each tag GET by tag. Second: HEADs,
	// and a GET by digest for a tag moved to a digest new to the inventory.
	for round := range 2 {
		res, err := syncAll(t, db, targets...)
		if err != nil {
			t.Fatalf("round %d: sync = %v, want the bad tag skipped, not a failed repository", round, err)
		}
		if !hasWarning(res, "old/app:bad", "cannot be verified") {
			t.Errorf("round %d: warnings = %q, want old/app:bad skipped as unverifiable", round, res.Warnings)
		}
		tags, err := db.Tags(context.Background(), reg.Host+"/old/app")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"v1": payloadDigest, "v2": imgDigest}
		if round == 1 {
			want["v1b"] = payloadDigest
		}
		if diff := cmp.Diff(want, tags); diff != "" {
			t.Errorf("round %d: old/app tags (-want +got):\n%s", round, diff)
		}
		for _, d := range []string{payloadDigest, s1full} {
			m, err := db.Manifest(context.Background(), d)
			if err != nil {
				t.Fatalf("round %d: manifest %s: %v", round, d, err)
			}
			if string(m.Raw) != string(s1) || len(m.Blobs) != 1 || m.Blobs[0].Digest != layer {
				t.Errorf("round %d: manifest %s = %d bytes, blobs %v; want the signed bytes with layer %s", round, d, len(m.Raw), m.Blobs, layer)
			}
		}
		if _, err := db.Manifest(context.Background(), badDigest); err == nil {
			t.Errorf("round %d: the unverifiable manifest %s was recorded", round, badDigest)
		}
		if round == 0 {
			// Verified at once: no retry of a body "not matching" its
			// payload digest.
			for _, tag := range []string{"v1", "bad"} {
				if n := reg.Count("GET", "/v2/old/app/manifests/"+tag); n != 1 {
					t.Errorf("GETs of old/app:%s = %d, want 1", tag, n)
				}
			}
		}
		reg.Tags("old/app", "v1", "v1b", "v2", "bad")
		reg.Manifest("old/app", "v1b", schema1Signed, payloadDigest, s1)
	}
	if n := reg.Count("GET", "/v2/old/app/manifests/"+payloadDigest); n != 0 {
		t.Errorf("GETs of %s by digest = %d, want 0 (known after the first crawl, got by tag)", payloadDigest, n)
	}
}

// Children and GCR listing keys by sha512 are fetched and verified; md5
// (or any digest cip cannot verify) is refused by name and never recorded;
// a sha512 child whose bytes do not match fails its repository.
func TestDigestAlgorithms(t *testing.T) {
	reg := regtest.NewStatic(t)
	child256, child512 := ociImage(1), ociImage(2)
	d256 := digest.SHA256(child256)
	d512, _ := digest.Of("sha512", child512)
	md5 := "md5:" + strings.Repeat("0", 32)
	idx := ociIndexOf([2]string{d256, fmt.Sprint(len(child256))}, [2]string{d512, fmt.Sprint(len(child512))})
	idxMD5 := ociIndexOf([2]string{d256, fmt.Sprint(len(child256))}, [2]string{md5, "10"})
	dIdx, dIdxMD5 := digest.SHA256(idx), digest.SHA256(idxMD5)
	reg.Manifest("multi/app", d256, ociManifest, d256, child256)
	reg.Manifest("multi/app", d512, ociManifest, "", child512)
	reg.Manifest("multi/app", "good", ociIndex, dIdx, idx)
	reg.Manifest("multi/app", dIdx, ociIndex, dIdx, idx)
	reg.Tags("multi/app", "good", "md5child")
	reg.Manifest("multi/app", "md5child", ociIndex, dIdxMD5, idxMD5)
	reg.Manifest("multi/app", dIdxMD5, ociIndex, dIdxMD5, idxMD5)
	// Another index whose sha512 child is served with other bytes.
	tChild := ociImage(5)
	t512, _ := digest.Of("sha512", tChild)
	tIdx := ociIndexOf([2]string{t512, fmt.Sprint(len(tChild))})
	dT := digest.SHA256(tIdx)
	reg.Tags("tampered/app", "good")
	reg.Manifest("tampered/app", "good", ociIndex, dT, tIdx)
	reg.Manifest("tampered/app", dT, ociIndex, dT, tIdx)
	reg.Manifest("tampered/app", t512, ociManifest, "", ociImage(3))
	// GCR's listing: its keys are digests too.
	gcrImg := ociImage(4)
	gcr512, _ := digest.Of("sha512", gcrImg)
	reg.JSON("/v2/gcr/app/tags/list", map[string]any{
		"name": "gcr/app", "tags": []string{"v1", "v2"},
		"manifest": map[string]any{
			gcr512: map[string]any{"mediaType": ociManifest, "tag": []string{"v1"}},
			md5:    map[string]any{"mediaType": ociManifest, "tag": []string{"v2"}},
		},
	})
	reg.Manifest("gcr/app", gcr512, ociManifest, "", gcrImg)

	db := mustOpen(t)
	res, err := syncAll(t, db, cipsync.Target{Ref: reg.Host + "/multi/app", Exact: true},
		cipsync.Target{Ref: reg.Host + "/tampered/app", Exact: true}, cipsync.Target{Ref: reg.Host + "/gcr/app", Exact: true})
	if err == nil || !strings.Contains(err.Error(), "tampered/app") || !strings.Contains(err.Error(), "body has digest") {
		t.Errorf("sync error = %v, want tampered/app failed on its sha512 child's body", err)
	} else if strings.Contains(err.Error(), "multi/app") || strings.Contains(err.Error(), "gcr/app") {
		t.Errorf("sync error = %v, want only tampered/app failed", err)
	}
	if !hasWarning(res, "multi/app:md5child", `algorithm "md5"`) {
		t.Errorf("warnings = %q, want multi/app:md5child skipped naming md5", res.Warnings)
	}
	if !hasWarning(res, "gcr/app@"+md5, `algorithm "md5"`) {
		t.Errorf("warnings = %q, want gcr/app's md5 key skipped naming md5", res.Warnings)
	}
	for repo, want := range map[string]map[string]string{
		"multi/app":    {"good": dIdx},
		"tampered/app": {},
		"gcr/app":      {"v1": gcr512},
	} {
		tags, err := db.Tags(context.Background(), reg.Host+"/"+repo)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, tags); diff != "" {
			t.Errorf("%s tags (-want +got):\n%s", repo, diff)
		}
	}
	// Every manifest recorded verifies under its own algorithm; md5 names
	// nothing in the inventory.
	got := queryStrings(t, db, `SELECT digest FROM manifests ORDER BY digest`)
	want := []string{d256, dIdx, d512, gcr512}
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("manifests recorded (-want +got):\n%s", diff)
	}
	for _, d := range got {
		m, err := db.Manifest(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		if err := digest.Verify(d, m.Raw); err != nil {
			t.Errorf("recorded %s: %v", d, err)
		}
	}
	if n := len(queryStrings(t, db, `SELECT 1 FROM manifest_children WHERE child_digest LIKE 'md5:%' UNION ALL SELECT 1 FROM manifests WHERE digest = ?`, dIdxMD5)); n != 0 {
		t.Errorf("the index with an md5 child left %d rows", n)
	}
}

// Names and tags a registry sends are held to cip's own rules (those of
// cip validate): the invalid ones are skipped with a warning, never
// stored, so that no snapshot writes them.
func TestHostileNames(t *testing.T) {
	reg := regtest.NewStatic(t)
	long := strings.Repeat("t", 300)
	reg.Catalog("ok/app", "..", "a//b", "x/../../etc", "Upper/app", "sp ace")
	reg.Tags("ok/app", "v1", "v1 latest", "line\nbreak", "nul\x00", long, ".dot", "v2")
	img := ociImage(1)
	d := digest.SHA256(img)
	for _, tag := range []string{"v1", "v2", d} {
		reg.Manifest("ok/app", tag, ociManifest, d, img)
	}
	for _, bad := range []string{"..", "a//b", "x/../../etc", "Upper/app", "sp ace"} {
		reg.Tags(bad, "v1")
		reg.Manifest(bad, "v1", ociManifest, d, img)
	}
	db := mustOpen(t)
	res, err := syncAll(t, db, cipsync.Target{Ref: reg.Host})
	if err != nil {
		t.Fatal(err)
	}
	if got := queryStrings(t, db, `SELECT path FROM repositories ORDER BY path`); !cmp.Equal(got, []string{"ok/app"}) {
		t.Errorf("repositories = %q, want only ok/app", got)
	}
	if got := queryStrings(t, db, `SELECT tag FROM tags ORDER BY tag`); !cmp.Equal(got, []string{"v1", "v2"}) {
		t.Errorf("tags = %q, want v1 v2", got)
	}
	for _, w := range []string{`".."`, `"a//b"`, `"x/../../etc"`, `"Upper/app"`, `"sp ace"`, `"v1 latest"`, `"line\nbreak"`, `"nul\x00"`, `"` + long + `"`, `".dot"`} {
		if !hasWarning(res, w) {
			t.Errorf("no warning names %s; warnings:\n%s", w, strings.Join(res.Warnings, "\n"))
		}
	}
	for _, bad := range []string{"..", "a//b", "x/../../etc"} {
		if n := reg.Count("GET", "/v2/"+bad+"/tags/list"); n != 0 {
			t.Errorf("%q: %d tag listings, want 0 (a refused name is never crawled)", bad, n)
		}
	}
}

// A referrer whose manifest (or a child of it) cannot be verified is left
// out of a look-up with a warning, as a crawl leaves out such a tag: the
// sha256-<hex> index whose child is no manifest is never recorded, nor
// that child; the cosign signature beside them is.
func TestReferrersUnverifiedLeftOut(t *testing.T) {
	reg := regtest.NewStatic(t)
	subject, sig := ociImage(10), ociImage(11)
	dS, dSig := digest.SHA256(subject), digest.SHA256(sig)
	junk := []byte(`{"schemaVersion":2,"layers":"not a list"}`)
	dJ := digest.SHA256(junk)
	fallback := ociIndexOf([2]string{dJ, fmt.Sprint(len(junk))})
	dF := digest.SHA256(fallback)
	reg.Tags("s/app", "v1", referrer.Tag(dS, referrer.TagSchema), referrer.Tag(dS, referrer.CosignSignature))
	reg.Manifest("s/app", "v1", ociManifest, dS, subject)
	reg.Manifest("s/app", dS, ociManifest, dS, subject)
	reg.Manifest("s/app", referrer.Tag(dS, referrer.TagSchema), ociIndex, dF, fallback)
	reg.Manifest("s/app", dF, ociIndex, dF, fallback)
	reg.Manifest("s/app", dJ, ociManifest, dJ, junk)
	reg.Manifest("s/app", referrer.Tag(dS, referrer.CosignSignature), ociManifest, dSig, sig)
	reg.Manifest("s/app", dSig, ociManifest, dSig, sig)

	db := mustOpen(t)
	repo := reg.Host + "/s/app"
	found, err := cipsync.Referrers(context.Background(), db, registry.New(registry.Options{}), []cipsync.Ref{{Repository: repo, Digest: dS}}, cipsync.ReferrerOptions{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(found.Warnings, "\n")
	if !strings.Contains(w, "skipped referrer "+repo+"@"+dF+": child "+dJ+": bad manifest") || !strings.Contains(w, "skipped referrer "+repo+"@"+dJ+": bad manifest") {
		t.Errorf("warnings = %q, want the sha256-<hex> index and its child skipped, the child's error named", found.Warnings)
	}
	rs, err := db.Referrers(context.Background(), repo, dS)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.Digest+" "+r.FoundBy)
	}
	if diff := cmp.Diff([]string{dSig + " cosign-tag"}, got); diff != "" {
		t.Errorf("referrers of the subject (-want +got):\n%s", diff)
	}
	if n := len(queryStrings(t, db, `SELECT digest FROM manifests WHERE digest IN (?, ?)`, dF, dJ)); n != 0 {
		t.Errorf("%d rows of the index or its child recorded, want none", n)
	}
}

// A manifest the look-up reads from the inventory is re-hashed: a copy
// whose bytes no longer verify is fetched again from the repository,
// repaired and reported, and the look-up goes on with the good bytes.
func TestReferrersRepairDamagedManifest(t *testing.T) {
	ctx := context.Background()
	reg := regtest.New(t)
	idx := regtest.Index(t, regtest.Platforms, true)
	idxD := reg.Push(t, "s/app", "v1", idx)
	im, _ := idx.IndexManifest()
	childSig := reg.Sign(t, "s/app", im.Manifests[0].Digest, "payload")
	repo := reg.Host + "/s/app"
	db := mustOpen(t)
	run(t, db, client(), repo)

	// One byte of the index's stored bytes changes on disk.
	raw := db.Path()
	sdb, err := sql.Open("sqlite", "file:"+raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdb.Exec(`UPDATE manifests SET raw = CAST(replace(CAST(raw AS TEXT), '"schemaVersion":2', '"schemaVersion":3') AS BLOB) WHERE digest = ?`, idxD.String()); err != nil {
		t.Fatal(err)
	}
	sdb.Close()
	if _, err := db.Manifest(ctx, idxD.String()); !errors.Is(err, inventory.ErrCorrupt) {
		t.Fatalf("Manifest after the damage = %v, want ErrCorrupt", err)
	}

	found, err := cipsync.Referrers(ctx, db, client(), []cipsync.Ref{{Repository: repo, Digest: idxD.String()}}, cipsync.ReferrerOptions{Jobs: 2})
	if err != nil {
		t.Fatalf("Referrers with a damaged manifest in the inventory = %v, want it fetched again", err)
	}
	if w := strings.Join(found.Warnings, "\n"); !strings.Contains(w, idxD.String()) || !strings.Contains(w, "is corrupt") || !strings.Contains(w, "fetched again from "+repo+" and repaired") {
		t.Errorf("warnings = %q, want the damaged manifest named and repaired", found.Warnings)
	}
	if _, err := db.Manifest(ctx, idxD.String()); err != nil {
		t.Errorf("Manifest after the look-up = %v, want it repaired", err)
	}
	// The child's signature was found through the index's (good) children.
	rs, err := db.Referrers(ctx, repo, im.Manifests[0].Digest.String())
	if err != nil || len(rs) != 1 || rs[0].Digest != childSig.String() {
		t.Errorf("referrers of the child = %+v, %v; want its signature %s", rs, err, childSig)
	}
}

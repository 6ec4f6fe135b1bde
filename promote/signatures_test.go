package promote_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/promote"
	"github.com/cipdev/cip/sign"
)

// signingKey makes a key pair and writes its public half to dir/name.
func signingKey(t *testing.T, dir, name string) *sign.Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := sign.NewKey(name, priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), k.Public.PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

// pushArtifact pushes a's blobs and manifest into path at tag ("" for
// by digest).
func pushArtifact(t *testing.T, reg *regtest.Registry, path, tag string, a sign.Artifact) v1.Hash {
	t.Helper()
	for _, b := range a.Blobs {
		reg.PushBlob(t, path, b.Data, b.MediaType)
	}
	return reg.PushManifest(t, path, tag, a.Manifest, a.MediaType)
}

// signBundle attaches a sigstore bundle referrer by k to path@d, as cosign
// v3 does.
func signBundle(t *testing.T, reg *regtest.Registry, path string, d v1.Hash, k *sign.Key) {
	t.Helper()
	b, err := k.SignBundle(context.Background(), d.String(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	desc := reg.Descriptor(t, path, d)
	a, err := sign.BundleReferrer(b, sign.Subject{Digest: d.String(), MediaType: string(desc.MediaType), Size: desc.Size}, time.Unix(0, 0), sign.CosignSignPredicate, nil)
	if err != nil {
		t.Fatal(err)
	}
	pushArtifact(t, reg, path, "", a)
}

// signSig pushes a cosign .sig image by k for path@d.
func signSig(t *testing.T, reg *regtest.Registry, path string, d v1.Hash, k *sign.Key) {
	t.Helper()
	p, s, err := k.SignSimple(d.String(), reg.Host+"/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := sign.SimpleSigningImage([]sign.Signature{{Payload: p, Sig: s}})
	if err != nil {
		t.Fatal(err)
	}
	pushArtifact(t, reg, path, referrer.Tag(d.String(), referrer.CosignSignature), a)
}

// Staging images signed with key a (a bundle, a .sig), one signed only
// with key b, one unsigned: a policy requiring a refuses the last two,
// naming each with its reason, and the plan holds every check; if-present
// lets the unsigned one pass; the signed ones alone pass, and promote.
func TestPlanSignaturePolicy(t *testing.T) {
	e := newEnv(t)
	e.oneDst = true
	keys := t.TempDir()
	a, b := signingKey(t, keys, "a.pub"), signingKey(t, keys, "b.pub")
	img := func(n int) v1.Image { return regtest.Image(t, int64(100+n), 1, true) }
	bundled := e.src.Push(t, "staging/bundled", "v1", img(1))
	signBundle(t, e.src, "staging/bundled", bundled, a)
	old := e.src.Push(t, "staging/old", "v1", img(2))
	signSig(t, e.src, "staging/old", old, a)
	byB := e.src.Push(t, "staging/byb", "v1", img(3))
	signBundle(t, e.src, "staging/byb", byB, b)
	signSig(t, e.src, "staging/byb", byB, b)
	unsigned := e.src.Push(t, "staging/unsigned", "v1", img(4))

	policy := func(mode string) *sign.Policy {
		t.Helper()
		f := filepath.Join(keys, mode+".yaml")
		src := fmt.Sprintf("rules:\n  - name: staging\n    source: %q\n    mode: %s\n    keys: [a.pub]\n", e.srcName(), mode)
		if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := sign.LoadPolicy(f, sign.PolicyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	all := e.manifestSet(entry{"bundled", bundled, []string{"v1"}}, entry{"old", old, []string{"v1"}},
		entry{"byb", byB, []string{"v1"}}, entry{"unsigned", unsigned, []string{"v1"}})
	ctx := context.Background()
	for _, c := range []struct {
		mode    string
		sel     referrer.Selection
		refused map[string]sign.Reason
	}{
		{"require", referrer.All, map[string]sign.Reason{"byb": sign.UnknownKey, "unsigned": sign.NoSignature}},
		{"require", referrer.Selection{}, map[string]sign.Reason{"byb": sign.UnknownKey, "unsigned": sign.NoSignature}}, // --referrers none still reads them
		{"if-present", referrer.All, map[string]sign.Reason{"byb": sign.UnknownKey}},
	} {
		p, err := promote.MakePlan(ctx, e.db, e.client, all, "test", promote.Options{Jobs: 4, Referrers: c.sel, Signatures: policy(c.mode)})
		var se *promote.SignatureError
		if !errors.As(err, &se) {
			t.Fatalf("%s: MakePlan = %v, want a *SignatureError", c.mode, err)
		}
		got := map[string]sign.Reason{}
		for _, r := range se.Refused {
			got[r.Image] = sign.Reason(r.Reason)
			if r.File == "" || r.Line == 0 || !strings.Contains(err.Error(), r.Image+"@"+r.Digest) {
				t.Errorf("%s: refusal %+v: no file and line, or not named in %v", c.mode, r, err)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(c.refused) {
			t.Errorf("%s: refused %v, want %v\n%v", c.mode, got, c.refused, err)
		}
		if p == nil || len(p.Signatures) != 4 {
			t.Fatalf("%s: plan checks = %+v, want 4", c.mode, p)
		}
		by := map[string]string{}
		for _, s := range p.Signatures {
			by[s.Image] = s.Summary()
		}
		if by["bundled"] != "staging: a.pub (sigstore-bundle)" || by["old"] != "staging: a.pub (simple-signing)" {
			t.Errorf("%s: checks %v", c.mode, by)
		}
		if c.mode == "if-present" && by["unsigned"] != "staging: unsigned (if-present)" {
			t.Errorf("if-present: unsigned check %q", by["unsigned"])
		}
	}
	// The signed ones alone pass, and are promoted with their signatures.
	good := e.manifestSet(entry{"bundled", bundled, []string{"v1"}}, entry{"old", old, []string{"v1"}})
	opts := promote.Options{Jobs: 4, Referrers: referrer.All, Signatures: policy("require")}
	p, err := promote.MakePlan(ctx, e.db, e.client, good, "test", opts)
	if err != nil {
		t.Fatalf("MakePlan(signed by a) = %v", err)
	}
	if len(p.Signatures) != 2 || !p.Signatures[0].Signed || !p.Signatures[1].Signed {
		t.Errorf("checks %+v", p.Signatures)
	}
	if _, err := promote.Promote(ctx, e.db, e.client, p, opts); err != nil {
		t.Fatal(err)
	}
	if got := liveReferrers(t, e.d1, "prod/bundled", bundled); len(got) != 1 {
		t.Errorf("prod/bundled referrers %v, want the bundle", got)
	}
	// Promoted: the next plan writes nothing, so it checks nothing.
	p, err = promote.MakePlan(ctx, e.db, e.client, good, "test", opts)
	if err != nil || len(p.Signatures) != 0 {
		t.Errorf("second MakePlan = %+v, %v; want no checks", p.Signatures, err)
	}
}

// --sign-key: one signature per digest, made in the first destination
// (by name) and copied to the second as a referrer; it verifies with the key
// and claims the identity; a second run signs and copies nothing.
func TestPromoteSignKey(t *testing.T) {
	e := newEnv(t)
	k := signingKey(t, t.TempDir(), "release.pub")
	idx := regtest.Index(t, regtest.Platforms, true)
	idxD := e.src.Push(t, "staging/app", "v1", idx)
	imgD := e.src.Push(t, "staging/tool", "v2", regtest.Image(t, 300, 1, false))
	// Staging's own signature travels to the same sha256-<hex> indexes
	// cip adds its signature to (repositories this run creates).
	signBundle(t, e.src, "staging/app", idxD, signingKey(t, t.TempDir(), "staging.pub"))
	set := e.manifestSet(entry{"app", idxD, []string{"v1"}}, entry{"tool", imgD, []string{"v2"}})
	ctx := context.Background()
	opts := promote.Options{Jobs: 4, Referrers: referrer.All,
		Signing: &promote.Signing{Signer: k, Identity: "registry.k8s.io/{image}", Version: "v9.9.9-test"}}
	run := func() *promote.Report {
		t.Helper()
		p, err := promote.MakePlan(ctx, e.db, e.client, set, "test", opts)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := promote.Promote(ctx, e.db, e.client, p, opts)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := run()
	if len(rep.Signatures) != 2 {
		t.Fatalf("signatures %+v, want 2", rep.Signatures)
	}
	trust := &sign.Trust{Keys: []*sign.PublicKey{k.Public}}
	for i, c := range []struct {
		image, path string
		d           v1.Hash
	}{{"app", "app", idxD}, {"tool", "tool", imgD}} {
		s := rep.Signatures[i]
		if s.Image != c.image || !s.Signed || s.CopiedTo != 1 || s.Destination != min(e.d1Name(), e.d2Name()) || s.Identity != "registry.k8s.io/"+c.image || s.Error != "" {
			t.Errorf("signature %d = %+v", i, s)
		}
		for _, reg := range []struct {
			r    *regtest.Registry
			repo string
		}{{e.d1, "prod/" + c.path}, {e.d2, "mirror/prod/" + c.path}} {
			live := liveReferrers(t, reg.r, reg.repo, c.d)
			if want := map[string]int{"app": 2, "tool": 1}[c.image]; len(live) != want {
				t.Errorf("%s@%s referrers %v, want %d (staging's and cip's)", reg.repo, c.d, live, want)
			}
			if live[s.Referrer] != sign.BundleMediaType {
				t.Errorf("%s@%s referrers %v lack the signature %s", reg.repo, c.d, live, s.Referrer)
				continue
			}
			raw := manifestBytes(t, reg.r, reg.repo, s.Referrer)
			sigs, err := sign.Read(ctx, s.Referrer, raw, func(_ context.Context, d string, _ int64) ([]byte, error) {
				return blobBytes(t, reg.r, reg.repo, d), nil
			})
			if err != nil || len(sigs) != 1 {
				t.Fatalf("read %s: %v, %d signatures", s.Referrer, err, len(sigs))
			}
			v, err := trust.Verify(sigs[0], c.d.String())
			if err != nil || v.Identity != "registry.k8s.io/"+c.image {
				t.Errorf("%s: Verify = %+v, %v", reg.repo, v, err)
			}
			if !strings.Contains(string(raw), `"dev.cip.version":"v9.9.9-test"`) {
				t.Errorf("%s: the referrer has no version annotation: %s", reg.repo, raw)
			}
		}
	}
	e.d1.Reset()
	e.d2.Reset()
	again := run()
	// One blob read per digest, the bundle cip put, in whichever
	// destination is first; staging's bundle on app costs none.
	if n := e.d1.Count("GET blob") + e.d2.Count("GET blob"); n != 2 {
		t.Errorf("second run: %d blob GETs, want 2 (cip's own bundle per digest)", n)
	}
	for _, s := range again.Signatures {
		if s.Signed || s.CopiedTo != 0 || s.Referrer != rep.Signatures[0].Referrer && s.Referrer != rep.Signatures[1].Referrer {
			t.Errorf("second run: %+v, want the first run's signature, not signed again", s)
		}
	}
	if len(again.Signatures) != 2 || again.Totals.ManifestsPut != 0 {
		t.Errorf("second run: %d records, %d manifests put; want 2, 0", len(again.Signatures), again.Totals.ManifestsPut)
	}
}

func blobBytes(t *testing.T, reg *regtest.Registry, repo, digest string) []byte {
	t.Helper()
	d, err := name.NewDigest(reg.Host + "/" + repo + "@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	l, err := remote.Layer(d)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func manifestBytes(t *testing.T, reg *regtest.Registry, repo, digest string) []byte {
	t.Helper()
	d, err := name.NewDigest(reg.Host + "/" + repo + "@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(d)
	if err != nil {
		t.Fatal(err)
	}
	return desc.Manifest
}

// --attest-promotion: a promotion record beside each signature, once per
// digest, copied like it; it verifies as an attestation with the
// promotion predicate (and is no image signature); a second run makes
// none.
func TestPromoteAttestation(t *testing.T) {
	e := newEnv(t)
	k := signingKey(t, t.TempDir(), "release.pub")
	d := e.src.Push(t, "staging/tool", "v2", regtest.Image(t, 300, 1, true))
	set := e.manifestSet(entry{"tool", d, []string{"v2"}})
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	opts := promote.Options{Jobs: 4, Referrers: referrer.All,
		Signing: &promote.Signing{Signer: k, Version: "v9.9.9-test", Attest: true, Now: func() time.Time { return at }}}
	run := func() *promote.Report {
		t.Helper()
		p, err := promote.MakePlan(ctx, e.db, e.client, set, "test", opts)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := promote.Promote(ctx, e.db, e.client, p, opts)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := run()
	if len(rep.Signatures) != 1 || !rep.Signatures[0].Signed || !rep.Signatures[0].Attested || rep.Signatures[0].Attestation == "" {
		t.Fatalf("records %+v", rep.Signatures)
	}
	s := rep.Signatures[0]
	trust := k.Trust()
	for _, reg := range []struct {
		r    *regtest.Registry
		repo string
	}{{e.d1, "prod/tool"}, {e.d2, "mirror/prod/tool"}} {
		live := liveReferrers(t, reg.r, reg.repo, d)
		if len(live) != 2 || live[s.Referrer] == "" || live[s.Attestation] == "" {
			t.Fatalf("%s referrers %v, want the signature and the record", reg.repo, live)
		}
		raw := manifestBytes(t, reg.r, reg.repo, s.Attestation)
		sigs, err := sign.Read(ctx, s.Attestation, raw, func(_ context.Context, dg string, _ int64) ([]byte, error) {
			return blobBytes(t, reg.r, reg.repo, dg), nil
		})
		if err != nil || len(sigs) != 1 {
			t.Fatalf("read %s: %v", s.Attestation, err)
		}
		if _, err := trust.VerifyAttestation(sigs[0], d.String(), sign.PromotionPredicate); err != nil {
			t.Errorf("%s: the record does not verify: %v", reg.repo, err)
		}
		if _, err := trust.Verify(sigs[0], d.String()); err == nil {
			t.Errorf("%s: the record verifies as an image signature", reg.repo)
		}
		if !strings.Contains(string(raw), sign.PromotionPredicate) {
			t.Errorf("%s: record referrer %s names no promotion predicate", reg.repo, raw)
		}
		var bundle struct {
			DSSEEnvelope struct{ Payload []byte } `json:"dsseEnvelope"`
		}
		var st struct {
			Predicate sign.Promotion `json:"predicate"`
		}
		if err := json.Unmarshal(sigs[0].Bundle, &bundle); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(bundle.DSSEEnvelope.Payload, &st); err != nil {
			t.Fatal(err)
		}
		want := sign.Promotion{Source: e.srcName() + "/tool", Destinations: []string{e.d1Name() + "/tool", e.d2Name() + "/tool"}, Time: at, CipVersion: "v9.9.9-test"}
		slices.Sort(want.Destinations)
		if diff := cmp.Diff(want, st.Predicate); diff != "" {
			t.Errorf("%s: promotion record (-want +got):\n%s", reg.repo, diff)
		}
	}
	again := run()
	if len(again.Signatures) != 1 || again.Signatures[0].Attested || again.Signatures[0].Signed || again.Signatures[0].Attestation != s.Attestation || again.Totals.ManifestsPut != 0 {
		t.Errorf("second run %+v (%d manifests put), want nothing made", again.Signatures, again.Totals.ManifestsPut)
	}
}

package registry_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/registry"
)

const emptyConfig = `{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}`

// artifact is an OCI artifact manifest referring to subject (a manifest of
// size subjectSize): its artifactType, the empty config, one layer.
func artifact(artifactType, subject string, subjectSize, n int) (raw []byte, digest string) {
	s := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":%q,"config":%s,`+
		`"layers":[{"mediaType":%q,"digest":"sha256:%064x","size":%d}],`+
		`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d}}`,
		artifactType, emptyConfig, artifactType, n+1, n+1, subject, subjectSize)
	return []byte(s), fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(s)))
}

// The referrers API of a registry that serves it: every page followed,
// the artifactType filter applied, the OCI-Subject of each PUT reported.
func TestReferrersPagesAndFilter(t *testing.T) {
	ctx := context.Background()
	reg := regtest.NewReferrers(t, 2)
	c := anonymousClient()
	repo := parse(t, c, reg.Host+"/staging/app")
	subjectRaw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + emptyConfig + `,"layers":[]}`)
	subject, err := c.PutManifest(ctx, repo, "v1", "application/vnd.oci.image.manifest.v1+json", subjectRaw)
	if err != nil {
		t.Fatal(err)
	}
	var sigs, sboms []string
	for i := range 5 {
		at := "application/vnd.dev.sigstore.bundle.v0.3+json"
		if i%2 == 1 {
			at = "application/spdx+json"
		}
		raw, dg := artifact(at, subject, len(subjectRaw), i)
		got, gotSubject, err := c.PutReferrer(ctx, repo, dg, "application/vnd.oci.image.manifest.v1+json", raw)
		if err != nil {
			t.Fatal(err)
		}
		if got != dg || gotSubject != subject {
			t.Fatalf("PutReferrer = %s, OCI-Subject %q; want %s, %s", got, gotSubject, dg, subject)
		}
		if i%2 == 1 {
			sboms = append(sboms, dg)
		} else {
			sigs = append(sigs, dg)
		}
	}
	digests := func(rs []registry.Referrer) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Digest)
		}
		slices.Sort(out)
		return out
	}
	reg.Reset()
	all, err := c.Referrers(ctx, repo, subject, "")
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(append(append([]string{}, sigs...), sboms...)))
	if diff := cmp.Diff(want, digests(all)); diff != "" {
		t.Errorf("Referrers (-want +got):\n%s", diff)
	}
	if n := reg.Count("GET referrers"); n != 3 {
		t.Errorf("GET referrers = %d, want 3 (5 referrers, pages of 2)", n)
	}
	for _, r := range all {
		if !strings.Contains(r.ArtifactType, "+json") {
			t.Errorf("referrer %s: artifactType %q", r.Digest, r.ArtifactType)
		}
	}
	onlySBOMs, err := c.Referrers(ctx, repo, subject, "application/spdx+json")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(sboms)
	if diff := cmp.Diff(sboms, digests(onlySBOMs)); diff != "" {
		t.Errorf("Referrers(artifactType=spdx) (-want +got):\n%s", diff)
	}
	none, err := c.Referrers(ctx, repo, "sha256:"+strings.Repeat("0", 64), "")
	if err != nil || len(none) != 0 {
		t.Errorf("Referrers(unknown subject) = %v, %v; want none", none, err)
	}
}

// A registry without the API (404, as docker-registry 2.8 answers) is
// ErrNoReferrersAPI; a PUT there has no OCI-Subject.
func TestReferrersNoAPI(t *testing.T) {
	ctx := context.Background()
	reg := regtest.New(t)
	c := anonymousClient()
	repo := parse(t, c, reg.Host+"/staging/app")
	raw, dg := artifact("application/spdx+json", "sha256:"+strings.Repeat("1", 64), 10, 0)
	_, subject, err := c.PutReferrer(ctx, repo, dg, "application/vnd.oci.image.manifest.v1+json", raw)
	if err != nil || subject != "" {
		t.Fatalf("PutReferrer = OCI-Subject %q, %v; want none", subject, err)
	}
	_, err = c.Referrers(ctx, repo, "sha256:"+strings.Repeat("1", 64), "")
	if !errors.Is(err, registry.ErrNoReferrersAPI) {
		t.Fatalf("Referrers = %v, want ErrNoReferrersAPI", err)
	}
}

// A listing that never ends is cut off.
func TestReferrersEndlessPages(t *testing.T) {
	reg := regtest.New(t)
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.Contains(r.URL.Path, "/referrers/") {
			return false
		}
		w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
		w.Header().Set("Link", `<`+r.URL.Path+`?again=1>; rel="next"`)
		fmt.Fprint(w, `{"schemaVersion":2,"manifests":[]}`)
		return true
	})
	c := anonymousClient()
	_, err := c.Referrers(context.Background(), parse(t, c, reg.Host+"/a"), "sha256:"+strings.Repeat("2", 64), "")
	if err == nil || !strings.Contains(err.Error(), "pages") {
		t.Fatalf("Referrers = %v, want a cut-off after too many pages", err)
	}
}

func TestParseReferrers(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		name, raw string
		want      int
		wantErr   bool
	}{
		{"index", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"m","digest":"` + d + `","size":3,"artifactType":"x/y"}]}`, 1, false},
		{"duplicates dropped", `{"manifests":[{"digest":"` + d + `","size":3},{"digest":"` + d + `","size":3}]}`, 1, false},
		{"empty", `{"schemaVersion":2,"manifests":[]}`, 0, false},
		{"bad digest", `{"manifests":[{"digest":"sha256:zz","size":3}]}`, 0, true},
		{"negative size", `{"manifests":[{"digest":"` + d + `","size":-1}]}`, 0, true},
		{"an image", `{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}`, 0, true},
		{"not json", `<html>`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := registry.ParseReferrers([]byte(tt.raw))
			if (err != nil) != tt.wantErr || len(got) != tt.want {
				t.Errorf("ParseReferrers(%s) = %d entries, %v; want %d, error %v", tt.raw, len(got), err, tt.want, tt.wantErr)
			}
		})
	}
}

// FuzzParseReferrers: any body is refused or gives valid, unique digests.
func FuzzParseReferrers(f *testing.F) {
	d := "sha256:" + strings.Repeat("b", 64)
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"m","digest":"` + d + `","size":3}]}`))
	f.Add([]byte(`{"manifests":[{"digest":"` + d + `","size":3,"annotations":{"a":"b"}}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := registry.ParseReferrers(raw)
		if err != nil {
			return
		}
		if len(got) > registry.MaxReferrers {
			t.Fatalf("%d referrers, more than %d", len(got), registry.MaxReferrers)
		}
		seen := map[string]bool{}
		for _, r := range got {
			if !strings.Contains(r.Digest, ":") || seen[r.Digest] || r.Size < 0 {
				t.Fatalf("referrer %+v: bad or repeated digest, or negative size", r)
			}
			seen[r.Digest] = true
		}
	})
}

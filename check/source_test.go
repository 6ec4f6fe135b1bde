package check

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/registry"
	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// onlineFixture starts a registry with staging/app:v1 (an image of two
// 1 KiB layers), staging/app@<untagged image> and staging/multi:v1 (an
// index), and returns an Inventory for it and the thin-manifest registries.
func onlineFixture(t *testing.T) (inv *Inventory, regsYAML string, tagged, untagged, index string, reg *regtest.Registry) {
	t.Helper()
	reg = regtest.New(t)
	tagged = reg.Push(t, "staging/app", "v1", regtest.Image(t, 1024, 2, false)).String()
	untagged = reg.Push(t, "staging/app", "", regtest.Image(t, 100, 1, true)).String()
	index = reg.Push(t, "staging/multi", "v1", regtest.Index(t, regtest.Platforms, true)).String()
	db, err := inventory.Open(context.Background(), filepath.Join(t.TempDir(), "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	inv = &Inventory{DB: db, Client: registry.New(registry.Options{})}
	regsYAML = "registries:\n- name: " + reg.Host + "/staging\n  src: true\n- name: " + reg.Host + "/prod\n"
	return inv, regsYAML, tagged, untagged, index, reg
}

func TestSourcePresence(t *testing.T) {
	inv, r, tagged, untagged, _, reg := onlineFixture(t)
	base := map[string]string{"foo": img("app", dig(dA, "v0"))} // dA is not in the registry: already promoted, not checked again
	head := map[string]string{"foo": img("app", dig(dA, "v0"), dig(tagged, "v1"), dig(untagged, "v2"), dig(dB, "v3")) + img("gone", dig(dC, "v1"))}
	rf := map[string]string{"foo": r}
	got := runCheckMulti(t, SourcePresence{Inventory: inv}, base, head, rf, rf)
	want := []brief{
		{Error, 6, `image "app": digest ` + dB + ` is not in the source repository ` + reg.Host + `/staging/app`},
		{Error, 9, `image "gone": digest ` + dC + ` is not in the source repository ` + reg.Host + `/staging/gone`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SourcePresence findings (-want +got):\n%s", diff)
	}
	// Only the source repositories of new digests were listed.
	if n := reg.Count("GET tags"); n != 2 {
		t.Errorf("GET tags requests = %d, want 2 (staging/app, staging/gone)", n)
	}
	if (SourcePresence{}).Applies(&Change{}) {
		t.Error("SourcePresence applies offline")
	}
}

func TestImageSize(t *testing.T) {
	inv, r, tagged, untagged, index, _ := onlineFixture(t)
	rf := map[string]string{"foo": r}
	head := map[string]string{"foo": img("app", dig(tagged, "v1"), dig(untagged, "v2")) + img("multi", dig(index, "v1"))}
	tests := []struct {
		name string
		max  int64
		want []string // substrings, one per finding
	}{
		{name: "under the limit", max: 1 << 20},
		{name: "only the large image", max: 3000, want: []string{`image "app": digest ` + tagged + ` is 3.`}},
		{name: "index: its largest platform image", max: 1200, want: []string{
			`image "app": digest ` + tagged + ` is`,
			`image "multi": digest ` + index + `: platform image sha256:`,
		}},
		{name: "untagged digest fetched by digest", max: 500, want: []string{
			`image "app": digest ` + tagged + ` is`,
			`image "app": digest ` + untagged + ` is`,
			`image "multi": digest ` + index + `: platform image sha256:`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := &Inventory{DB: inv.DB, Client: inv.Client}
			got := runCheckMulti(t, ImageSize{Inventory: inv, Max: tc.max}, map[string]string{"foo": "-"}, head, nil, rf)
			if len(got) != len(tc.want) {
				t.Fatalf("ImageSize(max %d) = %v, want %d findings", tc.max, got, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i].Message, w) || got[i].Severity != Error {
					t.Errorf("finding %d = %+v, want an error containing %q", i, got[i], w)
				}
			}
		})
	}
}

// An OCI artifact that is not an image (a Helm chart: its own config and
// layer media types) is sized like one, and named an artifact.
func TestImageSizeArtifact(t *testing.T) {
	inv, r, _, _, _, reg := onlineFixture(t)
	chart := reg.Attach(t, "staging/chart", v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}, Size: 1},
		"application/vnd.cncf.helm.config.v1+json", strings.Repeat("chart bytes ", 100))
	reg.Tag(t, "staging/chart", chart, "1.0.0")
	rf := map[string]string{"foo": r}
	head := map[string]string{"foo": img("chart", dig(chart.String(), "1.0.0"))}
	got := runCheckMulti(t, ImageSize{Inventory: inv, Max: 500}, map[string]string{"foo": "-"}, head, nil, rf)
	if len(got) != 1 || !strings.Contains(got[0].Message, `image "chart": digest `+chart.String()+` (an artifact, application/vnd.cncf.helm.config.v1+json) is 1.`) {
		t.Errorf("ImageSize of a Helm chart = %+v, want one finding naming the artifact", got)
	}
	if got := runCheckMulti(t, ImageSize{Inventory: inv, Max: 1 << 20}, map[string]string{"foo": "-"}, head, nil, rf); len(got) != 0 {
		t.Errorf("ImageSize of a small Helm chart = %+v, want none", got)
	}
}

// A digest whose size the inventory does not have is left alone; a failure
// to read the inventory is an error, not an unknown size.
func TestImageSizeTellsUnknownFromError(t *testing.T) {
	ctx := context.Background()
	rf := map[string]string{"foo": "registries:\n- name: src.example/staging\n  src: true\n- name: dst.example/prod\n"}
	c := &Change{Head: mustState(t, writeThin(t, map[string]string{"foo": img("app", dig(dA, "v1"))}, rf))}
	db, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	held := func() *Inventory {
		inv := &Inventory{DB: db}
		// The source holds dA (as a sync would have found), with no size recorded.
		inv.once.Do(func() { inv.present = map[repoDigest]bool{{"src.example/staging/app", dA}: true} })
		return inv
	}
	if got, err := (ImageSize{Inventory: held(), Max: 1}).Run(ctx, c); err != nil || len(got) != 0 {
		t.Errorf("ImageSize of a digest without a recorded size = %v, %v; want no finding, no error", got, err)
	}
	db.Close()
	if got, err := (ImageSize{Inventory: held(), Max: 1}).Run(ctx, c); err == nil || !strings.Contains(err.Error(), dA) {
		t.Errorf("ImageSize on a closed inventory = %v, %v; want an error naming %s", got, err, dA)
	}
}

package check

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFormatImages(t *testing.T) {
	canonical := "- name: app\n  dmap:\n    \"" + dA + "\": [\"v1\"]\n    \"" + dB + "\": [\"v2\", \"v2.0\"]\n- name: web\n  dmap:\n    \"" + dC + "\": []\n"
	tests := []struct {
		name  string
		in    string
		plain bool
		want  string
	}{
		{name: "canonical", in: canonical, want: canonical},
		{name: "unsorted, unquoted, split entries, block tags",
			in:   "- name: web\n  dmap:\n    " + dC + ": []\n\n- name: app\n  dmap:\n    " + dB + ":\n    - v2.0\n    - v2\n- name: app\n  dmap:\n    \"" + dA + "\": [v1]\n",
			want: canonical},
		{name: "leading comments kept, inner dropped",
			in:   "# Owners: sig-release\n#   see README\n\n- name: web # the web\n  dmap:\n    # old\n    \"" + dC + "\": []\n- name: app\n  dmap:\n    \"" + dA + "\": [\"v1\"]\n    \"" + dB + "\": [\"v2.0\", \"v2\"]\n",
			want: "# Owners: sig-release\n#   see README\n\n" + canonical},
		{name: "no images, comment", in: "# No images yet\n", want: "# No images yet\n"},
		{name: "no images, empty list", in: "[]\n", want: "[]\n"},
		{name: "plain manifest: registries kept, images last",
			plain: true,
			in:    "# plain\nimages:\n- name: web\n  dmap:\n    " + dC + ": []\n- name: app\n  dmap:\n    \"" + dA + "\": [\"v1\"]\n    \"" + dB + "\": [\"v2\", \"v2.0\"]\nregistries: # srcs\n- name: gcr.io/s\n  src: true\n",
			want:  "# plain\nregistries: # srcs\n- name: gcr.io/s\n  src: true\nimages:\n" + canonical},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FormatImages([]byte(tc.in), tc.plain)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("FormatImages (-want +got):\n%s", diff)
			}
			// Idempotent.
			again, err := FormatImages(got, tc.plain)
			if err != nil || string(again) != string(got) {
				t.Errorf("FormatImages twice = %q, %v; want %q", again, err, got)
			}
		})
	}
}

func TestFormatCheck(t *testing.T) {
	canonical := img("app", dig(dA, "v1"), dig(dB, "v2"))
	messy := "- name: app\n  dmap:\n    \"" + dB + "\": [\"v2\"]\n    \"" + dA + "\": [\"v1\"]\n"
	tests := []struct {
		name       string
		base, head string
		want       []brief
	}{
		{name: "canonical", base: messy, head: canonical},
		{name: "untouched messy file", base: messy, head: messy},
		{name: "touched messy file", base: img("app", dig(dA, "v1")), head: messy,
			want: []brief{{Warning, 3, "not in canonical form; run cip fmt"}}},
		{name: "invalid file left to validation", base: messy, head: messy + img("x", `    "sha256:1": []`+"\n")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := runCheck(t, Format{}, tc.base, tc.head)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Format findings (-want +got):\n%s", diff)
			}
		})
	}
}

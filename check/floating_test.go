package check

import (
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFloatingTags(t *testing.T) {
	tests := []struct {
		name       string
		pattern    string
		base, head string
		want       []brief
	}{
		{name: "version tags", base: img("app", dig(dA, "v1")), head: img("app", dig(dA, "v1"), dig(dB, "v2"))},
		{name: "new latest", base: img("app", dig(dA, "v1")), head: img("app", dig(dA, "v1"), dig(dB, "v2", "latest")),
			want: []brief{{Error, 4, `image "app": digest ` + dB + `: tag "latest" is floating; a promoted tag names one digest forever, use a version tag`}}},
		{name: "latest already in base", base: img("app", dig(dA, "v1", "latest")), head: img("app", dig(dA, "v1", "latest"), dig(dB, "v2"))},
		{name: "pattern", pattern: `^v\d+$`, base: img("app", dig(dA, "v1.0.0")), head: img("app", dig(dA, "v1.0.0"), dig(dB, "v2", "v2.0.0")),
			want: []brief{{Error, 4, `image "app": digest ` + dB + `: tag "v2" is floating; a promoted tag names one digest forever, use a version tag`}}},
		{name: "no base", base: "-", head: img("app", dig(dA, "latest")),
			want: []brief{{Error, 3, `image "app": digest ` + dA + `: tag "latest" is floating; a promoted tag names one digest forever, use a version tag`}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var re *regexp.Regexp
			if tc.pattern != "" {
				re = regexp.MustCompile(tc.pattern)
			}
			got := runCheck(t, FloatingTags{Pattern: re}, tc.base, tc.head)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("FloatingTags findings (-want +got):\n%s", diff)
			}
		})
	}
}

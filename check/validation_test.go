package check

import (
	"strings"
	"testing"
)

func TestValidation(t *testing.T) {
	bad := `    "sha256:abc": ["v1"]` + "\n"
	tests := []struct {
		name       string
		base, head string
		headRegs   string     // the head's promoter manifest, when not the default
		want       []Severity // one per finding
		contains   string
	}{
		{name: "valid", base: img("app", dig(dA, "v1")), head: img("app", dig(dA, "v1"))},
		{name: "introduced", base: img("app", dig(dA, "v1")), head: img("app", dig(dA, "v1"), bad), want: []Severity{Error}, contains: "invalid digest"},
		{name: "already in base, line moved", base: img("app", bad), head: img("zzz", dig(dB, "v0")) + img("app", bad), want: []Severity{Warning}, contains: "(already in the base)"},
		{name: "bad tag", base: img("app", dig(dA, "v1")), head: img("app", dig(dA, "-v1")), want: []Severity{Error}, contains: "tag"},
		{name: "bad yaml", base: img("app", dig(dA, "v1")), head: "- name: app\n  dmap: [\n", want: []Severity{Error}},
		{name: "tag conflict left to tag-conflict", base: img("app", dig(dA, "v1")), head: img("app", dig(dA, "v1"), dig(dB, "v1"))},
		{name: "a notice is a warning", base: img("app", dig(dA, "v1")), head: img("app", dig(dA, "v1")), headRegs: regs + "imagesPath: ../../images/elsewhere.yaml\n", want: []Severity{Warning}, contains: "deprecated and ignored"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var headRegs map[string]string
			if tc.headRegs != "" {
				headRegs = map[string]string{"foo": tc.headRegs}
			}
			got := runCheckMulti(t, Validation{}, map[string]string{"foo": tc.base}, map[string]string{"foo": tc.head}, nil, headRegs)
			if len(got) != len(tc.want) {
				t.Fatalf("Validation findings = %v, want %d", got, len(tc.want))
			}
			for i, f := range got {
				if f.Severity != tc.want[i] || !strings.Contains(f.Message, tc.contains) || f.Line == 0 && tc.name != "bad yaml" {
					t.Errorf("finding %d = %+v, want severity %s, a line, message containing %q", i, f, tc.want[i], tc.contains)
				}
			}
		})
	}
}

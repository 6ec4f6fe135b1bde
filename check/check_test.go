package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Digests used by the fixtures.
var (
	dA = "sha256:" + strings.Repeat("a", 64)
	dB = "sha256:" + strings.Repeat("b", 64)
	dC = "sha256:" + strings.Repeat("c", 64)
)

const regs = `registries:
- name: gcr.io/staging
  src: true
- name: us.gcr.io/prod
- name: eu.gcr.io/prod
`

// writeThin writes a thin-manifest directory: manifests maps a manifest
// name to its images.yaml; every manifest gets regsFor(name) (regs by
// default).
func writeThin(t *testing.T, manifests map[string]string, regsFor map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, images := range manifests {
		r := regs
		if x, ok := regsFor[name]; ok {
			r = x
		}
		write(t, filepath.Join(dir, "manifests", name, "promoter-manifest.yaml"), r)
		write(t, filepath.Join(dir, "images", name, "images.yaml"), images)
	}
	return dir
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustState(t *testing.T, dir string) *State {
	t.Helper()
	s, err := LoadState(Source{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// brief is a finding without its file, for comparisons.
type brief struct {
	Severity Severity
	Line     int
	Message  string
}

// runCheck runs one check on base and head images of one manifest "foo"
// (base "" means no base) and returns its findings, sorted.
func runCheck(t *testing.T, ch Check, base, head string) []brief {
	t.Helper()
	return runCheckMulti(t, ch, map[string]string{"foo": base}, map[string]string{"foo": head}, nil, nil)
}

func runCheckMulti(t *testing.T, ch Check, base, head map[string]string, baseRegs, headRegs map[string]string) []brief {
	t.Helper()
	c := &Change{Head: mustState(t, writeThin(t, head, headRegs))}
	if base != nil && base["foo"] != "-" {
		c.Base = mustState(t, writeThin(t, base, baseRegs))
	}
	fs, err := Run(context.Background(), c, []Check{ch}, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []brief
	for _, f := range fs {
		if f.Check != ch.Name() {
			t.Errorf("finding of check %q, want %q", f.Check, ch.Name())
		}
		out = append(out, brief{f.Severity, f.Line, f.Message})
	}
	return out
}

func img(name string, dmap ...string) string {
	return "- name: " + name + "\n  dmap:\n" + strings.Join(dmap, "")
}

func dig(d string, tags ...string) string {
	q := make([]string, len(tags))
	for i, t := range tags {
		q[i] = `"` + t + `"`
	}
	return `    "` + d + `": [` + strings.Join(q, ", ") + "]\n"
}

func TestSelect(t *testing.T) {
	all := All(Options{})
	names := func(cs []Check) string {
		var n []string
		for _, c := range cs {
			n = append(n, c.Name())
		}
		return strings.Join(n, ",")
	}
	tests := []struct {
		name       string
		only, skip []string
		want       string
		wantErr    bool
	}{
		{name: "all", want: "validation,image-removal,tag-move,tag-conflict,destination-removal,source-presence,image-size,floating-tags,format"},
		{name: "only", only: []string{"tag-move", "validation"}, want: "validation,tag-move"},
		{name: "skip", skip: []string{"format", "source-presence", "image-size"}, want: "validation,image-removal,tag-move,tag-conflict,destination-removal,floating-tags"},
		{name: "unknown", only: []string{"nope"}, wantErr: true},
		{name: "unknown skip", skip: []string{"nope"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Select(all, tc.only, tc.skip)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Select(%v, %v) error = %v, want error %v", tc.only, tc.skip, err, tc.wantErr)
			}
			if err == nil && names(got) != tc.want {
				t.Errorf("Select(%v, %v) = %s, want %s", tc.only, tc.skip, names(got), tc.want)
			}
		})
	}
}

func TestRunStrictAndApplies(t *testing.T) {
	base := writeThin(t, map[string]string{"foo": img("app", dig(dA, "v1"))}, nil)
	head := writeThin(t, map[string]string{"foo": "- name: app\n  dmap:\n    \"" + dA + "\": [\"v1\"]\n    \"" + dB + "\": [\"v2\"]\n- name: aaa\n  dmap: {}\n"}, nil)
	c := &Change{Base: mustState(t, base), Head: mustState(t, head)}
	for _, strict := range []bool{false, true} {
		fs, err := Run(context.Background(), c, All(Options{}), strict)
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != 1 || fs[0].Check != "format" {
			t.Fatalf("Run(strict=%v) = %+v, want one format finding", strict, fs)
		}
		want := Warning
		if strict {
			want = Error
		}
		if errs, _ := Count(fs); fs[0].Severity != want || (errs > 0) != strict {
			t.Errorf("Run(strict=%v) severity = %s, want %s", strict, fs[0].Severity, want)
		}
	}
	// Without a base, the checks that compare do not apply.
	fs, err := Run(context.Background(), &Change{Head: c.Head}, []Check{ImageRemoval{}, TagMove{}, DestinationRemoval{}}, false)
	if err != nil || len(fs) != 0 {
		t.Errorf("Run without base = %v, %v; want no findings", fs, err)
	}
}

func TestImageRemoval(t *testing.T) {
	tests := []struct {
		name       string
		base, head string
		want       []brief
	}{
		{name: "unchanged", base: img("app", dig(dA, "v1")), head: img("app", dig(dA, "v1"))},
		{name: "added", base: img("app", dig(dA, "v1")), head: img("app", dig(dA, "v1"), dig(dB, "v2"))},
		{name: "digest removed", base: img("app", dig(dA, "v1"), dig(dB, "v2")), head: img("app", dig(dA, "v1")),
			want: []brief{{Error, 1, `image "app": digest ` + dB + ` (tags v2) removed from eu.gcr.io/prod and 1 other destination; promotion is add-only, the image stays in production`}}},
		{name: "image removed", base: img("app", dig(dA)) + img("web", dig(dB, "v1")), head: img("web", dig(dB, "v1")),
			want: []brief{{Error, 0, `image "app": digest ` + dA + ` (untagged) removed from eu.gcr.io/prod and 1 other destination; promotion is add-only, the image stays in production`}}},
		{name: "tag removed", base: img("app", dig(dA, "v1", "stable")), head: img("app", dig(dA, "v1")),
			want: []brief{{Error, 1, `image "app": tag "stable" removed from digest ` + dA + ` in eu.gcr.io/prod and 1 other destination; promotion is add-only, the tag stays in production`}}},
		{name: "reordered and requoted", base: img("app", dig(dA, "v1"), dig(dB, "v2")), head: "- name: app\n  dmap:\n    " + dB + ": [v2]\n    " + dA + ": [v1]\n"},
		{name: "conflicting digest removed", base: img("app", dig(dA, "v1"), dig(dB, "v1")), head: img("app", dig(dA, "v1")),
			want: []brief{{Warning, 1, `image "app": digest ` + dB + ` (tags v1) removed from eu.gcr.io/prod and 1 other destination; it was in a tag conflict in the base, so removing it resolves the conflict`}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := runCheck(t, ImageRemoval{}, tc.base, tc.head)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ImageRemoval findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestImageRemovalMovedBetweenManifests(t *testing.T) {
	// An image moved to another manifest with the same destinations is
	// still promoted: no finding. One moved to a manifest with fewer
	// destinations is removed from the others.
	base := map[string]string{"foo": img("app", dig(dA, "v1")), "bar": "# none\n"}
	headSame := map[string]string{"foo": "# none\n", "bar": img("app", dig(dA, "v1"))}
	if got := runCheckMulti(t, ImageRemoval{}, base, headSame, nil, nil); len(got) != 0 {
		t.Errorf("moved with the same destinations: %v, want none", got)
	}
	fewer := map[string]string{"bar": "registries:\n- name: gcr.io/staging\n  src: true\n- name: us.gcr.io/prod\n"}
	got := runCheckMulti(t, ImageRemoval{}, base, headSame, nil, fewer)
	if len(got) != 1 || !strings.Contains(got[0].Message, "removed from eu.gcr.io/prod;") {
		t.Errorf("moved to fewer destinations: %v, want removal from eu.gcr.io/prod", got)
	}
}

func TestTagMove(t *testing.T) {
	tests := []struct {
		name       string
		base, head string
		want       []brief
	}{
		{name: "unchanged", base: img("app", dig(dA, "v1")), head: img("app", dig(dA, "v1"))},
		{name: "new tag", base: img("app", dig(dA, "v1")), head: img("app", dig(dA, "v1"), dig(dB, "v2"))},
		{name: "moved", base: img("app", dig(dA, "v1")), head: img("app", dig(dB, "v1")),
			want: []brief{{Error, 3, `image "app": tag "v1" moves from ` + dA + ` to ` + dB + ` in eu.gcr.io/prod and 1 other destination; a promoted tag must keep its digest, give the new digest a new tag`}}},
		{name: "moved and old digest kept", base: img("app", dig(dA, "v1", "v1.0")), head: img("app", dig(dA, "v1"), dig(dB, "v1.0")),
			want: []brief{{Error, 4, `image "app": tag "v1.0" moves from ` + dA + ` to ` + dB + ` in eu.gcr.io/prod and 1 other destination; a promoted tag must keep its digest, give the new digest a new tag`}}},
		{name: "conflict resolved keeps one", base: img("app", dig(dA, "v1"), dig(dB, "v1")), head: img("app", dig(dB, "v1"))},
		{name: "same name other image", base: img("app", dig(dA, "v1")), head: img("app", dig(dA, "v1")) + img("web", dig(dB, "v1"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := runCheck(t, TagMove{}, tc.base, tc.head)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("TagMove findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTagConflict(t *testing.T) {
	other := "registries:\n- name: gcr.io/staging-other\n  src: true\n- name: us.gcr.io/other\n"
	tests := []struct {
		name       string
		base, head map[string]string
		headRegs   map[string]string
		want       []brief
	}{
		{name: "none", head: map[string]string{"foo": img("app", dig(dA, "v1"), dig(dB, "v2"))}},
		{name: "introduced", base: map[string]string{"foo": img("app", dig(dA, "v1"))}, head: map[string]string{"foo": img("app", dig(dA, "v1"), dig(dB, "v1"))},
			want: []brief{{Error, 4, `image "app": tag "v1" names 2 digests (` + dA + `, ` + dB + `) in eu.gcr.io/prod and 1 other destination; a tag can name only one digest`}}},
		{name: "already in base", base: map[string]string{"foo": img("app", dig(dA, "v1"), dig(dB, "v1"))}, head: map[string]string{"foo": img("app", dig(dA, "v1"), dig(dB, "v1"), dig(dC, "v3"))},
			want: []brief{{Warning, 4, `image "app": tag "v1" names 2 digests (` + dA + `, ` + dB + `) in eu.gcr.io/prod and 1 other destination; a tag can name only one digest (already in the base)`}}},
		{name: "same image name, different destinations",
			head:     map[string]string{"foo": img("app", dig(dA, "v1")), "bar": img("app", dig(dB, "v1"))},
			headRegs: map[string]string{"bar": other}},
		{name: "same image name, shared destination",
			head: map[string]string{"foo": img("app", dig(dA, "v1")), "bar": img("app", dig(dB, "v1"))},
			want: []brief{{Error, 3, `image "app": tag "v1" names 2 digests (` + dA + `, ` + dB + `) in eu.gcr.io/prod and 1 other destination; a tag can name only one digest`}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.base
			if base == nil {
				base = map[string]string{"foo": "-"}
			}
			got := runCheckMulti(t, TagConflict{}, base, tc.head, nil, tc.headRegs)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("TagConflict findings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDestinationRemoval(t *testing.T) {
	oneDst := "registries:\n- name: gcr.io/staging\n  src: true\n- name: us.gcr.io/prod\n"
	tests := []struct {
		name     string
		headRegs string
		want     []brief
	}{
		{name: "same", headRegs: regs},
		{name: "dropped", headRegs: oneDst, want: []brief{{Warning, 0, "destination eu.gcr.io/prod removed: the base promotes 1 digest there, the head none"}}},
		{name: "added", headRegs: regs + "- name: asia.gcr.io/prod\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]string{"foo": img("app", dig(dA, "v1"))}
			got := runCheckMulti(t, DestinationRemoval{}, m, m, nil, map[string]string{"foo": tc.headRegs})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DestinationRemoval findings (-want +got):\n%s", diff)
			}
		})
	}
	// The dropped destination's images are no image-removal finding.
	m := map[string]string{"foo": img("app", dig(dA, "v1"))}
	if got := runCheckMulti(t, ImageRemoval{}, m, map[string]string{"foo": "# none\n"}, nil, map[string]string{"foo": "registries:\n- name: gcr.io/staging\n  src: true\n"}); len(got) != 0 {
		t.Errorf("ImageRemoval after dropping every destination = %v, want none", got)
	}
}

package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// realdata is the shared copy of kubernetes/k8s.io (absent in a user's clone).
const realdata = "../../shared/realdata"

func needRealdata(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(realdata); err != nil {
		t.Skipf("skipping: real manifests not present at %s (%v)", realdata, err)
	}
}

// thinRoot returns the one thin-manifest root below dir (k8s.gcr.io or
// registry.k8s.io).
func thinRoot(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil || len(es) != 1 {
		t.Fatalf("read %s: want one thin-manifest root, got %d entries (%v)", dir, len(es), err)
	}
	return filepath.Join(dir, es[0].Name())
}

func runAll(t *testing.T, baseDir, headDir string) []Finding {
	t.Helper()
	base, err := LoadState(Source{Dir: baseDir})
	if err != nil {
		t.Fatal(err)
	}
	head, err := LoadState(Source{Dir: headDir})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := Run(context.Background(), &Change{Base: base, Head: head}, All(Options{}), false)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func logFindings(t *testing.T, fs []Finding) {
	t.Helper()
	for _, f := range fs {
		t.Logf("%s %s %s:%d %s", f.Severity, f.Check, f.File, f.Line, f.Message)
	}
}

// TestHistoryCases runs every check (offline) on the before/after pairs of
// real changes to kubernetes/k8s.io and asserts what a release engineer
// would want to hear about each.
func TestHistoryCases(t *testing.T) {
	needRealdata(t)
	type want struct {
		check, severity, contains string
	}
	cases := []struct {
		name    string
		want    []want
		noError bool // the change must pass
	}{
		{name: "2022-08-16-experimental-remove-ar-registry", want: []want{
			{"destination-removal", "warning", "destination asia-east1-docker.pkg.dev/k8s-artifacts-prod/images/experimental removed"},
			{"image-removal", "error", `image "conformance": digest sha256:dc5f9bd524683846b3b6009d8e174baaa13891cac8885cb52b8ce44380cbeda9 (tags v1.25.0-rc.0) removed`},
		}},
		{name: "2023-03-16-kwok-revert-v0.1.1", want: []want{
			{"image-removal", "error", `image "kwok": digest sha256:bc42b570f7e0a3ef92f5838a701f4a1ade792f9060ca0cc5b8c2e2c6cf2d9726 (tags v0.1.1) removed`},
			{"tag-move", "error", `image "cluster": tag "v1.26" moves from sha256:356cbd3fa92a501d4f7653c24657a3204bec7fadd600d30348f331bbf6eb44a2 to sha256:3422f3315f8f70baf9262e58bad5f5024ed8555c25181effb4cc8e0b82fb8bc7`},
		}},
		{name: "2023-04-05-releng-ci-tag-conflict-introduced", want: []want{
			{"tag-conflict", "error", `image "releng-ci": tag "1.19.7-bullseye-0" names 2 digests`},
		}},
		{name: "2023-04-05-releng-ci-tag-conflict-resolved-by-removal", noError: true, want: []want{
			{"image-removal", "warning", `digest sha256:7b8dffc8d9895fadd9662bfb63a09554c6eef0ef71004628bba145c4fe9731ae (tags 1.19.7-bullseye-0) removed`},
		}},
		{name: "2024-04-04-ingress-nginx-webhook-v1.4.0-tag-conflict-introduced", want: []want{
			{"tag-conflict", "error", `image "kube-webhook-certgen": tag "v1.4.0" names 2 digests`},
		}},
		{name: "2024-04-16-cluster-api-v1.7.0-overwrites-v1.6.4", want: []want{
			{"image-removal", "error", `digest sha256:e35d576ae8922459d284077fed7b2a49447b4cb835c69312327c52d75dafa8a4 (tags v1.6.4) removed`},
			{"image-removal", "error", `digest sha256:919a4f3fe4f086a9762a56b99439df4127e98663f304d603b2bc14e74dc0331a (tags v1.6.4) removed`},
		}},
		{name: "2024-04-19-ingress-nginx-remove-controller-v1.10.1", want: []want{
			{"image-removal", "error", `image "controller": digest sha256:e24f39d3eed6bcc239a56f20098878845f62baa34b9f2be2fd2c38ce9fb0f29e (tags v1.10.1) removed`},
			{"image-removal", "error", `image "controller-chroot": digest sha256:c155954116b397163c88afcb3252462771bd7867017e8a17623e83601bab7ac7 (tags v1.10.1) removed`},
		}},
		{name: "2024-04-19-ingress-nginx-remove-webhook-v1.4.0", noError: true, want: []want{
			{"image-removal", "warning", `digest sha256:d8af609b5136aa653de2ecdb119b156e5f166b3cfa642e5973cfa480fb8c6e71 (tags v1.4.0) removed`},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(realdata, "history-cases", tc.name)
			fs := runAll(t, thinRoot(t, filepath.Join(dir, "before")), thinRoot(t, filepath.Join(dir, "after")))
			logFindings(t, fs)
			for _, w := range tc.want {
				found := false
				for _, f := range fs {
					if f.Check == w.check && string(f.Severity) == w.severity && strings.Contains(f.Message, w.contains) {
						found = true
					}
				}
				if !found {
					t.Errorf("no %s %s finding containing %q", w.severity, w.check, w.contains)
				}
			}
			if errs, _ := Count(fs); (errs > 0) == tc.noError {
				t.Errorf("%d errors, want errors %v", errs, !tc.noError)
			}
		})
	}
}

// TestRealYear checks the real one-year change of registry.k8s.io
// (2023-06 to 2024-06, hundreds of merged promotions): offline, it has no
// error finding.
func TestRealYear(t *testing.T) {
	needRealdata(t)
	fs := runAll(t, filepath.Join(realdata, "k8s.io-old/registry.k8s.io"), filepath.Join(realdata, "k8s.io/registry.k8s.io"))
	counts := map[string]int{}
	for _, f := range fs {
		counts[f.Check+" "+string(f.Severity)]++
		if f.Severity == Error {
			t.Errorf("error finding: %s %s:%d %s", f.Check, f.File, f.Line, f.Message)
		}
	}
	t.Logf("findings: %v", counts)
}

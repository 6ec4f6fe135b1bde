package query

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenQuestions are answered on the fixture; each has a golden file
// testdata/golden/<name>.txt holding notes, SQL parameters and the table.
var goldenQuestions = []struct {
	name, q   string
	manifests bool
}{
	{"count-digests", "how many unique digests in registry.example/prod", false},
	{"count-digests-typo", "How mnay uniqe digests are there in registry.example/prod?", false},
	{"count-digests-root", "number of distinct digests in registry.example", false},
	{"count-digests-manifests", "how many unique digests in mirror.example/prod", true},
	{"count-images", "how many images in registry.example/prod", false},
	{"count-tags", "how many tags in registry.example/prod", false},
	{"count-tags-manifests", "count tags in mirror.example", true},
	{"count-repositories", "how many repos in registry.example", false},
	{"list-repositories", "list repositories in registry.example", false},
	{"list-repositories-pattern", "show the repos in registry.example matching multi", false},
	{"list-images", "list images in registry.example/prod", false},
	{"list-images-manifests", "what images are in mirror.example/prod", true},
	{"list-tags", "list tags in registry.example/prod", false},
	{"list-tags-pattern", "list tags in registry.example/prod matching v*", false},
	{"where-digest", "where is " + imgA.Digest, false},
	{"where-digest-prefix", "where is " + imgL2.Digest[:15], false},
	{"tags-of-digest", "which tags point to " + imgB.Digest, false},
	{"not-promoted", "what is not yet promoted to registry.example/prod", true},
	{"not-promoted-unsynced", "what is not yet promoted to mirror.example/prod", true},
	{"unmanaged", "what in registry.example/prod is in no manifest", true},
	{"tags-moved", "which tags moved in registry.example", false},
	{"tags-moved-since", "which tags moved in registry.example/prod since 2026-03-02", false},
	{"tags-moved-since-later", "which tags moved in registry.example/prod since 2026-03-03", false},
	{"tags-moved-last-sync", "which tags moved in registry.example since the last sync", false},
	{"changed-since", "what changed in registry.example/prod since 2026-03-01T12:30:00Z", false},
	{"changed-last-sync", "what changed in registry.example/staging since the last sync", false},
	{"largest", "largest images in registry.example/prod", false},
	{"largest-n", "top 2 largest images in registry.example", false},
	{"compare", "compare registry.example/staging with registry.example/prod", false},
	{"compare-manifests", "compare registry.example/prod with mirror.example/prod", true},
	{"platforms", "which platforms does registry.example/prod/multi:v2 have", false},
	{"platforms-single", "what platforms does registry.example/prod/app:v1 have", false},
	{"layer-users", "which images use layer " + dg("base"), false},
}

func TestGolden(t *testing.T) {
	ctx := context.Background()
	path := buildFixture(t)
	set := fixtureManifest(t)
	before := hashFile(t, path)
	for _, tc := range goldenQuestions {
		t.Run(tc.name, func(t *testing.T) {
			var opts Options
			if tc.manifests {
				opts.Manifests = set
			}
			res, err := Ask(ctx, path, tc.q, opts)
			if err != nil {
				t.Fatalf("Ask(%q) = %v", tc.q, err)
			}
			var b bytes.Buffer
			fmt.Fprintf(&b, "# %s\n# form: %s\n", tc.q, res.Form)
			for _, n := range res.Notes {
				fmt.Fprintf(&b, "# note: %s\n", n)
			}
			for _, a := range res.Args {
				fmt.Fprintf(&b, "# :%s = %v\n", a.Name, a.Value)
			}
			if err := res.Write(&b, Table); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "golden", tc.name+".txt"), b.Bytes())
		})
	}
	if after := hashFile(t, path); after != before {
		t.Errorf("the inventory changed while answering questions")
	}
}

func TestFormats(t *testing.T) {
	ctx := context.Background()
	path := buildFixture(t)
	res, err := Ask(ctx, path, "list tags in registry.example/prod", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{CSV, JSON, YAML} {
		var b bytes.Buffer
		if err := res.Write(&b, f); err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join("testdata", "golden", "format."+string(f)), b.Bytes())
	}
	// Counts are numbers in JSON.
	res, err = Ask(ctx, path, "how many tags in registry.example/prod", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	res.Write(&b, JSON)
	if got, want := b.String(), "[\n  {\"tags\": 5}\n]\n"; got != want {
		t.Errorf("JSON count = %q, want %q", got, want)
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Errorf("ParseFormat(xml) = nil error")
	}
}

func TestListAndSchema(t *testing.T) {
	var b bytes.Buffer
	List().Write(&b, Table)
	golden(t, filepath.Join("testdata", "golden", "list.txt"), b.Bytes())
	res, err := Schema(context.Background(), buildFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	res.Write(&b, CSV)
	for _, want := range []string{
		"repositories,synced_at,TEXT,RFC 3339 UTC of the last complete crawl",
		"tag_history,change,TEXT,", "promotions,tag,TEXT,", "manifest_sizes,,view,",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("Schema() lacks %q:\n%s", want, b.String())
		}
	}
}

// Every example in --list is understood as its own form.
func TestExamplesTranslate(t *testing.T) {
	for _, f := range Forms() {
		p, err := Translate(f.Example)
		if err != nil {
			t.Errorf("Translate(%q) = %v", f.Example, err)
			continue
		}
		if p.Form != f {
			t.Errorf("Translate(%q) = form %s, want %s", f.Example, p.Form.Name, f.Name)
		}
	}
}

func TestTranslateWording(t *testing.T) {
	for _, tc := range []struct{ q, form string }{
		{"HOW MANY UNIQUE DIGESTS IN GCR.IO/FOO", "count-digests"},
		{"how many digests in gcr.io/foo", "count-digests"},
		{"how many unique digests does gcr.io/foo have", "count-digests"},
		{"count the digest in gcr.io/foo", "count-digests"},
		{"hwo many tags in gcr.io/foo", "count-tags"},
		{"how many tags under 127.0.0.1:5000", "count-tags"},
		{"how many repositories in localhost", "count-repositories"},
		{"list all the repos in gcr.io/foo", "list-repositories"},
		{"which repositories are in gcr.io/foo", "list-repositories"},
		{"list tags in gcr.io/foo like v1.*", "list-tags"},
		{"where's sha256:abcd", "where-digest"},
		{"where is sha256:abcdef", "where-digest"},
		{"which tag points to sha256:abcdef", "tags-of-digest"},
		{"what's not yet promoted to gcr.io/foo", "not-promoted"},
		{"what is not promoted to gcr.io/foo", "not-promoted"},
		{"what in gcr.io/foo is not in any manifest", "unmanaged"},
		{"which tags moved in gcr.io/foo since 2024-01-02", "tags-moved-since"},
		{"which tags have moved in gcr.io/foo since the last sync", "tags-moved-last-sync"},
		{"what changed in gcr.io/foo since 2024-01-02", "changed-since"},
		{"biggest images in gcr.io/foo", "largest"},
		{"compare gcr.io/a and gcr.io/b", "compare"},
		{"gcr.io/a vs gcr.io/b", "compare"},
		{"diff gcr.io/a gcr.io/b", "compare"},
		{"which platforms does gcr.io/foo/app:v1.2 have?", "platforms"},
		{"which images use layer sha256:abcdef", "layer-users"},
		{"what is the meaning of life", ""},
		{"", ""},
	} {
		p, err := Translate(tc.q)
		got := ""
		if err == nil {
			got = p.Form.Name
		} else if !errors.Is(err, ErrUnknownQuestion) {
			t.Errorf("Translate(%q) = %v, want ErrUnknownQuestion or a form", tc.q, err)
		}
		if got != tc.form {
			t.Errorf("Translate(%q) = %q, want %q", tc.q, got, tc.form)
		}
	}
}

func TestTranslateSlots(t *testing.T) {
	p, err := Translate("which platforms does GCR.io/foo/app:V1.2 have")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"IMAGE": "gcr.io/foo/app", "TAG": "V1.2"}, p.Slots); diff != "" {
		t.Errorf("slots (-want +got):\n%s", diff)
	}
	p, err = Translate("list images in gcr.io/foo/ matching pause")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"REG": "gcr.io/foo", "PATTERN": "*pause*"}, p.Slots); diff != "" {
		t.Errorf("slots (-want +got):\n%s", diff)
	}
	p, err = Translate("what changed in gcr.io/foo since 2024-01-02")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Slots["DATE"], "2024-01-02T00:00:00Z"; got != want {
		t.Errorf("DATE = %q, want %q", got, want)
	}
}

func TestUnknownSuggestsThree(t *testing.T) {
	_, err := Translate("how many layers in gcr.io/foo")
	var ue *UnknownError
	if !errors.As(err, &ue) {
		t.Fatalf("Translate = %v, want *UnknownError", err)
	}
	if len(ue.Closest) != 3 {
		t.Fatalf("closest = %d forms, want 3", len(ue.Closest))
	}
	if !strings.HasPrefix(ue.Closest[0].Name, "count-") {
		t.Errorf("closest form = %s, want a count- form", ue.Closest[0].Name)
	}
	if !strings.Contains(err.Error(), "cip query --list") {
		t.Errorf("error %q does not point at --list", err)
	}
}

func TestManifestFormsNeedManifests(t *testing.T) {
	path := buildFixture(t)
	_, err := Ask(context.Background(), path, "what is not yet promoted to registry.example/prod", Options{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "--manifest") {
		t.Errorf("Ask without manifests = %v, want ErrInvalid naming --manifest", err)
	}
}

// Without an inventory file, questions answer from the manifests and no
// file is created.
func TestNoInventory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.db")
	res, err := Ask(context.Background(), path, "how many unique digests in registry.example/prod", Options{Manifests: fixtureManifest(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Rows[0][0]; got != int64(4) {
		t.Errorf("count = %v, want 4", got)
	}
	if _, err := os.Stat(path); err == nil {
		t.Errorf("query created %s", path)
	}
}

func hashFile(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

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
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// testNow is the clock questions are read against: the day after the
// fixture's second sync.
var testNow = time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)

func askOpts(manifests bool, t testing.TB) Options {
	o := Options{Now: func() time.Time { return testNow }}
	if manifests {
		o.Manifests = fixtureManifest(t)
	}
	return o
}

// goldenQuestions are answered on the fixture; each has a golden file
// testdata/golden/<name>.txt holding the reading, notes, SQL, parameters
// and the table. Every form has at least one (TestEveryFormHasGolden).
var goldenQuestions = []struct {
	name, q   string
	manifests bool
	noInv     bool // answer without an inventory file
}{
	{"count-digests", "how many unique digests in registry.example/prod", false, false},
	{"count-digests-typo", "How mnay uniqe digests are there in registry.example/prod?", false, false},
	{"count-digests-root", "number of distinct digests in registry.example", false, false},
	{"count-digests-manifests", "how many unique digests in mirror.example/prod", true, false},
	{"count-digests-staging", "how many digests in registry.example/staging", false, false},
	{"count-digests-source-manifests", "how many digests in registry.example/staging", true, true},
	{"count-digests-empty", "how many digests in empty.example", false, false},
	{"count-images", "how many images in registry.example/prod", false, false},
	{"list-signed", "which images in signed.example/release are signed", false, false},
	{"list-unsigned", "which images in signed.example/release are unsigned", false, false},
	{"list-signatures", "list signatures in signed.example", false, false},
	{"referrers-of", "what refers to " + dg("imgS")[:15], false, false},
	{"count-images-bare", "how many images in prod", false, false},
	{"count-tags", "how many tags in registry.example/prod", false, false},
	{"count-tags-manifests", "count tags in mirror.example", true, false},
	{"count-repositories", "how many repos in registry.example", false, false},
	{"count-untagged", "how many untagged digests in registry.example/prod", false, false},
	{"count-untagged-manifests", "how many untagged digests in mirror.example/prod", true, false},
	{"count-multiarch", "how many multi-arch images in registry.example/prod", false, false},
	{"count-singlearch", "how many single-arch images in registry.example/prod", false, false},
	{"count-platform", "how many arm64 images in registry.example/prod", false, false},
	{"count-without-platform", "how many images in registry.example/prod don't have s390x", false, false},
	{"count-not-promoted", "how many digests are not in registry.example/prod", true, false},
	{"count-unmanaged", "how many digests in registry.example/prod are in no manifest", true, false},
	{"count-difference", "how many digests in registry.example/staging are not in registry.example/prod", false, false},
	{"list-repositories", "list repositories in registry.example", false, false},
	{"list-repositories-pattern", "show the repos in registry.example matching multi", false, false},
	{"list-images", "list images in registry.example/prod", false, false},
	{"list-images-manifests", "what images are in mirror.example/prod", true, false},
	{"list-tags", "list tags in registry.example/prod", false, false},
	{"list-tags-pattern", "list tags in registry.example/prod matching v*", false, false},
	{"list-digests", "what is in registry.example/prod", false, false},
	{"list-digests-manifests", "what is in mirror.example/prod", true, false},
	{"list-untagged", "list untagged digests in registry.example", false, false},
	{"list-multiarch", "which images are multi-arch in registry.example/prod", false, false},
	{"list-singlearch", "which images in registry.example/prod are not multi-arch", false, false},
	{"list-platform", "list arm64 images in registry.example/prod", false, false},
	{"list-platform-variant", "which images in registry.example support linux/arm64/v8", false, false},
	{"list-without-platform", "which images in registry.example/prod have no linux/s390x", false, false},
	{"repositories-without-tags", "which repositories in registry.example/prod have no tags", false, false},
	{"images-with-tag", "which images in registry.example have tag v2", false, false},
	{"images-without-tag", "which images in registry.example/prod have no tag latest", false, false},
	{"digest-of-tag", "which digest does registry.example/prod/app:latest point to", false, false},
	{"digest-of-tag-bare", "what does prod/app:latest point to", false, false},
	{"tags-of-digest", "which tags point to " + imgB.Digest, false, false},
	{"tags-of-digest-in", "which tags point to " + imgA.Digest[:12] + " in registry.example/staging", false, false},
	{"where-digest", "where is " + imgA.Digest, false, false},
	{"where-digest-prefix", "where is " + imgL2.Digest[:15], false, false},
	{"where-tag", "where is app:v1", false, false},
	{"where-tag-qualified", "where is registry.example/prod/app:latest across every synced registry", false, false},
	{"where-image", "where is app", false, false},
	{"describe-digest", "what is " + idxM.Digest[:14], false, false},
	{"platforms", "which platforms does registry.example/prod/multi:v2 have", false, false},
	{"platforms-single", "what platforms does registry.example/prod/app:v1 have", false, false},
	{"platforms-digest", "list platforms of " + idxM.Digest, false, false},
	{"layers", "list layers of registry.example/prod/multi:v2", false, false},
	{"size-of", "how big is registry.example/prod/multi:v2", false, false},
	{"size-of-digest", "what is the size of registry.example/prod/app@" + imgB.Digest, false, false},
	{"layer-users", "which images use layer " + dg("base"), false, false},
	{"is-in", "is " + imgOld.Digest[:20] + " promoted to registry.example/staging", false, false},
	{"is-in-tag", "is registry.example/staging/app:v2 in registry.example/prod", false, false},
	{"not-promoted", "what is not yet promoted to registry.example/prod", true, false},
	{"not-promoted-unsynced", "what is not yet promoted to mirror.example/prod", true, false},
	{"not-promoted-from", "what in registry.example/staging is not yet promoted", true, false},
	{"unmanaged", "what in registry.example/prod is in no manifest", true, false},
	{"unmanaged-source", "what in registry.example/staging is in no manifest", true, false},
	{"managed", "what in registry.example/staging is in a manifest", true, false},
	{"difference", "what in registry.example/staging is not in registry.example/prod", false, false},
	{"difference-manifests", "what in registry.example/prod is not in mirror.example/prod", true, false},
	{"tag-difference", "which tags are in registry.example/prod but not in registry.example/staging", false, false},
	{"tag-difference-none", "which tags are in registry.example/staging but not in registry.example/prod", false, false},
	{"common", "what is in both registry.example/staging and registry.example/prod", false, false},
	{"compare", "compare registry.example/staging with registry.example/prod", false, false},
	{"compare-manifests", "compare registry.example/prod with mirror.example/prod", true, false},
	{"changed", "what changed in registry.example/prod", false, false},
	{"changed-yesterday", "what changed in registry.example/prod yesterday", false, false},
	{"changed-today", "what changed in registry.example/prod today", false, false},
	{"changed-since", "what changed in registry.example/prod since 2026-03-01T12:30:00Z", false, false},
	{"changed-last-sync", "what changed in registry.example/staging since the last sync", false, false},
	{"tags-moved", "which tags moved in registry.example", false, false},
	{"tags-moved-since", "which tags moved in registry.example/prod since 2026-03-02", false, false},
	{"tags-moved-since-later", "which tags moved in registry.example/prod since 2026-03-03", false, false},
	{"tags-moved-last-sync", "which tags have moved in registry.example since the last sync", false, false},
	{"tags-added", "which tags were added to registry.example/prod in the last 3 days", false, false},
	{"tags-removed", "which tags were removed from registry.example last week", false, false},
	{"tag-history", "history of tag latest in registry.example/prod", false, false},
	{"tag-history-ref", "when did registry.example/prod/app:latest change", false, false},
	{"promoted-since", "what was promoted to registry.example/prod since 2026-03-02", false, false},
	{"last-synced", "when was registry.example/prod last synced", false, false},
	{"last-synced-empty", "when was empty.example last synced", false, false},
	{"last-synced-never", "when was never.example last synced", false, false},
	{"sync-runs", "list syncs in the last 7 days", false, false},
	{"failed-syncs", "which syncs had errors", false, false},
	{"stale-repositories", "which repositories in registry.example were not synced since 2026-03-02", false, false},
	{"stale-tags", "which tags in registry.example/prod have not changed since 2026-03-02", false, false},
	{"registry-size", "how big is registry.example/prod", false, false},
	{"largest", "largest images in registry.example/prod", false, false},
	{"largest-n", "top 2 largest images in registry.example", false, false},
	{"smallest", "the 2 smallest images in registry.example/prod", false, false},
	{"larger-than", "which images in registry.example are larger than 10 KiB", false, false},
	{"smaller-than", "images in registry.example/prod smaller than 10kb", false, false},
}

// answerText is a golden file's body: the question, its reading, the
// notes, the SQL and its parameters, and the rows as a table.
func answerText(t *testing.T, q, path string, res *Result) []byte {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s\n# form: %s\n# read as: %s\n", q, res.Form, res.Reading)
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "# note: %s\n", strings.ReplaceAll(n, path, filepath.Base(path)))
	}
	for _, a := range res.Args {
		fmt.Fprintf(&b, "# :%s = %v\n", a.Name, a.Value)
	}
	for _, l := range strings.Split(res.SQL, "\n") {
		fmt.Fprintf(&b, "# | %s\n", l)
	}
	if err := res.Write(&b, Table); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	ctx := context.Background()
	path := buildFixture(t)
	before := hashFile(t, path)
	for _, tc := range goldenQuestions {
		t.Run(tc.name, func(t *testing.T) {
			p := path
			if tc.noInv {
				p = filepath.Join(t.TempDir(), "none.db")
			}
			res, err := askAll(ctx, p, tc.q, askOpts(tc.manifests, t))
			if err != nil {
				t.Fatalf("Ask(%q) = %v", tc.q, err)
			}
			golden(t, filepath.Join("testdata", "golden", tc.name+".txt"), answerText(t, tc.q, p, res))
		})
	}
	if after := hashFile(t, path); after != before {
		t.Errorf("the inventory changed while answering questions")
	}
}

// Every form has a golden answer.
func TestEveryFormHasGolden(t *testing.T) {
	covered := map[string]bool{}
	for _, tc := range goldenQuestions {
		p, err := Translate(tc.q, testNow)
		if err != nil {
			t.Errorf("Translate(%q) = %v", tc.q, err)
			continue
		}
		covered[p.Form.Name] = true
		if !strings.HasPrefix(tc.name, p.Form.Name) {
			t.Errorf("golden %s reads as form %s: name it after its form", tc.name, p.Form.Name)
		}
	}
	for _, f := range forms {
		if !covered[f.Name] {
			t.Errorf("form %s has no golden question", f.Name)
		}
	}
	if len(forms) < 40 {
		t.Errorf("%d forms, want at least 40", len(forms))
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("shows all %d forms", len(forms)); !strings.Contains(string(readme), want) {
		t.Errorf("README.md does not say %q", want)
	}
}

func TestFormats(t *testing.T) {
	ctx := context.Background()
	path := buildFixture(t)
	res, err := askAll(ctx, path, "list tags in registry.example/prod", askOpts(false, t))
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
	res, err = askAll(ctx, path, "how many tags in registry.example/prod", askOpts(false, t))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	res.Write(&b, JSON)
	if got, want := b.String(), "[\n  {\"tags\": 5}\n]\n"; got != want {
		t.Errorf("JSON count = %q, want %q", got, want)
	}
	// Sizes are bytes (a number) and a size in binary units.
	res, err = askAll(ctx, path, "how big is registry.example/prod/app:v1", askOpts(false, t))
	if err != nil {
		t.Fatal(err)
	}
	b.Reset()
	res.Write(&b, JSON)
	if !strings.Contains(b.String(), `"size": "13.8 KiB", "bytes": 14133`) {
		t.Errorf("size as JSON = %s, want size and bytes", b.String())
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Errorf("ParseFormat(xml) = nil error")
	}
}

func TestListAndSchema(t *testing.T) {
	var b bytes.Buffer
	List().Write(&b, Table)
	golden(t, filepath.Join("testdata", "golden", "list.txt"), b.Bytes())
	if n := len(List().Rows); n != len(forms) {
		t.Errorf("--list has %d rows, want one per form (%d)", n, len(forms))
	}
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

// Every example in --list is understood as its own form, and so is every
// pattern's canonical wording with its slots filled.
func TestExamplesTranslate(t *testing.T) {
	for _, f := range Forms() {
		p, err := Translate(f.Example, testNow)
		if err != nil {
			t.Errorf("Translate(%q) = %v", f.Example, err)
			continue
		}
		if p.Form != f {
			t.Errorf("Translate(%q) = form %s, want %s", f.Example, p.Form.Name, f.Name)
		}
		if strings.Contains(p.Reading(), "{") {
			t.Errorf("reading of %q has an unfilled placeholder: %s", f.Example, p.Reading())
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
		{"how many images in prod", "count-images"},
		{"list all the repos in gcr.io/foo", "list-repositories"},
		{"which repositories are in gcr.io/foo", "list-repositories"},
		{"list tags in gcr.io/foo like v1.*", "list-tags"},
		{"what is in gcr.io/foo", "list-digests"},
		{"what does gcr.io/foo hold", "list-digests"},
		{"where's sha256:abcd", "where-digest"},
		{"where is sha256:abcdef", "where-digest"},
		{"which registries hold sha256:abcd", "where-digest"},
		{"where is pause:3.9", "where-tag"},
		{"where is pause", "where-image"},
		{"which tag points to sha256:abcdef", "tags-of-digest"},
		{"which digest does gcr.io/foo/app:v1 point to", "digest-of-tag"},
		{"what's not yet promoted to gcr.io/foo", "not-promoted"},
		{"what is not promoted to gcr.io/foo", "not-promoted"},
		{"what is missing in gcr.io/foo", "not-promoted"},
		{"what is left to promote to gcr.io/foo", "not-promoted"},
		{"how many digests are not in gcr.io/foo", "count-not-promoted"},
		{"what in gcr.io/foo is not in any manifest", "unmanaged"},
		{"what in gcr.io/foo is in no manifest", "unmanaged"},
		{"what in gcr.io/foo is in a manifest", "managed"},
		{"what in gcr.io/staging is not yet promoted", "not-promoted-from"},
		{"what in gcr.io/a is not in gcr.io/b", "difference"},
		{"what does gcr.io/a have that gcr.io/b lacks", "difference"},
		{"what tags are in gcr.io/a but not in gcr.io/b", "tag-difference"},
		{"what in gcr.io/a is also in gcr.io/b", "common"},
		{"which tags moved in gcr.io/foo since 2024-01-02", "tags-moved"},
		{"which tags have moved in gcr.io/foo since the last sync", "tags-moved"},
		{"what changed in gcr.io/foo since 2024-01-02", "changed"},
		{"what changed in gcr.io/foo in the last 3 days", "changed"},
		{"what's new in gcr.io/foo today", "tags-added"},
		{"which tags were deleted from gcr.io/foo this month", "tags-removed"},
		{"history of tag v1.2 in gcr.io/foo", "tag-history"},
		{"when did gcr.io/foo/app:latest move", "tag-history"},
		{"what was promoted to gcr.io/foo since 2026-01-01", "promoted-since"},
		{"when was gcr.io/foo last synced", "last-synced"},
		{"which syncs failed", "failed-syncs"},
		{"list sync runs this week", "sync-runs"},
		{"which repositories in gcr.io/foo haven't been synced in the last 2 days", "stale-repositories"},
		{"biggest images in gcr.io/foo", "largest"},
		{"show me the 5 biggest images in gcr.io/foo", "largest"},
		{"which images in gcr.io/foo are bigger than 1.5 GiB", "larger-than"},
		{"how big is gcr.io/foo/app:v1", "size-of"},
		{"how big is gcr.io/foo", "registry-size"},
		{"compare gcr.io/a and gcr.io/b", "compare"},
		{"gcr.io/a vs gcr.io/b", "compare"},
		{"diff gcr.io/a gcr.io/b", "compare"},
		{"which platforms does gcr.io/foo/app:v1.2 have?", "platforms"},
		{"which images use layer sha256:abcdef", "layer-users"},
		{"which images are multi-arch in gcr.io/foo", "list-multiarch"},
		{"which images in gcr.io/foo are multi arch", "list-multiarch"},
		{"list arm64 images in gcr.io/foo", "list-platform"},
		{"which images in gcr.io/foo support linux/arm/v7", "list-platform"},
		{"which images in gcr.io/foo have no arm64", "list-without-platform"},
		{"how many images in gcr.io/foo don't have linux/s390x", "count-without-platform"},
		{"list untagged digests in gcr.io/foo", "list-untagged"},
		{"which repositories in gcr.io/foo have no tags", "repositories-without-tags"},
		{"is sha256:1234abcd promoted to gcr.io/foo", "is-in"},
		{"does gcr.io/foo have gcr.io/x/app:v1", "is-in"},
		{"what is sha256:abcd", "describe-digest"},
		{"what is the meaning of life", ""},
		{"how many layers in gcr.io/foo", ""},
		{"", ""},
	} {
		p, err := Translate(tc.q, testNow)
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

// The questions of issue 18's table, which were misread or not
// understood: each now reads as the form that answers it, or is refused.
func TestIssueTable(t *testing.T) {
	for _, tc := range []struct{ q, form string }{
		{"how many digests are not in gcr.io/prod", "count-not-promoted"},
		{"which images are multi-arch in gcr.io/prod", "list-multiarch"},
		{"list arm64 images in gcr.io/prod", "list-platform"},
		{"which images in gcr.io/prod are signed", "list-signed"},
		{"what is in gcr.io/prod", "list-digests"},
		{"what in gcr.io/staging is in no manifest", "unmanaged"},
		{"which digest does gcr.io/prod/app:v1 point to", "digest-of-tag"},
		{"is sha256:abcd1234 promoted to gcr.io/prod", "is-in"},
		{"when was gcr.io/prod last synced", "last-synced"},
		{"how big is gcr.io/prod/app:v1", "size-of"},
		{"what changed in gcr.io/prod today", "changed"},
		{"list untagged digests in gcr.io/prod", "list-untagged"},
		{"what in gcr.io/a is not in gcr.io/b", "difference"},
		{"which images in gcr.io/prod have no arm64", "list-without-platform"},
		{"where is app:v1", "where-tag"},
		{"history of tag v1 in gcr.io/prod", "tag-history"},
		{"what was promoted to gcr.io/prod since 2026-01-01", "promoted-since"},
		{"which repositories in gcr.io/prod have no tags", "repositories-without-tags"},
		{"how many images in prod", "count-images"},
	} {
		p, err := Translate(tc.q, testNow)
		switch {
		case tc.form == "" && !errors.Is(err, ErrNotSupported):
			t.Errorf("Translate(%q) = %v, %v; want not supported yet", tc.q, p, err)
		case tc.form != "" && err != nil:
			t.Errorf("Translate(%q) = %v, want form %s", tc.q, err, tc.form)
		case tc.form != "" && p.Form.Name != tc.form:
			t.Errorf("Translate(%q) = form %s, want %s", tc.q, p.Form.Name, tc.form)
		}
	}
}

func TestTranslateSlots(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want map[string]any
	}{
		{"which platforms does GCR.io/foo/app:V1.2 have", map[string]any{"image": "gcr.io/foo/app", "tag": "V1.2"}},
		{"list images in gcr.io/foo/ matching pause", map[string]any{"reg": "gcr.io/foo", "pattern": "*pause*"}},
		{"what changed in gcr.io/foo since 2024-01-02", map[string]any{"reg": "gcr.io/foo", "since": "2024-01-02T00:00:00Z", "until": maxTime}},
		{"what changed in gcr.io/foo yesterday", map[string]any{"reg": "gcr.io/foo", "since": "2026-03-02T00:00:00Z", "until": "2026-03-03T00:00:00Z"}},
		{"what changed in gcr.io/foo in the last 2 hours", map[string]any{"reg": "gcr.io/foo", "since": "2026-03-03T07:00:00Z", "until": maxTime}},
		{"what changed in gcr.io/foo last week", map[string]any{"reg": "gcr.io/foo", "since": "2026-02-24T09:00:00Z", "until": maxTime}},
		{"what changed in gcr.io/foo this week", map[string]any{"reg": "gcr.io/foo", "since": "2026-03-02T00:00:00Z", "until": maxTime}},
		{"what changed in gcr.io/foo between 2026-01-01 and 2026-01-31", map[string]any{"reg": "gcr.io/foo", "since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z"}},
		{"what changed in gcr.io/foo since 3 days ago", map[string]any{"reg": "gcr.io/foo", "since": "2026-02-28T09:00:00Z", "until": maxTime}},
		{"which images in gcr.io/foo are larger than 100MB", map[string]any{"reg": "gcr.io/foo", "bytes": int64(100_000_000)}},
		{"which images in gcr.io/foo are larger than 1.5 GiB", map[string]any{"reg": "gcr.io/foo", "bytes": int64(1_610_612_736)}},
		{"list linux/arm/v7 images in gcr.io/foo", map[string]any{"reg": "gcr.io/foo", "os": "linux", "arch": "arm", "variant": "v7"}},
		{"list aarch64 images in gcr.io/foo", map[string]any{"reg": "gcr.io/foo", "os": "", "arch": "arm64", "variant": ""}},
		{"top 7 images in gcr.io/foo", map[string]any{"reg": "gcr.io/foo", "limit": int64(7)}},
		{"which images in gcr.io/foo have tag arm64", map[string]any{"reg": "gcr.io/foo", "tag": "arm64"}},
		{"history of tag 2026-01-01 in gcr.io/foo", map[string]any{"reg": "gcr.io/foo", "tag": "2026-01-01"}},
		{"list tags in gcr.io/foo matching arm64", map[string]any{"reg": "gcr.io/foo", "pattern": "*arm64*"}},
		{"where is gcr.io/foo/app@sha256:abcdef01", map[string]any{"image": "gcr.io/foo/app", "tag": "", "digest": "sha256:abcdef01"}},
	} {
		p, err := Translate(tc.q, testNow)
		if err != nil {
			t.Errorf("Translate(%q) = %v", tc.q, err)
			continue
		}
		got := map[string]any{}
		for k := range tc.want {
			got[k] = p.Params[k]
			if _, ok := p.Params[k]; !ok {
				got[k] = paramDefaults[k]
			}
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Translate(%q) params (-want +got):\n%s", tc.q, diff)
		}
	}
}

// A typo is named in the reading only when the reading used it as a
// keyword: a misspelt-looking word taken as a value is no typo.
func TestTyposInReading(t *testing.T) {
	p, err := Translate("hwo mnay tags in gcr.io/foo", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Typos, []string{"hwo → how", "mnay → many"}; !cmp.Equal(got, want) {
		t.Errorf("typos = %q, want %q", got, want)
	}
	// "tgas" is one edit from "tags", but here it is the PATTERN.
	p, err = Translate("list tags in gcr.io/foo matching tgas", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Typos) != 0 || p.Params["pattern"] != "*tgas*" {
		t.Errorf("typos = %q, pattern = %v; want none and *tgas*", p.Typos, p.Params["pattern"])
	}
}

func TestUnknownSuggestsThree(t *testing.T) {
	_, err := Translate("how many layers in gcr.io/foo", testNow)
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

// Questions on signatures and referrers read as their forms (issue 15);
// those on attestations and SBOMs by kind are still "not supported yet",
// and the others no form answers are unknown: never another answer.
func TestSignatureQuestions(t *testing.T) {
	for _, tc := range []struct{ q, form string }{
		{"which images in gcr.io/foo are signed", "list-signed"},
		{"list signed digests in gcr.io/foo", "list-signed"},
		{"which images in gcr.io/foo are unsigned", "list-unsigned"},
		{"list unsigned images in gcr.io/foo", "list-unsigned"},
		{"which images in gcr.io/foo are not signed", "list-unsigned"},
		{"list signatures in gcr.io/foo", "list-signatures"},
		{"list sigs in gcr.io/foo", "list-signatures"},
		{"what refers to sha256:abcd1234", "referrers-of"},
		{"what refers to sha256:abcd1234 in gcr.io/foo", "referrers-of"},
		{"list referrers to sha256:abcd1234", "referrers-of"},
		{"how many signed digests in gcr.io/foo", ""},
		{"list unsinged images in gcr.io/foo", ""},
		{"which images have an SBOM in gcr.io/foo", ""},
		{"how many images in gcr.io/foo have attestations", ""},
	} {
		p, err := Translate(tc.q, testNow)
		switch {
		case tc.form == "" && err == nil:
			t.Errorf("Translate(%q) = %s (%s), want an error", tc.q, p.Form.Name, p.Reading())
		case tc.form == "" && !errors.Is(err, ErrNotSupported) && !errors.Is(err, ErrUnknownQuestion):
			t.Errorf("Translate(%q) = %v, want unknown or not supported yet", tc.q, err)
		case tc.form != "" && err != nil:
			t.Errorf("Translate(%q) = %v, want form %s", tc.q, err, tc.form)
		case tc.form != "" && p.Form.Name != tc.form:
			t.Errorf("Translate(%q) = form %s, want %s", tc.q, p.Form.Name, tc.form)
		}
	}
	_, err := Translate("which images have an SBOM in gcr.io/foo", testNow)
	var ue *UnsupportedError
	if !errors.As(err, &ue) {
		t.Errorf("an SBOM question: %v, want not supported yet", err)
	}
}

// nearMisses are questions with one meaning-changing word added to a
// question a form answers. Each must either fail (want "") or read as the
// form that accounts for the word: none may answer the question without
// it.
var nearMisses = []struct{ base, q, want string }{
	{"how many digests are in gcr.io/foo", "how many digests are not in gcr.io/foo", "count-not-promoted"},
	{"how many digests in gcr.io/foo", "how many untagged digests in gcr.io/foo", "count-untagged"},
	{"how many digests in gcr.io/foo", "how many tagged digests in gcr.io/foo", ""},
	{"how many digests in gcr.io/foo", "how many signed digests in gcr.io/foo", ""},
	{"how many digests in gcr.io/foo", "how many unsigned digests in gcr.io/foo", ""},
	{"how many digests in gcr.io/foo", "how many digests in gcr.io/foo except gcr.io/foo/app", ""},
	{"how many digests in gcr.io/foo", "how many digests only in gcr.io/foo", ""},
	{"how many digests in gcr.io/foo", "how many digests in gcr.io/foo since 2026-01-01", ""},
	{"how many digests in gcr.io/foo", "how many digests in gcr.io/foo today", ""},
	{"how many digests in gcr.io/foo", "how many arm64 digests in gcr.io/foo", "count-platform"},
	{"how many digests in gcr.io/foo", "how many multi-arch digests in gcr.io/foo", "count-multiarch"},
	{"how many digests in gcr.io/foo", "how many digests in gcr.io/foo or gcr.io/bar", ""},
	{"how many images in gcr.io/foo", "how many images in gcr.io/foo without arm64", "count-without-platform"},
	{"how many images in gcr.io/foo", "how many images in gcr.io/foo not multi-arch", "count-singlearch"},
	{"how many images in gcr.io/foo", "how many images in gcr.io/foo are not in any manifest", "count-unmanaged"},
	{"how many tags in gcr.io/foo", "how many tags moved in gcr.io/foo", ""},
	{"how many tags in gcr.io/foo", "how many tags not in gcr.io/foo", ""},
	{"how many tags in gcr.io/foo", "how many tags in gcr.io/foo matching v1", ""},
	{"how many tags in gcr.io/foo", "how many unique tags in gcr.io/foo", ""},
	{"list digests in gcr.io/foo", "list unique digests in gcr.io/foo", ""},
	{"list images in gcr.io/foo", "list multi-arch images in gcr.io/foo", "list-multiarch"},
	{"list images in gcr.io/foo", "list arm64 images in gcr.io/foo", "list-platform"},
	{"list images in gcr.io/foo", "list linux/arm64 images in gcr.io/foo", "list-platform"},
	{"list images in gcr.io/foo", "list untagged images in gcr.io/foo", "list-untagged"},
	{"list images in gcr.io/foo", "list signed images in gcr.io/foo", "list-signed"},
	{"list images in gcr.io/foo", "list unsigned images in gcr.io/foo", "list-unsigned"},
	{"list images in gcr.io/foo", "list images not in gcr.io/foo", "not-promoted"},
	{"list images in gcr.io/foo", "list images in gcr.io/foo without tags", "repositories-without-tags"},
	{"list images in gcr.io/foo", "list images in gcr.io/foo not matching app", ""},
	{"list images in gcr.io/foo", "list only images in gcr.io/foo", ""},
	{"list images in gcr.io/foo", "list images in gcr.io/foo except app", ""},
	{"list images in gcr.io/foo", "list largest images in gcr.io/foo", "largest"},
	{"list images in gcr.io/foo", "list images in gcr.io/foo since yesterday", ""},
	{"list images in gcr.io/foo", "list new images in gcr.io/foo", ""},
	{"list tags in gcr.io/foo", "list tags not in gcr.io/foo", "not-promoted"},
	{"list tags in gcr.io/foo", "list tags moved in gcr.io/foo", "tags-moved"},
	{"list tags in gcr.io/foo", "list tags removed in gcr.io/foo", "tags-removed"},
	{"list tags in gcr.io/foo", "list untagged tags in gcr.io/foo", ""},
	{"list tags in gcr.io/foo", "list tags in gcr.io/foo today", ""},
	{"what is in gcr.io/foo", "what is not in gcr.io/foo", "not-promoted"},
	{"what is in gcr.io/foo", "what is only in gcr.io/foo", ""},
	{"what is in gcr.io/foo", "what is signed in gcr.io/foo", "list-signed"},
	{"what is in gcr.io/foo", "what is untagged in gcr.io/foo", "list-untagged"},
	{"what in gcr.io/foo is in a manifest", "what in gcr.io/foo is in no manifest", "unmanaged"},
	{"what in gcr.io/foo is in a manifest", "what in gcr.io/foo is not in a manifest", "unmanaged"},
	{"what in gcr.io/foo is in no manifest", "what in gcr.io/foo is not in no manifest", ""},
	{"what is not yet promoted to gcr.io/foo", "what is not not yet promoted to gcr.io/foo", ""},
	{"what is not yet promoted to gcr.io/foo", "what is promoted to gcr.io/foo", "promoted-since"},
	{"what is not yet promoted to gcr.io/foo", "what is not yet promoted to gcr.io/foo since 2026-01-01", ""},
	{"what is not yet promoted to gcr.io/foo", "what is not yet promoted from gcr.io/foo", ""},
	{"what is not yet promoted to gcr.io/foo", "what untagged is not yet promoted to gcr.io/foo", ""},
	{"what in gcr.io/a is not in gcr.io/b", "what in gcr.io/a is in gcr.io/b", "common"},
	{"what in gcr.io/a is not in gcr.io/b", "what in gcr.io/a is not in gcr.io/b or gcr.io/c", ""},
	{"what in gcr.io/a is not in gcr.io/b", "what untagged in gcr.io/a is not in gcr.io/b", ""},
	{"what in gcr.io/a is not in gcr.io/b", "what tags in gcr.io/a are not in gcr.io/b", "tag-difference"},
	{"what in gcr.io/a is not in gcr.io/b", "what in gcr.io/a is not in gcr.io/b since yesterday", ""},
	{"which images in gcr.io/foo have arm64", "which images in gcr.io/foo have no arm64", "list-without-platform"},
	{"which images in gcr.io/foo have arm64", "which images in gcr.io/foo have not arm64", "list-without-platform"},
	{"which images in gcr.io/foo have arm64", "which images in gcr.io/foo have arm64 and amd64", ""},
	{"which images in gcr.io/foo have arm64", "which images in gcr.io/foo have only arm64", ""},
	{"which images in gcr.io/foo have arm64", "which images in gcr.io/foo have arm64 or amd64", ""},
	{"which images in gcr.io/foo have tag latest", "which images in gcr.io/foo have no tag latest", "images-without-tag"},
	{"which images in gcr.io/foo have tag latest", "which images in gcr.io/foo have tag latest since yesterday", ""},
	{"which images are multi-arch in gcr.io/foo", "which images are not multi-arch in gcr.io/foo", "list-singlearch"},
	{"which images are multi-arch in gcr.io/foo", "which images are signed multi-arch in gcr.io/foo", ""},
	{"what changed in gcr.io/foo", "what changed in gcr.io/foo today", "changed"},
	{"what changed in gcr.io/foo", "what changed in gcr.io/foo not today", ""},
	{"what changed in gcr.io/foo", "what never changed in gcr.io/foo", ""},
	{"what changed in gcr.io/foo", "what tags have not changed in gcr.io/foo", ""},
	{"what changed in gcr.io/foo since 2026-01-01", "what changed in gcr.io/foo before 2026-01-01", "changed"},
	{"what changed in gcr.io/foo since 2026-01-01", "what changed in gcr.io/foo since 2026-01-01 except tags", ""},
	{"which tags moved in gcr.io/foo", "which tags never moved in gcr.io/foo", ""},
	{"which tags moved in gcr.io/foo", "which tags moved in gcr.io/foo since the last sync", "tags-moved"},
	{"which tags moved in gcr.io/foo", "which tags moved in gcr.io/foo or gcr.io/bar", ""},
	{"where is sha256:abcd", "where is sha256:abcd not", ""},
	{"where is sha256:abcd", "where is sha256:abcd in gcr.io/foo", "where-digest"},
	{"where is sha256:abcd", "where is sha256:abcd except gcr.io/foo", ""},
	{"where is sha256:abcd", "where is the signature of sha256:abcd", ""},
	{"where is pause:3.9", "where is pause:3.9 not", ""},
	{"where is pause:3.9", "where is pause:3.9 since yesterday", ""},
	{"is sha256:abcd promoted to gcr.io/foo", "is sha256:abcd not promoted to gcr.io/foo", ""},
	{"is sha256:abcd promoted to gcr.io/foo", "is sha256:abcd signed in gcr.io/foo", ""},
	{"is sha256:abcd promoted to gcr.io/foo", "is sha256:abcd promoted to gcr.io/foo since yesterday", ""},
	{"largest images in gcr.io/foo", "largest untagged images in gcr.io/foo", ""},
	{"largest images in gcr.io/foo", "largest arm64 images in gcr.io/foo", ""},
	{"largest images in gcr.io/foo", "largest images not in gcr.io/foo", ""},
	{"largest images in gcr.io/foo", "smallest images in gcr.io/foo", "smallest"},
	{"which images in gcr.io/foo are larger than 1 GB", "which images in gcr.io/foo are not larger than 1 GB", ""},
	{"which images in gcr.io/foo are larger than 1 GB", "which images in gcr.io/foo are smaller than 1 GB", "smaller-than"},
	{"which syncs failed", "which syncs never failed", ""},
	{"which syncs failed", "which syncs did not fail", ""},
	{"list sync runs", "list failed sync runs", "failed-syncs"},
	{"list sync runs", "list sync runs since yesterday", "sync-runs"},
	{"list sync runs", "list sync runs for gcr.io/foo", ""},
	{"when was gcr.io/foo last synced", "when was gcr.io/foo not synced", ""},
	{"when was gcr.io/foo last synced", "when was gcr.io/foo first synced", ""},
	{"how big is gcr.io/foo/app:v1", "how big is gcr.io/foo/app:v1 without layers", ""},
	{"how big is gcr.io/foo/app:v1", "how big is gcr.io/foo/app:v1 for arm64", ""},
	{"which platforms does gcr.io/foo/app:v1 have", "which platforms does gcr.io/foo/app:v1 not have", ""},
	{"history of tag latest in gcr.io/foo", "history of tag latest not in gcr.io/foo", ""},
	{"history of tag latest in gcr.io/foo", "history of tag latest in gcr.io/foo since yesterday", ""},
	{"which repositories in gcr.io/foo have no tags", "which repositories in gcr.io/foo have tags", ""},
	{"which repositories in gcr.io/foo were not synced since 2026-01-01", "which repositories in gcr.io/foo were synced since 2026-01-01", ""},
	{"compare gcr.io/a with gcr.io/b", "compare gcr.io/a with gcr.io/b only", ""},
	{"compare gcr.io/a with gcr.io/b", "compare untagged gcr.io/a with gcr.io/b", ""},
	{"compare gcr.io/a with gcr.io/b", "compare gcr.io/a without gcr.io/b", ""},
}

func TestNearMisses(t *testing.T) {
	for _, tc := range nearMisses {
		base, err := Translate(tc.base, testNow)
		if err != nil {
			t.Errorf("base question %q: %v", tc.base, err)
			continue
		}
		p, err := Translate(tc.q, testNow)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("Translate(%q) = %s (%s), want an error", tc.q, p.Form.Name, p.Reading())
		case tc.want != "" && err != nil:
			t.Errorf("Translate(%q) = %v, want form %s", tc.q, err, tc.want)
		case tc.want != "" && p.Form.Name != tc.want:
			t.Errorf("Translate(%q) = form %s, want %s", tc.q, p.Form.Name, tc.want)
		case err == nil && sameReading(base, p):
			t.Errorf("Translate(%q) reads as the question without the added word (%s)", tc.q, p.Reading())
		}
		if err != nil && !errors.Is(err, ErrUnknownQuestion) && !errors.Is(err, ErrNotSupported) && !errors.Is(err, ErrAmbiguous) {
			t.Errorf("Translate(%q) = %v, want unknown, not supported or ambiguous", tc.q, err)
		}
	}
	t.Logf("%d near misses", len(nearMisses))
}

func sameReading(a, b *Plan) bool {
	return a.Form == b.Form && fmt.Sprint(a.Params) == fmt.Sprint(b.Params) && fmt.Sprint(a.Slots) == fmt.Sprint(b.Slots)
}

// meaningWords change what a question asks. TestNearMissesEverywhere puts
// each into every position of every example and golden question. Left
// out: "but" ("in A but not in B" is "in A and not in B", a conjunction
// the difference forms name) and "unique" (the count forms that take it
// count distinct digests, images or repositories anyway; "unique tags"
// is refused, as it could mean tag names).
var meaningWords = []string{"not", "no", "without", "untagged", "tagged", "multi-arch", "single-arch", "signed",
	"unsigned", "arm64", "linux/amd64", "since", "except", "only", "before", "today", "yesterday", "never", "missing",
	"lacking", "both", "or", "largest", "smallest", "removed", "added", "moved", "failed", "new", "unmanaged",
	"managed", "last", "larger", "top", "every", "other", "same", "latest"}

// Every meaning word, inserted anywhere in any known question, yields an
// error or another reading: never the reading of the question without it.
func TestNearMissesEverywhere(t *testing.T) {
	var qs []string
	for _, f := range forms {
		qs = append(qs, f.Example)
	}
	for _, g := range goldenQuestions {
		qs = append(qs, g.q)
	}
	tried, answered := 0, 0
	for _, q := range qs {
		base, err := Translate(q, testNow)
		if err != nil {
			t.Errorf("Translate(%q) = %v", q, err)
			continue
		}
		words := strings.Fields(q)
		for _, w := range meaningWords {
			for i := 0; i <= len(words); i++ {
				mod := strings.Join(append(append(append([]string(nil), words[:i]...), w), words[i:]...), " ")
				tried++
				p, err := translate(mod, testNow, false)
				if err != nil {
					continue
				}
				answered++
				if sameReading(base, p) {
					t.Errorf("Translate(%q) reads as %q without %q: %s", mod, q, w, p.Reading())
				}
			}
		}
	}
	t.Logf("%d questions with a meaning word inserted: %d read as another form or binding, %d refused", tried, answered, tried-answered)
}

// No question reads two ways: the examples and goldens are unambiguous
// (Translate would refuse them otherwise), and two forms never share an
// example's reading.
func TestAmbiguityRefused(t *testing.T) {
	// "prod/app" is a bare path: a REG for where-image and the image of
	// a TARGET are told apart by kind, so this one is unambiguous…
	if _, err := Translate("where is prod/app", testNow); err != nil {
		t.Errorf("Translate(where is prod/app) = %v", err)
	}
	// …and an ambiguity is an error naming both readings.
	ae := &AmbiguousError{Question: "q", Readings: []string{"a (f1)", "b (f2)"}}
	if !errors.Is(ae, ErrAmbiguous) || !strings.Contains(ae.Error(), "a (f1)") {
		t.Errorf("AmbiguousError = %v", ae)
	}
}

// A question about a registry nothing is known of is an error, never an
// empty answer or a zero.
func TestUnknownRegistryIsAnError(t *testing.T) {
	ctx := context.Background()
	path := buildFixture(t)
	for _, tc := range []struct {
		q         string
		manifests bool
		want      string
	}{
		{"how many tags in never.example", false, "nothing is known about never.example"},
		{"how many tags in never.example", true, "no loaded manifest promotes into or out of it"},
		{"list untagged digests in never.example/x", false, "nothing is known"},
		{"which images are multi-arch in mirror.example/prod", true, "mirror.example/prod has not been synced"},
		{"what changed in never.example today", false, "has not been synced"},
		{"which digest does never.example/app:v1 point to", false, "never.example/app has not been synced"},
		{"what in mirror.example/prod is in no manifest", true, "has not been synced"},
		{"what is not yet promoted to registry.example/staging", true, "it is the source of 8 promotions"},
		{"what in registry.example/prod is not yet promoted", true, "it is the destination of 4 promotions"},
		{"what is not yet promoted to registry.example/prod", false, "needs the manifests"},
		{"how many images in nowhere", false, `"nowhere" is no registry reference`},
		{"how many images in app", false, "could be any of 3 known registry paths"},
		{"how many images in prod", true, "could be any of 2 known registry paths: mirror.example/prod, registry.example/prod"},
		{"what does app:latest point to", false, "could be any of 3 known repositories"},
		{"does registry.example/prod have registry.example/staging/app:nope", false, "registry.example/staging/app has no tag nope"},
		{"which platforms does registry.example/prod/app:nope have", false, "has no tag nope"},
		{"how big is registry.example/prod/app@sha256:0000", false, "holds no digest sha256:0000"},
		{"list layers of sha256:0000", false, "holds no manifest with digest sha256:0000"},
	} {
		_, err := askAll(ctx, path, tc.q, askOpts(tc.manifests, t))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Ask(%q, manifests %v) = %v, want ErrInvalid saying %q", tc.q, tc.manifests, err, tc.want)
		}
	}
	// Where nothing is synced at all.
	empty := filepath.Join(t.TempDir(), "none.db")
	if _, err := askAll(ctx, empty, "where is sha256:abcd", askOpts(false, t)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "holds no repository") {
		t.Errorf("where on an empty inventory = %v", err)
	}
}

// "In no manifest" means the same for a source as for a destination: a
// digest a manifest promotes is in a manifest, whichever side the
// registry is on. For each registry, managed and unmanaged partition what
// it holds, and the managed digests are exactly those the manifests name
// there.
func TestManagedMeansTheSameOnBothSides(t *testing.T) {
	ctx := context.Background()
	path := buildFixture(t)
	set := fixtureManifest(t)
	for _, reg := range []string{"registry.example/staging", "registry.example/prod"} {
		rows := func(q string) map[string]bool {
			res, err := askAll(ctx, path, q, askOpts(true, t))
			if err != nil {
				t.Fatalf("Ask(%q) = %v", q, err)
			}
			out := map[string]bool{}
			for _, r := range res.Rows {
				out[fmt.Sprint(r[0])+"@"+fmt.Sprint(r[1])] = true
			}
			return out
		}
		un := rows("what in " + reg + " is in no manifest")
		in := rows("what in " + reg + " is in a manifest")
		res, err := askAll(ctx, path, "what is in "+reg, askOpts(false, t))
		if err != nil {
			t.Fatal(err)
		}
		all := map[string]bool{}
		for _, r := range res.Rows {
			all[reg+"/"+fmt.Sprint(r[0])+"@"+fmt.Sprint(r[1])] = true
		}
		named := map[string]bool{}
		for _, p := range set.Promotions() {
			named[p.Src+"/"+p.Image+"@"+p.Digest] = true
			named[p.Dst+"/"+p.Image+"@"+p.Digest] = true
		}
		for k := range all {
			if un[k] == in[k] {
				t.Errorf("%s: %s is managed %v and unmanaged %v", reg, k, in[k], un[k])
			}
			if in[k] != named[k] {
				t.Errorf("%s: %s managed = %v, but a manifest names it: %v", reg, k, in[k], named[k])
			}
		}
		if len(un)+len(in) != len(all) {
			t.Errorf("%s: %d unmanaged + %d managed rows, %d digests", reg, len(un), len(in), len(all))
		}
		if len(in) == 0 || len(un) == 0 {
			t.Errorf("%s: want both managed and unmanaged digests in the fixture, got %d and %d", reg, len(in), len(un))
		}
	}
}

func TestManifestFormsNeedManifests(t *testing.T) {
	path := buildFixture(t)
	_, err := askAll(context.Background(), path, "what is not yet promoted to registry.example/prod", Options{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "--manifest") {
		t.Errorf("Ask without manifests = %v, want ErrInvalid naming --manifest", err)
	}
}

// Without an inventory file, questions answer from the manifests and no
// file is created.
func TestNoInventory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.db")
	res, err := askAll(context.Background(), path, "how many unique digests in registry.example/prod", askOpts(true, t))
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

// askAll is Ask with the whole answer read into Rows (and the inventory
// closed), so that a test can look at it or write it more than once.
func askAll(ctx context.Context, path, q string, opts Options) (*Result, error) {
	res, err := Ask(ctx, path, q, opts)
	if err != nil {
		return nil, err
	}
	return res, res.ReadAll()
}

// sqlAll is SQL with the whole answer read, as askAll.
func sqlAll(ctx context.Context, path, stmt string, opts Options) (*Result, error) {
	res, err := SQL(ctx, path, stmt, opts)
	if err != nil {
		return nil, err
	}
	return res, res.ReadAll()
}

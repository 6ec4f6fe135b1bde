package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/cipdev/cip/internal/regtest"
)

// TestQueryCountsMatchCrane syncs a population into an inventory and checks
// cip query's counts against what crane reports of the registry itself.
func TestQueryCountsMatchCrane(t *testing.T) {
	srv := StartRegistry(t)
	seed(t, srv.Host)
	db := filepath.Join(t.TempDir(), "inv.db")
	prefix := srv.Host + "/staging"
	Cip(t, 0, "--db", db, "sync", prefix)

	// What crane sees: repositories, tags, and digests (tagged ones and
	// the children of indexes).
	var repos []string
	tags := 0
	digests := map[string]bool{}
	for _, repo := range strings.Fields(Crane(t, "catalog", srv.Host)) {
		if !strings.HasPrefix(repo, "staging/") {
			continue
		}
		repos = append(repos, repo)
		for _, tag := range strings.Fields(Crane(t, "ls", srv.Host+"/"+repo)) {
			tags++
			d := Crane(t, "digest", srv.Host+"/"+repo+":"+tag)
			digests[d] = true
			var m struct {
				Manifests []struct {
					Digest string `json:"digest"`
				} `json:"manifests"`
			}
			if err := json.Unmarshal([]byte(Crane(t, "manifest", srv.Host+"/"+repo+"@"+d)), &m); err != nil {
				t.Fatal(err)
			}
			for _, c := range m.Manifests {
				digests[c.Digest] = true
			}
		}
	}
	t.Logf("crane: %d repositories, %d tags, %d digests", len(repos), tags, len(digests))
	before := queryHashFile(t, db)

	for _, tc := range []struct {
		q    string
		want int
	}{
		{"how many unique digests in " + prefix, len(digests)},
		{"how many tags in " + prefix, tags},
		{"how many repositories in " + prefix, len(repos)},
		{"How many REPOS are there under " + srv.Host + "?", len(repos)},
	} {
		// Flags after the question work too.
		out, stderr := Cip(t, 0, "--db", db, "query", tc.q, "--output", "csv")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || lines[1] != fmt.Sprint(tc.want) {
			t.Errorf("cip query %q = %q, want %d (crane)", tc.q, out, tc.want)
		}
		if !strings.Contains(stderr, "answered from the inventory") {
			t.Errorf("cip query %q stderr = %q, want the source named", tc.q, stderr)
		}
	}

	// Tags as JSON match crane's per-repository listing.
	out, _ := Cip(t, 0, "--db", db, "query", "-o", "json", "list tags in "+prefix+"/app0")
	var rows []struct {
		Image, Tag, Digest string
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("json output %q: %v", out, err)
	}
	craneTags := strings.Fields(Crane(t, "ls", prefix+"/app0"))
	if len(rows) != len(craneTags) {
		t.Errorf("list tags = %d rows, crane ls = %d tags", len(rows), len(craneTags))
	}
	for _, r := range rows {
		if want := Crane(t, "digest", prefix+"/app0:"+r.Tag); r.Digest != want {
			t.Errorf("tag %s at %s, crane says %s", r.Tag, r.Digest, want)
		}
	}

	// --show-sql prints the SQL on stderr, the data stays alone on stdout.
	out, stderr := Cip(t, 0, "--db", db, "query", "--show-sql", "-o", "csv", "SELECT COUNT(*) AS n FROM repositories")
	if out != "n\n"+fmt.Sprint(len(repos))+"\n" || !strings.Contains(stderr, "SELECT COUNT(*)") {
		t.Errorf("SQL query: stdout %q stderr %q", out, stderr)
	}

	// Writes are refused with exit 2; unknown questions suggest forms.
	_, stderr = Cip(t, 2, "--db", db, "query", "DELETE FROM tags")
	if !strings.Contains(stderr, "read-only") {
		t.Errorf("DELETE: stderr %q", stderr)
	}
	_, stderr = Cip(t, 2, "--db", db, "query", "SELECT 1; DROP TABLE tags")
	if !strings.Contains(stderr, "one statement") {
		t.Errorf("two statements: stderr %q", stderr)
	}
	_, stderr = Cip(t, 2, "--db", db, "query", "how many layers in "+prefix)
	if !strings.Contains(stderr, "closest forms") {
		t.Errorf("unknown question: stderr %q", stderr)
	}
	if queryHashFile(t, db) != before {
		t.Errorf("cip query changed the inventory")
	}

	out, _ = Cip(t, 0, "query", "--list", "-o", "csv")
	if !strings.Contains(out, "count-digests,") || !strings.Contains(out, "compare,") {
		t.Errorf("--list = %q", out)
	}
	out, _ = Cip(t, 0, "--db", db, "query", "--schema", "-o", "csv")
	if !strings.Contains(out, "tags,digest,TEXT,") {
		t.Errorf("--schema = %q", out)
	}
}

// queryRows runs a question with -o json and returns its rows and stderr.
func queryRows(t *testing.T, db, q string, extra ...string) ([]map[string]any, string) {
	t.Helper()
	args := append([]string{"--db", db, "query", "-o", "json", q}, extra...)
	out, stderr := Cip(t, 0, args...)
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("cip query %q: json %q: %v", q, out, err)
	}
	if !strings.Contains(stderr, "read as: ") {
		t.Errorf("cip query %q: stderr %q does not say how it was read", q, stderr)
	}
	return rows, stderr
}

// craneLs lists a repository's tags; docker-registry answers NAME_UNKNOWN
// for a repository that holds only untagged manifests: no tags.
func craneLs(t *testing.T, repo string) []string {
	t.Helper()
	out, err := exec.Command(craneBin, "ls", repo).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "NAME_UNKNOWN") {
			return nil
		}
		t.Fatalf("crane ls %s: %v\n%s", repo, err, out)
	}
	return strings.Fields(string(out))
}

// craneHas reports whether repo@digest exists, by crane digest.
func craneHas(t *testing.T, repo, digest string) bool {
	t.Helper()
	return exec.Command(craneBin, "digest", repo+"@"+digest).Run() == nil
}

type craneIndex struct {
	MediaType string `json:"mediaType"`
	Config    struct {
		Size int64 `json:"size"`
	} `json:"config"`
	Layers []struct {
		Size int64 `json:"size"`
	} `json:"layers"`
	Manifests []struct {
		Digest   string `json:"digest"`
		Platform struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
			Variant      string `json:"variant"`
		} `json:"platform"`
	} `json:"manifests"`
}

func craneManifest(t *testing.T, ref string) (craneIndex, int64) {
	t.Helper()
	raw := Crane(t, "manifest", ref)
	var m craneIndex
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("crane manifest %s: %v", ref, err)
	}
	return m, int64(len(raw))
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestQueryAnswersMatchCrane promotes part of a population (an untagged
// image among it) from one docker-registry to another, syncs both, and
// checks each kind of answer cip query gives against what crane reports
// of the registries themselves: tags, the digest of a tag, platforms,
// multi-arch images, sizes, untagged digests, where a tag's digest is,
// and the set differences between the two registries.
func TestQueryAnswersMatchCrane(t *testing.T) {
	srcSrv, dstSrv := StartRegistry(t), StartRegistry(t)
	seed(t, srcSrv.Host)
	src := &regtest.Registry{Host: srcSrv.Host}
	tagless := src.Push(t, "staging/tagless", "", regtest.Image(t, 256, 1, true)).String()
	src.Push(t, "staging/multi-two", "v1", regtest.Index(t, regtest.Platforms[:2], true))
	staging, prod := srcSrv.Host+"/staging", dstSrv.Host+"/prod"
	app0 := Crane(t, "digest", staging+"/app0:v1.0.0")
	multi := Crane(t, "digest", staging+"/multi-oci:v2")

	dir := t.TempDir()
	mf := filepath.Join(dir, "promoter-manifest.yaml")
	body := fmt.Sprintf(`registries:
- name: %s
  src: true
- name: %s
images:
- name: app0
  dmap:
    %q: ["v1.0.0", "latest"]
- name: multi-oci
  dmap:
    %q: ["v2"]
- name: tagless
  dmap:
    %q: []
`, staging, prod, app0, multi, tagless)
	if err := os.WriteFile(mf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "inv.db")
	// prod is synced while empty, so that the inventory knows it (a
	// registry with nothing in it) before cip writes there.
	Cip(t, 0, "--db", db, "sync", prod)
	Cip(t, 0, "--db", db, "promote", "--manifest", mf, "--confirm")
	Cip(t, 0, "--db", db, "sync", staging)
	before := queryHashFile(t, db)

	// Tags and the digest of each tag, in the destination.
	rows, _ := queryRows(t, db, "list tags in "+prod+"/app0")
	if got, want := len(rows), len(strings.Fields(Crane(t, "ls", prod+"/app0"))); got != want || got != 2 {
		t.Errorf("list tags in prod/app0 = %d rows, crane ls = %d tags (want 2)", got, want)
	}
	for _, r := range rows {
		if want := Crane(t, "digest", prod+"/app0:"+r["tag"].(string)); r["digest"] != want {
			t.Errorf("tag %v at %v, crane says %s", r["tag"], r["digest"], want)
		}
	}
	for _, ref := range []string{staging + "/app1:latest", staging + "/multi-docker:v2", prod + "/app0:latest"} {
		rows, _ := queryRows(t, db, "which digest does "+ref+" point to")
		if len(rows) != 1 || rows[0]["digest"] != Crane(t, "digest", ref) {
			t.Errorf("digest of %s = %v, crane digest = %s", ref, rows, Crane(t, "digest", ref))
		}
	}
	// A tag the registry does not have is an error, not an empty answer.
	if _, stderr := Cip(t, 2, "--db", db, "query", "which digest does "+staging+"/app1:nope point to"); !strings.Contains(stderr, "has no tag nope") {
		t.Errorf("unknown tag: stderr %q", stderr)
	}

	// Untagged digests after promoting an untagged image: cip recorded
	// the copy; crane finds the digest there and no tag at it.
	rows, _ = queryRows(t, db, "list untagged digests in "+prod)
	var untagged []string
	for _, r := range rows {
		untagged = append(untagged, r["image"].(string)+"@"+r["digest"].(string))
	}
	if want := []string{"tagless@" + tagless}; !slices.Equal(untagged, want) {
		t.Errorf("untagged digests in prod = %v, want %v", untagged, want)
	}
	if !craneHas(t, prod+"/tagless", tagless) {
		t.Errorf("crane finds no %s/tagless@%s", prod, tagless)
	}
	if tags := craneLs(t, prod+"/tagless"); len(tags) != 0 {
		t.Errorf("crane ls %s/tagless = %q, want no tag", prod, tags)
	}
	rows, _ = queryRows(t, db, "is "+tagless+" promoted to "+prod)
	if len(rows) != 1 || rows[0]["answer"] != "yes" {
		t.Errorf("is %s promoted to prod = %v, want yes", tagless, rows)
	}

	// Platforms and multi-arch images, against each index crane reads.
	m, _ := craneManifest(t, staging+"/multi-oci:v2")
	rows, _ = queryRows(t, db, "which platforms does "+staging+"/multi-oci:v2 have")
	if len(rows) != len(m.Manifests) {
		t.Errorf("platforms of multi-oci:v2 = %d rows, crane = %d", len(rows), len(m.Manifests))
	}
	for i, r := range rows {
		if i < len(m.Manifests) {
			p := m.Manifests[i]
			if r["os"] != p.Platform.OS || r["architecture"] != p.Platform.Architecture || r["variant"] != p.Platform.Variant || r["platform_digest"] != p.Digest {
				t.Errorf("platform %d = %v, crane %+v", i, r, p)
			}
		}
	}
	craneMulti, craneNoS390x := map[string]bool{}, map[string]bool{}
	for _, repo := range strings.Fields(Crane(t, "catalog", srcSrv.Host)) {
		for _, tag := range craneLs(t, srcSrv.Host+"/"+repo) {
			m, _ := craneManifest(t, srcSrv.Host+"/"+repo+":"+tag)
			if len(m.Manifests) == 0 {
				continue
			}
			img := strings.TrimPrefix(repo, "staging/")
			craneMulti[img] = true
			s390x := false
			for _, c := range m.Manifests {
				s390x = s390x || c.Platform.Architecture == "s390x"
			}
			if !s390x {
				craneNoS390x[img] = true
			}
		}
	}
	for q, want := range map[string]map[string]bool{
		"which images are multi-arch in " + staging:     craneMulti,
		"which images in " + staging + " have no s390x": craneNoS390x,
	} {
		rows, _ := queryRows(t, db, q)
		got := map[string]bool{}
		for _, r := range rows {
			got[r["image"].(string)] = true
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s = %v, crane: %v", q, sortedKeys(got), sortedKeys(want))
		}
	}

	// The size of an image: its manifest, config and layers as crane
	// reads them.
	m, n := craneManifest(t, staging+"/app1:latest")
	want := n + m.Config.Size
	for _, l := range m.Layers {
		want += l.Size
	}
	rows, _ = queryRows(t, db, "how big is "+staging+"/app1:latest")
	if len(rows) != 1 || rows[0]["bytes"] != float64(want) {
		t.Errorf("size of app1:latest = %v, crane: %d bytes", rows, want)
	}

	// Where a tag's digest is, across both registries.
	rows, _ = queryRows(t, db, "where is app0:v1.0.0")
	var where []string
	for _, r := range rows {
		where = append(where, r["repository"].(string))
	}
	var craneWhere []string
	for _, repo := range []string{prod + "/app0", staging + "/app0"} {
		if craneHas(t, repo, app0) {
			craneWhere = append(craneWhere, repo)
		}
	}
	sort.Strings(craneWhere)
	if !slices.Equal(where, craneWhere) || len(where) != 2 {
		t.Errorf("where is app0:v1.0.0 = %v, crane finds %s in %v", where, app0, craneWhere)
	}

	// Set differences between the two registries: the digests the
	// staging tags reach that prod lacks (by image name), and the tags.
	craneDiff, craneTagDiff := map[string]bool{}, map[string]bool{}
	for _, repo := range strings.Fields(Crane(t, "catalog", srcSrv.Host)) {
		img := strings.TrimPrefix(repo, "staging/")
		for _, tag := range craneLs(t, srcSrv.Host+"/"+repo) {
			d := Crane(t, "digest", srcSrv.Host+"/"+repo+":"+tag)
			if !craneHas(t, prod+"/"+img, d) {
				craneDiff[img+"@"+d] = true
			}
			if there, err := exec.Command(craneBin, "digest", prod+"/"+img+":"+tag).Output(); err != nil || strings.TrimSpace(string(there)) != d {
				craneTagDiff[img+":"+tag] = true
			}
		}
	}
	rows, _ = queryRows(t, db, "what in "+staging+" is not in "+prod)
	got := map[string]bool{}
	for _, r := range rows {
		got[r["image"].(string)+"@"+r["digest"].(string)] = true
	}
	// The staging tagless image is untagged there: crane cannot list it
	// and cip's sync of docker-registry does not see it either, so both
	// leave it out.
	if !maps.Equal(got, craneDiff) || len(got) == 0 {
		t.Errorf("what in staging is not in prod = %v\ncrane: %v", sortedKeys(got), sortedKeys(craneDiff))
	}
	rows, _ = queryRows(t, db, "how many digests in "+staging+" are not in "+prod)
	if len(rows) != 1 || rows[0]["digests"] != float64(len(craneDiff)) {
		t.Errorf("count of staging - prod = %v, crane %d", rows, len(craneDiff))
	}
	rows, _ = queryRows(t, db, "which tags in "+staging+" are not in "+prod)
	got = map[string]bool{}
	for _, r := range rows {
		got[r["image"].(string)+":"+r["tag"].(string)] = true
	}
	if !maps.Equal(got, craneTagDiff) || len(got) == 0 {
		t.Errorf("tags in staging not in prod = %v\ncrane: %v", sortedKeys(got), sortedKeys(craneTagDiff))
	}
	// The other way: everything prod holds came from staging, the tagless
	// digest too: the promotion found it in staging by digest, and the
	// sync of staging keeps it (confirmed by a HEAD by digest).
	if rows, _ := queryRows(t, db, "what in "+prod+" is not in "+staging); len(rows) != 0 {
		t.Errorf("what in prod is not in staging = %v, want nothing", rows)
	}

	// The manifests against the registries: nothing left to promote,
	// and in staging what no manifest names is what crane lists beyond
	// the three promoted digests.
	if rows, _ := queryRows(t, db, "what is not yet promoted to "+prod, "--manifest", mf); len(rows) != 0 {
		t.Errorf("not yet promoted after promote = %v", rows)
	}
	rows, _ = queryRows(t, db, "what in "+staging+" is in no manifest", "--manifest", mf)
	for _, r := range rows {
		d := r["digest"].(string)
		if d == app0 || d == multi || d == tagless {
			t.Errorf("in no manifest lists %v, which the manifest promotes from staging", r)
		}
	}
	if len(rows) == 0 {
		t.Errorf("in no manifest: no rows, but staging holds more than the manifest promotes")
	}

	// A bare name is read as the one known path ending in it, and said so;
	// --show-sql prints the fixed statement and the values bound.
	_, stderr := Cip(t, 0, "--db", db, "query", "--show-sql", "-o", "csv", "how many repositories in prod")
	if !strings.Contains(stderr, `read "prod" as `+prod) || !strings.Contains(stderr, "-- :reg = "+prod) || !strings.Contains(stderr, "SELECT COUNT(*) AS repositories") {
		t.Errorf("bare name with --show-sql: stderr %q", stderr)
	}
	out, _ := Cip(t, 0, "--db", db, "query", "-o", "csv", "how many repositories in prod")
	craneRepos := 0
	for _, repo := range strings.Fields(Crane(t, "catalog", dstSrv.Host)) {
		if strings.HasPrefix(repo, "prod/") {
			craneRepos++
		}
	}
	if out != fmt.Sprintf("repositories\n%d\n", craneRepos) {
		t.Errorf("how many repositories in prod = %q, crane catalog: %d", out, craneRepos)
	}

	// Questions that cannot be answered exit 2 and say why.
	for q, want := range map[string]string{
		"which images in " + staging + " have an sbom":    "not supported yet",
		"how many digests in " + staging + " except app0": "unknown question",
		"how many tags in " + dstSrv.Host + "/elsewhere":  "",
	} {
		_, stderr := Cip(t, 2, "--db", db, "query", q)
		if want != "" && !strings.Contains(stderr, want) {
			t.Errorf("cip query %q: stderr %q, want %q", q, stderr, want)
		}
	}
	if queryHashFile(t, db) != before {
		t.Errorf("cip query changed the inventory")
	}
}

func queryHashFile(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

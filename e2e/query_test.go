package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

func queryHashFile(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

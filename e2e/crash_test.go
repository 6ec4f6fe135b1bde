package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cipdev/cip/internal/regtest"
)

// crashSeed fixes the kill points; change it to explore others.
const crashSeed = 20261126

// seedCrash pushes a population that takes cip about a second to sync or
// promote on two cores: repositories of one image with many tags (a HEAD
// each to sync, a manifest PUT each to promote) and multi-arch indexes
// (children must land before their index).
func seedCrash(t *testing.T, host string) {
	t.Helper()
	reg := &regtest.Registry{Host: host}
	var g errgroup.Group
	g.SetLimit(4)
	for i := range 8 {
		g.Go(func() error {
			repo := fmt.Sprintf("staging/svc%02d", i)
			d := reg.Push(t, repo, "v0", regtest.Image(t, 128, 1, i%2 == 0))
			for j := 1; j < 16; j++ {
				reg.Tag(t, repo, d, fmt.Sprintf("v%d", j))
			}
			if i%2 == 0 {
				reg.Push(t, repo, "multi", regtest.Index(t, regtest.Platforms, i%2 == 0))
			}
			return nil
		})
	}
	g.Wait()
}

// startKilled starts cip, kills it with SIGKILL after delay, and reports
// whether it had already finished, and how long it took if so.
func startKilled(t *testing.T, delay time.Duration, args ...string) (finished bool, took time.Duration) {
	t.Helper()
	cmd := exec.Command(cipBin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return true, time.Since(start)
	case <-time.After(delay):
	}
	cmd.Process.Kill()
	<-done
	return false, 0
}

// checkIntegrity runs SQLite's integrity and foreign key checks on db
// (opened read-write, as the next cip would, so that the WAL is recovered).
func checkIntegrity(t *testing.T, db string) {
	t.Helper()
	d, err := sqlOpen(db)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var res string
	if err := d.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("PRAGMA integrity_check on %s = %q, %v; want ok", db, res, err)
	}
	rows, err := d.Query("PRAGMA foreign_key_check")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if rows.Next() {
		t.Fatalf("PRAGMA foreign_key_check on %s: violations", db)
	}
}

// checkNoBrokenIndex reads every tag below host/prefix straight from the
// registry: a tag that names an index must have every child present.
func checkNoBrokenIndex(t *testing.T, host, prefix string) (tags, indexes int) {
	t.Helper()
	get := func(method, path string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, "http://"+host+path, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	// 1000: docker-registry's largest catalog page.
	resp, body := get(http.MethodGet, "/v2/_catalog?n=1000")
	var cat struct{ Repositories []string }
	if err := json.Unmarshal(body, &cat); err != nil || resp.StatusCode != http.StatusOK || len(cat.Repositories) == 1000 {
		t.Fatalf("catalog of %s: %d %v %s", host, resp.StatusCode, err, body)
	}
	for _, repo := range cat.Repositories {
		if !strings.HasPrefix(repo, prefix+"/") {
			continue
		}
		resp, body := get(http.MethodGet, "/v2/"+repo+"/tags/list")
		if resp.StatusCode == http.StatusNotFound {
			continue // repository started, no tag yet
		}
		var tl struct{ Tags []string }
		if err := json.Unmarshal(body, &tl); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("tags of %s/%s: %d %v %s", host, repo, resp.StatusCode, err, body)
		}
		for _, tag := range tl.Tags {
			tags++
			resp, body := get(http.MethodGet, "/v2/"+repo+"/manifests/"+tag)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s/%s:%s listed but GET = %d", host, repo, tag, resp.StatusCode)
				continue
			}
			var m struct {
				Manifests []struct{ Digest string }
			}
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("manifest %s/%s:%s: %v", host, repo, tag, err)
			}
			if len(m.Manifests) > 0 {
				indexes++
			}
			for _, c := range m.Manifests {
				if resp, _ := get(http.MethodHead, "/v2/"+repo+"/manifests/"+c.Digest); resp.StatusCode != http.StatusOK {
					t.Errorf("%s/%s:%s is an index whose child %s is missing (HEAD %d)", host, repo, tag, c.Digest, resp.StatusCode)
				}
			}
		}
	}
	return tags, indexes
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCrash kills cip with SIGKILL at seeded random points of sync and of
// promote --confirm. After each kill the inventory passes PRAGMA
// integrity_check and holds only manifests that hash to their digests, no
// destination tag names an index with a missing child, a rerun completes,
// and the result equals an uninterrupted run's (sync) or passes cip verify
// (promote).
func TestCrash(t *testing.T) {
	// At least this many kills land mid-run for each command (a run that
	// finishes before its kill is retried with another delay, up to
	// maxRuns).
	// The delays are drawn below the duration of an uninterrupted run,
	// shrunk to any faster run seen, as the machine's load varies.
	const kills, maxRuns = 10, 30
	src, dst := StartRegistry(t), StartRegistry(t)
	seedCrash(t, src.Host)
	rng := rand.New(rand.NewPCG(crashSeed, 1))
	work := t.TempDir()

	// An uninterrupted sync: the reference, and how long a run takes.
	ref := filepath.Join(work, "ref.db")
	start := time.Now()
	Cip(t, 0, "--db", ref, "--quiet", "sync", src.Host+"/staging")
	syncTime := time.Since(start)
	want := snapshotCSV(t, ref, src.Host+"/staging")
	t.Logf("population: %d snapshot lines; uninterrupted sync %s", strings.Count(want, "\n")+1, syncTime.Round(time.Millisecond))

	t.Run("sync", func(t *testing.T) {
		killed, i := 0, 0
		for ; killed < kills && i < maxRuns; i++ {
			db := filepath.Join(work, fmt.Sprintf("sync%d.db", i))
			delay := time.Duration(rng.Int64N(int64(syncTime * 9 / 10)))
			if finished, took := startKilled(t, delay, "--db", db, "--quiet", "sync", src.Host+"/staging"); !finished {
				killed++
			} else {
				syncTime = min(syncTime, took)
			}
			if _, err := os.Stat(db); err == nil {
				checkIntegrity(t, db)
				checkInventoryDigests(t, db, true)
			}
			Cip(t, 0, "--db", db, "--quiet", "sync", src.Host+"/staging")
			checkIntegrity(t, db)
			if got := snapshotCSV(t, db, src.Host+"/staging"); got != want {
				t.Fatalf("kill %d (after %s): snapshot after the rerun differs from an uninterrupted sync", i, delay)
			}
		}
		t.Logf("sync: %d runs, %d killed mid-run (the others finished first)", i, killed)
		if killed < kills {
			t.Errorf("only %d of %d syncs killed mid-run, want %d: the delays are too long", killed, i, kills)
		}
	})

	t.Run("promote", func(t *testing.T) {
		// Each kill promotes into a fresh prefix of the destination, from
		// a copy of the synced inventory.
		manifestFor := func(i int) string {
			dir := filepath.Join(work, fmt.Sprintf("promote%d", i))
			images, _ := Cip(t, 0, "--db", ref, "snapshot", "--offline", src.Host+"/staging")
			writeFile(t, filepath.Join(dir, "images", "p", "images.yaml"), images)
			writeFile(t, filepath.Join(dir, "manifests", "p", "promoter-manifest.yaml"),
				fmt.Sprintf("registries:\n- name: %s/staging\n  src: true\n- name: %s/prod%d\n", src.Host, dst.Host, i))
			return dir
		}
		// One dry run and one uninterrupted promote, to time them: most
		// kills land after the dry run's share (sync and plan), in the
		// copies and tags (the prefixes used are checked too).
		dir := manifestFor(maxRuns)
		db := filepath.Join(work, "promote-ref.db")
		copyFile(t, ref, db)
		start := time.Now()
		Cip(t, 0, "--db", db, "--quiet", "promote", "--thin-manifest-dir", dir)
		planTime := time.Since(start)
		start = time.Now()
		Cip(t, 0, "--db", db, "--quiet", "promote", "--thin-manifest-dir", dir, "--confirm")
		promoteTime := time.Since(start)
		Cip(t, 0, "--db", db, "verify", "--thin-manifest-dir", dir)
		t.Logf("dry run %s, uninterrupted promote %s", planTime.Round(time.Millisecond), promoteTime.Round(time.Millisecond))
		from := planTime * 2 / 3
		if from >= promoteTime*9/10 {
			from = 0
		}

		killed, sawTags, sawIndexes, i := 0, 0, 0, 0
		for ; killed < kills && i < maxRuns; i++ {
			dir := manifestFor(i)
			db := filepath.Join(work, fmt.Sprintf("promote%d.db", i))
			copyFile(t, ref, db)
			delay := from + time.Duration(rng.Int64N(int64(promoteTime*9/10-from)))
			if finished, took := startKilled(t, delay, "--db", db, "--quiet", "promote", "--thin-manifest-dir", dir, "--confirm"); !finished {
				killed++
			} else if took < promoteTime {
				promoteTime = took
				if from >= promoteTime*9/10 {
					from = 0
				}
			}
			checkIntegrity(t, db)
			checkInventoryDigests(t, db, true)
			tags, indexes := checkNoBrokenIndex(t, dst.Host, fmt.Sprintf("prod%d", i))
			sawTags += tags
			sawIndexes += indexes
			Cip(t, 0, "--db", db, "--quiet", "promote", "--thin-manifest-dir", dir, "--confirm")
			checkIntegrity(t, db)
			Cip(t, 0, "--db", db, "verify", "--thin-manifest-dir", dir)
			checkNoBrokenIndex(t, dst.Host, fmt.Sprintf("prod%d", i))
		}
		t.Logf("promote: %d runs, %d killed mid-run; at the kills the destinations held %d tags, %d of them on indexes, none broken", i, killed, sawTags, sawIndexes)
		if killed < kills {
			t.Errorf("only %d of %d promotes killed mid-run, want %d: the delays are too long", killed, i, kills)
		}
	})
}

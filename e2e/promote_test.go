package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipdev/cip/internal/regtest"
)

// TestPromoteDockerRegistry promotes a population with OCI and Docker
// images and multi-arch indexes from one docker-registry into two
// destinations on another, checks every tag with crane digest and every
// copied image with crane validate, and plans again to find nothing left.
func TestPromoteDockerRegistry(t *testing.T) {
	srcSrv, dstSrv := StartRegistry(t), StartRegistry(t)
	src := &regtest.Registry{Host: srcSrv.Host}
	type entry struct {
		image, digest string
		tags          []string
	}
	var entries []entry
	// app0..app3 share a base layer, so that the second destination on the
	// same server mounts blobs rather than sending them.
	base := regtest.Image(t, 4096, 1, false)
	baseLayers, err := base.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		oci := i%2 == 0
		img, err := mutate.AppendLayers(regtest.Image(t, 1024, 1, oci), baseLayers...)
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("app%d", i)
		d := src.Push(t, "staging/"+name, "v1.0.0", img)
		src.Tag(t, "staging/"+name, d, "latest")
		entries = append(entries, entry{name, d.String(), []string{"latest", "v1.0.0"}})
	}
	entries = append(entries,
		entry{"multi-oci", src.Push(t, "staging/multi-oci", "v2", platformIndex(t, true)).String(), []string{"v2"}},
		entry{"multi-docker", src.Push(t, "staging/multi-docker", "v2", platformIndex(t, false)).String(), []string{"v2", "stable"}},
		entry{"tagless", src.Push(t, "staging/tagless", "", regtest.Image(t, 512, 1, true)).String(), nil},
	)

	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "registries:\n- name: %s/staging\n  src: true\n- name: %s/prod\n- name: %s/mirror\nimages:\n", src.Host, dstSrv.Host, dstSrv.Host)
	for _, e := range entries {
		q := make([]string, len(e.tags))
		for i, tag := range e.tags {
			q[i] = fmt.Sprintf("%q", tag)
		}
		fmt.Fprintf(&b, "- name: %s\n  dmap:\n    %q: [%s]\n", e.image, e.digest, strings.Join(q, ", "))
	}
	mf := filepath.Join(dir, "promoter-manifest.yaml")
	if err := os.WriteFile(mf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "inventory.db")

	// Dry run with --exit-code: work pending, nothing written.
	out, planErr := Cip(t, 3, "--db", db, "promote", "--manifest", mf, "--plan", "--exit-code", "-o", "json")
	// cip prints the summaries the libraries return: the plan's syncs and
	// counts.
	for _, want := range []string{"synced " + dstSrv.Host + ": ", "sync: ", "plan " + dstSrv.Host + "/prod: " + fmt.Sprint(len(entries)) + " copy, 0 tag, 0 skip, 0 lost"} {
		if !strings.Contains(planErr, want) {
			t.Errorf("plan stderr lacks %q:\n%s", want, planErr)
		}
	}
	var plan []struct {
		Destination, Image, Digest, Action string
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatalf("plan json: %v\n%s", err, out)
	}
	if len(plan) != 2*len(entries) {
		t.Errorf("plan has %d rows, want %d", len(plan), 2*len(entries))
	}
	for _, p := range plan {
		if p.Action != "copy" {
			t.Errorf("plan row %+v: action %s, want copy", p, p.Action)
		}
	}
	if got := Crane(t, "catalog", dstSrv.Host); got != "" {
		t.Fatalf("dry run wrote to the destination: catalog %q", got)
	}

	report := filepath.Join(dir, "report.json")
	_, promoteErr := Cip(t, 0, "--db", db, "promote", "--manifest", mf, "--confirm", "--report", report)
	for _, want := range []string{"promoted " + dstSrv.Host + "/prod: " + fmt.Sprint(len(entries)) + " copied, 11 tagged, 0 skipped, 0 lost", "references verified"} {
		if !strings.Contains(promoteErr, want) {
			t.Errorf("promote stderr lacks %q:\n%s", want, promoteErr)
		}
	}

	for _, prefix := range []string{"prod", "mirror"} {
		for _, e := range entries {
			repo := dstSrv.Host + "/" + prefix + "/" + e.image
			if got := Crane(t, "digest", repo+"@"+e.digest); got != e.digest {
				t.Errorf("crane digest %s@%s = %s", repo, e.digest, got)
			}
			for _, tag := range e.tags {
				if got := Crane(t, "digest", repo+":"+tag); got != e.digest {
					t.Errorf("crane digest %s:%s = %s, want %s", repo, tag, got, e.digest)
				}
			}
			Crane(t, "validate", "--remote", repo+"@"+e.digest)
		}
	}

	var rep struct {
		DryRun       bool `json:"dry_run"`
		Destinations []struct {
			Destination  string `json:"destination"`
			Copied       int    `json:"copied"`
			Tagged       int    `json:"tagged"`
			BytesSent    int64  `json:"bytes_sent"`
			BytesMounted int64  `json:"bytes_mounted"`
			Requests     int64  `json:"requests"`
		} `json:"destinations"`
		Verified   int               `json:"verified"`
		Mismatches []json.RawMessage `json:"mismatches"`
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, raw)
	}
	var mounted, sent int64
	for _, d := range rep.Destinations {
		if d.Copied != len(entries) || d.Tagged != 11 {
			t.Errorf("report %s: %d copied, %d tagged; want %d, 11", d.Destination, d.Copied, d.Tagged, len(entries))
		}
		mounted += d.BytesMounted
		sent += d.BytesSent
	}
	if rep.DryRun || len(rep.Destinations) != 2 || rep.Verified == 0 || len(rep.Mismatches) != 0 || sent == 0 || mounted == 0 {
		t.Errorf("report: want 2 destinations, bytes sent and mounted, verified, no mismatch; got\n%s", raw)
	}

	// Nothing left to do; everything verifies.
	Cip(t, 0, "--db", db, "promote", "--manifest", mf, "--plan", "--exit-code")
	Cip(t, 0, "--db", db, "verify", "--manifest", mf)
	// A fresh inventory sees the same (tagless digests found by HEAD).
	Cip(t, 0, "--db", filepath.Join(dir, "fresh.db"), "promote", "--manifest", mf, "--plan", "--exit-code")

	// A tag moved behind cip's back: verify lists it and exits 1; promote
	// refuses to move it back (exit 2), in a dry run too.
	dst := &regtest.Registry{Host: dstSrv.Host}
	dst.Push(t, "prod/app1", "latest", regtest.Image(t, 64, 1, true))
	vout, _ := Cip(t, 1, "--db", db, "verify", "--manifest", mf)
	if !strings.Contains(vout, dstSrv.Host+"/prod/app1:latest") {
		t.Errorf("verify output does not name the moved tag:\n%s", vout)
	}
	_, serr := Cip(t, 2, "--db", db, "promote", "--manifest", mf, "--plan")
	if !strings.Contains(serr, "prod/app1:latest") || !strings.Contains(serr, entries[1].digest) {
		t.Errorf("tag move error does not name the tag and wanted digest:\n%s", serr)
	}
}

// platformIndex is regtest.Index with each image's config naming its
// platform, as crane validate requires of an index's children.
func platformIndex(t *testing.T, oci bool) v1.ImageIndex {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	if oci {
		idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	} else {
		idx = mutate.IndexMediaType(idx, types.DockerManifestList)
	}
	for _, p := range regtest.Platforms {
		img := regtest.Image(t, 512, 1, oci)
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return idx
}

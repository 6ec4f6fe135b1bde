// Command cip-demo runs cip's main job on an embedded default: it starts two
// in-process registries (go-containerregistry's pkg/registry) on loopback,
// seeds a staging registry with three single-platform images and a
// multi-arch index (from a fixed seed, so that the digests are the same on
// every run), writes a promoter manifest naming them, and runs cip against
// it step by step, saying before each step what it shows and what to look
// at: validate, sync, snapshots, the plan, the promotion, verify, a second
// promotion that has nothing left to do, and a question to the inventory.
//
//	go run ./cmd/cip-demo                  (or: make demo)
//	go run ./cmd/cip-demo --keep /tmp/demo (keep the manifest, report and inventory)
//
// The README shows a capture of a run; a test compares it with a fresh one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipdev/cip/cmd/app"
)

// seed makes the demo's images, and so their digests, the same on every run.
const seed = 20261201

func main() {
	keep := flag.String("keep", "", "keep the manifest, the report and the inventory in `DIR` (created if needed)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: cip-demo [--keep DIR]\n\nRuns cip's main job against two in-process registries, explaining each step.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, os.Stderr, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "cip-demo:", err)
		os.Exit(1)
	}
}

// step is one cip command line and what it shows.
type step struct {
	say  string
	args []string
	code int // the exit code it must give
}

func run(ctx context.Context, stdout, stderr io.Writer, keep string) error {
	quiet := log.New(io.Discard, "", 0)
	staging := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(quiet)))
	defer staging.Close()
	prod := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(quiet)))
	defer prod.Close()
	src := strings.TrimPrefix(staging.URL, "http://") + "/staging"
	dst := strings.TrimPrefix(prod.URL, "http://") + "/prod"

	images, err := seedImages(src)
	if err != nil {
		return err
	}
	dir := keep
	if dir == "" {
		if dir, err = os.MkdirTemp("", "cip-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--keep: %w", err)
	}
	db := filepath.Join(dir, "inventory.db")
	mf := filepath.Join(dir, "promoter-manifest.yaml")
	report := filepath.Join(dir, "report.json")
	if keep != "" {
		// A kept directory starts afresh: the demo's registries are new.
		for _, f := range []string{db, db + "-wal", db + "-shm", report} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	if err := os.WriteFile(mf, []byte(manifestYAML(src, dst, images)), 0o644); err != nil {
		return err
	}

	say := func(text string) { fmt.Fprintf(stdout, "\n# %s\n", strings.ReplaceAll(text, "\n", "\n# ")) }
	fmt.Fprintf(stdout, "# cip demo: two registries on loopback, a staging one with four images (three\n"+
		"# single-platform, one multi-arch index) and an empty production one. Files are in\n# DIR=%s\n", dir)
	say("The promoter manifest ($DIR/promoter-manifest.yaml): the source registry, the\n" +
		"destination, and for each image the digest to promote and its tags.")
	fmt.Fprint(stdout, manifestYAML(src, dst, images))

	steps := []step{
		{"Validation reads the manifest strictly and contacts nothing; an error would name\n" +
			"its file and line, and exit 2.", []string{"validate", "--manifest", mf}, 0},
		{"sync crawls staging into the local SQLite inventory: tags listed, each tag HEADed,\n" +
			"each manifest new to the inventory fetched. Look at \"6 manifests fetched\" (3 images,\n" +
			"the index and its 2 children): no later run fetches them again.", []string{"--db", db, "sync", src}, 0},
		{"A snapshot from the inventory alone (--offline: no request), as a thin images.yaml.",
			[]string{"--db", db, "snapshot", src, "--offline"}, 0},
		{"The same as CSV, without the index's untagged children (--minimal).",
			[]string{"--db", db, "snapshot", src, "--offline", "--output", "csv", "--minimal"}, 0},
		{"What the manifest promotes into production, from the manifest alone.",
			[]string{"snapshot", "--manifest-based-snapshot-of", dst, "--manifest", mf}, 0},
		{"The plan: one row per (destination, image, digest). Look at the ACTION column:\n" +
			"4 copy rows, what --confirm will do; the summary line on stderr counts them.",
			[]string{"--db", db, "promote", "--manifest", mf, "--plan"}, 0},
		{"The promotion: blobs stream from staging to production (never to disk), manifests go\n" +
			"up by digest, then tags; with stderr not a terminal each finished copy is logged\n" +
			"(on a terminal a live line shows progress instead), and at the end every reference\n" +
			"written is checked with a live HEAD. The report is $DIR/report.json.",
			[]string{"--db", db, "promote", "--manifest", mf, "--confirm", "--report", report}, 0},
		{"verify asks production directly, a HEAD per digest and tag the manifest names.",
			[]string{"--db", db, "verify", "--manifest", mf}, 0},
		{"Production as the inventory now knows it: the same images, digests and tags.",
			[]string{"--db", db, "snapshot", dst, "--offline"}, 0},
		{"Promoting again does nothing: every row is skip. Look at \"promote: 0 copied,\n" +
			"0 tagged, 0 requests\": the only requests are the sync's tag listings and HEADs,\n" +
			"and \"0 manifests fetched\" (the inventory knows them all).",
			[]string{"--db", db, "promote", "--manifest", mf, "--confirm"}, 0},
		{"Nothing left to do, so --exit-code exits 0 (3 would mean copies, tags or\n" +
			"referrers pending).",
			[]string{"--db", db, "promote", "--manifest", mf, "--plan", "--exit-code"}, 0},
		{"Questions to the inventory, in plain English, answered by SQL (--show-sql shows it):\n" +
			"the largest images in production, sizes in binary units (and bytes).",
			[]string{"--db", db, "query", "largest 3 images in " + dst}, 0},
		{"The Container Image Promoter's own command line works too (a dry run without\n--confirm).",
			[]string{"--db", db, "run", "--manifest", mf}, 0},
	}
	for _, s := range steps {
		say(s.say)
		fmt.Fprintf(stdout, "$ cip %s\n", strings.ReplaceAll(quoteArgs(s.args), dir, "$DIR"))
		if code := app.Run(ctx, "cip", append([]string{"cip"}, s.args...), stdout, stderr); code != s.code {
			return fmt.Errorf("cip %s: exit %d, want %d", strings.Join(s.args, " "), code, s.code)
		}
	}

	fmt.Fprintln(stdout)
	if keep == "" {
		fmt.Fprintf(stdout, "# now try: go run ./cmd/cip-demo --keep /tmp/cip-demo, which keeps the manifest, the\n"+
			"# report and the inventory there (the registries end with the demo), then ask the\n"+
			"# inventory (cip is `make install`, or go run ./cmd/cip):\n"+
			"#   cip --db /tmp/cip-demo/inventory.db query \"how many tags in %s\"\n"+
			"#   cip --db /tmp/cip-demo/inventory.db query --list\n", dst)
		return nil
	}
	fmt.Fprintf(stdout, "# now try (cip is `make install`, or go run ./cmd/cip):\n"+
		"#   cip --db %[1]s query \"how many tags in %[2]s\"\n"+
		"#   cip --db %[1]s query \"which tags point to %[3]s\" --show-sql\n"+
		"#   cip --db %[1]s query --list\n"+
		"#   jq .images %[4]s\n", db, dst, images[0].digest.String()[:16], report)
	return nil
}

// quoteArgs joins args for display, quoting those with spaces.
func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \"") {
			a = fmt.Sprintf("%q", a)
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

type seeded struct {
	name, tag string
	digest    v1.Hash
}

// seedImages pushes three single-platform images and one multi-arch index,
// made from the fixed seed.
func seedImages(src string) ([]seeded, error) {
	rng := random.WithSource(rand.NewSource(seed))
	var out []seeded
	for i, n := range []string{"apple", "banana", "cherry"} {
		img, err := random.Image(1024*int64(i+1), 2, rng)
		if err != nil {
			return nil, err
		}
		tag := fmt.Sprintf("v1.%d.0", i)
		if err := remote.Write(mustRef(src+"/"+n+":"+tag), img); err != nil {
			return nil, fmt.Errorf("seed %s: %w", n, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		out = append(out, seeded{n, tag, d})
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}} {
		img, err := random.Image(512, 1, rng)
		if err != nil {
			return nil, err
		}
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	if err := remote.WriteIndex(mustRef(src+"/multiarch:v2.0.0"), idx); err != nil {
		return nil, fmt.Errorf("seed multiarch: %w", err)
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	return append(out, seeded{"multiarch", "v2.0.0", d}), nil
}

func mustRef(s string) name.Reference {
	r, err := name.ParseReference(s)
	if err != nil {
		panic(err) // the demo builds these names itself
	}
	return r
}

func manifestYAML(src, dst string, images []seeded) string {
	var b strings.Builder
	fmt.Fprintf(&b, "registries:\n- name: %s\n  src: true\n- name: %s\nimages:\n", src, dst)
	for _, img := range images {
		fmt.Fprintf(&b, "- name: %s\n  dmap:\n    %q: [%q]\n", img.name, img.digest.String(), img.tag)
	}
	return b.String()
}

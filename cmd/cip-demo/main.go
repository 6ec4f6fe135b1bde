// Command cip-demo runs cip's main job on an embedded default: it starts two
// in-process registries (go-containerregistry's pkg/registry), seeds a
// staging registry with single-platform images and a multi-arch index,
// writes a promoter manifest naming some of them, and runs cip against it:
// validate, sync, snapshot, plan, promote, verify, and a second plan that
// finds nothing left to do.
//
//	go run ./cmd/cip-demo        (or: make demo)
package main

import (
	"context"
	"fmt"
	"io"
	"log"
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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cip-demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, stdout, stderr io.Writer) error {
	quiet := log.New(io.Discard, "", 0)
	staging := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(quiet)))
	defer staging.Close()
	prod := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(quiet)))
	defer prod.Close()
	src := strings.TrimPrefix(staging.URL, "http://") + "/staging"
	dst := strings.TrimPrefix(prod.URL, "http://") + "/prod"

	fmt.Fprintf(stdout, "# staging registry %s, production registry %s\n", src, dst)
	images, err := seed(src)
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "cip-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "inventory.db")
	mf := filepath.Join(dir, "promoter-manifest.yaml")
	if err := os.WriteFile(mf, []byte(manifestYAML(src, dst, images)), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# promoter manifest %s:\n%s\n", mf, manifestYAML(src, dst, images))

	steps := [][]string{
		{"validate", "--manifest", mf},
		{"--db", db, "sync", src},
		{"--db", db, "snapshot", src, "--offline"},
		{"--db", db, "snapshot", src, "--offline", "--output", "csv", "--minimal"},
		{"snapshot", "--manifest-based-snapshot-of", dst, "--manifest", mf},
		{"--db", db, "promote", "--manifest", mf, "--plan"},
		{"--db", db, "promote", "--manifest", mf, "--confirm", "--report", filepath.Join(dir, "report.json")},
		{"--db", db, "verify", "--manifest", mf},
		{"--db", db, "snapshot", dst, "--offline"},
		// Nothing left to do: exit 0 (3 would mean pending work).
		{"--db", db, "promote", "--manifest", mf, "--plan", "--exit-code"},
		// The seed's form is the same promotion (a dry run without --confirm).
		{"--db", db, "run", "--manifest", mf},
	}
	for _, s := range steps {
		fmt.Fprintf(stdout, "\n$ cip %s\n", strings.Join(s, " "))
		if code := app.Run(ctx, "cip", append([]string{"cip"}, s...), stdout, stderr); code != 0 {
			return fmt.Errorf("cip %s: exit %d", strings.Join(s, " "), code)
		}
	}
	return nil
}

type seeded struct {
	name, tag string
	digest    v1.Hash
}

// seed pushes three single-platform images and one multi-arch index.
func seed(src string) ([]seeded, error) {
	var out []seeded
	for i, n := range []string{"apple", "banana", "cherry"} {
		img, err := random.Image(1024, 2)
		if err != nil {
			return nil, err
		}
		tag := fmt.Sprintf("v1.%d.0", i)
		if err := remote.Write(mustRef(src+"/"+n+":"+tag), img); err != nil {
			return nil, fmt.Errorf("seed %s: %w", n, err)
		}
		d, _ := img.Digest()
		out = append(out, seeded{n, tag, d})
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}} {
		img, err := random.Image(512, 1)
		if err != nil {
			return nil, err
		}
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	if err := remote.WriteIndex(mustRef(src+"/multiarch:v2.0.0"), idx); err != nil {
		return nil, fmt.Errorf("seed multiarch: %w", err)
	}
	d, _ := idx.Digest()
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

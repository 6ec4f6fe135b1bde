// Package snapshot exports what a registry holds (from the inventory) or
// what manifests promote into a registry (offline), as the thin-manifest
// images.yaml format or as CSV.
package snapshot

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/inventory"
	"github.com/cipdev/cip/manifest"
)

// Format is an output format.
type Format string

// Formats.
const (
	YAML Format = "yaml"
	CSV  Format = "csv"
)

// ParseFormat checks a --output value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case YAML, CSV:
		return Format(s), nil
	}
	return "", fmt.Errorf("unknown snapshot format %q (want yaml or csv)", s)
}

// FromInventory returns the images held by repositories at or below ref,
// named relative to ref. A repository equal to ref is named by its last path
// segment. With minimal, untagged children of indexes are left out. Unless
// referrers, referrer tags (sha256-<hex>, and cosign's .sig, .att, .sbom)
// are left out, and so are the digests held only as referrers (or as
// sha256-<hex> indexes of them): they travel with their subjects, and are
// no promoter manifest's content.
//
// A snapshot is a promoter manifest's images, so it holds only what cip
// validate accepts: an image name, digest (sha256, the only digest a
// promoter manifest names) or tag it refuses (an inventory a registry
// filled before cip checked names, a sha512 child) is left out, and
// skipped says which and why.
func FromInventory(ctx context.Context, db *inventory.DB, ref string, minimal, referrers bool) (images []manifest.Image, skipped []string, err error) {
	ref = strings.TrimSuffix(ref, "/")
	contents, err := db.Contents(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range contents {
		if minimal && c.Child {
			continue
		}
		if !referrers {
			tags := slices.DeleteFunc(slices.Clone(c.Tags), referrer.IsTag)
			if len(tags) == 0 && (c.Referrer || len(c.Tags) > 0) {
				continue
			}
			if len(tags) == 0 {
				tags = nil
			}
			c.Tags = tags
		}
		name := relativeName(c.Repository, ref)
		if err := manifest.ValidateImageName(name); err != nil {
			skipped = append(skipped, fmt.Sprintf("%q (in %s): %v", name, c.Repository, err))
			continue
		}
		if err := manifest.ValidateDigest(c.Digest); err != nil {
			skipped = append(skipped, fmt.Sprintf("%s@%s: %v", c.Repository, c.Digest, err))
			continue
		}
		var tags []string
		for _, t := range c.Tags {
			if err := manifest.ValidateTag(t); err != nil {
				skipped = append(skipped, fmt.Sprintf("tag %q of %s@%s: %v", t, c.Repository, c.Digest, err))
				continue
			}
			tags = append(tags, t)
		}
		images = append(images, manifest.Image{
			Name:    name,
			Digests: []manifest.Digest{{Digest: c.Digest, Tags: tags}},
		})
	}
	return manifest.Canonical(images), skipped, nil
}

func relativeName(repo, ref string) string {
	if repo == ref {
		return repo[strings.LastIndexByte(repo, '/')+1:]
	}
	return strings.TrimPrefix(repo, ref+"/")
}

// FromManifests returns what the manifests promote into reg: every
// destination equal to reg or below it by whole path segments, with image
// names carrying the destination's remaining path.
func FromManifests(set *manifest.Set, reg string) []manifest.Image {
	reg = strings.TrimSuffix(reg, "/")
	var images []manifest.Image
	for _, p := range set.Promotions() {
		if !inventory.Under(p.Dst, reg) {
			continue
		}
		name := p.Image
		if rest := strings.TrimPrefix(p.Dst, reg); rest != "" {
			name = strings.TrimPrefix(rest, "/") + "/" + p.Image
		}
		images = append(images, manifest.Image{
			Name:    name,
			Digests: []manifest.Digest{{Digest: p.Digest, Tags: append([]string(nil), p.Tags...)}},
		})
	}
	return manifest.Canonical(images)
}

// WithTag keeps, of images, only the digests that carry tag, each listed
// with that one tag, and the images left with a digest: the Kubernetes
// promoter's --snapshot-tag. An empty tag keeps everything.
func WithTag(images []manifest.Image, tag string) []manifest.Image {
	if tag == "" {
		return images
	}
	var out []manifest.Image
	for _, img := range images {
		var ds []manifest.Digest
		for _, d := range img.Digests {
			if slices.Contains(d.Tags, tag) {
				ds = append(ds, manifest.Digest{Digest: d.Digest, Tags: []string{tag}, Line: d.Line})
			}
		}
		if len(ds) > 0 {
			out = append(out, manifest.Image{Name: img.Name, Digests: ds, Line: img.Line})
		}
	}
	return out
}

// Write renders images in format f.
func Write(w io.Writer, f Format, images []manifest.Image) error {
	switch f {
	case CSV:
		return WriteCSV(w, images)
	default:
		return manifest.WriteImages(w, images)
	}
}

// WriteCSV writes one line per tag, image@digest,image:tag, and
// image@digest,- for an untagged digest.
func WriteCSV(w io.Writer, images []manifest.Image) error {
	cw := csv.NewWriter(w)
	for _, img := range images {
		for _, d := range img.Digests {
			ref := img.Name + "@" + d.Digest
			if len(d.Tags) == 0 {
				if err := cw.Write([]string{ref, "-"}); err != nil {
					return err
				}
				continue
			}
			for _, t := range d.Tags {
				if err := cw.Write([]string{ref, img.Name + ":" + t}); err != nil {
					return err
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

package check

import (
	"context"
	"errors"
	"fmt"

	"github.com/cipdev/cip/internal/human"
	"github.com/cipdev/cip/inventory"
)

// DefaultMaxImageSize is 2 GiB. Release images of the Kubernetes project
// are well below it (the largest, conformance, is a few hundred MB); an
// image above it is more likely a build that swept in a cache or a dataset
// than an image meant for every mirror.
const DefaultMaxImageSize = 2 << 30

// ImageSize refuses a new image whose manifest, config and layers sum above
// Max bytes. For a manifest list or index, each platform's image is
// measured (the largest is reported), not their sum. Sizes come from the
// inventory (the manifest_sizes view), synced like SourcePresence; a digest
// missing from the source is left to SourcePresence.
type ImageSize struct {
	Inventory *Inventory // nil: offline, the check does not apply
	Max       int64
}

func (ImageSize) Name() string { return "image-size" }
func (s ImageSize) Description() string {
	return fmt.Sprintf("a new image is larger than %s (online)", human.Bytes(s.max()))
}
func (s ImageSize) Applies(*Change) bool { return s.Inventory != nil }

func (s ImageSize) max() int64 {
	if s.Max > 0 {
		return s.Max
	}
	return DefaultMaxImageSize
}

func (s ImageSize) Run(ctx context.Context, c *Change) ([]Finding, error) {
	ds := newDigests(c)
	present, err := s.Inventory.load(ctx, ds)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, d := range ds {
		if !present[d.repoDigest] {
			continue
		}
		// The largest image: the digest itself, or its largest child.
		which, size, err := s.Inventory.DB.LargestImage(ctx, d.digest)
		if errors.Is(err, inventory.ErrNotFound) {
			continue // size unknown (no image manifests recorded)
		}
		if err != nil {
			return nil, err
		}
		if size > s.max() {
			what, err := s.describe(ctx, d.digest, which)
			if err != nil {
				return nil, err
			}
			msg := fmt.Sprintf("image %q: digest %s%s is %s, over the limit of %s", d.image, d.digest, what, human.Bytes(size), human.Bytes(s.max()))
			out = append(out, Finding{Severity: Error, File: d.file, Line: d.line, Message: msg})
		}
	}
	return out, nil
}

// imageConfigs are the config media types of container images; any other
// (a Helm chart's, the OCI empty config of an artifact) makes an artifact.
var imageConfigs = map[string]bool{
	"application/vnd.oci.image.config.v1+json":       true,
	"application/vnd.docker.container.image.v1+json": true,
	"": true, // Docker schema 1: no config
}

// describe names what was measured, after the digest: nothing for an
// image, " (an artifact, TYPE)" for an OCI artifact (a Helm chart, an
// SBOM: manifest, config and layers of any media type, sized alike), and
// for an index its largest entry: ": platform image D" when the entry
// names a platform, else ": entry D".
func (s ImageSize) describe(ctx context.Context, digest, which string) (string, error) {
	m, err := s.Inventory.DB.Manifest(ctx, which)
	if err != nil {
		return "", err
	}
	kind := ""
	if !imageConfigs[m.ArtifactType] {
		kind = " (an artifact, " + m.ArtifactType + ")"
	}
	if which == digest {
		return kind, nil
	}
	idx, err := s.Inventory.DB.Manifest(ctx, digest)
	if err != nil {
		return "", err
	}
	for _, c := range idx.Children {
		if c.Digest == which && c.OS == "" && c.Architecture == "" {
			return ": entry " + which + kind, nil
		}
	}
	return ": platform image " + which + kind, nil
}

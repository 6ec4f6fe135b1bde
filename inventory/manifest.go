package inventory

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipdev/cip/internal/mediatype"
)

// Manifest is one manifest as the inventory keeps it: its exact bytes and
// what cip reads out of them.
type Manifest struct {
	Digest       string
	MediaType    string
	Raw          []byte
	IsIndex      bool
	ConfigDigest string
	Children     []Child // indexes only, in index order
	Blobs        []Blob  // images only: the config first, then layers
	// Subject is the digest of the manifest this one refers to (its
	// subject field: a signature, attestation or SBOM of it); "" when none.
	Subject string
	// ArtifactType is the manifest's artifactType, else (an image) its
	// config's media type: what the referrers API reports for it (OCI 1.1).
	ArtifactType string
}

// Child is one entry of an index, with the platform it serves.
type Child struct {
	Digest       string
	MediaType    string
	Size         int64
	OS           string
	Architecture string
	Variant      string
}

// Blob is a config or layer referenced by an image manifest.
type Blob struct {
	Digest    string
	MediaType string
	Kind      string // "config" or "layer"
	Size      int64
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Platform  *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant"`
	} `json:"platform"`
}

// ParseManifest reads what the inventory needs out of a manifest's bytes.
// mediaType is what the registry said (it wins over the body's own field
// when both are given, as registries serve by it); when it is missing or
// generic, the body tells (mediatype.Of).
func ParseManifest(digest, mediaType string, raw []byte) (*Manifest, error) {
	var body struct {
		ArtifactType string       `json:"artifactType"`
		Subject      *descriptor  `json:"subject"`
		Manifests    []descriptor `json:"manifests"`
		Config       *descriptor  `json:"config"`
		Layers       []descriptor `json:"layers"`
		FSLayers     []struct {
			BlobSum string `json:"blobSum"`
		} `json:"fsLayers"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fmt.Errorf("parse manifest %s: %w", digest, err)
	}
	mt := mediatype.Of(mediaType, raw)
	m := &Manifest{Digest: digest, MediaType: mt, Raw: raw, IsIndex: mediatype.IsIndex(mt), ArtifactType: body.ArtifactType}
	if body.Subject != nil {
		if err := checkDigest(body.Subject.Digest); err != nil {
			return nil, fmt.Errorf("parse manifest %s: subject: %w", digest, err)
		}
		m.Subject = body.Subject.Digest
	}
	if m.IsIndex {
		for i, c := range body.Manifests {
			if err := checkDigest(c.Digest); err != nil {
				return nil, fmt.Errorf("parse index %s: manifests[%d]: %w", digest, i, err)
			}
			ch := Child{Digest: c.Digest, MediaType: c.MediaType, Size: c.Size}
			if c.Platform != nil {
				ch.OS, ch.Architecture, ch.Variant = c.Platform.OS, c.Platform.Architecture, c.Platform.Variant
			}
			m.Children = append(m.Children, ch)
		}
		return m, nil
	}
	if mediatype.IsSchema1(mt) {
		for _, l := range body.FSLayers {
			m.Blobs = append(m.Blobs, Blob{Digest: l.BlobSum, MediaType: string(types.DockerLayer), Kind: "layer"})
		}
		return m, nil
	}
	if body.Config != nil {
		if err := checkDigest(body.Config.Digest); err != nil {
			return nil, fmt.Errorf("parse manifest %s: config: %w", digest, err)
		}
		m.ConfigDigest = body.Config.Digest
		if m.ArtifactType == "" {
			m.ArtifactType = body.Config.MediaType
		}
		m.Blobs = append(m.Blobs, Blob{Digest: body.Config.Digest, MediaType: body.Config.MediaType, Kind: "config", Size: body.Config.Size})
	}
	for i, l := range body.Layers {
		if err := checkDigest(l.Digest); err != nil {
			return nil, fmt.Errorf("parse manifest %s: layers[%d]: %w", digest, i, err)
		}
		m.Blobs = append(m.Blobs, Blob{Digest: l.Digest, MediaType: l.MediaType, Kind: "layer", Size: l.Size})
	}
	return m, nil
}

func checkDigest(d string) error {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || alg == "" || hex == "" {
		return fmt.Errorf("invalid digest %q", d)
	}
	return nil
}

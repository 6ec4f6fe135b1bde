package inventory

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipdev/cip/internal/digest"
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

// ErrBadManifest is wrapped by ParseManifest's errors: the bytes are not a
// manifest cip can read (not JSON, or a reference by a digest cip does not
// verify, such as md5:…). A crawl skips such a manifest's tag.
var ErrBadManifest = errors.New("bad manifest")

// ParseManifest reads what the inventory needs out of a manifest's bytes.
// mediaType is what the registry said (it wins over the body's own field
// when both are given, as registries serve by it); when it is missing or
// generic, the body tells (mediatype.Of). Every digest the manifest names
// (children, config, layers) must be one cip verifies (sha256, sha512).
// The errors wrap ErrBadManifest (and digest.ErrUnsupported for a digest).
func ParseManifest(digest, mediaType string, raw []byte) (*Manifest, error) {
	m, err := parseManifest(digest, mediaType, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	return m, nil
}

func parseManifest(digest, mediaType string, raw []byte) (*Manifest, error) {
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
		for i, l := range body.FSLayers {
			if err := checkDigest(l.BlobSum); err != nil {
				return nil, fmt.Errorf("parse manifest %s: fsLayers[%d]: %w", digest, i, err)
			}
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

// checkDigest refuses a reference by a digest cip cannot verify.
func checkDigest(d string) error { return digest.Validate(d) }

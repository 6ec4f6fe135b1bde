// Package mediatype is cip's one place for manifest media types: the ones
// it asks registries for, and what a manifest is when the registry does not
// say. The names are go-containerregistry's (pkg/v1/types). It imports
// nothing of cip's, so that both registry (which reads manifests off the
// wire) and inventory (which parses them) use it without importing each
// other.
package mediatype

import (
	"encoding/json"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Manifests are the manifest media types cip accepts, as sent in the Accept
// header: indexes before images, so that a registry holding both for one tag
// serves the index. Docker schema 1, signed and unsigned, stays accepted:
// old images still use it, and a registry asked without it may convert the
// manifest (changing its digest) or refuse.
var Manifests = []types.MediaType{
	types.OCIImageIndex,
	types.DockerManifestList,
	types.OCIManifestSchema1,
	types.DockerManifestSchema2,
	types.DockerManifestSchema1Signed,
	types.DockerManifestSchema1,
}

// Accept is the Accept header of a manifest request.
var Accept = func() string {
	s := make([]string, len(Manifests))
	for i, mt := range Manifests {
		s[i] = string(mt)
	}
	return strings.Join(s, ", ")
}()

// FromHeader returns a Content-Type without its parameters.
func FromHeader(contentType string) string {
	if i := strings.IndexByte(contentType, ';'); i >= 0 {
		contentType = contentType[:i]
	}
	return strings.TrimSpace(contentType)
}

// Of returns a manifest's media type: contentType (what the registry said,
// parameters dropped) unless it is missing or generic (application/json,
// text/plain), else what the body says: its own mediaType field, an OCI
// index when it lists manifests, Docker schema 1 when its schemaVersion is 1
// (signed when it carries signatures), else an OCI image manifest.
func Of(contentType string, raw []byte) string {
	mt := FromHeader(contentType)
	switch mt {
	case "", "application/json", "text/plain":
	default:
		return mt
	}
	var probe struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Signatures    json.RawMessage `json:"signatures"`
	}
	if json.Unmarshal(raw, &probe) == nil {
		switch {
		case probe.MediaType != "":
			return probe.MediaType
		case probe.Manifests != nil:
			return string(types.OCIImageIndex)
		case probe.SchemaVersion == 1 && probe.Signatures != nil:
			return string(types.DockerManifestSchema1Signed)
		case probe.SchemaVersion == 1:
			return string(types.DockerManifestSchema1)
		}
	}
	return string(types.OCIManifestSchema1)
}

// IsIndex reports whether mt is a manifest list or an OCI index.
func IsIndex(mt string) bool { return types.MediaType(mt).IsIndex() }

// IsSchema1 reports whether mt is a Docker schema 1 manifest, signed or not.
func IsSchema1(mt string) bool { return types.MediaType(mt).IsSchema1() }

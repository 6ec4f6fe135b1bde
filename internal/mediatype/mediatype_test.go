package mediatype

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestOf(t *testing.T) {
	tests := []struct {
		name, contentType, raw string
		want                   types.MediaType
	}{
		{"registry says", "application/vnd.docker.distribution.manifest.v2+json", `{"manifests":[]}`, types.DockerManifestSchema2},
		{"parameters dropped", "application/vnd.oci.image.index.v1+json; charset=utf-8", `{}`, types.OCIImageIndex},
		{"schema1 signed kept", "application/vnd.docker.distribution.manifest.v1+prettyjws", `{}`, types.DockerManifestSchema1Signed},
		{"generic, body names it", "application/json", `{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json"}`, types.DockerManifestList},
		{"missing, lists manifests", "", `{"schemaVersion":2,"manifests":[]}`, types.OCIImageIndex},
		{"text/plain, schema1 signed", "text/plain", `{"schemaVersion":1,"fsLayers":[],"signatures":[{}]}`, types.DockerManifestSchema1Signed},
		{"missing, schema1", "", `{"schemaVersion":1,"fsLayers":[]}`, types.DockerManifestSchema1},
		{"missing, image", "", `{"schemaVersion":2,"config":{}}`, types.OCIManifestSchema1},
		{"missing, not json", "", `{`, types.OCIManifestSchema1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.contentType, []byte(tt.raw)); got != string(tt.want) {
				t.Errorf("Of(%q, %s) = %q, want %q", tt.contentType, tt.raw, got, tt.want)
			}
		})
	}
}

func TestAccept(t *testing.T) {
	for _, mt := range []types.MediaType{types.OCIImageIndex, types.DockerManifestList, types.OCIManifestSchema1,
		types.DockerManifestSchema2, types.DockerManifestSchema1, types.DockerManifestSchema1Signed} {
		if !strings.Contains(Accept, string(mt)) {
			t.Errorf("Accept = %q, missing %s", Accept, mt)
		}
	}
	if !strings.HasPrefix(Accept, string(types.OCIImageIndex)+", ") {
		t.Errorf("Accept = %q, want indexes first", Accept)
	}
}

func TestIsIndex(t *testing.T) {
	for mt, want := range map[types.MediaType]bool{
		types.OCIImageIndex: true, types.DockerManifestList: true,
		types.OCIManifestSchema1: false, types.DockerManifestSchema1Signed: false, "": false,
	} {
		if got := IsIndex(string(mt)); got != want {
			t.Errorf("IsIndex(%q) = %v, want %v", mt, got, want)
		}
	}
}

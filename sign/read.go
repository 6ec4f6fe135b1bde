package sign

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// MaxBlob bounds a signature blob cip reads (a simple signing payload is
// a few hundred bytes, a sigstore bundle a few KiB, tens with a
// certificate chain and a transparency log proof): anything larger is no
// signature cip accepts.
const MaxBlob = 1 << 20

// MaxLayers bounds the signatures read from one referrer manifest (a .sig
// image gains a layer per signature; a handful is usual).
const MaxLayers = 100

// FetchBlob reads a blob of the referrer's repository: at most size bytes,
// whose SHA-256 the caller has checked against digest.
type FetchBlob func(ctx context.Context, digest string, size int64) ([]byte, error)

// Read turns a referrer manifest (its digest and bytes) into the
// signatures it holds: each simple signing layer of a cosign .sig image,
// each bundle layer of a sigstore bundle referrer. It reads the layers'
// blobs with fetch. A manifest of any other kind holds none.
func Read(ctx context.Context, referrer string, raw []byte, fetch FetchBlob) ([]Signature, error) {
	var m ociImage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("read signatures of %s: %w", referrer, err)
	}
	if len(m.Layers) > MaxLayers {
		return nil, fmt.Errorf("read signatures of %s: %d layers, over the limit of %d", referrer, len(m.Layers), MaxLayers)
	}
	var out []Signature
	for _, l := range m.Layers {
		base, _, _ := strings.Cut(l.MediaType, ";")
		var f Format
		switch strings.TrimSpace(base) {
		case SimpleSigningType:
			f = SimpleSigning
		case BundleMediaType, "application/vnd.dev.sigstore.bundle+json":
			f = Bundle
		default:
			continue
		}
		if l.Size < 0 || l.Size > MaxBlob {
			return nil, fmt.Errorf("read signatures of %s: layer %s is %d bytes, over the limit of %d", referrer, l.Digest, l.Size, MaxBlob)
		}
		data, err := fetch(ctx, l.Digest, l.Size)
		if err != nil {
			return nil, fmt.Errorf("read signatures of %s: %w", referrer, err)
		}
		s := Signature{Format: f, Referrer: referrer}
		if f == Bundle {
			s.Bundle = data
		} else {
			s.Payload = data
			s.Sig = l.Annotations[SignatureAnnotation]
			s.Certificate = []byte(l.Annotations[certificateAnnotation])
			s.Chain = []byte(l.Annotations[chainAnnotation])
		}
		out = append(out, s)
	}
	return out, nil
}

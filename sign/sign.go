package sign

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgsign "github.com/sigstore/sigstore-go/pkg/sign"
)

// SignSimple makes a cosign simple signing signature of digest: the
// payload (claiming identity as the docker-reference, with annotations
// as its optional part) and its signature, base64 (the
// dev.cosignproject.cosign/signature annotation of its layer).
func (k *Key) SignSimple(digest, identity string, annotations map[string]string) (payload []byte, sig string, err error) {
	var p simplePayload
	p.Critical.Identity.DockerReference = identity
	p.Critical.Image.DockerManifestDigest = digest
	p.Critical.Type = simpleSigningType
	if len(annotations) > 0 {
		p.Optional = map[string]any{}
		for k, v := range annotations {
			p.Optional[k] = v
		}
	}
	if payload, err = json.Marshal(p); err != nil {
		return nil, "", fmt.Errorf("sign %s: %w", digest, err)
	}
	s, err := k.signBytes(payload)
	if err != nil {
		return nil, "", fmt.Errorf("sign %s: %w", digest, err)
	}
	return payload, base64.StdEncoding.EncodeToString(s), nil
}

// statement is the in-toto statement cosign v3 signs an image with.
type statement struct {
	Type          string    `json:"_type"`
	Subject       []subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     any       `json:"predicate"`
}

type subject struct {
	Name        string            `json:"name,omitempty"`
	Digest      map[string]string `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// inTotoPayloadType is the DSSE payload type of an in-toto statement.
const inTotoPayloadType = "application/vnd.in-toto+json"

// SignBundle makes a sigstore bundle (v0.3) signing digest the way cosign
// v3 does (a DSSE envelope around an in-toto statement with the predicate
// type CosignSignPredicate), the statement's subject named identity and
// carrying annotations. No transparency log entry and no timestamp:
// verifiers trust the key itself (cosign verify --key
// --insecure-ignore-tlog=true).
func (k *Key) SignBundle(ctx context.Context, digest, identity string, annotations map[string]string) ([]byte, error) {
	b, err := signBundle(keypair{k}, digest, identity, annotations, sgsign.BundleOptions{Context: ctx})
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", digest, err)
	}
	return b, nil
}

// signBundle signs cosign's statement for digest with kp; opts say where
// a certificate and a transparency log entry come from (none: a key's
// bundle).
func signBundle(kp sgsign.Keypair, digest, identity string, annotations map[string]string, opts sgsign.BundleOptions) ([]byte, error) {
	st, err := imageStatement(digest, identity, annotations, CosignSignPredicate, map[string]any{})
	if err != nil {
		return nil, err
	}
	return signStatement(kp, st, opts)
}

// imageStatement is an in-toto statement about digest (its subject named
// identity, with annotations) with a predicate.
func imageStatement(digest, identity string, annotations map[string]string, predicateType string, predicate any) ([]byte, error) {
	hexDigest, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexDigest) != 64 {
		return nil, errors.New("not a sha256 digest")
	}
	if _, err := hex.DecodeString(hexDigest); err != nil {
		return nil, errors.New("not a sha256 digest")
	}
	return json.Marshal(statement{
		Type:          "https://in-toto.io/Statement/v1",
		Subject:       []subject{{Name: identity, Digest: map[string]string{"sha256": hexDigest}, Annotations: annotations}},
		PredicateType: predicateType,
		Predicate:     predicate,
	})
}

// signStatement signs an in-toto statement into a bundle (a DSSE
// envelope).
func signStatement(kp sgsign.Keypair, st []byte, opts sgsign.BundleOptions) ([]byte, error) {
	pb, err := sgsign.Bundle(&sgsign.DSSEData{Data: st, PayloadType: inTotoPayloadType}, kp, opts)
	if err != nil {
		return nil, err
	}
	return (&sgbundle.Bundle{Bundle: pb}).MarshalJSON()
}

// PromotionPredicate is the predicate type of cip's promotion record: an
// attestation that cip promoted a digest from a source to destinations.
const PromotionPredicate = "https://github.com/cipdev/cip/promotion/v1"

// Promotion is the predicate of a promotion record.
type Promotion struct {
	Source       string    `json:"source"`       // the repository it was promoted from
	Destinations []string  `json:"destinations"` // the repositories it was promoted to
	Time         time.Time `json:"time"`
	CipVersion   string    `json:"cipVersion"`
}

// Attest signs a promotion record of digest (its subject named
// identity) with s: a sigstore bundle, as `cosign attest` writes one.
func Attest(ctx context.Context, s Signer, digest, identity string, p Promotion) ([]byte, error) {
	st, err := imageStatement(digest, identity, nil, PromotionPredicate, p)
	if err != nil {
		return nil, fmt.Errorf("attest %s: %w", digest, err)
	}
	b, err := s.SignStatement(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("attest %s: %w", digest, err)
	}
	return b, nil
}

// SignStatement signs an in-toto statement with k.
func (k *Key) SignStatement(ctx context.Context, st []byte) ([]byte, error) {
	return signStatement(keypair{k}, st, sgsign.BundleOptions{Context: ctx})
}

// Blob is a blob of an artifact to push.
type Blob struct {
	Digest    string
	MediaType string
	Data      []byte
}

func blobOf(mediaType string, data []byte) Blob {
	sum := sha256.Sum256(data)
	return Blob{Digest: "sha256:" + hex.EncodeToString(sum[:]), MediaType: mediaType, Data: data}
}

// Artifact is a manifest to push with its blobs (config first).
type Artifact struct {
	MediaType string
	Manifest  []byte
	Digest    string
	Blobs     []Blob
}

// Subject describes the manifest a referrer refers to.
type Subject struct {
	Digest, MediaType string
	Size              int64
}

// Media types of a bundle referrer, as cosign v3 pushes one.
const (
	BundleMediaType   = "application/vnd.dev.sigstore.bundle.v0.3+json"
	ociManifest       = "application/vnd.oci.image.manifest.v1+json"
	emptyMediaType    = "application/vnd.oci.empty.v1+json"
	SimpleSigningType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureAnnotation holds a .sig layer's signature (base64).
	SignatureAnnotation   = "dev.cosignproject.cosign/signature"
	certificateAnnotation = "dev.sigstore.cosign/certificate"
	chainAnnotation       = "dev.sigstore.cosign/chain"
)

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

type ociImage struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        descriptor        `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Subject       *descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// BundleReferrer wraps a bundle into the OCI referrer cosign v3 pushes
// for it: an image manifest with the empty config, the bundle as its one
// layer, artifactType the bundle media type and subject the signed image;
// annotations are added to cosign's own (created at, content, predicate
// type: CosignSignPredicate for a signature).
func BundleReferrer(bundle []byte, subj Subject, created time.Time, predicateType string, annotations map[string]string) (Artifact, error) {
	cfg := blobOf(emptyMediaType, []byte("{}"))
	layer := blobOf(BundleMediaType, bundle)
	ann := map[string]string{
		"org.opencontainers.image.created":  created.UTC().Format(time.RFC3339),
		"dev.sigstore.bundle.content":       "dsse-envelope",
		"dev.sigstore.bundle.predicateType": predicateType,
	}
	for k, v := range annotations {
		ann[k] = v
	}
	m := ociImage{SchemaVersion: 2, MediaType: ociManifest, ArtifactType: BundleMediaType,
		Config:      descriptor{MediaType: emptyMediaType, Digest: cfg.Digest, Size: int64(len(cfg.Data)), ArtifactType: BundleMediaType},
		Layers:      []descriptor{{MediaType: BundleMediaType, Digest: layer.Digest, Size: int64(len(layer.Data))}},
		Subject:     &descriptor{MediaType: subj.MediaType, Digest: subj.Digest, Size: subj.Size},
		Annotations: ann}
	raw, err := json.Marshal(m)
	if err != nil {
		return Artifact{}, fmt.Errorf("build bundle referrer of %s: %w", subj.Digest, err)
	}
	sum := sha256.Sum256(raw)
	return Artifact{MediaType: ociManifest, Manifest: raw, Digest: "sha256:" + hex.EncodeToString(sum[:]), Blobs: []Blob{cfg, layer}}, nil
}

// SimpleSigningImage builds a cosign .sig image holding signatures (each
// a payload and its base64 signature): what the sha256-<hex>.sig tag of
// the signed digest names.
func SimpleSigningImage(sigs []Signature) (Artifact, error) {
	type cfgT struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		RootFS       struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
		Config struct{} `json:"config"`
	}
	var cfg cfgT
	cfg.RootFS.Type = "layers"
	m := ociImage{SchemaVersion: 2, MediaType: ociManifest}
	var blobs []Blob
	for _, s := range sigs {
		l := blobOf(SimpleSigningType, s.Payload)
		ann := map[string]string{SignatureAnnotation: s.Sig}
		if len(s.Certificate) > 0 {
			ann[certificateAnnotation] = string(s.Certificate)
			ann[chainAnnotation] = string(s.Chain)
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest)
		m.Layers = append(m.Layers, descriptor{MediaType: SimpleSigningType, Digest: l.Digest, Size: int64(len(l.Data)), Annotations: ann})
		blobs = append(blobs, l)
	}
	cfgRaw, err := json.Marshal(cfg)
	if err != nil {
		return Artifact{}, err
	}
	c := blobOf("application/vnd.oci.image.config.v1+json", cfgRaw)
	m.Config = descriptor{MediaType: c.MediaType, Digest: c.Digest, Size: int64(len(c.Data))}
	raw, err := json.Marshal(m)
	if err != nil {
		return Artifact{}, err
	}
	sum := sha256.Sum256(raw)
	return Artifact{MediaType: ociManifest, Manifest: raw, Digest: "sha256:" + hex.EncodeToString(sum[:]), Blobs: append([]Blob{c}, blobs...)}, nil
}

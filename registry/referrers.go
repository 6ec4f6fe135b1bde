package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipdev/cip/internal/digest"
)

// ErrNoReferrersAPI is returned by Referrers when the registry does not
// serve the OCI 1.1 referrers API (it answers 404, which the spec forbids a
// registry that serves it, or something other than an index): its
// referrers, if any, are in the referrers tag schema (tag sha256-<hex>).
var ErrNoReferrersAPI = errors.New("registry does not serve the referrers API")

// MaxReferrers caps the referrers one subject's listing may hold. A real
// image has a handful (a signature or two per signer, attestations, an
// SBOM); a thousand is far beyond any of them and bounds what a hostile or
// broken registry can make cip fetch for one subject.
const MaxReferrers = 1000

// maxReferrerPages caps the pages of one referrers listing: registries page
// at tens to hundreds of descriptors, so MaxReferrers fits in far fewer,
// and a registry whose Link headers never end is cut off.
const maxReferrerPages = 100

// Referrer is one descriptor of a referrers listing: a manifest whose
// subject is the digest asked about.
type Referrer struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// ParseReferrers reads a referrers listing (an OCI image index, the
// referrers API's answer or the body of a sha256-<hex> fallback tag): its
// manifests, each with a valid digest, in order, duplicates dropped. It
// refuses a body that is not an index and more than MaxReferrers entries.
func ParseReferrers(raw []byte) ([]Referrer, error) {
	var body struct {
		SchemaVersion int        `json:"schemaVersion"`
		MediaType     string     `json:"mediaType"`
		Manifests     []Referrer `json:"manifests"`
		Layers        any        `json:"layers"`
		Config        any        `json:"config"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fmt.Errorf("parse referrers: %w", err)
	}
	if body.MediaType != "" && !types.MediaType(body.MediaType).IsIndex() {
		return nil, fmt.Errorf("parse referrers: media type %q is not an index", body.MediaType)
	}
	if body.Layers != nil || body.Config != nil {
		return nil, errors.New("parse referrers: an image manifest, not an index")
	}
	if len(body.Manifests) > MaxReferrers {
		return nil, fmt.Errorf("parse referrers: %d entries, more than %d", len(body.Manifests), MaxReferrers)
	}
	out := make([]Referrer, 0, len(body.Manifests))
	seen := map[string]bool{}
	for i, d := range body.Manifests {
		if _, err := v1.NewHash(d.Digest); err != nil {
			return nil, fmt.Errorf("parse referrers: manifests[%d]: %w", i, err)
		}
		if d.Size < 0 || d.Size > MaxManifestSize {
			return nil, fmt.Errorf("parse referrers: manifests[%d]: size %d", i, d.Size)
		}
		if seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		out = append(out, d)
	}
	return out, nil
}

// Referrers lists the referrers of repo@subject with the referrers API
// (GET /v2/<name>/referrers/<digest>), following Link pages; artifactType,
// when set, keeps only referrers of that type (the registry's filter when
// it applies one, as OCI-Filters-Applied says, else cip's). A registry
// that does not serve the API answers ErrNoReferrersAPI.
func (c *Client) Referrers(ctx context.Context, repo name.Repository, subject, artifactType string) ([]Referrer, error) {
	v, err := c.referrers(ctx, repo, subject, artifactType)
	return v, c.tr.secrets.redacted(err)
}

func (c *Client) referrers(ctx context.Context, repo name.Repository, subject, artifactType string) ([]Referrer, error) {
	if _, err := v1.NewHash(subject); err != nil {
		return nil, fmt.Errorf("list referrers of %s@%s: %w", repo.Name(), subject, err)
	}
	u := repoURL(repo, "/referrers/"+subject)
	if artifactType != "" {
		u.RawQuery = url.Values{"artifactType": {artifactType}}.Encode()
	}
	var out []Referrer
	seen := map[string]bool{}
	for page := 0; u != nil; page++ {
		if page == maxReferrerPages {
			return nil, fmt.Errorf("list referrers of %s@%s: more than %d pages", repo.Name(), subject, maxReferrerPages)
		}
		req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
		req.Header.Set("Accept", string(types.OCIImageIndex))
		resp, err := c.do(ctx, repo, transport.PullScope, req)
		if err != nil {
			return nil, fmt.Errorf("list referrers of %s@%s: %w", repo.Name(), subject, err)
		}
		if resp.StatusCode == http.StatusNotFound {
			checkError(resp)
			return nil, fmt.Errorf("list referrers of %s@%s: %w", repo.Name(), subject, ErrNoReferrersAPI)
		}
		if err := transport.CheckError(resp, http.StatusOK); err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("list referrers of %s@%s: %w", repo.Name(), subject, err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "" && !types.MediaType(strings.TrimSpace(strings.Split(ct, ";")[0])).IsIndex() && !strings.HasPrefix(ct, "application/json") {
			// Some registries answer an unknown path with a page of their
			// own: not the API.
			checkError(resp)
			return nil, fmt.Errorf("list referrers of %s@%s: answered %q: %w", repo.Name(), subject, ct, ErrNoReferrersAPI)
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("list referrers of %s@%s: %w", repo.Name(), subject, err)
		}
		if len(raw) > MaxManifestSize {
			return nil, fmt.Errorf("list referrers of %s@%s: a page larger than %d bytes", repo.Name(), subject, MaxManifestSize)
		}
		got, err := ParseReferrers(raw)
		if err != nil {
			return nil, fmt.Errorf("list referrers of %s@%s: %w", repo.Name(), subject, err)
		}
		filtered := strings.Contains(resp.Header.Get("OCI-Filters-Applied"), "artifactType")
		for _, r := range got {
			if seen[r.Digest] || (artifactType != "" && !filtered && r.ArtifactType != artifactType) {
				continue
			}
			seen[r.Digest] = true
			out = append(out, r)
		}
		if len(out) > MaxReferrers {
			return nil, fmt.Errorf("list referrers of %s@%s: more than %d", repo.Name(), subject, MaxReferrers)
		}
		if u, err = nextPage(resp, u); err != nil {
			return nil, fmt.Errorf("list referrers of %s@%s: %w", repo.Name(), subject, err)
		}
	}
	return out, nil
}

// PutReferrer puts raw, with its media type, at repo:ref (a tag, or the
// digest of raw) as PutManifest does, and also returns the registry's
// OCI-Subject header: the subject digest a registry serving the referrers
// API indexed the manifest under ("" when it did not, so that the
// referrers tag schema must list it).
func (c *Client) PutReferrer(ctx context.Context, repo name.Repository, ref, mediaType string, raw []byte) (digest, subject string, err error) {
	resp, digest, err := c.putManifest(ctx, repo, ref, mediaType, raw)
	if err != nil {
		return "", "", c.tr.secrets.redacted(err)
	}
	return digest, resp.Get("OCI-Subject"), nil
}

// putManifest is PutManifest, returning the response's headers too.
func (c *Client) putManifest(ctx context.Context, repo name.Repository, ref, mediaType string, raw []byte) (http.Header, string, error) {
	var d string
	if strings.Contains(ref, ":") {
		if err := digest.VerifyManifest(ref, mediaType, raw); err != nil {
			return nil, "", fmt.Errorf("put manifest %s@%s: %w", repo.Name(), ref, bodyError(err, ref, raw))
		}
		d = ref
	} else {
		var err error
		if d, err = digest.Manifest(mediaType, raw); err != nil {
			return nil, "", fmt.Errorf("put manifest %s:%s: %w", repo.Name(), ref, err)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, repoURL(repo, "/manifests/"+ref).String(), bytes.NewReader(raw))
	req.Header.Set("Content-Type", mediaType)
	resp, err := c.do(ctx, repo, transport.PushScope, req)
	if err != nil {
		return nil, "", fmt.Errorf("put manifest %s:%s: %w", repo.Name(), ref, err)
	}
	if err := checkError(resp, http.StatusCreated, http.StatusOK); err != nil {
		return nil, "", fmt.Errorf("put manifest %s:%s: %w", repo.Name(), ref, err)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != d && digest.VerifyManifest(got, mediaType, raw) != nil {
		return nil, "", fmt.Errorf("put manifest %s:%s: registry stored digest %s, want %s", repo.Name(), ref, got, d)
	}
	return resp.Header, d, nil
}

package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cipdev/cip/internal/mediatype"
)

// Descriptor is what a HEAD of a manifest tells.
type Descriptor struct {
	Digest    string
	MediaType string
	Size      int64
}

// Head returns the descriptor of repo:ref (a tag or a digest).
func (c *Client) Head(ctx context.Context, repo name.Repository, ref string) (Descriptor, error) {
	v, err := c.head(ctx, repo, ref)
	return v, c.tr.secrets.redacted(err)
}

func (c *Client) head(ctx context.Context, repo name.Repository, ref string) (Descriptor, error) {
	req, _ := http.NewRequest(http.MethodHead, repoURL(repo, "/manifests/"+ref).String(), nil)
	req.Header.Set("Accept", mediatype.Accept)
	resp, err := c.do(ctx, repo, transport.PullScope, req)
	if err != nil {
		return Descriptor{}, fmt.Errorf("head %s:%s: %w", repo.Name(), ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return Descriptor{}, fmt.Errorf("head %s:%s: %w", repo.Name(), ref, ErrNotFound)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return Descriptor{}, fmt.Errorf("head %s:%s: %w", repo.Name(), ref, err)
	}
	d := Descriptor{
		Digest:    resp.Header.Get("Docker-Content-Digest"),
		MediaType: mediatype.FromHeader(resp.Header.Get("Content-Type")),
		Size:      resp.ContentLength,
	}
	if _, err := v1.NewHash(d.Digest); err != nil {
		// Some registries omit the digest on HEAD; the caller GETs instead.
		return Descriptor{}, fmt.Errorf("head %s:%s: no valid Docker-Content-Digest (%q)", repo.Name(), ref, d.Digest)
	}
	return d, nil
}

// Manifest is a manifest's exact bytes with its media type and digest.
type Manifest struct {
	Digest    string
	MediaType string
	Raw       []byte
}

// GetManifest fetches repo@ref (a digest or a tag). When ref is a digest,
// the body is verified against it; a mismatch is an error.
func (c *Client) GetManifest(ctx context.Context, repo name.Repository, ref string) (Manifest, error) {
	v, err := c.getManifest(ctx, repo, ref)
	return v, c.tr.secrets.redacted(err)
}

func (c *Client) getManifest(ctx context.Context, repo name.Repository, ref string) (Manifest, error) {
	req, _ := http.NewRequest(http.MethodGet, repoURL(repo, "/manifests/"+ref).String(), nil)
	req.Header.Set("Accept", mediatype.Accept)
	resp, err := c.do(ctx, repo, transport.PullScope, req)
	if err != nil {
		return Manifest{}, fmt.Errorf("get manifest %s@%s: %w", repo.Name(), ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return Manifest{}, fmt.Errorf("get manifest %s@%s: %w", repo.Name(), ref, ErrNotFound)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return Manifest{}, fmt.Errorf("get manifest %s@%s: %w", repo.Name(), ref, err)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return Manifest{}, fmt.Errorf("get manifest %s@%s: %w", repo.Name(), ref, err)
	}
	if len(raw) > MaxManifestSize {
		return Manifest{}, fmt.Errorf("get manifest %s@%s: larger than %d bytes", repo.Name(), ref, MaxManifestSize)
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return Manifest{}, err
	}
	got := h.String()
	if strings.HasPrefix(ref, "sha256:") && got != ref {
		return Manifest{}, fmt.Errorf("get manifest %s@%s: body has digest %s", repo.Name(), ref, got)
	}
	if hd := resp.Header.Get("Docker-Content-Digest"); strings.HasPrefix(hd, "sha256:") && hd != got {
		// The registry and its bytes disagree: trust neither.
		return Manifest{}, fmt.Errorf("get manifest %s:%s: registry says digest %s, body has digest %s", repo.Name(), ref, hd, got)
	}
	return Manifest{Digest: got, MediaType: mediatype.Of(resp.Header.Get("Content-Type"), raw), Raw: raw}, nil
}

// PutManifest puts raw, with its media type, at repo:ref (a tag, or the
// digest of raw) and returns the digest of raw. A registry that answers
// with another Docker-Content-Digest kept something else: an error.
func (c *Client) PutManifest(ctx context.Context, repo name.Repository, ref, mediaType string, raw []byte) (string, error) {
	_, digest, err := c.putManifest(ctx, repo, ref, mediaType, raw)
	return digest, c.tr.secrets.redacted(err)
}

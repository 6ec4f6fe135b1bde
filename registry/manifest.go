package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cipdev/cip/internal/digest"
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
	if err := digest.Validate(d.Digest); err != nil {
		// Some registries omit the digest on HEAD (or name it by an
		// algorithm cip does not verify); the caller GETs instead.
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

// GetManifest fetches repo@ref (a digest or a tag) and verifies it:
// by digest, the body must be the manifest of that digest; by tag, of the
// digest the registry names in Docker-Content-Digest, and when it names
// none the digest is computed as distribution does (internal/digest:
// sha256 of the bytes, or of a signed schema 1 manifest's payload). A
// manifest that does not verify is an error wrapping
// digest.ErrMismatch, digest.ErrUnverifiable (a schema 1 manifest neither
// rule verifies) or digest.ErrUnsupported (an algorithm cip does not
// verify: it is never fetched).
func (c *Client) GetManifest(ctx context.Context, repo name.Repository, ref string) (Manifest, error) {
	v, err := c.getManifest(ctx, repo, ref)
	return v, c.tr.secrets.redacted(err)
}

func (c *Client) getManifest(ctx context.Context, repo name.Repository, ref string) (Manifest, error) {
	byDigest := strings.Contains(ref, ":") // tags cannot hold a colon
	if byDigest {
		if err := digest.Validate(ref); err != nil {
			return Manifest{}, fmt.Errorf("get manifest %s@%s: %w", repo.Name(), ref, err)
		}
	}
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
	mt := mediatype.Of(resp.Header.Get("Content-Type"), raw)
	hd := resp.Header.Get("Docker-Content-Digest")
	var d string
	switch {
	case byDigest:
		if err := digest.VerifyManifest(ref, mt, raw); err != nil {
			return Manifest{}, fmt.Errorf("get manifest %s@%s: %w", repo.Name(), ref, bodyError(err, ref, raw))
		}
		d = ref
		if hd != "" && hd != ref {
			// Another name for the same bytes (another algorithm, or the
			// other schema 1 rule) is fine; a name for other bytes is not.
			if err := digest.VerifyManifest(hd, mt, raw); err != nil && !errors.Is(err, digest.ErrUnsupported) {
				return Manifest{}, fmt.Errorf("get manifest %s@%s: registry says digest %s: %w", repo.Name(), ref, hd, bodyError(err, hd, raw))
			}
		}
	case hd != "":
		// The registry and its bytes must agree: trust neither otherwise.
		if err := digest.VerifyManifest(hd, mt, raw); err != nil {
			return Manifest{}, fmt.Errorf("get manifest %s:%s: registry says digest %s: %w", repo.Name(), ref, hd, bodyError(err, hd, raw))
		}
		d = hd
	default:
		if d, err = digest.Manifest(mt, raw); err != nil {
			return Manifest{}, fmt.Errorf("get manifest %s:%s: %w", repo.Name(), ref, err)
		}
	}
	return Manifest{Digest: d, MediaType: mt, Raw: raw}, nil
}

// bodyError words a verification failure for a manifest body named want:
// "body has digest X" (under want's algorithm) for bytes that hash to
// something else.
func bodyError(err error, want string, raw []byte) error {
	if errors.Is(err, digest.ErrMismatch) {
		alg, _, _ := strings.Cut(want, ":")
		got, herr := digest.Of(alg, raw)
		if herr != nil {
			got = digest.SHA256(raw)
		}
		return fmt.Errorf("body has digest %s: %w", got, digest.ErrMismatch)
	}
	return err
}

// PutManifest puts raw, with its media type, at repo:ref (a tag, or a
// digest raw verifies as) and returns raw's digest: ref when it is one,
// else the digest a registry names raw by (internal/digest). A registry
// that answers with a Docker-Content-Digest raw does not verify as kept
// something else: an error.
func (c *Client) PutManifest(ctx context.Context, repo name.Repository, ref, mediaType string, raw []byte) (string, error) {
	_, d, err := c.putManifest(ctx, repo, ref, mediaType, raw)
	return d, c.tr.secrets.redacted(err)
}

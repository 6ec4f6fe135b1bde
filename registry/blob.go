package registry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// BlobExists reports whether repo holds the blob digest (a HEAD). It asks
// with push credentials: it is asked of a repository about to receive the
// blob, and a push token covers pull, so the check and the write share one
// authentication handshake.
func (c *Client) BlobExists(ctx context.Context, repo name.Repository, digest string) (bool, error) {
	v, err := c.blobExists(ctx, repo, digest)
	return v, c.tr.secrets.redacted(err)
}

func (c *Client) blobExists(ctx context.Context, repo name.Repository, digest string) (bool, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, repoURL(repo, "/blobs/"+digest).String(), nil)
	resp, err := c.do(ctx, repo, transport.PushScope, req)
	if err != nil {
		return false, fmt.Errorf("head blob %s@%s: %w", repo.Name(), digest, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		resp.Body.Close()
		return true, nil
	case http.StatusNotFound:
		resp.Body.Close()
		return false, nil
	}
	return false, fmt.Errorf("head blob %s@%s: %w", repo.Name(), digest, checkError(resp, http.StatusOK))
}

// GetBlob opens the blob digest of repo: its body, which the caller
// closes, and its length (-1 when the registry does not say). The caller
// checks the content against the digest.
func (c *Client) GetBlob(ctx context.Context, repo name.Repository, digest string) (io.ReadCloser, int64, error) {
	rc, n, err := c.getBlob(ctx, repo, digest)
	return rc, n, c.tr.secrets.redacted(err)
}

func (c *Client) getBlob(ctx context.Context, repo name.Repository, digest string) (io.ReadCloser, int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, repoURL(repo, "/blobs/"+digest).String(), nil)
	resp, err := c.do(ctx, repo, transport.PullScope, req)
	if err != nil {
		return nil, 0, fmt.Errorf("get blob %s@%s: %w", repo.Name(), digest, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("get blob %s@%s: %w", repo.Name(), digest, checkError(resp, http.StatusOK))
	}
	return resp.Body, resp.ContentLength, nil
}

// BlobOpener opens a blob's bytes from the start: a body and its length
// (-1 unknown). UploadBlob calls it once per attempt, and again whenever
// the Transport retries the PUT.
type BlobOpener func() (io.ReadCloser, int64, error)

// UploadOptions are UploadBlob's optional inputs.
type UploadOptions struct {
	// MountFrom is the path (below the host) of a repository on the same
	// registry that holds the blob: the upload first asks for a
	// cross-repository mount from it, and sends nothing when the registry
	// mounts it. A registry that declines opens an upload session instead
	// (202), which the upload then uses, so a declined mount costs no
	// extra request.
	MountFrom string
}

// Uploaded says how UploadBlob placed a blob.
type Uploaded struct {
	Mounted bool  // mounted from UploadOptions.MountFrom; nothing sent
	Sent    int64 // bytes sent by the PUT that succeeded (0 when mounted)
}

// uploadAttempts bounds how often an upload starts over with a new
// session: a stream cut mid-way invalidates the session on docker-registry
// (BLOB_UPLOAD_INVALID), so the Transport's retry of the PUT alone cannot
// succeed. Three attempts ride out two cuts in a row.
const uploadAttempts = 3

// UploadBlob places the blob digest in repo: a cross-repository mount when
// opts.MountFrom is set and the registry agrees, else a monolithic upload
// of open's bytes (POST opens a session, PUT ?digest= sends the whole body
// and the registry checks the digest: two requests). A failed attempt
// starts over in a new session, up to uploadAttempts times.
func (c *Client) UploadBlob(ctx context.Context, repo name.Repository, digest string, open BlobOpener, opts UploadOptions) (Uploaded, error) {
	v, err := c.uploadBlob(ctx, repo, digest, open, opts)
	return v, c.tr.secrets.redacted(err)
}

func (c *Client) uploadBlob(ctx context.Context, repo name.Repository, digest string, open BlobOpener, opts UploadOptions) (Uploaded, error) {
	var err error
	for attempt := 1; ; attempt++ {
		var up Uploaded
		if up, err = c.uploadOnce(ctx, repo, digest, open, opts); err == nil || ctx.Err() != nil || attempt == uploadAttempts {
			return up, err
		}
		if c.tr.log != nil {
			c.tr.log.LogAttrs(ctx, slog.LevelWarn, "starting upload over", slog.String("host", repo.RegistryStr()),
				slog.String("repository", repo.RepositoryStr()), slog.String("digest", digest),
				slog.Int("attempt", attempt), slog.String("error", err.Error()))
		}
	}
}

// uploadOnce is one attempt of UploadBlob, in its own upload session.
func (c *Client) uploadOnce(ctx context.Context, repo name.Repository, digest string, open BlobOpener, opts UploadOptions) (Uploaded, error) {
	u := repoURL(repo, "/blobs/uploads/")
	if opts.MountFrom != "" {
		u.RawQuery = url.Values{"mount": {digest}, "from": {opts.MountFrom}}.Encode()
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	var from []string
	if opts.MountFrom != "" {
		// A mount needs the right to read the source repository too.
		from = []string{"repository:" + opts.MountFrom + ":" + transport.PullScope}
	}
	resp, err := c.do(ctx, repo, transport.PushScope, req, from...)
	if err != nil {
		return Uploaded{}, fmt.Errorf("start upload of %s to %s: %w", digest, repo.Name(), err)
	}
	if opts.MountFrom != "" && resp.StatusCode == http.StatusCreated {
		resp.Body.Close()
		return Uploaded{Mounted: true}, nil
	}
	if err := checkError(resp, http.StatusAccepted); err != nil {
		return Uploaded{}, fmt.Errorf("start upload of %s to %s: %w", digest, repo.Name(), err)
	}
	loc, err := resp.Location()
	if err != nil {
		return Uploaded{}, fmt.Errorf("start upload of %s to %s: %w", digest, repo.Name(), err)
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()

	body, size, err := open()
	if err != nil {
		return Uploaded{}, err
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), body)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	// The Transport retries a failed PUT with a fresh body.
	req.GetBody = func() (io.ReadCloser, error) {
		rc, _, err := open()
		return rc, err
	}
	resp, err = c.do(ctx, repo, transport.PushScope, req)
	if err != nil {
		return Uploaded{}, fmt.Errorf("upload blob %s to %s: %w", digest, repo.Name(), err)
	}
	if err := checkError(resp, http.StatusCreated); err != nil {
		return Uploaded{}, fmt.Errorf("upload blob %s to %s: %w", digest, repo.Name(), err)
	}
	return Uploaded{Sent: size}, nil
}

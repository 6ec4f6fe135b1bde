package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/registry"
)

func blobOf(s string) (data []byte, digest string) {
	data = []byte(s)
	return data, fmt.Sprintf("sha256:%x", sha256.Sum256(data))
}

func opener(data []byte, opens *atomic.Int64) registry.BlobOpener {
	return func() (io.ReadCloser, int64, error) {
		opens.Add(1)
		return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
	}
}

func parse(t *testing.T, c *registry.Client, s string) name.Repository {
	t.Helper()
	r, err := c.ParseRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A blob uploaded with POST and PUT ?digest= is there, reads back, and
// every request counts once for WithRequestCounter.
func TestUploadBlobThenExistsAndGet(t *testing.T) {
	reg := regtest.New(t)
	c := anonymousClient()
	repo := parse(t, c, reg.Host+"/prod/app")
	data, digest := blobOf("layer bytes")
	var n atomic.Int64
	ctx := registry.WithRequestCounter(context.Background(), &n)

	if ok, err := c.BlobExists(ctx, repo, digest); err != nil || ok {
		t.Fatalf("BlobExists before the upload = %v, %v; want false", ok, err)
	}
	var opens atomic.Int64
	up, err := c.UploadBlob(ctx, repo, digest, opener(data, &opens), registry.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if up != (registry.Uploaded{Sent: int64(len(data))}) || opens.Load() != 1 {
		t.Errorf("UploadBlob = %+v after %d opens, want %d bytes sent after 1", up, opens.Load(), len(data))
	}
	if ok, err := c.BlobExists(ctx, repo, digest); err != nil || !ok {
		t.Fatalf("BlobExists after the upload = %v, %v; want true", ok, err)
	}
	rc, size, err := c.GetBlob(ctx, repo, digest)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) || size != int64(len(data)) {
		t.Errorf("GetBlob = %q (%d bytes said), want %q", got, size, data)
	}
	if got := n.Load(); got != 5 {
		t.Errorf("requests counted = %d, want 5 (HEAD, POST, PUT, HEAD, GET)", got)
	}
	if got := reg.Count("POST upload") + reg.Count("PUT upload"); got != 2 {
		t.Errorf("upload requests = %d (%v), want 2", got, reg.Counts())
	}
	if _, _, err := c.GetBlob(ctx, repo, "sha256:"+strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "get blob "+repo.Name()) {
		t.Errorf("GetBlob of a missing blob = %v, want an error naming the repository", err)
	}
}

// A mount the registry accepts sends nothing; one it declines uses the
// session the declining answer opened (no second POST).
func TestUploadBlobMount(t *testing.T) {
	reg := regtest.New(t)
	c := anonymousClient()
	repo := parse(t, c, reg.Host+"/prod/app")
	data, digest := blobOf("mounted bytes")
	var query string
	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Query().Get("from") == "prod/other" {
			query = r.URL.RawQuery
			w.WriteHeader(http.StatusCreated)
			return true
		}
		return false
	})
	var opens atomic.Int64
	up, err := c.UploadBlob(context.Background(), repo, digest, opener(data, &opens), registry.UploadOptions{MountFrom: "prod/other"})
	if err != nil {
		t.Fatal(err)
	}
	if up != (registry.Uploaded{Mounted: true}) || opens.Load() != 0 || reg.Count("PUT upload") != 0 {
		t.Errorf("accepted mount: %+v, %d opens, %d PUTs; want mounted, nothing opened or sent", up, opens.Load(), reg.Count("PUT upload"))
	}
	if want := "from=prod%2Fother&mount=" + strings.Replace(digest, ":", "%3A", 1); query != want {
		t.Errorf("mount query = %q, want %q", query, want)
	}

	reg.Reset()
	up, err = c.UploadBlob(context.Background(), repo, digest, opener(data, &opens), registry.UploadOptions{MountFrom: "prod/elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	if up != (registry.Uploaded{Sent: int64(len(data))}) || reg.Count("POST upload") != 1 || reg.Count("PUT upload") != 1 {
		t.Errorf("declined mount: %+v, requests %v; want the bytes sent with 1 POST and 1 PUT", up, reg.Counts())
	}
}

// An upload whose session the registry no longer takes starts over with a
// new session, up to three attempts, and says so in the log.
func TestUploadBlobStartsOver(t *testing.T) {
	for _, tt := range []struct {
		name    string
		refuse  int // PUTs refused
		wantErr bool
	}{
		{"two refusals, then stored", 2, false},
		{"refused every time", 100, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := regtest.New(t)
			var refused atomic.Int64
			reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") && refused.Add(1) <= int64(tt.refuse) {
					io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusNotFound)
					w.Write([]byte(`{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"blob upload invalid"}]}`))
					return true
				}
				return false
			})
			var logged bytes.Buffer
			tr := registry.NewTransport(registry.TransportOptions{Sleep: func(context.Context, time.Duration) error { return nil },
				Logger: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))})
			c := registry.New(registry.Options{Transport: tr, Keychain: authn.NewMultiKeychain()})
			repo := parse(t, c, reg.Host+"/prod/app")
			data, digest := blobOf("cut bytes")
			var opens atomic.Int64
			_, err := c.UploadBlob(context.Background(), repo, digest, opener(data, &opens), registry.UploadOptions{})
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "upload blob "+digest+" to "+repo.Name()) || !strings.Contains(err.Error(), "BLOB_UPLOAD_INVALID") {
					t.Fatalf("UploadBlob = %v, want the registry's error naming the blob and repository", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			sessions := min(tt.refuse+1, 3)
			if got := reg.Count("POST upload"); got != sessions {
				t.Errorf("sessions opened = %d, want %d", got, sessions)
			}
			if got := strings.Count(logged.String(), "starting upload over"); got != sessions-1 {
				t.Errorf("log has %d restarts, want %d:\n%s", got, sessions-1, logged.String())
			}
		})
	}
}

// PutManifest returns the digest of the bytes, refuses to put bytes by
// another digest, and reports a registry that kept something else.
func TestPutManifest(t *testing.T) {
	reg := regtest.New(t)
	d := reg.Push(t, "staging/app", "v1", regtest.Image(t, 64, 1, true))
	c := anonymousClient()
	src := parse(t, c, reg.Host+"/staging/app")
	m, err := c.GetManifest(context.Background(), src, d.String())
	if err != nil {
		t.Fatal(err)
	}
	dst := parse(t, c, reg.Host+"/staging/copy")
	if _, err := c.PutManifest(context.Background(), src, "v2", m.MediaType, m.Raw); err != nil {
		t.Fatalf("PutManifest by tag: %v", err)
	}
	got, err := c.PutManifest(context.Background(), src, d.String(), m.MediaType, m.Raw)
	if err != nil || got != d.String() {
		t.Fatalf("PutManifest by digest = %s, %v; want %s", got, err, d)
	}
	if desc, err := c.Head(context.Background(), src, "v2"); err != nil || desc.Digest != d.String() {
		t.Errorf("Head v2 = %+v, %v; want %s", desc, err, d)
	}

	reg.Reset()
	other := "sha256:" + strings.Repeat("1", 64)
	if _, err := c.PutManifest(context.Background(), dst, other, m.MediaType, m.Raw); err == nil || !strings.Contains(err.Error(), "body has digest "+d.String()) {
		t.Errorf("PutManifest by another digest = %v, want a refusal", err)
	}
	if n := reg.Count("PUT manifest"); n != 0 {
		t.Errorf("a refused PutManifest sent %d PUTs", n)
	}

	reg.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Docker-Content-Digest", other)
			w.WriteHeader(http.StatusCreated)
			return true
		}
		return false
	})
	_, err = c.PutManifest(context.Background(), src, "v3", m.MediaType, m.Raw)
	if diff := cmp.Diff(fmt.Sprintf("put manifest %s:v3: registry stored digest %s, want %s", src.Name(), other, d), fmt.Sprint(err)); diff != "" {
		t.Errorf("PutManifest to a registry keeping other bytes (-want +got):\n%s", diff)
	}
}

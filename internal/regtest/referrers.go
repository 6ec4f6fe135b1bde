package regtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipdev/cip/internal/apipath"
)

// referrersAPI completes go-containerregistry's referrers support (which
// answers one page, ignores artifactType, reports a referrer's config
// media type as its artifactType and sends no OCI-Subject).
type referrersAPI struct {
	inner    http.Handler
	pageSize int
}

func (a *referrersAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && apipath.Kind(r.URL.Path) == "referrers":
		a.referrers(w, r)
	case r.Method == http.MethodPut && apipath.Kind(r.URL.Path) == "manifest":
		var body bytes.Buffer
		if _, err := body.ReadFrom(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body.Close()
		r.Body = readCloser{bytes.NewReader(body.Bytes())}
		rec := httptest.NewRecorder()
		a.inner.ServeHTTP(rec, r)
		var m struct {
			Subject *struct {
				Digest string `json:"digest"`
			} `json:"subject"`
		}
		if rec.Code == http.StatusCreated && json.Unmarshal(body.Bytes(), &m) == nil && m.Subject != nil {
			rec.Header().Set("OCI-Subject", m.Subject.Digest)
		}
		copyResponse(w, rec)
	default:
		a.inner.ServeHTTP(w, r)
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (a *referrersAPI) referrers(w http.ResponseWriter, r *http.Request) {
	plain := r.Clone(r.Context())
	plain.URL.RawQuery = ""
	rec := httptest.NewRecorder()
	a.inner.ServeHTTP(rec, plain)
	if rec.Code != http.StatusOK {
		copyResponse(w, rec)
		return
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(rec.Body.Bytes(), &idx); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	repo := strings.TrimPrefix(r.URL.Path[:strings.LastIndex(r.URL.Path, "/referrers/")], "/v2/")
	want := r.URL.Query().Get("artifactType")
	var keep []v1.Descriptor
	for _, d := range idx.Manifests {
		d.ArtifactType = a.artifactType(r, repo, d.Digest.String())
		if want == "" || d.ArtifactType == want {
			keep = append(keep, d)
		}
	}
	slices.SortFunc(keep, func(x, y v1.Descriptor) int { return strings.Compare(x.Digest.String(), y.Digest.String()) })
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	from, to := min(page*a.pageSize, len(keep)), min((page+1)*a.pageSize, len(keep))
	out := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: append([]v1.Descriptor{}, keep[from:to]...)}
	if to < len(keep) {
		next := fmt.Sprintf("%s?page=%d", r.URL.Path, page+1)
		if want != "" {
			next += "&artifactType=" + want
		}
		w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next"`, next))
	}
	if want != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", string(types.OCIImageIndex))
	_ = json.NewEncoder(w).Encode(out)
}

// artifactType reads a referrer's manifest: its artifactType, else its
// config's media type.
func (a *referrersAPI) artifactType(r *http.Request, repo, digest string) string {
	req := httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/manifests/"+digest, nil)
	rec := httptest.NewRecorder()
	a.inner.ServeHTTP(rec, req.WithContext(r.Context()))
	var m struct {
		ArtifactType string `json:"artifactType"`
		Config       struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	return m.Config.MediaType
}

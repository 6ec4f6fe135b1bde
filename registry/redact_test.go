package registry_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/cipdev/cip/registry"
)

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Authorization: Basic dXNlcjpzM2NyZXQ=", "Authorization: Basic REDACTED"},
		{`{"Authorization":["Basic dXNlcjpzM2NyZXQ="]}`, `{"Authorization":["Basic REDACTED"]}`},
		{"authorization: bearer abc.def-ghi_jkl~", "authorization: bearer REDACTED"},
		{`www-authenticate: Bearer realm="https://auth.example/token",service="reg"`, `www-authenticate: Bearer realm="https://auth.example/token",service="reg"`},
		{`{"token":"s3cr3t","access_token":"a\"b","expires_in":300}`, `{"token":"REDACTED","access_token":"REDACTED","expires_in":300}`},
		{`{"auths":{"reg":{"auth":"dXNlcjpwYXNz"}}}`, `{"auths":{"reg":{"auth":"REDACTED"}}}`},
		{`Put "http://127.0.0.1:5000/v2/a/blobs/uploads/u1?_state=c2VjcmV0&digest=sha256%3Aab": EOF`,
			`Put "http://127.0.0.1:5000/v2/a/blobs/uploads/u1?_state=REDACTED&digest=sha256%3Aab": EOF`},
		{"Location: /v2/a/blobs/uploads/u1?_state=c2VjcmV0&digest=x", "Location: /v2/a/blobs/uploads/u1?_state=REDACTED&digest=x"},
		{"GET https://bucket.s3.amazonaws.com/blob?X-Amz-Signature=abc&X-Amz-Date=1.", "GET https://bucket.s3.amazonaws.com/blob?X-Amz-Date=REDACTED&X-Amz-Signature=REDACTED."},
		{"GET https://reg/v2/a/tags/list?n=1000&last=v1: 500", "GET https://reg/v2/a/tags/list?n=1000&last=v1: 500"},
		{"https://user:pass@reg.example/v2/", "https://REDACTED@reg.example/v2/"},
		{"token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl expired", "token REDACTED expired"},
		{"list tags of reg/a: UNAUTHORIZED: authentication required", "list tags of reg/a: UNAUTHORIZED: authentication required"},
	}
	for _, tt := range tests {
		if got := registry.Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q)\n = %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// A 401 whose body echoes the Authorization header, and the credentials
// themselves in the clear: neither reaches the error the Client returns.
func TestRedactEchoedCredentials(t *testing.T) {
	const user, pass = "robot", "hunter2-very-secret"
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/v2/" {
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, "denied: you sent %q (that is %s:%s)", r.Header.Get("Authorization"), user, pass)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	var logged bytes.Buffer
	tr := registry.NewTransport(registry.TransportOptions{Logger: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	kc := staticKeychain{authn.FromConfig(authn.AuthConfig{Username: user, Password: pass})}
	c := registry.New(registry.Options{Transport: tr, Keychain: kc})
	_, err := c.Tags(context.Background(), parse(t, c, host+"/a"))
	if err == nil {
		t.Fatal("Tags with a 401 succeeded")
	}
	msg := err.Error()
	for _, secret := range []string{basic, pass} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q holds the secret %q", msg, secret)
		}
	}
	if !strings.Contains(msg, "Basic REDACTED") || !strings.Contains(msg, "list tags of "+host+"/a") {
		t.Errorf("error %q: want the echo redacted and the repository named", msg)
	}
	// The referrers API's errors go through the same redaction.
	_, err = c.Referrers(context.Background(), parse(t, c, host+"/a"), "sha256:"+strings.Repeat("0", 64), "")
	if err == nil {
		t.Fatal("Referrers with a 401 succeeded")
	}
	for _, secret := range []string{basic, pass} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("referrers error %q holds the secret %q", err, secret)
		}
	}
	if !strings.Contains(err.Error(), "list referrers of "+host+"/a") {
		t.Errorf("referrers error %q: want the repository named", err)
	}
	if strings.Contains(logged.String(), pass) || strings.Contains(logged.String(), basic) {
		t.Errorf("the log holds a secret:\n%s", logged.String())
	}
}

type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

// A retry's reason, logged, is redacted: an upload URL's _state and a
// signed redirect do not reach the log.
func TestRedactLog(t *testing.T) {
	var logged bytes.Buffer
	base := rtFunc(func(r *http.Request) (*http.Response, error) {
		return nil, fmt.Errorf("read tcp: connection reset by peer; following %s", r.URL)
	})
	tr := registry.NewTransport(registry.TransportOptions{Base: base, MaxRetries: 1, Sleep: func(context.Context, time.Duration) error { return nil },
		Logger: slog.New(slog.NewJSONHandler(&logged, nil))})
	req, _ := http.NewRequest(http.MethodPut, "http://reg.test/v2/a/blobs/uploads/u1?_state=c2VjcmV0LXN0YXRl&digest=sha256:ab", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("RoundTrip succeeded")
	}
	if strings.Contains(logged.String(), "c2VjcmV0LXN0YXRl") || !strings.Contains(logged.String(), "_state=REDACTED") {
		t.Errorf("log:\n%s\nwant _state redacted", logged.String())
	}
}

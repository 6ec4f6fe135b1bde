package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cipdev/cip/registry"
)

func TestRealmHost(t *testing.T) {
	bearer := func(realm string) *transport.Challenge {
		return &transport.Challenge{Scheme: "Bearer", Parameters: map[string]string{"realm": realm, "service": "s"}}
	}
	tests := []struct {
		registry string
		ch       *transport.Challenge
		want     string
	}{
		{"gcr.io", bearer("https://gcr.io/v2/token"), ""},
		{"127.0.0.1:5000", bearer("http://127.0.0.1:5001/token"), ""}, // same host, another port
		{"registry-1.docker.io", bearer("https://auth.docker.io/token"), "auth.docker.io"},
		{"reg.example:443", bearer("https://evil.example/token"), "evil.example"},
		{"reg.example", &transport.Challenge{Scheme: "Basic", Parameters: map[string]string{"realm": "https://evil.example"}}, ""},
		{"reg.example", nil, ""},
		{"reg.example", bearer(""), ""},
	}
	for _, tt := range tests {
		if got := registry.RealmHost(tt.registry, tt.ch); got != tt.want {
			t.Errorf("RealmHost(%q, %+v) = %q, want %q", tt.registry, tt.ch, got, tt.want)
		}
	}
}

// A token realm on another host is followed (the token protocol allows
// it), with one warning per registry however many repositories.
func TestRealmOnAnotherHostWarnsOnce(t *testing.T) {
	var tokens atomic.Int64
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokens.Add(1)
		json.NewEncoder(w).Encode(map[string]string{"token": "tok"})
	}))
	defer auth.Close()
	// localhost, not 127.0.0.1: go-containerregistry refuses a realm on a
	// loopback or private address other than the registry's own.
	realm := "http://localhost:" + auth.URL[strings.LastIndexByte(auth.URL, ':')+1:] + "/token"
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="test"`, realm))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, tagsJSON("v1"))
	}))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	var mu sync.Mutex
	var warnings []string
	c := registry.New(registry.Options{Keychain: anonymousKeychain, Warn: func(m string) {
		mu.Lock()
		warnings = append(warnings, m)
		mu.Unlock()
	}})
	for _, r := range []string{"a", "b", "c"} {
		tl, err := c.Tags(context.Background(), parse(t, c, host+"/"+r))
		if err != nil || len(tl.Tags) != 1 {
			t.Fatalf("Tags(%s) = %v, %v; want the realm followed", r, tl, err)
		}
	}
	if tokens.Load() == 0 {
		t.Error("the token service on the other host was never asked")
	}
	want := fmt.Sprintf("registry %s sends clients to a token service on another host, localhost: cip follows it, and sends it the credentials it has for %s", host, host)
	if len(warnings) != 1 || warnings[0] != want {
		t.Errorf("warnings = %q, want one: %q", warnings, want)
	}
}

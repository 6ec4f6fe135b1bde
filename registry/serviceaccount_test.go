package registry_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/registry"
)

// fakeGcloud puts a gcloud on PATH (and nothing else) that records its
// arguments in the returned file and prints token. The real gcloud on these
// machines cannot reach Google and would fail only after its own timeout.
func fakeGcloud(t *testing.T, token string) (calls string) {
	t.Helper()
	dir := t.TempDir()
	calls = filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$@\" >> " + calls + "\necho " + token + "\n"
	if err := os.WriteFile(filepath.Join(dir, "gcloud"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	return calls
}

func readCalls(t *testing.T, calls string) string {
	t.Helper()
	b, err := os.ReadFile(calls)
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ambient is a keychain that answers every registry with one basic
// credential, to tell it apart from an impersonated token.
type ambient struct{}

func (ambient) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: "me", Password: "ambient"}, nil
}

// A service account is used on Google registries only (and under the
// registry it is given for); everywhere else the keychain answers, and
// gcloud is never run.
func TestServiceAccountsOnlyForGoogle(t *testing.T) {
	calls := fakeGcloud(t, "impersonated-token")
	c := registry.New(registry.Options{Keychain: ambient{}, ServiceAccounts: map[string]string{
		"us.gcr.io/prod":                   "writer@example.iam.gserviceaccount.com",
		"europe-west1-docker.pkg.dev/prod": "writer@example.iam.gserviceaccount.com",
		"127.0.0.1:5000/prod":              "local@example.iam.gserviceaccount.com",
		"registry.example.com/prod":        "other@example.iam.gserviceaccount.com",
	}})
	tests := []struct {
		repo, want string // want: the password sent
	}{
		{"us.gcr.io/prod/app", "impersonated-token"},
		{"us.gcr.io/prod", "impersonated-token"},
		{"europe-west1-docker.pkg.dev/prod/images/app", "impersonated-token"},
		{"us.gcr.io/production/app", "ambient"}, // a prefix by whole path segments only
		{"us.gcr.io/other/app", "ambient"},
		{"127.0.0.1:5000/prod/app", "ambient"},
		{"registry.example.com/prod/app", "ambient"},
	}
	for _, tt := range tests {
		repo, err := name.NewRepository(tt.repo)
		if err != nil {
			t.Fatal(err)
		}
		auth, err := c.Authenticator(repo)
		if err != nil {
			t.Fatalf("Authenticator(%s) = %v", tt.repo, err)
		}
		cfg, err := auth.Authorization()
		if err != nil {
			t.Fatalf("Authenticator(%s).Authorization() = %v", tt.repo, err)
		}
		if cfg.Password != tt.want {
			t.Errorf("Authenticator(%s) sends %q, want %q", tt.repo, cfg.Password, tt.want)
		}
	}
	got := readCalls(t, calls)
	if !strings.Contains(got, "auth print-access-token --impersonate-service-account=writer@example.iam.gserviceaccount.com") {
		t.Errorf("gcloud calls = %q, want the impersonation of writer@", got)
	}
	for _, sa := range []string{"local@", "other@"} {
		if strings.Contains(got, sa) {
			t.Errorf("gcloud calls = %q: impersonated %s on a registry that is not Google's", got, sa)
		}
	}
}

// Through real requests: a service account named for a loopback registry
// changes nothing, the registry is read with ambient credentials and
// gcloud is never run.
func TestServiceAccountIgnoredOnRegistry(t *testing.T) {
	calls := fakeGcloud(t, "impersonated-token")
	reg := regtest.New(t)
	reg.Push(t, "prod/app", "v1", regtest.Image(t, 64, 1, true))
	c := registry.New(registry.Options{Keychain: authn.NewMultiKeychain(), ServiceAccounts: map[string]string{
		reg.Host + "/prod": "writer@example.iam.gserviceaccount.com",
	}})
	repo, err := c.ParseRepository(reg.Host + "/prod/app")
	if err != nil {
		t.Fatal(err)
	}
	tags, err := c.Tags(context.Background(), repo)
	if err != nil {
		t.Fatalf("Tags = %v, want the listing", err)
	}
	if len(tags.Tags) != 1 || tags.Tags[0] != "v1" {
		t.Errorf("Tags = %v, want [v1]", tags.Tags)
	}
	if got := readCalls(t, calls); got != "" {
		t.Errorf("gcloud ran for a loopback registry: %q", got)
	}
}

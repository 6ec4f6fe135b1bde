package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/urfave/cli/v2"

	"github.com/cipdev/cip/internal/regtest"
	"github.com/cipdev/cip/manifest"
)

// Service accounts are opt-in: the client borrows the manifests' accounts
// only with --use-service-account (or CIP_USE_SERVICE_ACCOUNT); without
// it, credentials are ambient. (Which hosts an account is then used on is
// the registry package's, tested there: Google's only.)
func TestServiceAccountsOptIn(t *testing.T) {
	set := &manifest.Set{Manifests: []manifest.Manifest{{Registries: []manifest.Registry{
		{Name: "gcr.io/staging", Src: true},
		{Name: "us.gcr.io/prod", ServiceAccount: "writer@example.iam.gserviceaccount.com"},
	}}}}
	want := map[string]string{"us.gcr.io/prod": "writer@example.iam.gserviceaccount.com"}
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want map[string]string
	}{
		{name: "default", want: nil},
		{name: "flag", args: []string{"--use-service-account"}, want: want},
		{name: "env", env: "true", want: want},
		{name: "env off", env: "false", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CIP_USE_SERVICE_ACCOUNT", tc.env)
			var got map[string]string
			app := &cli.App{Flags: registryFlags(), Action: func(c *cli.Context) error {
				got = clientOptions(c, set).ServiceAccounts
				return nil
			}}
			if err := app.Run(append([]string{"cip"}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ServiceAccounts (-want +got):\n%s", diff)
			}
		})
	}
}

// Through the command line: a manifest naming a service account on a
// registry that is not Google's plans with ambient credentials, even with
// --use-service-account, warns (file and line), and never runs gcloud.
func TestServiceAccountOffGoogleNeverUsed(t *testing.T) {
	reg := regtest.New(t)
	d := reg.Push(t, "staging/app", "v1", regtest.Image(t, 64, 1, true))
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	if err := os.WriteFile(filepath.Join(bin, "gcloud"), []byte("#!/bin/sh\necho \"$@\" >> "+calls+"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	dir := t.TempDir()
	mf := filepath.Join(dir, "m.yaml")
	m := "registries:\n- name: " + reg.Host + "/staging\n  src: true\n  service-account: reader@example.iam.gserviceaccount.com\n" +
		"- name: " + reg.Host + "/prod\n  service-account: writer@example.iam.gserviceaccount.com\n" +
		"images:\n- name: app\n  dmap:\n    \"" + d.String() + "\": [v1]\n"
	if err := os.WriteFile(mf, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	args := []string{"cip", "--db", filepath.Join(dir, "inv.db"), "promote", "--manifest", mf, "--plan", "--use-service-account"}
	if code := Run(context.Background(), "cip", args, &out, &errb); code != 0 {
		t.Fatalf("cip promote --plan = exit %d, want 0\n%s", code, errb.String())
	}
	if !strings.Contains(out.String(), "copy") {
		t.Errorf("plan = %q, want a copy row", out.String())
	}
	for _, want := range []string{
		mf + ":4: registry \"" + reg.Host + "/staging\": service-account reader@example.iam.gserviceaccount.com is ignored",
		mf + ":6: registry \"" + reg.Host + "/prod\": service-account writer@example.iam.gserviceaccount.com is ignored",
	} {
		if !strings.Contains(errb.String(), "warning: "+want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if b, err := os.ReadFile(calls); err == nil {
		t.Errorf("gcloud was run: %s", b)
	}
}

// The Kubernetes promoter's basic-thin fixture shape, with its stale
// imagesPath, validates (kpromo accepts it) with one warning naming the
// file and line.
func TestValidateStaleImagesPath(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "manifests", "good", "basic-thin")
	var out, errb bytes.Buffer
	if code := Run(context.Background(), "cip", []string{"cip", "validate", "--thin-manifest-dir", dir}, &out, &errb); code != 0 {
		t.Fatalf("cip validate = exit %d, want 0\n%s", code, errb.String())
	}
	if want := "ok: 4 manifests, 4 images, 4 digests, 12 promotions, 0 skipped\n"; out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
	want := "warning: " + filepath.Join(dir, "manifests", "a", "promoter-manifest.yaml") + `:11: imagesPath "../../images/a.yaml" is deprecated and ignored`
	if !strings.HasPrefix(errb.String(), want) || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("stderr = %q, want one line starting %q", errb.String(), want)
	}
}

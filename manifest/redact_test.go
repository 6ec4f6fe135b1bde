package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactCredentials(t *testing.T) {
	tests := []struct{ in, want string }{
		{"user:secret@gcr.io/prod", "REDACTED@gcr.io/prod"},
		{"a@b@host:5000", "REDACTED@host:5000"},
		{"gcr.io/prod/a@b", "gcr.io/prod/a@b"}, // only the host part
		{"gcr.io", "gcr.io"},
	}
	for _, tt := range tests {
		if got := RedactCredentials(tt.in); got != tt.want {
			t.Errorf("RedactCredentials(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRegistryCredentialsNeverEchoed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.yaml")
	os.WriteFile(p, []byte("registries:\n- name: bob:hunter2@gcr.io/staging\n  src: true\n- name: gcr.io/prod\nimages: []\n"), 0o644)
	_, err := LoadFile(p, Options{})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("LoadFile = %v, want a credentials error without the secret", err)
	}
}

func TestThinDirSymlinkEscapeAndEmpty(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "thin")
	os.MkdirAll(filepath.Join(dir, "manifests", "a"), 0o755)
	os.MkdirAll(filepath.Join(dir, "images", "a"), 0o755)
	os.WriteFile(filepath.Join(dir, "manifests", "a", "promoter-manifest.yaml"), []byte("registries:\n- name: gcr.io/s\n  src: true\n- name: gcr.io/p\n"), 0o644)
	outside := filepath.Join(root, "outside.yaml")
	os.WriteFile(outside, []byte("[]\n"), 0o644)
	os.Symlink(outside, filepath.Join(dir, "images", "a", "images.yaml"))
	_, err := LoadThinDir(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "outside the thin manifest directory") || !strings.Contains(err.Error(), filepath.Join("images", "a", "images.yaml")) {
		t.Errorf("LoadThinDir(images symlink escape) = %v, want an error naming the images file", err)
	}
	set, err := LoadThinDir(dir, Options{SkipInvalid: true})
	if err != nil || len(set.Manifests) != 0 || len(set.Warnings) != 1 {
		t.Errorf("LoadThinDir(escape, SkipInvalid) = %+v, %v; want no manifests and one warning", set, err)
	}

	empty := filepath.Join(root, "empty")
	os.MkdirAll(filepath.Join(empty, "manifests"), 0o755)
	if _, err := LoadThinDir(empty, Options{}); err == nil || !strings.Contains(err.Error(), "no promoter manifests") {
		t.Errorf("LoadThinDir(empty manifests/) = %v, want a no-manifests error", err)
	}
}

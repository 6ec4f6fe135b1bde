package audit

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The poll sees an edit anywhere below a thin-manifest directory, a new
// file, and a git-sync style swap of the symlink the directory is reached
// through; nothing else.
func TestFingerprint(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	for _, d := range []string{a, b} {
		if err := os.MkdirAll(filepath.Join(d, "images", "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "images", "x", "images.yaml"), []byte("- name: x\n"), 0o644)
	}
	link := filepath.Join(root, "current")
	if err := os.Symlink(a, link); err != nil {
		t.Fatal(err)
	}
	watch := []string{link}
	fp := fingerprint(watch)
	if fp == "" || fingerprint(watch) != fp {
		t.Fatalf("fingerprint of an unchanged tree changed")
	}
	steps := []struct {
		name   string
		change func()
	}{
		{"same size, new mtime", func() {
			p := filepath.Join(a, "images", "x", "images.yaml")
			os.WriteFile(p, []byte("- name: y\n"), 0o644)
			later := time.Now().Add(time.Minute)
			os.Chtimes(p, later, later)
		}},
		{"a new file", func() { os.WriteFile(filepath.Join(a, "images", "x", "more.yaml"), nil, 0o644) }},
		{"the symlink swapped", func() {
			os.Remove(link)
			os.Symlink(b, link)
		}},
		{"the directory gone", func() { os.RemoveAll(b) }},
	}
	for _, s := range steps {
		s.change()
		next := fingerprint(watch)
		if next == fp {
			t.Errorf("%s: fingerprint unchanged", s.name)
		}
		fp = next
	}
}

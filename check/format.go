package check

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cipdev/cip/manifest"
)

// FormatImages returns data, an images file (plain: a plain manifest), in
// canonical form: images sorted by name with one entry per name, digests
// sorted and quoted, tags as a sorted flow list (manifest.WriteImages).
// Comments survive only where they can without guessing which entry they
// belong to: a thin images file keeps its leading comment block; a plain
// manifest keeps everything outside its images field verbatim (registries,
// comments) and gets the images field last. Comments among the image
// entries are dropped.
//
// Callers format valid files only (validation first). The entries are read
// from data itself, and the result is read back before it is returned: if
// its entries differ from data's in anything but order and line numbers,
// FormatImages returns an error rather than a file that would lose data.
func FormatImages(data []byte, plain bool) ([]byte, error) {
	images := manifest.Canonical(parseImages(data, plain))
	out, err := formatImages(data, images, plain)
	if err != nil {
		return nil, err
	}
	if !sameImages(manifest.Canonical(parseImages(out, plain)), images) {
		return nil, fmt.Errorf("format images: the canonical form would not read back as the same images; file left alone")
	}
	return out, nil
}

// sameImages compares names, digests and tags, not lines.
func sameImages(a, b []manifest.Image) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || len(a[i].Digests) != len(b[i].Digests) {
			return false
		}
		for j, d := range a[i].Digests {
			e := b[i].Digests[j]
			if d.Digest != e.Digest || strings.Join(d.Tags, ",") != strings.Join(e.Tags, ",") {
				return false
			}
		}
	}
	return true
}

func formatImages(data []byte, images []manifest.Image, plain bool) ([]byte, error) {
	var body bytes.Buffer
	if err := manifest.WriteImages(&body, images); err != nil {
		return nil, err
	}
	lines := strings.SplitAfter(string(data), "\n")
	if plain {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("format manifest: %w", err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			return nil, fmt.Errorf("format manifest: want a mapping with registries and images")
		}
		root := doc.Content[0]
		// The images field runs from its key to the next top-level key.
		var keyLines []int
		start := 0
		for i := 0; i < len(root.Content); i += 2 {
			keyLines = append(keyLines, root.Content[i].Line)
			if root.Content[i].Value == "images" {
				start = root.Content[i].Line
			}
		}
		sort.Ints(keyLines)
		var out strings.Builder
		if start == 0 {
			out.WriteString(string(data))
		} else {
			end := len(lines) + 1
			for _, l := range keyLines {
				if l > start {
					end = l
					break
				}
			}
			out.WriteString(strings.Join(lines[:start-1], ""))
			if end <= len(lines) {
				out.WriteString(strings.Join(lines[end-1:], ""))
			}
		}
		s := strings.TrimRight(out.String(), "\n")
		if s != "" {
			s += "\n"
		}
		if body.Len() == 0 {
			return []byte(s + "images: []\n"), nil
		}
		return []byte(s + "images:\n" + body.String()), nil
	}
	// A thin images file: keep the leading comment block, then at most one
	// blank line.
	var head []string
	blank := false
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" {
			blank = len(head) > 0
			continue
		}
		if !strings.HasPrefix(t, "#") {
			break
		}
		if blank {
			head = append(head, "\n")
			blank = false
		}
		head = append(head, strings.TrimRight(l, "\n")+"\n")
	}
	out := strings.Join(head, "")
	if body.Len() == 0 {
		if out == "" {
			return []byte("[]\n"), nil // an empty file would be invalid
		}
		return []byte(out), nil
	}
	if out != "" && blank {
		out += "\n"
	}
	return []byte(out + body.String()), nil
}

// Format warns about images files the change touches that are not in
// canonical form (what `cip fmt` writes). Files with validation problems
// are left to Validation; files the change does not touch are left alone.
type Format struct{}

func (Format) Name() string { return "format" }
func (Format) Description() string {
	return "a changed images file is not in canonical form (cip fmt; warning)"
}
func (Format) Applies(*Change) bool { return true }

func (Format) Run(_ context.Context, c *Change) ([]Finding, error) {
	invalid := map[string]bool{}
	for _, p := range c.Head.Problems {
		invalid[p.File] = true
	}
	baseFiles := map[string]string{}
	if c.Base != nil {
		for _, m := range c.Base.Manifests {
			baseFiles[c.Base.rel(m.ImagesFile)] = m.ImagesFile
		}
	}
	seen := map[string]bool{}
	var out []Finding
	for _, m := range c.Head.Manifests {
		f := m.ImagesFile
		if seen[f] || invalid[f] {
			continue
		}
		seen[f] = true
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read images %s: %w", f, err)
		}
		if b, ok := baseFiles[c.Head.rel(f)]; ok {
			old, err := os.ReadFile(b)
			if err == nil && bytes.Equal(old, data) {
				continue
			}
		}
		want, err := FormatImages(data, !c.Head.Thin)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(want, data) {
			out = append(out, Finding{Severity: Warning, File: f, Line: firstDiff(data, want),
				Message: "not in canonical form; run cip fmt"})
		}
	}
	return out, nil
}

// firstDiff returns the first line where a and b differ.
func firstDiff(a, b []byte) int {
	line := 1
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return line
		}
		if a[i] == '\n' {
			line++
		}
	}
	return line
}

package manifest

import (
	"bufio"
	"io"
	"sort"
	"strconv"
)

// WriteImages writes images in the canonical thin images.yaml form: images
// sorted by name, digests sorted and quoted, tags sorted as a quoted flow
// list, a tagless digest as []. Image entries with the same name are merged.
// Snapshots and `cip fmt` both write this form, so their output diffs
// cleanly against the manifests people edit.
func WriteImages(w io.Writer, images []Image) error {
	bw := bufio.NewWriter(w)
	for _, img := range Canonical(images) {
		bw.WriteString("- name: ")
		bw.WriteString(nameScalar(img.Name))
		bw.WriteString("\n  dmap:\n")
		for _, d := range img.Digests {
			bw.WriteString("    ")
			bw.WriteString(strconv.Quote(d.Digest))
			bw.WriteString(": [")
			for i, t := range d.Tags {
				if i > 0 {
					bw.WriteString(", ")
				}
				bw.WriteString(strconv.Quote(t))
			}
			bw.WriteString("]\n")
		}
	}
	return bw.Flush()
}

// Canonical merges entries with the same image name and the same digest,
// and sorts images, digests and tags. Line numbers are kept from the first
// occurrence.
func Canonical(images []Image) []Image {
	byName := map[string]map[string]*Digest{}
	lines := map[string]int{}
	for _, img := range images {
		ds, ok := byName[img.Name]
		if !ok {
			ds = map[string]*Digest{}
			byName[img.Name] = ds
			lines[img.Name] = img.Line
		}
		for _, d := range img.Digests {
			cur, ok := ds[d.Digest]
			if !ok {
				cur = &Digest{Digest: d.Digest, Line: d.Line, Tags: []string{}}
				ds[d.Digest] = cur
			}
			cur.Tags = append(cur.Tags, d.Tags...)
		}
	}
	out := make([]Image, 0, len(byName))
	for n, ds := range byName {
		img := Image{Name: n, Line: lines[n]}
		for _, d := range ds {
			d.Tags = canonicalTags(d.Tags)
			img.Digests = append(img.Digests, *d)
		}
		sort.Slice(img.Digests, func(i, j int) bool { return img.Digests[i].Digest < img.Digests[j].Digest })
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func canonicalTags(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// nameScalar quotes a name only when YAML would otherwise read it as
// something other than the plain string (names are validated repository
// paths, so this is rare).
func nameScalar(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '/' || r == '-' || r == '_' || r == '.') {
			plain = false
			break
		}
	}
	if plain {
		switch s[0] {
		case '-', '.', '_':
			plain = false
		}
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			plain = false // 1.0 would read as a number
		}
	}
	if plain {
		return s
	}
	return strconv.Quote(s)
}

package sync

import (
	"slices"

	"github.com/cipdev/cip/manifest"
)

// Side picks the repositories of a manifest set: its images in their
// source registry, in their destination registries, or both.
type Side int

// Sides.
const (
	Sources Side = 1 << iota
	Destinations
	Both = Sources | Destinations
)

// Repositories lists the repositories of set's side (full names,
// registry/image), sorted, each once: those of its promotions. A manifest
// without destinations, or an image with no digest left (every entry
// skipped as invalid), promotes nothing and names no repository.
func Repositories(set *manifest.Set, side Side) []string {
	var out []string
	for i := range set.Manifests {
		m := &set.Manifests[i]
		if len(m.Destinations()) == 0 {
			continue
		}
		var regs []string
		if side&Sources != 0 {
			regs = append(regs, m.Source().Name)
		}
		if side&Destinations != 0 {
			for _, d := range m.Destinations() {
				regs = append(regs, d.Name)
			}
		}
		for _, img := range m.Images {
			if len(img.Digests) == 0 {
				continue
			}
			for _, r := range regs {
				out = append(out, r+"/"+img.Name)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ManifestTargets lists the repositories a set of manifests touches, the
// source and every destination of each image, as exact targets (crawled
// without the catalog).
func ManifestTargets(set *manifest.Set) []Target {
	return Exact(Repositories(set, Both))
}

// Exact turns repository names into exact targets, sorted, each once.
func Exact(repos []string) []Target {
	repos = slices.Clone(repos)
	slices.Sort(repos)
	repos = slices.Compact(repos)
	out := make([]Target, len(repos))
	for i, r := range repos {
		out[i] = Target{Ref: r, Exact: true}
	}
	return out
}

// Package manifest reads and validates promoter manifests: plain manifests
// (registries and images in one file) and thin-manifest directories
// (<dir>/manifests/<x>/promoter-manifest.yaml paired with
// <dir>/images/<x>/images.yaml).
//
// One set of validation rules applies to both forms. Every problem is an
// *Error naming the file and line. Load returns a *ValidationError listing
// all problems unless Options.SkipInvalid is set, in which case invalid
// entries (or whole files, for structural problems) are dropped and the
// problems are returned as warnings in Set.Warnings.
package manifest

import (
	"fmt"
	"sort"
	"strings"
)

// Registry is one entry of a manifest's registries list.
type Registry struct {
	Name           string // host[:port]/path, e.g. gcr.io/k8s-staging-foo
	Src            bool
	ServiceAccount string
	Line           int
}

// Digest is one dmap entry: a digest and the tags it should carry in every
// destination. Tags may be empty (a tagless promotion).
type Digest struct {
	Digest string // sha256:<64 lowercase hex>
	Tags   []string
	Line   int
}

// Image is one images entry: a repository path relative to the registries,
// with the digests to promote. Entries naming the same image within one file
// are merged; the same digest listed twice merges its tags.
type Image struct {
	Name    string
	Digests []Digest // sorted by digest
	Line    int
}

// Manifest is one promoter manifest after loading: a plain manifest file or
// one thin manifest (a promoter-manifest.yaml and its images.yaml).
type Manifest struct {
	// File is the plain manifest or the thin promoter-manifest.yaml.
	File string
	// ImagesFile is the file the images came from (equal to File for a
	// plain manifest).
	ImagesFile string
	Registries []Registry
	Images     []Image // sorted by name
}

// Source returns the registry marked src: true.
func (m *Manifest) Source() Registry {
	for _, r := range m.Registries {
		if r.Src {
			return r
		}
	}
	return Registry{}
}

// Destinations returns the registries that are not the source, in manifest
// order.
func (m *Manifest) Destinations() []Registry {
	var out []Registry
	for _, r := range m.Registries {
		if !r.Src {
			out = append(out, r)
		}
	}
	return out
}

// Set is everything loaded by one Load call.
type Set struct {
	Manifests []Manifest
	// Warnings lists problems that were skipped because of
	// Options.SkipInvalid, in file and line order.
	Warnings []*Error
	// Notices lists what is worth saying but invalidates nothing, with or
	// without SkipInvalid, in file and line order: a deprecated imagesPath
	// naming another file than the one cip reads, a service account on a
	// registry that is not Google's (never used).
	Notices []*Error
}

// Promotion is one flattened row of intent: copy Digest of Image from the
// source registry Src into destination registry Dst with Tags.
type Promotion struct {
	Src    string
	Dst    string
	Image  string
	Digest string
	Tags   []string
	File   string // images file
	Line   int    // line of the digest in File
}

// Promotions flattens the set into one row per (manifest, destination,
// image, digest), in a deterministic order (destination, image, digest, file).
func (s *Set) Promotions() []Promotion {
	var out []Promotion
	for i := range s.Manifests {
		m := &s.Manifests[i]
		src := m.Source().Name
		for _, dst := range m.Destinations() {
			for _, img := range m.Images {
				for _, d := range img.Digests {
					out = append(out, Promotion{
						Src: src, Dst: dst.Name, Image: img.Name, Digest: d.Digest,
						Tags: d.Tags, File: m.ImagesFile, Line: d.Line,
					})
				}
			}
		}
	}
	sortPromotions(out)
	return out
}

// Error is one problem found in a manifest, located by file and line (Line is
// 0 when no line applies, e.g. a missing file).
type Error struct {
	File string
	Line int
	Msg  string
	// Conflict details a tag conflict (nil for any other problem), for
	// callers that report conflicts their own way (cip check).
	Conflict *TagConflict
}

// TagConflict is a tag given to two digests that one destination
// repository receives: Digest at the Error's file, and Other at OtherFile.
// Lines are the digests' lines (the Error's Line is the tag's).
type TagConflict struct {
	Tag string
	// The later of the two entries, where the Error is reported.
	Image, Digest string
	Line          int
	// The earlier entry.
	OtherImage, Other, OtherFile string
	OtherLine                    int
	// Destinations are the destination registries of the later entry's
	// manifest whose repository of Image receives both digests, sorted.
	Destinations []string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// ValidationError is returned by Load when any manifest is invalid and
// Options.SkipInvalid is not set. It lists every problem found.
type ValidationError struct {
	Errors []*Error
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d manifest error(s):", len(e.Errors))
	for _, x := range e.Errors {
		b.WriteString("\n  ")
		b.WriteString(x.Error())
	}
	return b.String()
}

func sortPromotions(ps []Promotion) {
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Dst != b.Dst {
			return a.Dst < b.Dst
		}
		if a.Image != b.Image {
			return a.Image < b.Image
		}
		if a.Digest != b.Digest {
			return a.Digest < b.Digest
		}
		return a.File < b.File
	})
}

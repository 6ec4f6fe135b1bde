// Package check runs pre-submit checks on a change to promoter manifests:
// it compares a base version (what is merged) with a head version (the pull
// request) and reports findings, each with a check name, a severity, a file,
// a line and a message.
//
// Promotion is add-only: a merged mistake (a removed image, a moved tag, a
// tag on two digests) reaches production mirrors. So the checks look at what
// the change introduces. A problem that is already in the base is reported
// as a warning, never an error, so that an old mistake does not block every
// later change.
//
// The checks (All lists them):
//
//	validation           every rule of `cip validate`, on the head
//	image-removal        a (destination repository, digest) or tag of the base gone in the head
//	tag-move             a tag that names another digest in the head than in the base
//	tag-conflict         a tag on two digests in one destination repository
//	destination-removal  a destination registry dropped (warning)
//	source-presence      every digest new in the head is in its source repository (online)
//	image-size           new images above a size limit (online)
//	floating-tags        new entries tagged latest (or a configured pattern)
//	format               changed images files not in canonical form (warning)
//
// A check is a value implementing Check; adding one means writing a file
// with its type and tests and listing it in All.
//
// Example:
//
//	base, _ := check.LoadState(check.Source{Dir: "old/registry.k8s.io"})
//	head, _ := check.LoadState(check.Source{Dir: "registry.k8s.io"})
//	findings, err := check.Run(ctx, &check.Change{Base: base, Head: head}, check.All(check.Options{Offline: true}), false)
package check

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Severity says whether a finding blocks the change.
type Severity string

// Severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Finding is one thing a check found.
type Finding struct {
	Check    string   `json:"check"`
	Severity Severity `json:"severity"`
	File     string   `json:"file,omitempty"`
	Line     int      `json:"line,omitempty"`
	Message  string   `json:"message"`
}

// Check is one pre-submit check.
type Check interface {
	// Name is the check's identifier for --checks and --skip-checks.
	Name() string
	// Description is one line saying what the check refuses.
	Description() string
	// Applies reports whether the check has anything to look at in c (a
	// check that needs the base does not apply without one; an online check
	// does not apply offline).
	Applies(c *Change) bool
	// Run returns the check's findings. An error is a failure to check
	// (a registry or inventory error), not a finding.
	Run(ctx context.Context, c *Change) ([]Finding, error)
}

// Select returns the checks of all named in only (all of them when only is
// empty), minus those named in skip, in the order of all. An unknown name is
// an error.
func Select(all []Check, only, skip []string) ([]Check, error) {
	known := map[string]bool{}
	var names []string
	for _, c := range all {
		known[c.Name()] = true
		names = append(names, c.Name())
	}
	for _, n := range append(append([]string{}, only...), skip...) {
		if !known[n] {
			return nil, fmt.Errorf("select checks: unknown check %q; want one of %s", n, strings.Join(names, ", "))
		}
	}
	in := func(list []string, n string) bool {
		for _, x := range list {
			if x == n {
				return true
			}
		}
		return false
	}
	var out []Check
	for _, c := range all {
		if (len(only) == 0 || in(only, c.Name())) && !in(skip, c.Name()) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Run runs each check that applies to c and returns the findings sorted by
// file, line, check and message. With strict, warnings become errors.
func Run(ctx context.Context, c *Change, checks []Check, strict bool) ([]Finding, error) {
	var out []Finding
	for _, ch := range checks {
		if !ch.Applies(c) {
			continue
		}
		fs, err := ch.Run(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("run check %s: %w", ch.Name(), err)
		}
		for _, f := range fs {
			f.Check = ch.Name()
			if strict {
				f.Severity = Error
			}
			out = append(out, f)
		}
	}
	SortFindings(out)
	return out, nil
}

// SortFindings sorts findings by file, line, check and message.
func SortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Check != b.Check {
			return a.Check < b.Check
		}
		return a.Message < b.Message
	})
}

// Count counts the findings that are errors and those that are warnings.
// A change with any error is refused (cip check exits 1).
func Count(fs []Finding) (errors, warnings int) {
	for _, f := range fs {
		if f.Severity == Error {
			errors++
		} else {
			warnings++
		}
	}
	return errors, warnings
}

// severity is Error for a problem the change introduces and Warning for one
// the base already had.
func severity(inBase bool) Severity {
	if inBase {
		return Warning
	}
	return Error
}

// plural returns "n thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, thing)
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// where names a group of destination repositories by the first one and a
// count of the others.
func where(repos []string) string {
	sort.Strings(repos)
	if len(repos) == 1 {
		return repos[0]
	}
	return fmt.Sprintf("%s and %s", repos[0], plural(len(repos)-1, "other destination"))
}

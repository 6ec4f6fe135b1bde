package check

import (
	"context"
	"regexp"
)

// Validation reports every rule of `cip validate` broken by the head. A
// problem the base has too (same file, same message, wherever the line
// moved) is a warning. Tag conflicts are left to TagConflict, which reports
// validation's conflicts per destination registry. What `cip validate` only
// warns about (the head's notices) is a warning.
type Validation struct{}

func (Validation) Name() string { return "validation" }
func (Validation) Description() string {
	return "the head breaks a rule of cip validate"
}
func (Validation) Applies(*Change) bool { return true }

var lineRefs = regexp.MustCompile(`(line |:)\d+`)

func (Validation) Run(_ context.Context, c *Change) ([]Finding, error) {
	old := map[string]bool{}
	if c.Base != nil {
		for _, p := range c.Base.Problems {
			old[c.Base.rel(p.File)+"\x00"+lineRefs.ReplaceAllString(p.Msg, "$1")] = true
		}
	}
	var out []Finding
	for _, p := range c.Head.Problems {
		if p.Conflict != nil {
			continue
		}
		inBase := old[c.Head.rel(p.File)+"\x00"+lineRefs.ReplaceAllString(p.Msg, "$1")]
		msg := p.Msg
		if inBase {
			msg += " (already in the base)"
		}
		out = append(out, Finding{Severity: severity(inBase), File: p.File, Line: p.Line, Message: msg})
	}
	for _, n := range c.Head.Notices {
		out = append(out, Finding{Severity: Warning, File: n.File, Line: n.Line, Message: n.Msg})
	}
	return out, nil
}

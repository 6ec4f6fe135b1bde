package query

import (
	"errors"
	"strings"
	"testing"
)

// allSQL is every statement the forms can produce.
func allSQL() map[string]bool {
	out := map[string]bool{}
	for _, f := range forms {
		for _, s := range f.sql {
			out[s] = true
		}
	}
	return out
}

// FuzzTranslate: the translator never panics and always answers one of
// its four ways (a plan, unknown, not supported, ambiguous, or too long);
// the SQL of a plan is one of the forms' fixed statements, so it never
// holds the input: values only travel as parameters, each a string or an
// integer; and every word of an accepted question is used (a question
// with a word appended that no form knows is refused).
func FuzzTranslate(f *testing.F) {
	for _, fm := range forms {
		f.Add(fm.Example)
	}
	for _, tc := range goldenQuestions {
		f.Add(tc.q)
	}
	for _, tc := range nearMisses {
		f.Add(tc.q)
	}
	f.Add("how many digests in gcr.io/x'; DROP TABLE tags; --")
	f.Add("list tags in gcr.io/foo matching ' OR 1=1 --")
	f.Add("where is sha256:abcd' OR '1'='1")
	f.Add("what changed in gcr.io/foo between 2026-01-01 and 2025-01-01")
	f.Add("what changed in gcr.io/foo in the last 999999999 years")
	f.Add("which images in gcr.io/foo are larger than 999999999.999 tib")
	known := allSQL()
	f.Fuzz(func(t *testing.T, q string) {
		p, err := Translate(q, testNow)
		if err != nil {
			if !errors.Is(err, ErrUnknownQuestion) && !errors.Is(err, ErrNotSupported) && !errors.Is(err, ErrAmbiguous) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("Translate(%q) = %v: not one of the known errors", q, err)
			}
			return
		}
		if p.Reading() == "" {
			t.Fatalf("Translate(%q): empty reading", q)
		}
		for _, s := range p.Form.sql {
			if !known[s] {
				t.Fatalf("Translate(%q) built SQL that is not a form's statement:\n%s", q, s)
			}
			if tq := strings.TrimSpace(q); len(tq) > 12 && strings.Contains(s, tq) {
				t.Fatalf("SQL for %q contains the input:\n%s", q, s)
			}
			for name, v := range p.Slots {
				if len(v) > 12 && strings.Contains(s, v) {
					t.Fatalf("SQL for %q contains slot %s = %q", q, name, v)
				}
			}
			args, err := p.args(s)
			if err != nil {
				t.Fatalf("Translate(%q): %v", q, err)
			}
			for _, a := range args {
				switch a.Value.(type) {
				case string, int64:
				default:
					t.Fatalf("parameter %s = %#v, want a string or an integer", a.Name, a.Value)
				}
			}
		}
		// Every content word is used: an unknown word appended is
		// refused, or bound to a slot (it shows in the reading).
		if len(q) < maxQuestionB-20 {
			if p2, err := Translate(q+" zzqxw", testNow); err == nil && !strings.Contains(p2.Reading(), "zzqxw") {
				t.Fatalf("Translate(%q + an unknown word) = %s (%s): the word was dropped", q, p2.Form.Name, p2.Reading())
			}
		}
	})
}

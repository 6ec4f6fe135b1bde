package query

import (
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

// FuzzTranslate: the translator never panics, and the SQL of whatever form
// it picks is one of the forms' fixed statements, so it never holds the
// input; slot values only travel as parameters.
func FuzzTranslate(f *testing.F) {
	for _, fm := range forms {
		f.Add(fm.Example)
	}
	for _, tc := range goldenQuestions {
		f.Add(tc.q)
	}
	f.Add("how many digests in gcr.io/x'; DROP TABLE tags; --")
	f.Add("list tags in gcr.io/foo matching ' OR 1=1 --")
	f.Add("where is sha256:abcd' OR '1'='1")
	known := allSQL()
	f.Fuzz(func(t *testing.T, q string) {
		p, err := Translate(q)
		if err != nil {
			return
		}
		var stmts []string
		switch p.Form.scope {
		case scopeCompare:
			for _, a := range []Source{FromInventory, FromManifests} {
				for _, b := range []Source{FromInventory, FromManifests} {
					stmts = append(stmts, p.Form.SQL(a, b))
				}
			}
		default:
			for _, s := range p.Form.sql {
				stmts = append(stmts, s)
			}
		}
		for _, s := range stmts {
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
			for _, a := range p.args(s) {
				if _, ok := a.Value.(string); !ok && a.Name != "limit" {
					t.Fatalf("parameter %s = %#v, want a string", a.Name, a.Value)
				}
			}
		}
	})
}

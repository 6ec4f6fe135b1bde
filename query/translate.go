package query

import (
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cipdev/cip/internal/human"
)

// ErrUnknownQuestion is returned (wrapped in *UnknownError) when a question
// matches no form.
var ErrUnknownQuestion = errors.New("unknown question")

// ErrNotSupported is returned (wrapped in *UnsupportedError) for a question
// about something the inventory does not record yet.
var ErrNotSupported = errors.New("not supported yet")

// ErrAmbiguous is returned (wrapped in *AmbiguousError) when a question
// reads as two different forms or slot bindings equally well.
var ErrAmbiguous = errors.New("ambiguous question")

// UnknownError says a question matched no form and lists the closest ones.
type UnknownError struct {
	Question string
	Unused   []string // content words that no form placed (for the message)
	Closest  []*Form  // at most three, closest first
}

func (e *UnknownError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "unknown question %q", e.Question)
	if len(e.Unused) > 0 {
		fmt.Fprintf(&b, " (no form uses %s)", quoteList(e.Unused))
	}
	b.WriteString("; the closest forms are:")
	for _, f := range e.Closest {
		fmt.Fprintf(&b, "\n  %s   (e.g. %s)", f.pats[0].display(), f.Example)
	}
	b.WriteString("\nsee 'cip query --list' for every form")
	return b.String()
}

func (e *UnknownError) Unwrap() error { return ErrUnknownQuestion }

// UnsupportedError says a question needs data the inventory lacks.
type UnsupportedError struct {
	Question, Word, What string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("not supported yet: %q asks about %s (%q), and the inventory records no %s; see 'cip query --list' for what can be asked", e.Question, e.What, e.Word, e.What)
}

func (e *UnsupportedError) Unwrap() error { return ErrNotSupported }

// AmbiguousError lists the readings of an ambiguous question.
type AmbiguousError struct {
	Question string
	Readings []string
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("ambiguous question %q: it reads as\n  %s\nrephrase it, or use a full reference (host/path) for a bare name", e.Question, strings.Join(e.Readings, "\n  "))
}

func (e *AmbiguousError) Unwrap() error { return ErrAmbiguous }

func quoteList(ws []string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		q[i] = fmt.Sprintf("%q", w)
	}
	return strings.Join(q, ", ")
}

// Plan is a question translated: the form it matched and the values it
// bound. The SQL comes from the form, never from the question: values
// travel as named parameters.
type Plan struct {
	Form *Form
	// Slots are the bound values as shown in the reading: REG, REG2,
	// IMAGE, TARGET, TAG, DIGEST, PATTERN, N, SIZE, PLATFORM, WHEN.
	Slots map[string]string
	// Params are the SQL parameters (without the colon).
	Params map[string]any
	When   *Window
	// Bare names the slots (REG, REG2, IMAGE) given as a bare name
	// ("prod") rather than a reference: Ask resolves them.
	Bare  map[string]bool
	Typos []string // "mnay → many"
}

// Reading is how the question was read, in words: the form's reading with
// the values bound.
func (p *Plan) Reading() string {
	s := render(p.Form.Reading, p.Slots)
	if len(p.Typos) > 0 {
		s += " (reading " + strings.Join(p.Typos, ", ") + ")"
	}
	return s
}

var placeholderRE = regexp.MustCompile(`\{([A-Z0-9]+)\}`)

// render fills {SLOT} placeholders; a [bracketed part] appears only when
// every placeholder in it is bound.
func render(tmpl string, slots map[string]string) string {
	var b strings.Builder
	for tmpl != "" {
		i := strings.IndexByte(tmpl, '[')
		if i < 0 {
			b.WriteString(fillPlaceholders(tmpl, slots))
			break
		}
		b.WriteString(fillPlaceholders(tmpl[:i], slots))
		j := strings.IndexByte(tmpl[i:], ']')
		if j < 0 {
			b.WriteString(fillPlaceholders(tmpl[i:], slots))
			break
		}
		part := tmpl[i+1 : i+j]
		ok := true
		for _, m := range placeholderRE.FindAllStringSubmatch(part, -1) {
			if _, bound := slots[m[1]]; !bound {
				ok = false
			}
		}
		if ok {
			b.WriteString(fillPlaceholders(part, slots))
		}
		tmpl = tmpl[i+j+1:]
	}
	return b.String()
}

func fillPlaceholders(s string, slots map[string]string) string {
	return placeholderRE.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := slots[m[1:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// Translate reads a question as one form, deterministically: now is the
// clock relative dates ("yesterday") are read against. Every word of the
// question must be used by the form's pattern (fillers aside), so a word
// that changes the meaning is never dropped: the question is unknown
// instead, or not supported yet, or ambiguous.
func Translate(question string, now time.Time) (*Plan, error) {
	return translate(question, now, true)
}

// translate is Translate; suggest false leaves UnknownError.Closest empty
// (the near-miss sweep translates tens of thousands of unknown questions
// and checks only that they are refused).
func translate(question string, now time.Time, suggest bool) (*Plan, error) {
	if len(question) > maxQuestionB {
		return nil, fmt.Errorf("%w: question longer than %d bytes", ErrInvalid, maxQuestionB)
	}
	raw := tokenize(question)
	for _, t := range raw {
		if what, ok := notYet[strings.ToLower(t.raw)]; ok {
			return nil, &UnsupportedError{Question: question, Word: t.raw, What: what}
		}
	}
	toks := normalize(raw)
	unknown := func() error {
		// A word one typo away from a not-yet word is most likely that
		// word ("unsinged"): say so rather than list unrelated forms.
		for _, t := range toks {
			if t.kinds != kWord || t.word != "" {
				continue
			}
			low := strings.ToLower(t.raw)
			for _, w := range surfaceWords {
				what, ok := notYet[w]
				if ok && len(low) >= 4 && editDistance(low, w, maxTypos(w)) <= maxTypos(w) {
					return &UnsupportedError{Question: question, Word: t.raw + " (" + w + "?)", What: what}
				}
			}
		}
		ue := &UnknownError{Question: question}
		if suggest {
			ue.Closest = closest(toks, 3)
		}
		for _, t := range toks {
			if t.kinds == kWord && t.word == "" && !bare(t) {
				ue.Unused = append(ue.Unused, t.raw)
			}
		}
		return ue
	}
	if len(toks) == 0 || len(toks) > maxTokens {
		return nil, unknown()
	}
	m := &matcher{toks: toks, now: now}
	words := map[string]bool{}
	for _, t := range toks {
		if t.word != "" {
			words[t.word] = true
		}
	}
	var best []*Plan
	bestCost := 1 << 30
	for _, f := range forms {
		for i, pat := range f.pats {
			if !f.bnds[i].fits(words, len(toks)) {
				continue
			}
			for _, mt := range m.match(pat) {
				p, ok := f.plan(mt.binds)
				if !ok || mt.cost > bestCost {
					continue
				}
				if mt.cost < bestCost {
					best, bestCost = nil, mt.cost
				}
				if !containsPlan(best, p) {
					for _, i := range mt.typos {
						p.Typos = append(p.Typos, toks[i].fixes...)
					}
					best = append(best, p)
				}
			}
		}
	}
	switch len(best) {
	case 0:
		return nil, unknown()
	case 1:
		return best[0], nil
	}
	ae := &AmbiguousError{Question: question}
	for _, p := range best {
		ae.Readings = append(ae.Readings, fmt.Sprintf("%s (%s)", p.Reading(), p.Form.Name))
	}
	sort.Strings(ae.Readings)
	return nil, ae
}

func containsPlan(ps []*Plan, p *Plan) bool {
	for _, q := range ps {
		if q.Form == p.Form && fmt.Sprint(q.Params) == fmt.Sprint(p.Params) && fmt.Sprint(q.Slots) == fmt.Sprint(p.Slots) {
			return true
		}
	}
	return false
}

// Parameter values for unbound slots: "everywhere", any pattern, an
// unbounded window.
const (
	minTime = "0001-01-01T00:00:00Z"
	maxTime = "9999-12-31T23:59:59Z"
)

// plan builds a Plan from a match, or reports that the bindings do not
// suit the form (a window the form cannot use).
func (f *Form) plan(binds []binding) (*Plan, bool) {
	p := &Plan{Form: f, Slots: map[string]string{}, Params: map[string]any{}, Bare: map[string]bool{}}
	for _, b := range binds {
		t := b.v.tok
		low := strings.TrimSuffix(strings.ToLower(t.raw), "/")
		switch b.name {
		case "REG", "REG2", "IMAGE":
			p.Slots[b.name], p.Params[strings.ToLower(b.name)] = low, low
			if !t.qualified {
				p.Bare[b.name] = true
				if b.name == "IMAGE" && f.suffix {
					p.Slots["SUFFIX"] = low
				}
			}
		case "TARGET", "IMAGETAG", "IMAGEREF":
			switch {
			case t.kinds&kImageTag != 0:
				p.Slots["TARGET"] = t.image + ":" + t.tag
				p.Params["image"], p.Params["tag"] = t.image, t.tag
			case t.kinds&kImageDigest != 0:
				p.Slots["TARGET"] = t.image + "@" + t.digest
				p.Params["image"], p.Params["digest"] = t.image, t.digest
			default:
				p.Slots["TARGET"] = t.digest
				p.Params["digest"] = t.digest
			}
			if t.kinds&(kImageTag|kImageDigest) != 0 {
				p.Slots["IMAGE"] = t.image
				if !t.qualified {
					p.Bare["IMAGE"] = true
					if f.suffix {
						p.Slots["SUFFIX"] = t.image
					}
				}
			}
			if t.kinds&kImageTag != 0 {
				p.Slots["TAG"] = t.tag
			}
		case "DIGEST":
			p.Slots["DIGEST"], p.Params["digest"] = t.digest, t.digest
		case "TAG":
			p.Slots["TAG"], p.Params["tag"] = t.raw, t.raw
		case "PATTERN":
			pat := t.raw
			if !strings.ContainsAny(pat, "*?[") {
				pat = "*" + pat + "*"
			}
			p.Slots["PATTERN"], p.Params["pattern"] = pat, pat
		case "N":
			p.Slots["N"], p.Params["limit"] = fmt.Sprint(t.num), t.num
		case "SIZE":
			p.Slots["SIZE"] = fmt.Sprintf("%s (%d bytes)", human.Bytes(b.v.size), b.v.size)
			p.Params["bytes"] = b.v.size
		case "PLATFORM":
			p.Slots["PLATFORM"] = t.plat.String()
			p.Params["os"], p.Params["arch"], p.Params["variant"] = t.plat.os, t.plat.arch, t.plat.variant
		case "WHEN":
			w := b.v.when
			if w.LastSync && !f.lastSync || !w.Until.IsZero() && f.openWindow {
				return nil, false
			}
			p.When = w
			p.Slots["WHEN"] = w.String()
			if !w.LastSync {
				p.Params["since"], p.Params["until"] = minTime, maxTime
				if !w.Since.IsZero() {
					p.Params["since"] = w.Since.Format(time.RFC3339)
				}
				if !w.Until.IsZero() {
					p.Params["until"] = w.Until.Format(time.RFC3339)
				}
			}
		}
	}
	if f.needWindow && p.When == nil {
		return nil, false
	}
	if f.defaultN > 0 {
		if _, ok := p.Params["limit"]; !ok {
			p.Slots["N"], p.Params["limit"] = fmt.Sprint(f.defaultN), int64(f.defaultN)
		}
	}
	return p, true
}

var paramRE = regexp.MustCompile(`:([a-z][a-z0-9_]*)\b`)

// paramDefaults are the values of parameters a question left unbound.
var paramDefaults = map[string]any{
	"reg": "", "reg2": "", "image": "", "tag": "", "digest": "", "pattern": "*",
	"os": "", "arch": "", "variant": "", "since": minTime, "until": maxTime,
}

// args binds the parameters stmt uses, from the plan's values or their
// defaults.
func (p *Plan) args(stmt string) ([]sql.NamedArg, error) {
	seen := map[string]bool{}
	var out []sql.NamedArg
	for _, m := range paramRE.FindAllStringSubmatch(stripSQLStrings(stmt), -1) {
		name := m[1]
		if seen[name] {
			continue
		}
		seen[name] = true
		v, ok := p.Params[name]
		if !ok {
			if v, ok = paramDefaults[name]; !ok {
				return nil, fmt.Errorf("form %s: parameter :%s is not bound", p.Form.Name, name)
			}
		}
		out = append(out, sql.Named(name, v))
	}
	return out, nil
}

// stripSQLStrings blanks '…' literals so that a colon in one ('%H:%M') is
// not read as a parameter.
func stripSQLStrings(s string) string {
	var b strings.Builder
	in := false
	for _, c := range s {
		if c == '\'' {
			in = !in
		}
		if in {
			b.WriteByte(' ')
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

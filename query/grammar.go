package query

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Patterns are the wording of a form: words (read through canonical, so
// plurals and synonyms may be written), SLOTS in capitals, [optional]
// parts and (one | or another) alternatives, nested as needed.
//
// Slots and what fills them:
//
//	REG, REG2  a registry or a path below one (gcr.io/foo), or a bare
//	           name resolved against what the inventory and the manifests
//	           know ("prod")
//	IMAGE      a repository: a reference or a bare name
//	TARGET     REF:TAG, REF@DIGEST or a DIGEST (prefix)
//	IMAGETAG   REF:TAG
//	IMAGEREF   REF:TAG or REF@DIGEST
//	DIGEST     sha256:HEX, a prefix of 4 or more hex digits
//	TAG        a tag name
//	PATTERN    a glob (a plain word matches anywhere)
//	N          a number
//	SIZE       a size with a unit: 100MiB, 1.5 GB
//	PLATFORM   arm64, linux/arm64, linux/arm/v7, windows/amd64
//	WHEN       a time window: today, yesterday, since DATE, before DATE,
//	           on DATE, between DATE and DATE, in the last N days, last
//	           week, this month, since the last sync

const (
	opWord = iota
	opSlot
	opSeq
	opOpt
	opAlt
)

type node struct {
	op   int
	word string // opWord: the canonical word; opSlot: the slot name
	text string // opWord: the word as the pattern writes it
	kids []*node
}

var slotNames = map[string]bool{
	"REG": true, "REG2": true, "IMAGE": true, "TARGET": true, "IMAGETAG": true, "IMAGEREF": true, "DIGEST": true,
	"TAG": true, "PATTERN": true, "N": true, "SIZE": true, "PLATFORM": true, "WHEN": true,
}

// compilePattern parses a pattern; a malformed one is a programming error
// caught by init.
func compilePattern(s string) (*node, error) {
	var lex []string
	for _, f := range strings.Fields(strings.NewReplacer("[", " [ ", "]", " ] ", "(", " ( ", ")", " ) ", "|", " | ").Replace(s)) {
		lex = append(lex, f)
	}
	pos := 0
	var seq func(closer string) (*node, error)
	seq = func(closer string) (*node, error) {
		alt := &node{op: opAlt}
		cur := &node{op: opSeq}
		for pos < len(lex) {
			f := lex[pos]
			pos++
			switch f {
			case "[", "(":
				close := map[string]string{"[": "]", "(": ")"}[f]
				n, err := seq(close)
				if err != nil {
					return nil, err
				}
				if f == "[" {
					n = &node{op: opOpt, kids: []*node{n}}
				}
				cur.kids = append(cur.kids, n)
			case "]", ")":
				if f != closer {
					return nil, fmt.Errorf("pattern %q: unexpected %s", s, f)
				}
				alt.kids = append(alt.kids, cur)
				return alt, nil
			case "|":
				if closer == "" {
					return nil, fmt.Errorf("pattern %q: | outside a group", s)
				}
				alt.kids = append(alt.kids, cur)
				cur = &node{op: opSeq}
			default:
				if slotNames[f] {
					cur.kids = append(cur.kids, &node{op: opSlot, word: f})
					continue
				}
				if strings.ToLower(f) != f {
					return nil, fmt.Errorf("pattern %q: unknown slot %s", s, f)
				}
				cur.kids = append(cur.kids, &node{op: opWord, word: canonical(f), text: f})
			}
		}
		if closer != "" {
			return nil, fmt.Errorf("pattern %q: missing %s", s, closer)
		}
		alt.kids = append(alt.kids, cur)
		return alt, nil
	}
	return seq("")
}

// display is the pattern as --list shows it: the first of each set of
// alternatives, optional parts in brackets.
func (n *node) display() string {
	switch n.op {
	case opWord:
		return n.text
	case opSlot:
		return n.word
	case opOpt:
		return "[" + n.kids[0].display() + "]"
	case opAlt:
		return n.kids[0].display()
	}
	parts := make([]string, 0, len(n.kids))
	for _, k := range n.kids {
		parts = append(parts, k.display())
	}
	return strings.Join(parts, " ")
}

// bounds is what a question must have for a pattern to match it: the
// words every reading of the pattern holds, and the fewest and most
// tokens it can consume. Translate skips patterns a question cannot fit.
type bounds struct {
	need     []string
	min, max int
}

func (n *node) bounds() bounds {
	req := n.required()
	b := bounds{min: n.minLen(), max: n.maxLen()}
	for w := range req {
		b.need = append(b.need, w)
	}
	sort.Strings(b.need)
	return b
}

func (n *node) required() map[string]bool {
	switch n.op {
	case opWord:
		return map[string]bool{n.word: true}
	case opSlot, opOpt:
		return map[string]bool{}
	case opAlt:
		out := n.kids[0].required()
		for _, k := range n.kids[1:] {
			r := k.required()
			for w := range out {
				if !r[w] {
					delete(out, w)
				}
			}
		}
		return out
	}
	out := map[string]bool{}
	for _, k := range n.kids {
		for w := range k.required() {
			out[w] = true
		}
	}
	return out
}

func (n *node) minLen() int {
	switch n.op {
	case opWord, opSlot:
		return 1
	case opOpt:
		return 0
	case opAlt:
		m := n.kids[0].minLen()
		for _, k := range n.kids[1:] {
			m = min(m, k.minLen())
		}
		return m
	}
	t := 0
	for _, k := range n.kids {
		t += k.minLen()
	}
	return t
}

// slotMax is the most tokens a slot consumes: a window such as "between
// DATE and DATE" or "in last N days" takes four, a size "1.5 GiB" two.
var slotMax = map[string]int{"WHEN": 4, "SIZE": 2}

func (n *node) maxLen() int {
	switch n.op {
	case opWord:
		return 1
	case opSlot:
		if m, ok := slotMax[n.word]; ok {
			return m
		}
		return 1
	case opOpt:
		return n.kids[0].maxLen()
	case opAlt:
		m := 0
		for _, k := range n.kids {
			m = max(m, k.maxLen())
		}
		return m
	}
	t := 0
	for _, k := range n.kids {
		t += k.maxLen()
	}
	return t
}

// fits says a question with these words and n tokens may match.
func (b bounds) fits(words map[string]bool, n int) bool {
	if n < b.min || n > b.max {
		return false
	}
	for _, w := range b.need {
		if !words[w] {
			return false
		}
	}
	return true
}

// words lists the literal words of a pattern.
func (n *node) words(out map[string]bool) {
	if n.op == opWord {
		out[n.word] = true
	}
	if n.op == opSlot {
		out[n.word] = true
	}
	for _, k := range n.kids {
		k.words(out)
	}
}

// slotValue is what a slot bound.
type slotValue struct {
	tok  token
	toks int // tokens consumed
	when *Window
	size int64
}

type binding struct {
	name string
	v    slotValue
}

// Bounds on the matcher's work, so that no question (however long or
// odd) costs more than a few milliseconds: patterns are short and a
// question is a line, so real questions stay far below both.
const (
	maxTokens    = 40
	maxSteps     = 20000
	maxMatches   = 8
	maxQuestionB = 1000
)

type matcher struct {
	toks  []token
	now   time.Time
	binds []binding
	cost  int
	typos []int // tokens read as a keyword through a typo
	steps int
	found []matched
}

type matched struct {
	binds []binding
	cost  int
	typos []int
}

func (m *matcher) match(root *node) []matched {
	m.found = nil
	m.steps = 0
	m.walk(root, 0, func(i int) {
		if i == len(m.toks) && len(m.found) < maxMatches {
			m.found = append(m.found, matched{binds: append([]binding(nil), m.binds...), cost: m.cost, typos: append([]int(nil), m.typos...)})
		}
	})
	return m.found
}

func (m *matcher) walk(n *node, i int, k func(int)) {
	m.steps++
	if m.steps > maxSteps || len(m.found) >= maxMatches {
		return
	}
	switch n.op {
	case opWord:
		if i < len(m.toks) && m.toks[i].word == n.word {
			typo := m.toks[i].typo
			m.cost += typo
			if typo > 0 {
				m.typos = append(m.typos, i)
			}
			k(i + 1)
			if typo > 0 {
				m.typos = m.typos[:len(m.typos)-1]
			}
			m.cost -= typo
		}
	case opSlot:
		for _, v := range fill(n.word, m.toks, i, m.now) {
			m.binds = append(m.binds, binding{n.word, v})
			k(i + v.toks)
			m.binds = m.binds[:len(m.binds)-1]
		}
	case opSeq:
		m.seq(n.kids, 0, i, k)
	case opOpt:
		k(i)
		m.walk(n.kids[0], i, k)
	case opAlt:
		for _, c := range n.kids {
			m.walk(c, i, k)
		}
	}
}

func (m *matcher) seq(kids []*node, j, i int, k func(int)) {
	if j == len(kids) {
		k(i)
		return
	}
	m.walk(kids[j], i, func(i2 int) { m.seq(kids, j+1, i2, k) })
}

// bare says t can be a bare name (a slot value that is no vocabulary
// word): "prod", "app", "prod/app".
func bare(t token) bool {
	return !t.known && (t.kinds == kWord || t.kinds == kRef && !t.qualified) && nameRE.MatchString(strings.ToLower(t.raw))
}

// fill lists the ways slot can be filled at toks[i].
func fill(slot string, toks []token, i int, now time.Time) []slotValue {
	if i >= len(toks) {
		return nil
	}
	t := toks[i]
	one := []slotValue{{tok: t, toks: 1}}
	switch slot {
	case "REG", "REG2", "IMAGE":
		if t.kinds&kRef != 0 && !t.known || bare(t) {
			return one
		}
	case "TARGET":
		if t.kinds&(kImageTag|kImageDigest|kDigest) != 0 {
			return one
		}
	case "IMAGETAG":
		if t.kinds&kImageTag != 0 {
			return one
		}
	case "IMAGEREF":
		if t.kinds&(kImageTag|kImageDigest) != 0 {
			return one
		}
	case "DIGEST":
		if t.kinds&kDigest != 0 {
			return one
		}
	case "TAG": // a tag may look like a platform, a date or a number
		if !t.known && t.kinds&(kDigest|kImageTag|kImageDigest|kGlob) == 0 && tagRE.MatchString(t.raw) {
			return one
		}
	case "PATTERN":
		if !t.known && t.kinds&(kDigest|kImageTag|kImageDigest) == 0 && len(t.raw) <= 128 {
			return one
		}
	case "N":
		if t.kinds&kNumber != 0 && t.num >= 1 && t.num <= 10000 {
			return one
		}
	case "SIZE":
		if t.kinds&kSize != 0 {
			return []slotValue{{tok: t, toks: 1, size: t.size}}
		}
		if decRE.MatchString(t.raw) && i+1 < len(toks) {
			if n, ok := sizeBytes(t.raw, toks[i+1].word); ok {
				return []slotValue{{tok: t, toks: 2, size: n}}
			}
		}
	case "PLATFORM":
		if t.kinds&kPlatform != 0 {
			return one
		}
	case "WHEN":
		return windows(toks, i, now)
	}
	return nil
}

// Window is a time window: [Since, Until) (a zero end is open), or each
// repository's last sync.
type Window struct {
	LastSync     bool
	Since, Until time.Time
	Label        string // as read: "yesterday", "in the last 3 days"
}

func (w *Window) String() string {
	const f = time.RFC3339
	var s string
	switch {
	case w.LastSync:
		return "since each repository's last sync"
	case !w.Since.IsZero() && !w.Until.IsZero():
		s = fmt.Sprintf("from %s until %s", w.Since.Format(f), w.Until.Format(f))
	case !w.Since.IsZero():
		s = "since " + w.Since.Format(f)
	default:
		s = "before " + w.Until.Format(f)
	}
	if w.Label != "" {
		s = w.Label + " (" + s + ")"
	}
	return s
}

var units = map[string]bool{"minute": true, "hour": true, "day": true, "week": true, "month": true, "year": true}

func back(now time.Time, n int64, unit string) time.Time {
	switch unit {
	case "minute":
		return now.Add(-time.Duration(n) * time.Minute)
	case "hour":
		return now.Add(-time.Duration(n) * time.Hour)
	case "day":
		return now.AddDate(0, 0, -int(n))
	case "week":
		return now.AddDate(0, 0, -7*int(n))
	case "month":
		return now.AddDate(0, -int(n), 0)
	}
	return now.AddDate(-int(n), 0, 0)
}

func units1(n int64, unit string) string {
	if n == 1 {
		return unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// windows lists the time windows a phrase at toks[i] can be read as.
func windows(toks []token, i int, now time.Time) []slotValue {
	now = now.UTC()
	day0 := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	w := func(j int) string {
		if i+j < len(toks) {
			return toks[i+j].word
		}
		return ""
	}
	tk := func(j int) token {
		if i+j < len(toks) {
			return toks[i+j]
		}
		return token{}
	}
	var out []slotValue
	add := func(n int, win Window) {
		out = append(out, slotValue{toks: n, when: &win})
	}
	// start reads a point in time at toks[i+j] (for since and before):
	// DATE, today, yesterday, last UNIT, last N UNIT, N UNIT ago, this UNIT.
	type point struct {
		n     int
		t     time.Time
		label string
	}
	start := func(j int) []point {
		var ps []point
		switch t := tk(j); {
		case t.kinds&kDate != 0:
			ps = append(ps, point{1, t.date, ""})
		case w(j) == "today":
			ps = append(ps, point{1, day0, "today"})
		case w(j) == "yesterday":
			ps = append(ps, point{1, day0.AddDate(0, 0, -1), "yesterday"})
		case w(j) == "last" && units[w(j+1)]:
			ps = append(ps, point{2, back(now, 1, w(j+1)), "the last " + w(j+1)})
		case w(j) == "last" && tk(j+1).kinds&kNumber != 0 && units[w(j+2)]:
			n := tk(j + 1).num
			ps = append(ps, point{3, back(now, n, w(j+2)), "the last " + units1(n, w(j+2))})
		case t.kinds&kNumber != 0 && units[w(j+1)] && w(j+2) == "ago":
			ps = append(ps, point{3, back(now, t.num, w(j+1)), units1(t.num, w(j+1)) + " ago"})
		case w(j) == "this" && units[w(j+1)] && w(j+1) != "minute" && w(j+1) != "hour":
			var s time.Time
			switch w(j + 1) {
			case "day":
				s = day0
			case "week": // ISO weeks start on Monday
				s = day0.AddDate(0, 0, -((int(day0.Weekday()) + 6) % 7))
			case "month":
				s = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
			case "year":
				s = time.Date(now.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
			}
			ps = append(ps, point{2, s, "this " + w(j+1)})
		}
		return ps
	}
	switch w(0) {
	case "today":
		add(1, Window{Since: day0, Label: "today"})
	case "yesterday":
		add(1, Window{Since: day0.AddDate(0, 0, -1), Until: day0, Label: "yesterday"})
	case "since":
		if w(1) == "last" && w(2) == "sync" {
			add(3, Window{LastSync: true})
		}
		for _, p := range start(1) {
			label := ""
			if p.label != "" {
				label = "since " + p.label
			}
			add(1+p.n, Window{Since: p.t, Label: label})
		}
	case "before":
		for _, p := range start(1) {
			label := ""
			if p.label != "" {
				label = "before " + p.label
			}
			add(1+p.n, Window{Until: p.t, Label: label})
		}
	case "on":
		if t := tk(1); t.kinds&kDate != 0 && len(t.raw) == len("2006-01-02") {
			add(2, Window{Since: t.date, Until: t.date.AddDate(0, 0, 1), Label: "on " + t.raw})
		}
	case "between":
		a, b := tk(1), tk(3)
		if a.kinds&kDate != 0 && w(2) == "and" && b.kinds&kDate != 0 {
			until := b.date
			if len(b.raw) == len("2006-01-02") { // the whole last day
				until = until.AddDate(0, 0, 1)
			}
			if until.After(a.date) {
				add(4, Window{Since: a.date, Until: until})
			}
		}
	}
	// [in] last sync; [in] last [N] UNIT; [in] this UNIT
	off := 0
	if w(0) == "in" {
		off = 1
	}
	if w(off) == "last" && w(off+1) == "sync" {
		add(off+2, Window{LastSync: true})
	}
	if w(off) == "last" || w(off) == "this" {
		for _, p := range start(off) {
			label := p.label
			if !strings.HasPrefix(label, "this ") {
				label = "in " + label
			}
			add(off+p.n, Window{Since: p.t, Label: label})
		}
	}
	return out
}

// closest ranks forms for an unknown question by how many of its words
// and slot kinds they share (Jaccard similarity), ties in table order.
func closest(toks []token, n int) []*Form {
	q := map[string]bool{}
	for _, t := range toks {
		switch {
		case t.word != "":
			q[t.word] = true
		case t.kinds&kDigest != 0:
			q["DIGEST"], q["TARGET"] = true, true
		case t.kinds&(kImageTag|kImageDigest) != 0:
			q["TARGET"], q["IMAGETAG"], q["IMAGEREF"] = true, true, true
		case t.kinds&kRef != 0 || bare(t):
			q["REG"], q["IMAGE"] = true, true
		case t.kinds&kPlatform != 0:
			q["PLATFORM"] = true
		case t.kinds&kDate != 0:
			q["WHEN"] = true
		case t.kinds&kSize != 0:
			q["SIZE"] = true
		case t.kinds&kNumber != 0:
			q["N"] = true
		}
	}
	type scored struct {
		f *Form
		s float64
	}
	var all []scored
	for _, f := range forms {
		inter := 0
		for w := range q {
			if f.vocab[w] {
				inter++
			}
		}
		union := len(q) + len(f.vocab) - inter
		s := 0.0
		if union > 0 {
			s = float64(inter) / float64(union)
		}
		all = append(all, scored{f, s})
	}
	slices.SortStableFunc(all, func(a, b scored) int { return cmp.Compare(b.s, a.s) })
	var out []*Form
	for i := 0; i < n && i < len(all); i++ {
		out = append(out, all[i].f)
	}
	return out
}

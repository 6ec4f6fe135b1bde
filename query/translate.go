package query

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrUnknownQuestion is returned (wrapped in *UnknownError) when a question
// matches no form.
var ErrUnknownQuestion = errors.New("unknown question")

// UnknownError says a question matched no form and lists the closest ones.
type UnknownError struct {
	Question string
	Closest  []*Form // at most three, closest first
}

func (e *UnknownError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "unknown question %q; the closest forms are:", e.Question)
	for _, f := range e.Closest {
		fmt.Fprintf(&b, "\n  %s   (e.g. %s)", f.Templates[0], f.Example)
	}
	b.WriteString("\nsee 'cip query --list' for every form")
	return b.String()
}

func (e *UnknownError) Unwrap() error { return ErrUnknownQuestion }

// maxQuestionLen bounds the translator's work: a question is a line, and
// the alignment is quadratic in its words.
const maxQuestionLen = 1000

// Plan is a question translated: the form it matched and the slot values
// it bound. The SQL comes from the form, never from the question.
type Plan struct {
	Form  *Form
	Slots map[string]string // REG, REG2, PATTERN, DIGEST, DATE, N, IMAGE, TAG
	Cost  float64           // alignment cost (0 is an exact match)
}

// Translate matches a question against the forms, deterministically: words
// are lower-cased and normalised (plurals, synonyms), small typos and extra
// filler words cost a little, and the cheapest form whose slots are all
// bound wins (ties go to the earlier form).
func Translate(question string) (*Plan, error) {
	if len(question) > maxQuestionLen {
		return nil, fmt.Errorf("question longer than %d bytes", maxQuestionLen)
	}
	toks := tokenize(question)
	best := &Plan{Cost: math.Inf(1)}
	type near struct {
		f    *Form
		cost float64
	}
	var nears []near
	for _, f := range forms {
		fbest := math.Inf(1)
		for _, t := range f.templ {
			cost, slots, ok := align(toks, t, false)
			if ok && cost < best.Cost {
				best = &Plan{Form: f, Slots: slots, Cost: cost}
			}
			loose, _, _ := align(toks, t, true)
			fbest = math.Min(fbest, loose)
		}
		nears = append(nears, near{f, fbest})
	}
	if best.Form != nil && best.Cost <= acceptCost {
		if err := best.normalize(); err != nil {
			return nil, err
		}
		return best, nil
	}
	sort.SliceStable(nears, func(i, j int) bool { return nears[i].cost < nears[j].cost })
	ue := &UnknownError{Question: question}
	for i := 0; i < 3 && i < len(nears); i++ {
		ue.Closest = append(ue.Closest, nears[i].f)
	}
	return nil, ue
}

// acceptCost is the most a question may differ from a template: one
// unknown word, or a few typos and filler words.
const acceptCost = 1.5

// normalize turns bound slot text into parameter values.
func (p *Plan) normalize() error {
	if pat, ok := p.Slots["PATTERN"]; ok && !strings.ContainsAny(pat, "*?[") {
		p.Slots["PATTERN"] = "*" + pat + "*"
	}
	if d, ok := p.Slots["DATE"]; ok {
		t, err := parseDate(d)
		if err != nil {
			return err
		}
		p.Slots["DATE"] = t.UTC().Format(time.RFC3339)
	}
	if it, ok := p.Slots["IMAGE"]; ok {
		i := strings.LastIndexByte(it, ':')
		p.Slots["IMAGE"], p.Slots["TAG"] = strings.ToLower(it[:i]), it[i+1:]
	}
	for _, k := range []string{"REG", "REG2"} {
		if r, ok := p.Slots[k]; ok {
			p.Slots[k] = strings.TrimSuffix(strings.ToLower(r), "/")
		}
	}
	if d, ok := p.Slots["DIGEST"]; ok {
		p.Slots["DIGEST"] = strings.ToLower(d)
	}
	return nil
}

// Token classes.
const (
	classWord = iota
	classRef
	classImageTag
	classDigest
	classDate
	classNumber
)

type token struct {
	class int
	raw   string // as typed, punctuation trimmed
	word  string // normalised, for classWord
}

var (
	digestRE = regexp.MustCompile(`^(?i)sha256:[0-9a-f]{4,64}$`)
	dateRE   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}([tT][0-9:.]+([zZ]|[+-]\d{2}:\d{2})?)?$`)
	numberRE = regexp.MustCompile(`^\d{1,6}$`)
	// A registry reference: host[:port] and optional path, lower case
	// (matched case-insensitively; hosts are case-insensitive).
	refRE = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*/?$`)
	tagRE = regexp.MustCompile(`^\w[\w.-]{0,127}$`)
)

func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02", time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, strings.ToUpper(s)); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("parse date %q: want YYYY-MM-DD or RFC 3339", s)
}

func classify(raw string) token {
	switch {
	case digestRE.MatchString(raw):
		return token{class: classDigest, raw: raw}
	case dateRE.MatchString(raw):
		if _, err := parseDate(raw); err == nil {
			return token{class: classDate, raw: raw}
		}
	case numberRE.MatchString(raw):
		return token{class: classNumber, raw: raw}
	}
	if i := strings.LastIndexByte(raw, ':'); i > 0 && i > strings.LastIndexByte(raw, '/') && strings.Contains(raw, "/") {
		if refRE.MatchString(raw[:i]) && tagRE.MatchString(raw[i+1:]) {
			return token{class: classImageTag, raw: raw}
		}
	}
	if strings.ContainsAny(raw, "./:") && refRE.MatchString(raw) || strings.EqualFold(raw, "localhost") {
		return token{class: classRef, raw: raw}
	}
	return token{class: classWord, raw: raw, word: normWord(raw)}
}

// tokenize splits a question into classified tokens. Sentence punctuation
// around words is dropped; quotes are dropped so '"*foo*"' is a pattern.
func tokenize(q string) []token {
	var out []token
	for _, f := range strings.Fields(q) {
		f = strings.ReplaceAll(f, "’", "'")
		f = strings.Trim(f, "\"'`“”‘()")
		f = strings.TrimRight(f, "?!,;.")
		if f == "" {
			continue
		}
		// Contractions: "what's" is "what is".
		if w, ok := strings.CutSuffix(f, "'s"); ok && w != "" {
			out = append(out, classify(w), classify("is"))
			continue
		}
		out = append(out, classify(f))
	}
	return out
}

// synonyms maps words (lower case) to the one word templates use.
var synonyms = map[string]string{
	"repo": "repository", "repos": "repository", "repositories": "repository",
	"images":  "image",
	"digests": "digest", "sha": "digest", "shas": "digest",
	"tags":      "tag",
	"platforms": "platform", "arch": "platform", "arches": "platform", "architecture": "platform", "architectures": "platform",
	"layers": "layer", "blob": "layer", "blobs": "layer",
	"which": "what",
	"show":  "list", "ls": "list", "print": "list", "get": "list", "display": "list", "enumerate": "list",
	"under": "in", "within": "in", "inside": "in",
	"vs": "with", "versus": "with", "against": "with", "and": "with",
	"into":    "to",
	"changes": "changed", "change": "changed", "modified": "changed",
	"move": "moved", "moves": "moved", "retagged": "moved",
	"biggest": "largest", "heaviest": "largest", "big": "largest",
	"points": "point", "pointing": "point", "pointed": "point",
	"uses": "use", "using": "use", "used": "use", "contain": "use", "contains": "use",
	"matches": "matching", "match": "matching", "like": "matching", "named": "matching", "containing": "matching", "glob": "matching",
	"distinct": "unique",
	"number":   "count", "total": "count",
	"synced": "sync", "syncing": "sync", "crawl": "sync",
	"after":      "since",
	"manifests":  "manifest",
	"difference": "diff", "differences": "diff",
	"holds": "hold", "has": "hold", "have": "hold",
	"unpromoted": "missing",
}

// stopwords cost little to skip: they carry no meaning for the forms.
var stopwords = map[string]bool{
	"the": true, "a": true, "an": true, "are": true, "is": true, "there": true, "of": true,
	"please": true, "me": true, "all": true, "do": true, "does": true, "we": true, "i": true,
	"currently": true, "exist": true, "exists": true, "stored": true, "held": true, "kept": true,
	"you": true, "can": true, "tell": true, "known": true, "registry": true, "for": true,
	"my": true, "our": true, "that": true, "by": true, "now": true, "hold": true, "found": true,
	"different": true, "be": true,
}

func normWord(w string) string {
	w = strings.ToLower(w)
	if s, ok := synonyms[w]; ok {
		return s
	}
	return w
}

// Template items.
const (
	itemWord = iota
	itemOptional
	itemSlot
)

type item struct {
	kind int
	word string // normalised word, or slot name
}

type template []item

func parseTemplate(s string) template {
	var t template
	for _, f := range strings.Fields(s) {
		switch {
		case strings.HasPrefix(f, "[") && strings.HasSuffix(f, "]"):
			t = append(t, item{kind: itemOptional, word: normWord(f[1 : len(f)-1])})
		case f == strings.ToUpper(f) && strings.ToLower(f) != f:
			t = append(t, item{kind: itemSlot, word: f})
		default:
			t = append(t, item{kind: itemWord, word: normWord(f)})
		}
	}
	return t
}

// slotClass says which token class fills a slot (-1: any token).
func slotClass(slot string) int {
	switch slot {
	case "REG", "REG2":
		return classRef
	case "DIGEST":
		return classDigest
	case "DATE":
		return classDate
	case "N":
		return classNumber
	case "IMAGE":
		return classImageTag
	}
	return -1 // PATTERN
}

const (
	costStopword   = 0.2
	costExtraWord  = 1.0
	costExtraValue = 3.0 // a stray REG or digest is rarely noise
	costMissing    = 1.0
	costNoSlot     = 3.0
	costTypo       = 0.4 // per edit
	costWrongSlot  = 1.0 // loose mode only, for suggestions
)

func insCost(t token) float64 {
	if t.class != classWord {
		return costExtraValue
	}
	if stopwords[t.word] {
		return costStopword
	}
	return costExtraWord
}

func delCost(it item) float64 {
	switch it.kind {
	case itemOptional:
		return 0
	case itemSlot:
		return costNoSlot
	}
	return costMissing
}

// subCost is the cost of matching token t to template item it (Inf when
// they cannot match). loose lets any token stand in a slot, for ranking
// suggestions.
func subCost(t token, it item, loose bool) float64 {
	if it.kind == itemSlot {
		c := slotClass(it.word)
		if c == -1 || c == t.class {
			return 0
		}
		if loose {
			return costWrongSlot
		}
		return math.Inf(1)
	}
	if t.class != classWord {
		return math.Inf(1)
	}
	if t.word == it.word {
		return 0
	}
	d := editDistance(t.word, it.word, 2)
	if d <= maxTypos(it.word) {
		return costTypo * float64(d)
	}
	return math.Inf(1)
}

// maxTypos is how many edits a word tolerates: none for short words ("in",
// "to" are too easily another word), one up to six letters, then two.
func maxTypos(w string) int {
	switch n := len(w); {
	case n <= 2:
		return 0
	case n <= 6:
		return 1
	}
	return 2
}

// align computes the cheapest alignment of the question's tokens with a
// template (weighted edit distance over tokens) and the slot values it
// binds. ok is false when some slot stays unbound.
func align(toks []token, t template, loose bool) (float64, map[string]string, bool) {
	n, m := len(toks), len(t)
	const (
		opIns = iota + 1
		opDel
		opSub
	)
	d := make([][]float64, n+1)
	op := make([][]uint8, n+1)
	for i := range d {
		d[i] = make([]float64, m+1)
		op[i] = make([]uint8, m+1)
	}
	for i := 1; i <= n; i++ {
		d[i][0], op[i][0] = d[i-1][0]+insCost(toks[i-1]), opIns
	}
	for j := 1; j <= m; j++ {
		d[0][j], op[0][j] = d[0][j-1]+delCost(t[j-1]), opDel
	}
	for i := 1; i <= n; i++ {
		for j := 1; j <= m; j++ {
			best, bop := d[i-1][j-1]+subCost(toks[i-1], t[j-1], loose), uint8(opSub)
			if c := d[i-1][j] + insCost(toks[i-1]); c < best {
				best, bop = c, opIns
			}
			if c := d[i][j-1] + delCost(t[j-1]); c < best {
				best, bop = c, opDel
			}
			d[i][j], op[i][j] = best, bop
		}
	}
	slots := map[string]string{}
	for i, j := n, m; i > 0 || j > 0; {
		switch op[i][j] {
		case opSub:
			if t[j-1].kind == itemSlot {
				slots[t[j-1].word] = toks[i-1].raw
			}
			i, j = i-1, j-1
		case opIns:
			i--
		default:
			j--
		}
	}
	for _, it := range t {
		if _, bound := slots[it.word]; it.kind == itemSlot && !bound {
			return d[n][m], slots, false
		}
	}
	return d[n][m], slots, !math.IsInf(d[n][m], 1)
}

// editDistance is the Damerau–Levenshtein (optimal string alignment)
// distance between a and b, or max+1 when it exceeds max.
func editDistance(a, b string, max int) int {
	if abs(len(a)-len(b)) > max {
		return max + 1
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	if prev[len(b)] > max {
		return max + 1
	}
	return prev[len(b)]
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// limitValue parses the N slot, with a default.
func limitValue(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return def
	}
	return n
}

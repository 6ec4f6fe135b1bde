package query

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A question is read in three steps: tokenize splits it into typed tokens
// (a token can be read several ways: "v1.2" is a tag or a host name, "386"
// a number or a platform), normalize maps words to the vocabulary of the
// forms (plurals, synonyms, small typos, "how many" → count) and drops
// filler words, and match (grammar.go) fits the tokens to each form's
// patterns. A question is accepted only when a pattern consumes every
// token left after normalize: a word no pattern uses makes it unknown.

// kind is a bit set of the ways a token can be read.
type kind uint16

const (
	kWord        kind = 1 << iota // a plain word
	kRef                          // a registry reference: host[:port][/path], or a bare path
	kImageTag                     // REF:TAG
	kImageDigest                  // REF@sha256:HEX
	kDigest                       // sha256:HEX (4 to 64 hex digits: a prefix)
	kDate                         // YYYY-MM-DD or RFC 3339
	kNumber                       // digits
	kPlatform                     // arm64, linux/arm64, linux/arm/v7, …
	kSize                         // 100MiB, 1.5GB (a number and a unit in one token)
	kGlob                         // holds * ? or [
)

type token struct {
	raw   string // as typed, punctuation trimmed
	kinds kind
	// word is the canonical vocabulary word ("" when the token is not
	// one); known says raw itself is a vocabulary or filler word (not
	// merely corrected to one), so it can never fill a slot.
	word  string
	known bool
	typo  int      // edits made to read raw as word (0: none)
	fixes []string // the typos read, as "mnay → many"

	date                time.Time
	num                 int64
	size                int64
	plat                platform
	image, tag, digest  string // kImageTag, kImageDigest, kDigest
	qualified, pathLike bool   // kRef/kImageTag/kImageDigest: the first segment is a host; has a '/'
}

type platform struct{ os, arch, variant string }

func (p platform) String() string {
	var parts []string
	for _, s := range []string{p.os, p.arch, p.variant} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "/")
}

var (
	digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{4,64}$`)
	dateRE   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}([t ][0-9:.]+(z|[+-]\d{2}:\d{2})?)?$`)
	numberRE = regexp.MustCompile(`^\d{1,9}$`)
	sizeRE   = regexp.MustCompile(`^(\d{1,9}(?:\.\d{1,3})?)(b|kb|mb|gb|tb|kib|mib|gib|tib)$`)
	decRE    = regexp.MustCompile(`^\d{1,9}(?:\.\d{1,3})?$`)
	// A registry reference: host[:port] and an optional path, lower case
	// (hosts are case-insensitive; paths are lower case by the
	// distribution spec).
	refRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*/?$`)
	tagRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	nameRE = regexp.MustCompile(`^[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$`)
)

// Platform words: the GOOS and GOARCH values images are built for (and
// the names uname and Debian give the same machines).
var (
	platformOS   = map[string]bool{"linux": true, "windows": true, "darwin": true, "freebsd": true}
	platformArch = map[string]string{
		"amd64": "amd64", "x86_64": "amd64", "x86-64": "amd64", "arm64": "arm64", "aarch64": "arm64",
		"arm": "arm", "armhf": "arm", "armel": "arm", "386": "386", "i386": "386", "ppc64le": "ppc64le",
		"s390x": "s390x", "riscv64": "riscv64", "mips64le": "mips64le", "loong64": "loong64",
	}
	platformVariant = regexp.MustCompile(`^v[0-9]{1,2}$`)
)

func parsePlatform(s string) (platform, bool) {
	parts := strings.Split(s, "/")
	var p platform
	switch len(parts) {
	case 1:
		if a, ok := platformArch[parts[0]]; ok {
			return platform{arch: a}, true
		}
		if platformOS[parts[0]] {
			return platform{os: parts[0]}, true
		}
		return p, false
	case 2, 3:
		i := 0
		if platformOS[parts[0]] {
			p.os, i = parts[0], 1
		}
		a, ok := platformArch[parts[i]]
		if !ok {
			return p, false
		}
		p.arch = a
		rest := parts[i+1:]
		if len(rest) > 1 || len(rest) == 1 && !platformVariant.MatchString(rest[0]) {
			return p, false
		}
		if len(rest) == 1 {
			p.variant = rest[0]
		}
		return p, true
	}
	return p, false
}

func parseDate(s string) (time.Time, bool) {
	s = strings.ToUpper(strings.Replace(s, " ", "T", 1))
	for _, layout := range []string{"2006-01-02", time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// sizeUnits are the units a size may be given in: SI for KB, MB, GB, TB
// and binary for KiB, MiB, GiB, TiB, as the two standards define them
// (the reading echoes the bytes, so either use shows).
var sizeUnits = map[string]int64{
	"b": 1, "byte": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

func sizeBytes(num, unit string) (int64, bool) {
	u, ok := sizeUnits[unit]
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 {
		return 0, false
	}
	return int64(f * float64(u)), true
}

// isHost says a reference's first segment names a host (a dot or a port,
// or localhost), as docker reads references: "prod/app" is a path.
func isHost(first string) bool {
	return strings.ContainsAny(first, ".:") || first == "localhost"
}

func splitFirst(ref string) string {
	if i := strings.IndexByte(ref, '/'); i >= 0 {
		return ref[:i]
	}
	return ref
}

// classify reads one token.
func classify(raw string) token {
	t := token{raw: raw}
	low := strings.ToLower(raw)
	if digestRE.MatchString(low) {
		t.kinds, t.digest = kDigest, low
		return t
	}
	if i := strings.Index(low, "@sha256:"); i > 0 {
		ref, d := strings.TrimSuffix(low[:i], "/"), low[i+1:]
		if refRE.MatchString(ref) && digestRE.MatchString(d) {
			t.kinds, t.image, t.digest = kImageDigest, ref, d
			t.qualified, t.pathLike = isHost(splitFirst(ref)), strings.Contains(ref, "/")
			return t
		}
	}
	if dateRE.MatchString(low) {
		if d, ok := parseDate(low); ok {
			t.kinds, t.date = kDate, d
			return t
		}
	}
	if numberRE.MatchString(low) {
		t.kinds = kNumber
		t.num, _ = strconv.ParseInt(low, 10, 64)
		if p, ok := parsePlatform(low); ok {
			t.kinds |= kPlatform
			t.plat = p
		}
		return t
	}
	if m := sizeRE.FindStringSubmatch(low); m != nil {
		if n, ok := sizeBytes(m[1], m[2]); ok {
			t.kinds, t.size = kSize, n
			return t
		}
	}
	if p, ok := parsePlatform(low); ok {
		t.kinds, t.plat = kPlatform, p
		return t
	}
	if strings.ContainsAny(raw, "*?[") {
		t.kinds = kGlob
		return t
	}
	// REF:TAG, when the colon comes after the last '/' and is no port.
	// (Indexes into raw, not low: lower-casing may change the length.)
	if i := strings.LastIndexByte(raw, ':'); i > 0 && i > strings.LastIndexByte(raw, '/') {
		ref, tag := strings.ToLower(raw[:i]), raw[i+1:]
		port := numberRE.MatchString(tag) && len(tag) <= 5 && !strings.Contains(ref, "/")
		if !port && refRE.MatchString(ref) && tagRE.MatchString(tag) {
			t.kinds, t.image, t.tag = kImageTag, strings.TrimSuffix(ref, "/"), tag
			t.qualified, t.pathLike = isHost(splitFirst(ref)), strings.Contains(ref, "/")
			return t
		}
	}
	if refRE.MatchString(low) && (strings.ContainsAny(low, "./:") || low == "localhost") {
		t.kinds = kRef
		t.qualified, t.pathLike = isHost(splitFirst(low)), strings.Contains(low, "/")
		return t
	}
	t.kinds = kWord
	return t
}

var quotes = strings.NewReplacer("’", "'", "‘", "'", "“", `"`, "”", `"`)

// tokenize splits a question into tokens: whitespace separates, quotes and
// brackets around a word and trailing punctuation go, and contractions
// become two words ("what's" → what is, "isn't" → is not).
func tokenize(q string) []token {
	var out []token
	for _, f := range strings.Fields(q) {
		f = quotes.Replace(f)
		f = strings.Trim(f, "\"'`()<>{}")
		f = strings.TrimRight(f, "?!,;.:")
		f = strings.TrimLeft(f, "([{")
		if f == "" {
			continue
		}
		low := strings.ToLower(f)
		switch {
		case low == "can't" || low == "cannot":
			out = append(out, classify("can"), classify("not"))
			continue
		case low == "won't":
			out = append(out, classify("will"), classify("not"))
			continue
		case strings.HasSuffix(low, "n't") && len(low) > 3:
			out = append(out, classify(f[:len(f)-3]), classify("not"))
			continue
		case strings.HasSuffix(low, "'s") && len(low) > 2 && !strings.ContainsAny(low, "/:@"):
			out = append(out, classify(f[:len(f)-2]), classify("is"))
			continue
		}
		out = append(out, classify(f))
	}
	return out
}

// synonyms maps words (lower case) to the one word the forms use.
var synonyms = map[string]string{
	// things
	"repo": "repository", "repos": "repository", "repositories": "repository",
	"images": "image", "digests": "digest", "sha": "digest", "shas": "digest",
	"tags": "tag", "manifests": "manifest",
	"platforms": "platform", "arch": "platform", "arches": "platform", "architecture": "platform", "architectures": "platform",
	"layers": "layer", "blob": "layer", "blobs": "layer",
	"registries": "registry", "syncs": "sync", "synced": "sync", "syncing": "sync", "crawl": "sync", "crawled": "sync", "crawls": "sync",
	"runs": "run", "contents": "content", "sizes": "size",
	"index": "multiarch", "indexes": "multiarch", "indices": "multiarch", "multi-arch": "multiarch",
	"multi-platform": "multiarch", "multiplatform": "multiarch", "manifest-list": "multiarch",
	"single-arch": "singlearch", "single-platform": "singlearch", "singleplatform": "singlearch",
	"tagless": "untagged", "dangling": "untagged", "orphan": "untagged", "orphans": "untagged", "orphaned": "untagged",
	// verbs and questions
	"which": "list", "what": "list", "show": "list", "display": "list", "print": "list", "get": "list",
	"give": "list", "enumerate": "list", "ls": "list", "find": "list", "name": "list",
	"locate": "where", "diff": "compare", "difference": "compare", "differences": "compare", "differ": "compare",
	"number": "count", "describe": "describe", "details": "describe", "info": "describe", "inspect": "describe",
	"resolve": "resolve", "resolves": "resolve",
	"has": "hold", "have": "hold", "had": "hold", "having": "hold", "holds": "hold", "contain": "hold", "contains": "hold",
	"include": "hold", "includes": "hold", "carry": "hold", "carries": "hold", "support": "hold", "supports": "hold", "supporting": "hold",
	"points": "point", "pointing": "point", "pointed": "point",
	"refers": "refer", "referring": "refer", "referrer": "referrers", "referencing": "refer",
	"signature": "signatures", "sig": "signatures", "sigs": "signatures",
	"uses": "use", "using": "use", "used": "use", "share": "use", "shares": "use",
	"matches": "matching", "match": "matching", "like": "matching", "named": "matching", "containing": "matching", "glob": "matching",
	"changes": "changed", "change": "changed", "modified": "changed", "happened": "changed",
	"move": "moved", "moves": "moved", "retagged": "moved", "repointed": "moved",
	"add": "added", "adds": "added", "new": "added", "created": "added", "appeared": "added",
	"remove": "removed", "removes": "removed", "deleted": "removed", "delete": "removed", "deletes": "removed", "gone": "removed", "dropped": "removed", "disappeared": "removed",
	"promote": "promoted", "promotes": "promoted", "promotion": "promoted", "promotions": "promoted",
	"biggest": "largest", "heaviest": "largest", "tiniest": "smallest",
	"bigger": "larger", "heavier": "larger", "over": "larger", "above": "larger", "exceeding": "larger", "more": "larger",
	"less": "smaller", "fewer": "smaller", "lighter": "smaller",
	"fail": "failed", "fails": "failed", "failing": "failed", "errors": "failed", "error": "failed", "errored": "failed",
	"lacks": "lack", "lacking": "lack", "absent": "missing", "unpromoted": "missing",
	"none": "no", "nothing": "no",
	// prepositions and links
	"under": "in", "within": "in", "inside": "in", "below": "in", "during": "in",
	"vs": "with", "versus": "with", "against": "with",
	"into": "to", "onto": "to", "&": "and",
	"after": "since", "from": "from", "until": "before", "till": "before",
	"past": "last", "previous": "last", "recent": "last",
	"days": "day", "hours": "hour", "weeks": "week", "months": "month", "years": "year", "minutes": "minute",
	"bytes":    "byte",
	"distinct": "unique",
	"logs":     "history", "log": "history",
}

// guarded words change what a question means. A typo is never read as one
// of them, and a word within typo distance of one is not corrected at all:
// "unsinged" must not become "signed" or "unsigned", "nto" not "not".
var guarded = map[string]bool{
	"not": true, "no": true, "without": true, "lack": true, "missing": true, "untagged": true, "tagged": true,
	"multiarch": true, "singlearch": true, "managed": true, "unmanaged": true, "only": true, "except": true,
	"but": true, "or": true, "since": true, "before": true, "last": true, "today": true, "yesterday": true,
	"this": true, "day": true, "hour": true, "week": true, "month": true, "year": true, "minute": true, "ago": true,
	"between": true, "on": true, "larger": true, "smaller": true, "largest": true, "smallest": true, "top": true,
	"added": true, "removed": true, "moved": true, "changed": true, "failed": true, "both": true,
	"every": true, "each": true, "other": true, "same": true, "signed": true, "unsigned": true,
	"byte": true, "b": true, "kb": true, "mb": true, "gb": true, "tb": true, "kib": true, "mib": true, "gib": true, "tib": true,
	"promoted": true, "excluding": true, "besides": true, "and": true, "from": true, "to": true, "in": true, "with": true,
}

// notYet words need data the inventory does not record yet, or forms not
// written yet: a question holding one is answered "not supported yet",
// never read without it. Signatures and referrers have forms; questions
// on attestations and SBOMs by kind wait for theirs (what refers to
// DIGEST lists them).
var notYet = map[string]string{
	"attestation": "attestations", "attestations": "attestations", "attested": "attestations", "provenance": "attestations",
	"sbom": "SBOMs", "sboms": "SBOMs",
	"vulnerable": "vulnerability reports", "vulnerabilities": "vulnerability reports", "cve": "vulnerability reports", "cves": "vulnerability reports",
}

// fillers carry no meaning for the forms: they are dropped before
// matching. Anything not here and not in a form is a content word, and a
// question with a content word no form uses is unknown.
var fillers = map[string]bool{
	"the": true, "a": true, "an": true, "are": true, "is": true, "was": true, "were": true, "be": true, "been": true,
	"there": true, "please": true, "me": true, "all": true, "do": true, "does": true, "did": true, "we": true,
	"i": true, "you": true, "can": true, "could": true, "would": true, "will": true, "tell": true, "known": true,
	"registry": true, "for": true, "my": true, "our": true, "that": true, "by": true, "now": true, "currently": true,
	"exist": true, "exists": true, "stored": true, "held": true, "kept": true, "found": true, "of": true,
	"it": true, "its": true, "those": true, "these": true, "them": true, "any": true, "ever": true, "yet": true,
	"also": true, "than": true, "total": true, "right": true, "us": true, "actually": true, "still": true,
	"at": true, "whether": true, "if": true, "one": true, "ones": true, "got": true,
	"so": true, "far": true, "across": true, "everywhere": true,
}

// extraWords are vocabulary words that no pattern holds literally: the
// parts of multi-word phrases and of time windows.
var extraWords = []string{"how", "many", "big", "large", "ago", "today", "yesterday",
	"this", "last", "since", "before", "between", "on", "day", "hour", "week", "month", "year", "minute",
	"byte", "b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib", "only", "except", "or", "but", "every",
	"each", "other", "same", "excluding", "besides", "tagged"}

// canonical maps a lower-case word to its vocabulary word.
func canonical(w string) string {
	if s, ok := synonyms[w]; ok {
		return s
	}
	return w
}

// maxTypos is how many edits a word tolerates: none for words of one or
// two letters ("in", "to" are too easily another word), one up to six
// letters, then two.
func maxTypos(w string) int {
	switch n := len(w); {
	case n <= 2:
		return 0
	case n <= 6:
		return 1
	}
	return 2
}

var lettersRE = regexp.MustCompile(`^[a-z][a-z-]*$`)

// correct reads an unknown word as the one vocabulary word within typo
// distance, when exactly one is closest and no guarded word is within
// distance at all. A typo is never read as a filler: fillers are dropped,
// and a word we do not know ("never", one edit from "ever") must not
// vanish from the question.
func correct(w string) (string, int, bool) {
	if len(w) < 3 || len(w) > 32 || !lettersRE.MatchString(w) {
		return "", 0, false
	}
	best, bestD, tie := "", 99, false
	for _, s := range surfaceWords {
		limit := maxTypos(s)
		if abs(len(s)-len(w)) > limit {
			continue
		}
		d := editDistance(w, s, limit)
		if d > limit {
			continue
		}
		if guarded[canonical(s)] || notYet[s] != "" {
			return "", 0, false
		}
		if fillers[s] && !vocabulary[canonical(s)] {
			continue
		}
		switch {
		case d < bestD:
			best, bestD, tie = s, d, false
		case d == bestD && canonical(s) != canonical(best):
			tie = true
		}
	}
	if best == "" || tie {
		return "", 0, false
	}
	return best, bestD, true
}

// surfaceWords is every word a question may hold on purpose: vocabulary,
// synonyms, fillers and the not-yet words; built by init in grammar.go.
var surfaceWords []string

var vocabulary = map[string]bool{}

func isKnownSurface(w string) bool {
	return vocabulary[canonical(w)] || fillers[w] || notYet[w] != "" || synonyms[w] != ""
}

// normalize reads the words: typos corrected, phrases joined, fillers
// dropped. It returns the tokens left and the typos it corrected.
func normalize(toks []token) []token {
	for i := range toks {
		t := &toks[i]
		if t.kinds&(kWord|kRef) == 0 {
			continue
		}
		low := strings.ToLower(t.raw)
		if isKnownSurface(low) {
			t.word, t.known = canonical(low), true
			continue
		}
		if t.kinds != kWord {
			continue
		}
		if s, d, ok := correct(low); ok {
			t.word, t.typo, t.fixes = canonical(s), d, []string{low + " → " + s}
		}
	}
	out := toks[:0:0]
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		next := ""
		if i+1 < len(toks) {
			next = toks[i+1].word
		}
		join := ""
		low := strings.ToLower(t.raw)
		switch {
		case t.word == "how" && next == "many":
			join = "count"
		case t.word == "how" && (next == "big" || next == "large"):
			join = "size"
		case low == "multi" && (next == "platform" || next == "arch"):
			join = "multiarch"
		case low == "single" && (next == "platform" || next == "arch"):
			join = "singlearch"
		}
		if join != "" {
			j := t
			j.raw, j.word, j.known = t.raw+" "+toks[i+1].raw, join, t.known && toks[i+1].known
			j.typo += toks[i+1].typo
			j.fixes = append(append([]string(nil), t.fixes...), toks[i+1].fixes...)
			out = append(out, j)
			i++
			continue
		}
		if t.word != "" && fillers[t.word] {
			continue
		}
		out = append(out, t)
	}
	return out
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

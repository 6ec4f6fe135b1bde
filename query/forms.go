package query

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cipdev/cip/internal/referrer"
)

// Source is where an answer comes from.
type Source string

// Sources of answers.
const (
	FromInventory Source = "inventory"
	FromManifests Source = "manifests"
)

// Scopes: how a form picks its source, and what it needs to be answered.
const (
	// scopeInREG: REG from the inventory when it is known (synced), else
	// from the manifests (what they promote into it or from it).
	scopeInREG = iota
	// scopeInventory: the inventory only; REG (when bound) must be known.
	scopeInventory
	// scopeAny: the inventory as it is, known or not (sync runs).
	scopeAny
	// scopePromoted: the manifests' promotions into REG, checked
	// against the inventory.
	scopePromoted
	// scopePromotedFrom: the manifests' promotions out of REG (a
	// source), checked against the destinations in the inventory.
	scopePromotedFrom
	// scopeManifests: REG from the inventory (it must be known),
	// checked against every promotion that names it, as a source or as a
	// destination.
	scopeManifests
	// scopeTwo: REG and REG2, each as scopeInREG.
	scopeTwo
)

// Form is one kind of question, with the SQL that answers it. The SQL is
// fixed text: values are bound as named parameters (:reg, :reg2, :image,
// :tag, :digest, :pattern, :limit, :bytes, :os, :arch, :variant, :since,
// :until).
//
// Adding a form is adding an entry to forms: patterns (see grammar.go), a
// reading, an example, a scope and the statement(s).
type Form struct {
	Name     string
	Patterns []string // the first is the canonical wording, for --list
	Example  string
	// Reading says what the answer is, with {SLOT} placeholders and
	// [optional parts]; Ask prints it as "read as: …".
	Reading string
	scope   int
	// sql maps a source (two for scopeTwo, "inventory/manifests"; a
	// "+lastsync" suffix for a window since each repository's last sync)
	// to the statement.
	sql map[string]string
	// notes are caveats printed with every answer.
	notes []string
	// lastSync: WHEN may be "since the last sync"; openWindow: WHEN must
	// have no end; needWindow: WHEN is required.
	lastSync, openWindow, needWindow bool
	defaultN                         int
	// suffix: a bare IMAGE is matched against the end of repository
	// names, not resolved to one repository.
	suffix bool
	// needTarget: a TARGET must name something the inventory has (an
	// unknown tag is an error, not an empty answer); targetRef: only a
	// reference must (a bare digest no registry holds is a "no").
	needTarget, targetRef bool

	pats  []*node
	bnds  []bounds
	vocab map[string]bool
}

// Forms returns every question form, in --list order.
func Forms() []*Form { return forms }

// SQL returns the statement answering the form from the given source(s).
func (f *Form) SQL(src ...Source) string {
	k := string(src[0])
	if len(src) > 1 {
		k += "/" + string(src[1])
	}
	return f.sql[k]
}

// statement is the SQL for a plan from the given sources.
func (f *Form) statement(p *Plan, src ...Source) string {
	k := string(src[0])
	if len(src) > 1 {
		k += "/" + string(src[1])
	}
	if p.When != nil && p.When.LastSync {
		k += "+lastsync"
	}
	return f.sql[k]
}

// under is the SQL for "col is param, or lies below it by whole path
// segments". substr, not LIKE: '_' and '%' in names are not wildcards.
func under(col, param string) string {
	return fmt.Sprintf("(%[1]s = :%[2]s OR substr(%[1]s, 1, length(:%[2]s) + 1) = :%[2]s || '/')", col, param)
}

// underOpt is under(col, "reg"), or true when no REG was given.
func underOpt(col string) string {
	return "(:reg = '' OR " + under(col, "reg") + ")"
}

// named says col is :image or ends in '/' || :image (a bare name found in
// every registry).
func named(col string) string {
	return fmt.Sprintf("(%[1]s = :image OR substr(%[1]s, -length(:image) - 1) = '/' || :image)", col)
}

// rel is col relative to REG (the image name).
func rel(col, param string) string {
	return fmt.Sprintf("substr(%s, length(:%s) + 2)", col, param)
}

// tagsOf lists, comma-separated and sorted, the tags of rm.digest in r.
const tagsOf = `COALESCE((SELECT group_concat(t.tag, ',' ORDER BY t.tag) FROM tags t WHERE t.repository_id = r.id AND t.digest = rm.digest), '')`

// childOfHeld says rm.digest is a child of an index the same repository
// holds (children travel with their index).
const childOfHeld = `EXISTS (SELECT 1 FROM manifest_children c JOIN repository_manifests p ON p.digest = c.parent_digest AND p.repository_id = rm.repository_id WHERE c.child_digest = rm.digest)`

// isRoot says rm.digest is tagged, or is not a child of an index the same
// repository holds.
const isRoot = `(EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = rm.repository_id AND t.digest = rm.digest)
    OR NOT ` + childOfHeld + `)`

// isUntagged says rm.digest has no tag in its repository and is not an
// index child there: a digest only its digest reaches.
const isUntagged = `NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = rm.repository_id AND t.digest = rm.digest)
    AND NOT ` + childOfHeld

// held is the FROM clause of the digests repositories hold.
const held = `FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id`

// digestPrefix matches col against a full digest or a prefix of one.
func digestPrefix(col string) string {
	return fmt.Sprintf("substr(%s, 1, length(:digest)) = :digest", col)
}

// platformOf is the platform of index entry c, as os/arch[/variant].
const platformOf = `c.os || '/' || c.architecture || CASE WHEN c.variant <> '' THEN '/' || c.variant ELSE '' END`

// platformsOf lists the platforms of index rm.digest.
const platformsOf = `COALESCE((SELECT group_concat(` + platformOf + `, ',' ORDER BY c.position) FROM manifest_children c WHERE c.parent_digest = rm.digest), '')`

// platformIs matches index entry c against :os, :arch, :variant (” is
// any).
const platformIs = `(:os = '' OR c.os = :os) AND (:arch = '' OR c.architecture = :arch) AND (:variant = '' OR c.variant = :variant)`

// inWindow says col lies in [:since, :until).
func inWindow(col string) string {
	return fmt.Sprintf(" AND julianday(%[1]s) >= julianday(:since) AND julianday(%[1]s) < julianday(:until)", col)
}

// mfRows is what the manifests say a REG holds, as (repository, digest,
// tag) rows: what they promote into it (a row with tag ” per digest and
// one per tag) and what they promote out of it (the source repository
// holds the digest; its tags there are not named).
func mfRows(param string) string {
	return `SELECT repository, digest, tag FROM promotions WHERE ` + under("repository", param) + `
  UNION
  SELECT src || '/' || image, digest, '' FROM promotions WHERE ` + under("src || '/' || image", param)
}

// target resolves a TARGET (IMAGE:TAG, IMAGE@DIGEST or a DIGEST prefix)
// to (repository, digest) rows; repository is ” for a bare digest.
const target = `target(repository, digest) AS (
  SELECT r.name, t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id
  WHERE :tag <> '' AND r.name = :image AND t.tag = :tag
  UNION
  SELECT r.name, rm.digest ` + held + `
  WHERE :tag = '' AND :image <> '' AND r.name = :image AND substr(rm.digest, 1, length(:digest)) = :digest
  UNION
  SELECT '', m.digest FROM manifests m WHERE :image = '' AND :digest <> '' AND substr(m.digest, 1, length(:digest)) = :digest
)`

// coveringRuns lists the finished, error-free sync runs that asked for
// REG or a registry or path above it: refs split at spaces.
const coveringRuns = `split(id, finished_at, rest, ref) AS (
  SELECT id, finished_at, refs || ' ', '' FROM sync_runs WHERE finished_at IS NOT NULL AND errors = ''
  UNION ALL
  SELECT id, finished_at, substr(rest, instr(rest, ' ') + 1), rtrim(lower(substr(rest, 1, instr(rest, ' ') - 1)), '/') FROM split WHERE rest <> ''
), covering(id, finished_at) AS (
  SELECT id, finished_at FROM split WHERE ref <> '' AND (:reg = ref OR substr(:reg, 1, length(ref) + 1) = ref || '/')
)`

// coveredSQL answers whether some complete sync covered REG, and when.
const coveredSQL = `WITH RECURSIVE ` + coveringRuns + `
SELECT COUNT(*), COALESCE(MAX(finished_at), '') FROM covering`

func historySQL(cond string) string {
	return `SELECT h.at, h.repository, h.tag, h.change, COALESCE(h.old_digest, '') AS old_digest, COALESCE(h.new_digest, '') AS new_digest
FROM tag_history h
WHERE ` + under("h.repository", "reg") + cond + `
ORDER BY h.at, h.repository, h.tag, h.id`
}

// sinceSync keeps the tag changes each repository's latest sync found.
const sinceSync = ` AND EXISTS (SELECT 1 FROM repositories r WHERE r.name = h.repository AND julianday(h.at) >= julianday(r.synced_at))`

// history is a form's statements over the tag history: a window, or since
// each repository's last sync.
func history(cond string) map[string]string {
	return map[string]string{
		"inventory":          historySQL(cond + inWindow("h.at")),
		"inventory+lastsync": historySQL(cond + sinceSync),
	}
}

// promoteRun says sync run s was a promotion (promote records its runs
// with refs "promote load:N").
const promoteRun = `(s.refs = 'promote' OR substr(s.refs, 1, 8) = 'promote ')`

func countDistinct(stmt string) string {
	return "SELECT COUNT(DISTINCT digest) AS digests FROM (\n" + stmt + "\n)"
}

func inv(stmt string) map[string]string { return map[string]string{"inventory": stmt} }

// Statements shared by a list form and its count.
var (
	untaggedInv = `SELECT ` + rel("r.name", "reg") + ` AS image, rm.digest AS digest
` + held + `
WHERE ` + under("r.name", "reg") + ` AND ` + isUntagged + `
ORDER BY image, rm.digest`
	untaggedMf = `SELECT ` + rel("repository", "reg") + ` AS image, digest
FROM (` + mfRows("reg") + `)
GROUP BY repository, digest HAVING MAX(tag) = ''
ORDER BY image, digest`
	multiarchSQL = `SELECT ` + rel("r.name", "reg") + ` AS image, rm.digest AS digest, ` + tagsOf + ` AS tags, ` + platformsOf + ` AS platforms
` + held + ` JOIN manifests m ON m.digest = rm.digest
WHERE ` + under("r.name", "reg") + ` AND ` + isRoot + ` AND m.is_index = 1
ORDER BY image, rm.digest`
	singleSQL = `SELECT ` + rel("r.name", "reg") + ` AS image, rm.digest AS digest, ` + tagsOf + ` AS tags
` + held + ` JOIN manifests m ON m.digest = rm.digest
WHERE ` + under("r.name", "reg") + ` AND ` + isRoot + ` AND m.is_index = 0
ORDER BY image, rm.digest`
	platformSQL = `SELECT ` + rel("r.name", "reg") + ` AS image, rm.digest AS digest, ` + tagsOf + ` AS tags, ` + platformOf + ` AS platform, c.child_digest AS platform_digest
` + held + ` JOIN manifest_children c ON c.parent_digest = rm.digest
WHERE ` + under("r.name", "reg") + ` AND ` + isRoot + ` AND ` + platformIs + `
ORDER BY image, rm.digest, c.position`
	noPlatformSQL = `SELECT ` + rel("r.name", "reg") + ` AS image, rm.digest AS digest, ` + tagsOf + ` AS tags, ` + platformsOf + ` AS platforms
` + held + ` JOIN manifests m ON m.digest = rm.digest
WHERE ` + under("r.name", "reg") + ` AND ` + isRoot + ` AND m.is_index = 1
  AND NOT EXISTS (SELECT 1 FROM manifest_children c WHERE c.parent_digest = rm.digest AND ` + platformIs + `)
ORDER BY image, rm.digest`
	managedCTE = `WITH RECURSIVE named(repository, digest) AS (
  SELECT repository, digest FROM promotions WHERE ` + under("repository", "reg") + `
  UNION
  SELECT src || '/' || image, digest FROM promotions WHERE ` + under("src || '/' || image", "reg") + `
), managed(repository, digest) AS (
  SELECT repository, digest FROM named
  UNION
  SELECT m.repository, c.child_digest FROM managed m JOIN manifest_children c ON c.parent_digest = m.digest
)`
	unmanagedSQL = managedCTE + `
SELECT r.name AS repository, rm.digest AS digest, ` + tagsOf + ` AS tags
` + held + `
WHERE ` + under("r.name", "reg") + ` AND ` + isRoot + `
  AND NOT EXISTS (SELECT 1 FROM managed m WHERE m.repository = r.name AND m.digest = rm.digest)
ORDER BY r.name, rm.digest`
	managedSQL = managedCTE + `
SELECT r.name AS repository, rm.digest AS digest, ` + tagsOf + ` AS tags
` + held + `
WHERE ` + under("r.name", "reg") + ` AND ` + isRoot + `
  AND EXISTS (SELECT 1 FROM managed m WHERE m.repository = r.name AND m.digest = rm.digest)
ORDER BY r.name, rm.digest`
	notPromotedSQL = `SELECT p.repository, p.digest, p.tag,
  CASE WHEN r.id IS NULL THEN 'repository not synced'
       WHEN p.tag = '' THEN 'digest missing'
       WHEN t.digest IS NULL THEN 'tag missing'
       ELSE 'tag points to ' || t.digest END AS reason
FROM (SELECT DISTINCT repository, digest, tag FROM promotions WHERE ` + under("repository", "reg") + `) p
LEFT JOIN repositories r ON r.name = p.repository
LEFT JOIN tags t ON t.repository_id = r.id AND t.tag = p.tag
WHERE (r.id IS NULL AND p.tag = '')
   OR (r.id IS NOT NULL AND p.tag = '' AND NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.repository_id = r.id AND rm.digest = p.digest))
   OR (r.id IS NOT NULL AND p.tag <> '' AND (t.digest IS NULL OR t.digest <> p.digest))
ORDER BY p.repository, p.digest, p.tag`
)

// Two-registry statements: a (REG) and b (REG2) each from the inventory or
// the manifests, images matched by their name below each.
func rootsOf(src Source, param string) string {
	if src == FromManifests {
		return `SELECT ` + rel("repository", param) + `, digest, COALESCE(group_concat(NULLIF(tag, ''), ',' ORDER BY tag), '') FROM (` + mfRows(param) + `) GROUP BY repository, digest`
	}
	return `SELECT ` + rel("r.name", param) + `, rm.digest, ` + tagsOf + ` ` + held + ` WHERE ` + under("r.name", param) + ` AND ` + isRoot
}

func heldBy(src Source, param string) string {
	if src == FromManifests {
		return `SELECT DISTINCT ` + rel("repository", param) + `, digest FROM (` + mfRows(param) + `)`
	}
	return `SELECT ` + rel("r.name", param) + `, rm.digest ` + held + ` WHERE ` + under("r.name", param)
}

func tagsIn(src Source, param string) string {
	if src == FromManifests {
		return `SELECT DISTINCT ` + rel("repository", param) + `, tag, digest FROM promotions WHERE ` + under("repository", param) + ` AND tag <> ''`
	}
	return `SELECT ` + rel("r.name", param) + `, t.tag, t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE ` + under("r.name", param)
}

// content is what a REG holds as (image, digest, tag) rows: one row with
// tag ” per digest (index children left out), one per tag.
func content(src Source, param string) string {
	if src == FromManifests {
		return `SELECT ` + rel("repository", param) + `, digest, tag FROM (` + mfRows(param) + `)`
	}
	return fmt.Sprintf(`SELECT %[1]s, rm.digest, '' %[4]s
    WHERE %[2]s AND %[3]s
  UNION
  SELECT %[1]s, t.digest, t.tag FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE %[2]s`,
		rel("r.name", param), under("r.name", param), isRoot, held)
}

func compareSQL(a, b Source) string {
	return fmt.Sprintf(`WITH a(image, digest, tag) AS (
  %s
), b(image, digest, tag) AS (
  %s
)
SELECT image, digest, tag, only_in FROM (
  SELECT image, digest, tag, :reg AS only_in FROM (SELECT * FROM a EXCEPT SELECT * FROM b)
  UNION ALL
  SELECT image, digest, tag, :reg2 FROM (SELECT * FROM b EXCEPT SELECT * FROM a)
)
ORDER BY image, digest, tag, only_in`, content(a, "reg"), content(b, "reg2"))
}

func differenceSQL(a, b Source, exists string) string {
	return `WITH a(image, digest, tags) AS (
  ` + rootsOf(a, "reg") + `
), b(image, digest) AS (
  ` + heldBy(b, "reg2") + `
)
SELECT a.image, a.digest, a.tags FROM a
WHERE ` + exists + ` (SELECT 1 FROM b WHERE b.image = a.image AND b.digest = a.digest)
ORDER BY a.image, a.digest`
}

func tagDifferenceSQL(a, b Source) string {
	return `WITH a(image, tag, digest) AS (
  ` + tagsIn(a, "reg") + `
), b(image, tag, digest) AS (
  ` + tagsIn(b, "reg2") + `
)
SELECT a.image, a.tag, a.digest, COALESCE((SELECT b.digest FROM b WHERE b.image = a.image AND b.tag = a.tag), '') AS other_digest
FROM a
WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.image = a.image AND b.tag = a.tag AND b.digest = a.digest)
ORDER BY a.image, a.tag`
}

// two builds the four statements of a two-registry form.
func two(build func(a, b Source) string) map[string]string {
	out := map[string]string{}
	for _, a := range []Source{FromInventory, FromManifests} {
		for _, b := range []Source{FromInventory, FromManifests} {
			out[string(a)+"/"+string(b)] = build(a, b)
		}
	}
	return out
}

func sizeSQL(cond, order string) string {
	return `SELECT r.name AS repository, rm.digest AS digest, ` + tagsOf + ` AS tags, s.total_size AS bytes
` + held + ` JOIN manifest_sizes s ON s.digest = rm.digest
WHERE ` + under("r.name", "reg") + ` AND ` + isRoot + cond + `
ORDER BY ` + order
}

const syncRunsSQL = `SELECT s.id, CASE WHEN ` + promoteRun + ` THEN 'promote' ELSE 'sync' END AS kind, s.started_at, COALESCE(s.finished_at, '') AS finished_at,
  s.refs, s.repositories, s.tags, s.manifests_fetched, s.requests,
  CASE WHEN s.finished_at IS NULL THEN 'did not finish'
       WHEN s.errors = '' THEN 'ok'
       ELSE (length(s.errors) - length(replace(s.errors, char(10), '')) + 1) || ' error(s): ' || replace(s.errors, char(10), '; ') END AS status
FROM sync_runs s
WHERE 1`

// Referrers (issue 15): what refers to a digest, in the same repository.
const (
	// isSignature says referrers row f is a signature: cosign's simple
	// signing, a sigstore bundle of any version (cosign's new bundle format
	// writes attestations as bundles too), a notation signature.
	isSignature = `(f.artifact_type IN ('` + referrer.CosignSimpleSigning + `', '` + referrer.SigstoreBundle + `', '` + referrer.NotarySignature + `')
    OR substr(f.artifact_type, 1, 40) = 'application/vnd.dev.sigstore.bundle+json')`
	// notReferrer says rm.digest is neither a referrer nor a sha256-<hex>
	// index of referrers in its repository: an image, not what signs it.
	notReferrer = `NOT EXISTS (SELECT 1 FROM referrers f WHERE f.repository_id = rm.repository_id AND f.referrer_digest = rm.digest)
  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = rm.repository_id AND t.digest = rm.digest AND substr(t.tag, 1, 7) = 'sha256-' AND length(t.tag) = 71)`
	// signedBy says rm.digest has a signature in its repository.
	signedBy      = `EXISTS (SELECT 1 FROM referrers f WHERE f.repository_id = rm.repository_id AND f.subject_digest = rm.digest AND ` + isSignature + `)`
	noteReferrers = "referrers are those cip found (promote, or sync: cosign's and the sha256-<hex> tags; the referrers API for the digests cip promotes)"
)

func signedSQL(not string) string {
	return `SELECT ` + rel("r.name", "reg") + ` AS image, rm.digest AS digest, ` + tagsOf + ` AS tags,
  (SELECT COUNT(*) FROM referrers f WHERE f.repository_id = rm.repository_id AND f.subject_digest = rm.digest AND ` + isSignature + `) AS signatures
` + held + `
WHERE ` + under("r.name", "reg") + ` AND ` + isRoot + ` AND ` + notReferrer + ` AND ` + not + signedBy + `
ORDER BY image, rm.digest`
}

// Notes shared by forms.
const (
	notePlatforms = "platforms are known for the entries of multi-arch indexes: single images are left out (the inventory records no platform for them)"
	noteSizes     = "sizes are what the registry stores: manifest, config and compressed layers; an index adds its images"
	noteHistory   = "from the tag history cip recorded (syncs and promotions); digests copied without a tag leave no history"
	noteUntagged  = "an untagged digest is known when the registry lists it (GCR's tags/list extension) or cip copied it; a plain registry's tag listing cannot show the others"
)

// Pattern fragments.
const (
	noTags = "(without tags | lack tags | hold no tags | not hold tags | no tags)"
	imgs   = "(images | digests)"
)

func noPlatform(slot string) string {
	return "(without " + slot + " | lack " + slot + " | missing " + slot + " | hold no " + slot + " | not hold " + slot + " | hold not " + slot + " | no " + slot + " | not " + slot + ")"
}

var forms = []*Form{
	// Counts.
	{
		Name:     "count-digests",
		Patterns: []string{"count [unique] digests in REG", "count [unique] digests REG hold"},
		Example:  "how many unique digests in registry.example/prod",
		Reading:  "count the distinct digests in {REG} (index children included)",
		scope:    scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT COUNT(DISTINCT rm.digest) AS digests ` + held + ` WHERE ` + under("r.name", "reg"),
			"manifests": `SELECT COUNT(DISTINCT digest) AS digests FROM (` + mfRows("reg") + `)`,
		},
	},
	{
		Name:     "count-images",
		Patterns: []string{"count [unique] images in REG", "count [unique] images REG hold"},
		Example:  "how many images in registry.example/prod",
		Reading:  "count the images (repositories holding a digest) in {REG}",
		scope:    scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT COUNT(*) AS images FROM repositories r WHERE ` + under("r.name", "reg") + ` AND EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.repository_id = r.id)`,
			"manifests": `SELECT COUNT(DISTINCT repository) AS images FROM (` + mfRows("reg") + `)`,
		},
	},
	{
		Name:     "count-tags",
		Patterns: []string{"count tags in REG", "count tags REG hold"},
		Example:  "how many tags in registry.example/prod",
		Reading:  "count the (repository, tag) pairs in {REG}",
		scope:    scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT COUNT(*) AS tags FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE ` + under("r.name", "reg"),
			"manifests": `SELECT COUNT(*) AS tags FROM (SELECT DISTINCT repository, tag FROM promotions WHERE ` + under("repository", "reg") + ` AND tag <> '')`,
		},
	},
	{
		Name:     "count-repositories",
		Patterns: []string{"count [unique] repositories in REG", "count [unique] repositories REG hold"},
		Example:  "how many repositories in registry.example",
		Reading:  "count the repositories at or below {REG}",
		scope:    scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT COUNT(*) AS repositories FROM repositories r WHERE ` + under("r.name", "reg"),
			"manifests": `SELECT COUNT(DISTINCT repository) AS repositories FROM (` + mfRows("reg") + `)`,
		},
	},
	{
		Name:     "count-untagged",
		Patterns: []string{"count untagged [images | digests] in REG", "count digests in REG " + noTags},
		Example:  "how many untagged digests in registry.example/prod",
		Reading:  "count the distinct digests in {REG} that no tag points to (index children left out)",
		scope:    scopeInREG,
		notes:    []string{noteUntagged},
		sql:      map[string]string{"inventory": countDistinct(untaggedInv), "manifests": countDistinct(untaggedMf)},
	},
	{
		Name:     "count-multiarch",
		Patterns: []string{"count multiarch " + imgs + " in REG", "count " + imgs + " in REG multiarch", "count multiarch in REG"},
		Example:  "how many multi-arch images in registry.example/prod",
		Reading:  "count the distinct multi-arch digests (indexes) in {REG}",
		scope:    scopeInventory,
		sql:      inv(countDistinct(multiarchSQL)),
	},
	{
		Name:     "count-singlearch",
		Patterns: []string{"count singlearch " + imgs + " in REG", "count " + imgs + " in REG singlearch", "count " + imgs + " in REG not multiarch"},
		Example:  "how many single-arch images in registry.example/prod",
		Reading:  "count the distinct single-platform digests (not indexes) in {REG}",
		scope:    scopeInventory,
		sql:      inv(countDistinct(singleSQL)),
	},
	{
		Name:     "count-platform",
		Patterns: []string{"count PLATFORM " + imgs + " in REG", "count " + imgs + " in REG [hold | with] PLATFORM", "count " + imgs + " [hold | with] PLATFORM in REG"},
		Example:  "how many arm64 images in registry.example/prod",
		Reading:  "count the distinct multi-arch digests in {REG} with an entry for {PLATFORM}",
		scope:    scopeInventory,
		notes:    []string{notePlatforms},
		sql:      inv(countDistinct(platformSQL)),
	},
	{
		Name:     "count-without-platform",
		Patterns: []string{"count " + imgs + " in REG " + noPlatform("PLATFORM"), "count " + imgs + " " + noPlatform("PLATFORM") + " in REG"},
		Example:  "how many images in registry.example/prod have no arm64",
		Reading:  "count the distinct multi-arch digests in {REG} without an entry for {PLATFORM}",
		scope:    scopeInventory,
		notes:    []string{notePlatforms},
		sql:      inv(countDistinct(noPlatformSQL)),
	},
	{
		Name: "count-not-promoted",
		Patterns: []string{"count [unique] " + imgs + " not promoted to REG", "count [unique] " + imgs + " not in REG",
			"count [unique] " + imgs + " missing (in | from) REG", "count [unique] " + imgs + " left to promoted to REG"},
		Example: "how many digests are not in registry.example/prod",
		Reading: "count the distinct digests the manifests promote into {REG} that {REG} lacks",
		scope:   scopePromoted,
		sql: map[string]string{"manifests": `SELECT COUNT(DISTINCT p.digest) AS digests
FROM (SELECT DISTINCT repository, digest FROM promotions WHERE ` + under("repository", "reg") + ` AND tag = '') p
LEFT JOIN repositories r ON r.name = p.repository
WHERE r.id IS NULL OR NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.repository_id = r.id AND rm.digest = p.digest)`},
	},
	{
		Name:     "count-unmanaged",
		Patterns: []string{"count [unique] " + imgs + " in REG (not in | in no) manifests", "count unmanaged " + imgs + " in REG"},
		Example:  "how many digests in registry.example/prod are in no manifest",
		Reading:  "count the distinct digests in {REG} that no loaded manifest names there (as source or destination)",
		scope:    scopeManifests,
		sql:      inv(countDistinct(unmanagedSQL)),
	},
	{
		Name:     "count-difference",
		Patterns: []string{"count [unique] " + imgs + " in REG [but | and] not in REG2", "count [unique] " + imgs + " REG hold [but | and] REG2 (lack | not hold | missing)"},
		Example:  "how many digests in registry.example/staging are not in registry.example/prod",
		Reading:  "count the distinct digests in {REG} that {REG2} lacks (by image name below each)",
		scope:    scopeTwo,
		sql:      two(func(a, b Source) string { return countDistinct(differenceSQL(a, b, "NOT EXISTS")) }),
	},

	// Lists.
	{
		Name:     "list-repositories",
		Patterns: []string{"[list] repositories in REG [matching PATTERN]", "[list] repositories REG hold"},
		Example:  "list repositories in registry.example matching *app*",
		Reading:  "the repositories at or below {REG}[ matching {PATTERN}], with their digest and tag counts",
		scope:    scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT r.name AS repository,
  (SELECT COUNT(*) FROM repository_manifests rm WHERE rm.repository_id = r.id) AS digests,
  (SELECT COUNT(*) FROM tags t WHERE t.repository_id = r.id) AS tags
FROM repositories r
WHERE ` + under("r.name", "reg") + ` AND r.name GLOB :pattern
ORDER BY r.name`,
			"manifests": `SELECT repository, COUNT(DISTINCT digest) AS digests, COUNT(DISTINCT NULLIF(tag, '')) AS tags
FROM (` + mfRows("reg") + `)
WHERE repository GLOB :pattern
GROUP BY repository
ORDER BY repository`,
		},
	},
	{
		Name:     "list-images",
		Patterns: []string{"[list] images in REG [matching PATTERN]", "[list] images REG hold"},
		Example:  "list images in registry.example/prod",
		Reading:  "the images in {REG}[ matching {PATTERN}] with their digest and tag counts",
		scope:    scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT ` + rel("r.name", "reg") + ` AS image,
  (SELECT COUNT(*) FROM repository_manifests rm WHERE rm.repository_id = r.id) AS digests,
  (SELECT COUNT(*) FROM tags t WHERE t.repository_id = r.id) AS tags
FROM repositories r
WHERE ` + under("r.name", "reg") + ` AND ` + rel("r.name", "reg") + ` GLOB :pattern
  AND EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.repository_id = r.id)
ORDER BY image`,
			"manifests": `SELECT ` + rel("repository", "reg") + ` AS image, COUNT(DISTINCT digest) AS digests, COUNT(DISTINCT NULLIF(tag, '')) AS tags
FROM (` + mfRows("reg") + `)
WHERE ` + rel("repository", "reg") + ` GLOB :pattern
GROUP BY image
ORDER BY image`,
		},
	},
	{
		Name:     "list-tags",
		Patterns: []string{"[list] tags (in | on) REG [matching PATTERN]", "[list] tags REG hold", "[list] tags REG"},
		Example:  "list tags in registry.example/prod matching v1.*",
		Reading:  "the tags in {REG}[ matching {PATTERN}] with their digests",
		scope:    scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT ` + rel("r.name", "reg") + ` AS image, t.tag, t.digest
FROM tags t JOIN repositories r ON r.id = t.repository_id
WHERE ` + under("r.name", "reg") + ` AND t.tag GLOB :pattern
ORDER BY image, t.tag`,
			"manifests": `SELECT DISTINCT ` + rel("repository", "reg") + ` AS image, tag, digest
FROM promotions
WHERE ` + under("repository", "reg") + ` AND tag <> '' AND tag GLOB :pattern
ORDER BY image, tag, digest`,
		},
	},
	{
		Name:     "list-digests",
		Patterns: []string{"list in REG", "[list] digests in REG", "list REG hold", "[list] content REG"},
		Example:  "what is in registry.example/prod",
		Reading:  "the digests in {REG} (index children left out) with their tags",
		scope:    scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT ` + rel("r.name", "reg") + ` AS image, rm.digest AS digest, ` + tagsOf + ` AS tags
` + held + `
WHERE ` + under("r.name", "reg") + ` AND ` + isRoot + `
ORDER BY image, rm.digest`,
			"manifests": `SELECT ` + rel("repository", "reg") + ` AS image, digest, COALESCE(group_concat(NULLIF(tag, ''), ',' ORDER BY tag), '') AS tags
FROM (` + mfRows("reg") + `)
GROUP BY repository, digest
ORDER BY image, digest`,
		},
	},
	{
		Name:     "list-untagged",
		Patterns: []string{"[list] untagged [images | digests] in REG", "[list] digests in REG " + noTags},
		Example:  "list untagged digests in registry.example/prod",
		Reading:  "the digests in {REG} that no tag points to (index children left out)",
		scope:    scopeInREG,
		notes:    []string{noteUntagged},
		sql:      map[string]string{"inventory": untaggedInv, "manifests": untaggedMf},
	},
	{
		Name:     "list-signed",
		Patterns: []string{"[list] signed [images | digests] in REG", "[list] " + imgs + " in REG signed"},
		Example:  "which images in registry.example/prod are signed",
		Reading:  "the digests in {REG} that a signature refers to (cosign, sigstore bundle, notation), with how many",
		scope:    scopeInventory,
		notes:    []string{noteReferrers},
		sql:      inv(signedSQL("")),
	},
	{
		Name:     "list-unsigned",
		Patterns: []string{"[list] unsigned [images | digests] in REG", "[list] " + imgs + " in REG unsigned", "[list] " + imgs + " in REG not signed"},
		Example:  "which images in registry.example/prod are unsigned",
		Reading:  "the digests in {REG} (index children and referrers left out) that no signature refers to",
		scope:    scopeInventory,
		notes:    []string{noteReferrers},
		sql:      inv(signedSQL("NOT ")),
	},
	{
		Name:     "list-signatures",
		Patterns: []string{"[list] signatures in REG"},
		Example:  "list signatures in registry.example/prod",
		Reading:  "every signature in {REG}: the digest it signs, the signature's digest, its artifact type and where cip found it",
		scope:    scopeInventory,
		notes:    []string{noteReferrers},
		sql: inv(`SELECT ` + rel("r.name", "reg") + ` AS image, f.subject_digest AS subject, f.referrer_digest AS signature, f.artifact_type, f.found_by
FROM referrers f JOIN repositories r ON r.id = f.repository_id
WHERE ` + under("r.name", "reg") + ` AND ` + isSignature + `
ORDER BY image, f.subject_digest, f.referrer_digest`),
	},
	{
		Name:     "referrers-of",
		Patterns: []string{"what refer to DIGEST [in REG]", "[list] referrers [to] DIGEST [in REG]"},
		Example:  "what refers to sha256:1111",
		Reading:  "every referrer (signature, attestation, SBOM, ...) of {DIGEST} (a digest or a prefix)[ in {REG}], by repository",
		scope:    scopeInventory,
		notes:    []string{noteReferrers},
		sql: inv(`SELECT r.name AS repository, f.subject_digest AS subject, f.referrer_digest AS referrer, f.artifact_type, f.found_by
FROM referrers f JOIN repositories r ON r.id = f.repository_id
WHERE ` + digestPrefix("f.subject_digest") + ` AND ` + underOpt("r.name") + `
ORDER BY r.name, f.subject_digest, f.referrer_digest`),
	},
	{
		Name:     "list-multiarch",
		Patterns: []string{"[list] multiarch [images | digests] in REG", "[list] " + imgs + " multiarch in REG", "[list] " + imgs + " in REG multiarch"},
		Example:  "which images are multi-arch in registry.example/prod",
		Reading:  "the multi-arch digests (indexes) in {REG} with their tags and platforms",
		scope:    scopeInventory,
		sql:      inv(multiarchSQL),
	},
	{
		Name: "list-singlearch",
		Patterns: []string{"[list] singlearch [images | digests] in REG", "[list] " + imgs + " singlearch in REG", "[list] " + imgs + " in REG singlearch",
			"[list] " + imgs + " in REG not multiarch", "[list] " + imgs + " not multiarch in REG"},
		Example: "which images in registry.example/prod are not multi-arch",
		Reading: "the single-platform digests (not indexes) in {REG} with their tags",
		scope:   scopeInventory,
		sql:     inv(singleSQL),
	},
	{
		Name:     "list-platform",
		Patterns: []string{"[list] PLATFORM " + imgs + " in REG", "[list] " + imgs + " in REG [hold | with] PLATFORM", "[list] " + imgs + " [hold | with] PLATFORM in REG"},
		Example:  "list arm64 images in registry.example/prod",
		Reading:  "the multi-arch digests in {REG} with an entry for {PLATFORM}, and that entry",
		scope:    scopeInventory,
		notes:    []string{notePlatforms},
		sql:      inv(platformSQL),
	},
	{
		Name:     "list-without-platform",
		Patterns: []string{"[list] " + imgs + " in REG " + noPlatform("PLATFORM"), "[list] " + imgs + " " + noPlatform("PLATFORM") + " in REG"},
		Example:  "which images in registry.example/prod have no arm64",
		Reading:  "the multi-arch digests in {REG} without an entry for {PLATFORM}",
		scope:    scopeInventory,
		notes:    []string{notePlatforms},
		sql:      inv(noPlatformSQL),
	},
	{
		Name:     "repositories-without-tags",
		Patterns: []string{"[list] (repositories | images) in REG " + noTags, "[list] (repositories | images) " + noTags + " in REG"},
		Example:  "which repositories in registry.example/prod have no tags",
		Reading:  "the repositories at or below {REG} without any tag",
		scope:    scopeInventory,
		sql: inv(`SELECT r.name AS repository, (SELECT COUNT(*) FROM repository_manifests rm WHERE rm.repository_id = r.id) AS digests, COALESCE(r.synced_at, '') AS synced_at
FROM repositories r
WHERE ` + under("r.name", "reg") + ` AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = r.id)
ORDER BY r.name`),
	},
	{
		Name:     "images-with-tag",
		Patterns: []string{"[list] (images | repositories) in REG (with | hold) tag TAG", "[list] (images | repositories) (with | hold) tag TAG in REG", "[list] (images | repositories) in REG tagged TAG"},
		Example:  "which images in registry.example/prod have tag latest",
		Reading:  "the images in {REG} that have the tag {TAG}, and its digest there",
		scope:    scopeInventory,
		sql: inv(`SELECT ` + rel("r.name", "reg") + ` AS image, t.tag, t.digest, t.updated_at
FROM tags t JOIN repositories r ON r.id = t.repository_id
WHERE ` + under("r.name", "reg") + ` AND t.tag = :tag
ORDER BY image`),
	},
	{
		Name: "images-without-tag",
		Patterns: []string{"[list] (images | repositories) in REG " + noPlatform("tag TAG"), "[list] (images | repositories) " + noPlatform("tag TAG") + " in REG",
			"[list] (images | repositories) in REG not tagged TAG"},
		Example: "which images in registry.example/prod have no tag latest",
		Reading: "the images in {REG} (holding a digest) without the tag {TAG}",
		scope:   scopeInventory,
		sql: inv(`SELECT ` + rel("r.name", "reg") + ` AS image, COALESCE((SELECT group_concat(t.tag, ',' ORDER BY t.tag) FROM tags t WHERE t.repository_id = r.id), '') AS tags
FROM repositories r
WHERE ` + under("r.name", "reg") + ` AND EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.repository_id = r.id)
  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = r.id AND t.tag = :tag)
ORDER BY image`),
	},

	// Digests, tags and images.
	{
		Name:       "digest-of-tag",
		Patterns:   []string{"[list] digest IMAGETAG [point to]", "list IMAGETAG point to", "resolve IMAGETAG"},
		Example:    "which digest does registry.example/prod/app:latest point to",
		Reading:    "the digest {TARGET} points to",
		scope:      scopeInventory,
		needTarget: true,
		sql: inv(`SELECT r.name AS repository, t.tag, t.digest, m.media_type, t.updated_at, COALESCE(t.checked_at, '') AS checked_at
FROM tags t JOIN repositories r ON r.id = t.repository_id JOIN manifests m ON m.digest = t.digest
WHERE r.name = :image AND t.tag = :tag`),
	},
	{
		Name:     "tags-of-digest",
		Patterns: []string{"[list] tags [point] [to | on] DIGEST [in REG]"},
		Example:  "which tags point to sha256:1111",
		Reading:  "every tag[ in {REG}] at {DIGEST} (a digest or a prefix)",
		scope:    scopeInventory,
		sql: inv(`SELECT r.name AS repository, t.tag, t.digest
FROM tags t JOIN repositories r ON r.id = t.repository_id
WHERE ` + digestPrefix("t.digest") + ` AND ` + underOpt("r.name") + `
ORDER BY r.name, t.tag`),
	},
	{
		Name:     "where-digest",
		Patterns: []string{"where DIGEST [in REG] [[in] [every] sync]", "[list] repositories hold DIGEST [in REG]", "list hold DIGEST"},
		Example:  "where is sha256:1111",
		Reading:  "the repositories[ in {REG}] holding {DIGEST} (a digest or a prefix), with its tags there",
		scope:    scopeInventory,
		sql: inv(`SELECT r.name AS repository, rm.digest AS digest, ` + tagsOf + ` AS tags
` + held + `
WHERE ` + digestPrefix("rm.digest") + ` AND ` + underOpt("r.name") + `
ORDER BY r.name, rm.digest`),
	},
	{
		Name:     "where-tag",
		Patterns: []string{"where IMAGEREF [[in] [every] sync]", "[list] repositories hold IMAGEREF", "list hold IMAGEREF"},
		Example:  "where is app:v1",
		Reading:  "every synced repository holding a digest that {TARGET} points to[ (in any repository ending in /{SUFFIX})], with its tags there",
		scope:    scopeInventory,
		suffix:   true,
		sql: inv(`WITH target(digest) AS (
  SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE :tag <> '' AND ` + named("r.name") + ` AND t.tag = :tag
  UNION
  SELECT m.digest FROM manifests m WHERE :digest <> '' AND ` + digestPrefix("m.digest") + `
)
SELECT r.name AS repository, rm.digest AS digest, ` + tagsOf + ` AS tags
` + held + `
WHERE rm.digest IN (SELECT digest FROM target)
ORDER BY r.name, rm.digest`),
	},
	{
		Name:     "where-image",
		Patterns: []string{"where IMAGE [[in] [every] sync]", "list hold IMAGE", "[list] repositories matching IMAGE"},
		Example:  "where is app",
		Reading:  "every synced repository named {IMAGE}[ or ending in /{SUFFIX}]",
		scope:    scopeInventory,
		suffix:   true,
		sql: inv(`SELECT r.name AS repository,
  (SELECT COUNT(*) FROM repository_manifests rm WHERE rm.repository_id = r.id) AS digests,
  (SELECT COUNT(*) FROM tags t WHERE t.repository_id = r.id) AS tags,
  COALESCE(r.synced_at, '') AS synced_at
FROM repositories r
WHERE ` + named("r.name") + `
ORDER BY r.name`),
	},
	{
		Name:     "describe-digest",
		Patterns: []string{"list DIGEST", "describe DIGEST"},
		Example:  "what is sha256:1111",
		Reading:  "what the inventory records of the manifest {DIGEST} (a digest or a prefix)",
		scope:    scopeInventory,
		notes:    []string{noteSizes},
		sql: inv(`SELECT m.digest, m.media_type, CASE m.is_index WHEN 1 THEN 'yes' ELSE 'no' END AS multiarch,
  (SELECT COUNT(*) FROM manifest_children c WHERE c.parent_digest = m.digest) AS platforms,
  (SELECT COUNT(*) FROM repository_manifests rm WHERE rm.digest = m.digest) AS repositories,
  (SELECT COUNT(*) FROM tags t WHERE t.digest = m.digest) AS tags,
  m.fetched_at, s.total_size AS bytes
FROM manifests m JOIN manifest_sizes s ON s.digest = m.digest
WHERE ` + digestPrefix("m.digest") + `
ORDER BY m.digest`),
	},
	{
		Name:       "platforms",
		Patterns:   []string{"[list] platforms [in] TARGET", "[list] platforms TARGET hold"},
		Example:    "which platforms does registry.example/prod/multi:v2 have",
		Reading:    "the platforms of {TARGET}: one row per index entry, or one empty row for a single image",
		scope:      scopeInventory,
		needTarget: true,
		sql: inv(`WITH ` + target + `
SELECT repository, digest, os, architecture, variant, platform_digest FROM (
  SELECT t.repository, t.digest, c.os, c.architecture, c.variant, c.child_digest AS platform_digest, c.position
  FROM target t JOIN manifest_children c ON c.parent_digest = t.digest
  UNION ALL
  SELECT t.repository, t.digest, '', '', '', t.digest, 0
  FROM target t JOIN manifests m ON m.digest = t.digest WHERE m.is_index = 0
)
ORDER BY repository, digest, position`),
	},
	{
		Name:       "layers",
		Patterns:   []string{"[list] layers [in] TARGET", "[list] layers TARGET hold"},
		Example:    "list layers of registry.example/prod/app:v1",
		Reading:    "the config and layers of {TARGET} (of each platform for an index), with their sizes",
		scope:      scopeInventory,
		needTarget: true,
		sql: inv(`WITH ` + target + `, images(digest, platform, position) AS (
  SELECT t.digest, '', 0 FROM target t JOIN manifests m ON m.digest = t.digest WHERE m.is_index = 0
  UNION
  SELECT c.child_digest, ` + platformOf + `, c.position FROM target t JOIN manifest_children c ON c.parent_digest = t.digest
)
SELECT i.platform, i.digest AS image_digest, b.position, b.kind, b.blob_digest AS blob, b.media_type, b.size AS bytes
FROM images i JOIN manifest_blobs b ON b.manifest_digest = i.digest
ORDER BY i.position, i.digest, b.position`),
	},
	{
		Name:       "size-of",
		Patterns:   []string{"size TARGET", "[list] size TARGET"},
		Example:    "how big is registry.example/prod/multi:v2",
		Reading:    "the size of {TARGET}",
		scope:      scopeInventory,
		needTarget: true,
		notes:      []string{noteSizes},
		sql: inv(`WITH ` + target + `
SELECT t.repository, t.digest, m.media_type, (SELECT COUNT(*) FROM manifest_children c WHERE c.parent_digest = t.digest) AS platforms, s.total_size AS bytes
FROM target t JOIN manifests m ON m.digest = t.digest JOIN manifest_sizes s ON s.digest = t.digest
ORDER BY t.repository, t.digest`),
	},
	{
		Name:     "layer-users",
		Patterns: []string{"[list] (images | repositories | digests) (use | hold) layer DIGEST [in REG]"},
		Example:  "which images use layer sha256:aaaa",
		Reading:  "the repositories[ in {REG}] and image digests whose layers include {DIGEST} (a digest or a prefix)",
		scope:    scopeInventory,
		sql: inv(`SELECT DISTINCT r.name AS repository, rm.digest AS digest, ` + tagsOf + ` AS tags, b.blob_digest AS layer
FROM manifest_blobs b JOIN repository_manifests rm ON rm.digest = b.manifest_digest JOIN repositories r ON r.id = rm.repository_id
WHERE b.kind = 'layer' AND ` + digestPrefix("b.blob_digest") + ` AND ` + underOpt("r.name") + `
ORDER BY r.name, rm.digest, layer`),
	},
	{
		Name:       "is-in",
		Patterns:   []string{"TARGET [promoted] (in | to) REG", "REG hold TARGET"},
		Example:    "is sha256:1111 promoted to registry.example/prod",
		Reading:    "whether {REG} holds {TARGET}, and where",
		scope:      scopeInventory,
		needTarget: true, targetRef: true,
		sql: inv(`WITH ` + target + `, found(repository, digest, tags) AS (
  SELECT r.name, rm.digest, ` + tagsOf + ` ` + held + `
  WHERE ` + under("r.name", "reg") + ` AND rm.digest IN (SELECT digest FROM target)
)
SELECT CASE WHEN EXISTS (SELECT 1 FROM found) THEN 'yes' ELSE 'no' END AS answer,
  COALESCE((SELECT group_concat(digest, ',' ORDER BY digest) FROM (SELECT DISTINCT digest FROM found)), '') AS digests,
  COALESCE((SELECT group_concat(repository || CASE WHEN tags <> '' THEN ' (' || tags || ')' ELSE '' END, ', ' ORDER BY repository) FROM found), '') AS held_in`),
	},

	// The manifests against the registries.
	{
		Name: "not-promoted",
		Patterns: []string{"list not promoted to REG", "[list] (images | digests | tags) not promoted to REG", "list not in REG", "[list] (images | digests | tags) not in REG",
			"list missing (in | from) REG", "[list] (images | digests | tags) missing (in | from) REG", "list left to promoted to REG"},
		Example: "what is not yet promoted to registry.example/prod",
		Reading: "the promotions into {REG} (from the manifests) that the inventory does not show done: a row per missing digest ('' tag) or tag",
		scope:   scopePromoted,
		sql:     map[string]string{"manifests": notPromotedSQL},
	},
	{
		Name:     "not-promoted-from",
		Patterns: []string{"list in REG not promoted", "[list] (images | digests | tags) in REG not promoted"},
		Example:  "what in registry.example/staging is not yet promoted",
		Reading:  "the promotions out of {REG} (from the manifests) that their destinations do not show done, and whether the source holds the digest",
		scope:    scopePromotedFrom,
		sql: map[string]string{"manifests": `SELECT p.src || '/' || p.image AS source, p.digest, p.repository AS destination, p.tag,
  CASE WHEN r.id IS NULL THEN 'destination not synced'
       WHEN p.tag = '' THEN 'digest missing'
       WHEN t.digest IS NULL THEN 'tag missing'
       ELSE 'tag points to ' || t.digest END AS reason,
  CASE WHEN sr.id IS NULL THEN 'source repository unknown'
       WHEN EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.repository_id = sr.id AND rm.digest = p.digest) THEN 'yes'
       ELSE 'no' END AS source_holds
FROM (SELECT DISTINCT src, image, repository, digest, tag FROM promotions WHERE ` + under("src || '/' || image", "reg") + `) p
LEFT JOIN repositories sr ON sr.name = p.src || '/' || p.image
LEFT JOIN repositories r ON r.name = p.repository
LEFT JOIN tags t ON t.repository_id = r.id AND t.tag = p.tag
WHERE (r.id IS NULL AND p.tag = '')
   OR (r.id IS NOT NULL AND p.tag = '' AND NOT EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.repository_id = r.id AND rm.digest = p.digest))
   OR (r.id IS NOT NULL AND p.tag <> '' AND (t.digest IS NULL OR t.digest <> p.digest))
ORDER BY source, p.digest, destination, p.tag`},
	},
	{
		Name: "unmanaged",
		Patterns: []string{"list in REG (not in | in no) manifests", "[list] " + imgs + " in REG (not in | in no) manifests", "[list] unmanaged [images | digests] in REG",
			"list in REG no manifests promoted"},
		Example: "what in registry.example/prod is in no manifest",
		Reading: "the digests in {REG} (index children left out) that no loaded manifest names there, as source or destination",
		scope:   scopeManifests,
		sql:     inv(unmanagedSQL),
	},
	{
		Name:     "managed",
		Patterns: []string{"list in REG in manifests", "[list] " + imgs + " in REG in manifests", "[list] managed [images | digests] in REG"},
		Example:  "what in registry.example/staging is in a manifest",
		Reading:  "the digests in {REG} (index children left out) that a loaded manifest names there, as source or destination",
		scope:    scopeManifests,
		sql:      inv(managedSQL),
	},

	// Two registries.
	{
		Name: "difference",
		Patterns: []string{"list in REG [but | and] not in REG2", "[list] " + imgs + " in REG [but | and] not in REG2",
			"list REG hold [but | and] REG2 (lack | not hold | missing)"},
		Example: "what in registry.example/staging is not in registry.example/prod",
		Reading: "the digests in {REG} (index children left out) that {REG2} lacks, by image name below each",
		scope:   scopeTwo,
		sql:     two(func(a, b Source) string { return differenceSQL(a, b, "NOT EXISTS") }),
	},
	{
		Name:     "tag-difference",
		Patterns: []string{"[list] tags in REG [but | and] not in REG2", "[list] tags REG hold [but | and] REG2 (lack | not hold | missing)"},
		Example:  "which tags in registry.example/staging are not in registry.example/prod",
		Reading:  "the tags in {REG} that {REG2} lacks or has at another digest (other_digest), by image name below each",
		scope:    scopeTwo,
		sql:      two(tagDifferenceSQL),
	},
	{
		Name: "common",
		Patterns: []string{"list in both REG and REG2", "[list] " + imgs + " in both REG and REG2", "list in REG [and] in REG2",
			"[list] " + imgs + " in REG [and] in REG2"},
		Example: "what is in both registry.example/staging and registry.example/prod",
		Reading: "the digests in {REG} (index children left out) that {REG2} holds too, by image name below each",
		scope:   scopeTwo,
		sql:     two(func(a, b Source) string { return differenceSQL(a, b, "EXISTS") }),
	},
	{
		Name: "compare",
		Patterns: []string{"compare REG (with | to | and | from) REG2", "compare REG REG2", "compare between REG and REG2", "REG with REG2",
			"how REG compare (with | to | from) REG2"},
		Example: "compare registry.example/staging with registry.example/prod",
		Reading: "the (image, digest, tag) rows only one of {REG} and {REG2} holds ('' tag: the digest itself)",
		scope:   scopeTwo,
		sql:     two(compareSQL),
	},

	// Time: the tag history, promotions, syncs.
	{
		Name:     "changed",
		Patterns: []string{"list [hold] changed in REG [WHEN]", "[list] tags [hold] changed in REG [WHEN]", "[list] changed tags in REG [WHEN]", "history REG [WHEN]"},
		Example:  "what changed in registry.example/prod today",
		Reading:  "the tag changes (added, moved, removed) under {REG}[ {WHEN}]",
		scope:    scopeInventory,
		lastSync: true,
		notes:    []string{noteHistory},
		sql:      history(""),
	},
	{
		Name:     "tags-moved",
		Patterns: []string{"[list] tags [hold] moved in REG [WHEN]", "[list] moved tags in REG [WHEN]"},
		Example:  "which tags moved in registry.example/prod since 2026-01-01",
		Reading:  "the tag moves under {REG}[ {WHEN}] (referrer tags, which move by design, left out)",
		scope:    scopeInventory,
		lastSync: true,
		notes:    []string{noteHistory},
		// sha256-<hex>, .sig, .att, .sbom: a merged signature or index
		// moves them; that is no tag move.
		sql: history(` AND h.change = 'moved' AND NOT (substr(h.tag, 1, 7) = 'sha256-' AND length(h.tag) >= 71)`),
	},
	{
		Name:     "tags-added",
		Patterns: []string{"[list] tags [hold] added (in | to) REG [WHEN]", "[list] added tags in REG [WHEN]", "list added in REG [WHEN]"},
		Example:  "which tags were added to registry.example/prod in the last 3 days",
		Reading:  "the tags added under {REG}[ {WHEN}]",
		scope:    scopeInventory,
		lastSync: true,
		notes:    []string{noteHistory},
		sql:      history(` AND h.change = 'added'`),
	},
	{
		Name:     "tags-removed",
		Patterns: []string{"[list] tags [hold] removed (in | from) REG [WHEN]", "[list] removed tags in REG [WHEN]"},
		Example:  "which tags were removed from registry.example/prod last week",
		Reading:  "the tags removed under {REG}[ {WHEN}]",
		scope:    scopeInventory,
		lastSync: true,
		notes:    []string{noteHistory},
		sql:      history(` AND h.change = 'removed'`),
	},
	{
		Name:     "tag-history",
		Patterns: []string{"history [tag] TAG in REG", "[list] history IMAGETAG", "history IMAGETAG", "when IMAGETAG (changed | moved)"},
		Example:  "history of tag latest in registry.example/prod",
		Reading:  "every change of [tag {TAG} in {REG}][{TARGET}]",
		scope:    scopeInventory,
		notes:    []string{noteHistory},
		sql: inv(`SELECT h.at, h.repository, h.tag, h.change, COALESCE(h.old_digest, '') AS old_digest, COALESCE(h.new_digest, '') AS new_digest
FROM tag_history h
WHERE ((:image <> '' AND h.repository = :image) OR (:image = '' AND ` + under("h.repository", "reg") + `)) AND h.tag = :tag
ORDER BY h.at, h.repository, h.id`),
	},
	{
		Name:     "promoted-since",
		Patterns: []string{"list promoted to REG [WHEN]", "[list] (tags | images | digests) promoted to REG [WHEN]"},
		Example:  "what was promoted to registry.example/prod since 2026-03-02",
		Reading:  "the tags cip's promotions added or moved under {REG}[ {WHEN}]",
		scope:    scopeInventory,
		notes:    []string{noteHistory},
		sql: inv(`SELECT h.at, h.repository, h.tag, h.change, COALESCE(h.old_digest, '') AS old_digest, h.new_digest, h.sync_run_id AS run
FROM tag_history h JOIN sync_runs s ON s.id = h.sync_run_id
WHERE ` + under("h.repository", "reg") + ` AND ` + promoteRun + ` AND h.change IN ('added', 'moved')` + inWindow("h.at") + `
ORDER BY h.at, h.repository, h.tag, h.id`),
	},
	{
		Name:     "last-synced",
		Patterns: []string{"when REG last sync", "when REG sync", "when last sync [in] REG", "last sync [in] REG", "list last sync [in] REG"},
		Example:  "when was registry.example/prod last synced",
		Reading:  "when {REG} was last synced: its repositories' sync times and the last complete sync run that covered it",
		scope:    scopeAny,
		sql: inv(`WITH RECURSIVE ` + coveringRuns + `
SELECT :reg AS registry,
  (SELECT COUNT(*) FROM repositories r WHERE ` + under("r.name", "reg") + ` AND r.synced_at IS NOT NULL) AS synced_repositories,
  COALESCE((SELECT MAX(r.synced_at) FROM repositories r WHERE ` + under("r.name", "reg") + `), 'never') AS last_synced,
  COALESCE((SELECT MIN(r.synced_at) FROM repositories r WHERE ` + under("r.name", "reg") + `), '') AS least_recently_synced,
  COALESCE((SELECT MAX(finished_at) FROM covering), '') AS last_complete_run`),
	},
	{
		Name:     "sync-runs",
		Patterns: []string{"[list] sync [runs] [WHEN]", "[list] runs [WHEN]"},
		Example:  "list syncs in the last 7 days",
		Reading:  "the sync and promotion runs[ {WHEN}]",
		scope:    scopeAny,
		sql:      inv(syncRunsSQL + inWindow("s.started_at") + "\nORDER BY s.id"),
	},
	{
		Name:     "failed-syncs",
		Patterns: []string{"[list] failed (sync | runs) [runs] [WHEN]", "[list] (sync | runs) [runs] [with | hold] failed [WHEN]"},
		Example:  "which syncs failed since yesterday",
		Reading:  "the sync and promotion runs with errors, or that did not finish[, {WHEN}]",
		scope:    scopeAny,
		sql:      inv(syncRunsSQL + ` AND (s.finished_at IS NULL OR s.errors <> '')` + inWindow("s.started_at") + "\nORDER BY s.id"),
	},
	{
		Name:       "stale-repositories",
		Patterns:   []string{"[list] repositories in REG [hold] not sync WHEN", "[list] repositories in REG lack sync WHEN"},
		Example:    "which repositories in registry.example were not synced since 2026-03-02",
		Reading:    "the repositories at or below {REG} not synced {WHEN}",
		scope:      scopeInventory,
		needWindow: true, openWindow: true,
		sql: inv(`SELECT r.name AS repository, COALESCE(r.synced_at, 'never') AS synced_at
FROM repositories r
WHERE ` + under("r.name", "reg") + ` AND (r.synced_at IS NULL OR julianday(r.synced_at) < julianday(:since))
ORDER BY r.name`),
	},
	{
		Name:       "stale-tags",
		Patterns:   []string{"[list] tags in REG [hold] not (changed | moved) WHEN"},
		Example:    "which tags in registry.example/prod have not changed since 2026-03-02",
		Reading:    "the tags in {REG} that have pointed at their digest since before the window ({WHEN})",
		scope:      scopeInventory,
		needWindow: true, openWindow: true,
		sql: inv(`SELECT ` + rel("r.name", "reg") + ` AS image, t.tag, t.digest, t.updated_at
FROM tags t JOIN repositories r ON r.id = t.repository_id
WHERE ` + under("r.name", "reg") + ` AND julianday(t.updated_at) < julianday(:since)
ORDER BY image, t.tag`),
	},

	// Sizes.
	{
		Name:     "registry-size",
		Patterns: []string{"size REG", "[list] size [in] REG"},
		Example:  "how big is registry.example/prod",
		Reading:  "the total size of {REG}: each blob and manifest it holds counted once",
		scope:    scopeInventory,
		notes:    []string{noteSizes},
		sql: inv(`WITH h(digest) AS (
  SELECT DISTINCT rm.digest ` + held + ` WHERE ` + under("r.name", "reg") + `
), blobs(digest, size) AS (
  SELECT b.blob_digest, MAX(b.size) FROM manifest_blobs b JOIN h ON h.digest = b.manifest_digest GROUP BY b.blob_digest
)
SELECT :reg AS registry,
  (SELECT COUNT(*) FROM repositories r WHERE ` + under("r.name", "reg") + `) AS repositories,
  (SELECT COUNT(*) FROM h) AS digests,
  (SELECT COUNT(*) FROM blobs) AS blobs,
  (SELECT COALESCE(SUM(size), 0) FROM blobs) + (SELECT COALESCE(SUM(m.size), 0) FROM manifests m JOIN h ON h.digest = m.digest) AS bytes`),
	},
	{
		Name:     "largest",
		Patterns: []string{"[list] largest [N] " + imgs + " in REG", "[list] top N [largest] " + imgs + " in REG", "[list] N largest " + imgs + " in REG"},
		Example:  "largest 5 images in registry.example/prod",
		Reading:  "the {N} largest digests in {REG} (index children left out)",
		scope:    scopeInventory,
		defaultN: defaultLimit,
		notes:    []string{noteSizes},
		sql:      inv(sizeSQL("", "s.total_size DESC, r.name, rm.digest\nLIMIT :limit")),
	},
	{
		Name:     "smallest",
		Patterns: []string{"[list] smallest [N] " + imgs + " in REG", "[list] N smallest " + imgs + " in REG"},
		Example:  "smallest 3 images in registry.example/prod",
		Reading:  "the {N} smallest digests in {REG} (index children left out)",
		scope:    scopeInventory,
		defaultN: defaultLimit,
		notes:    []string{noteSizes},
		sql:      inv(sizeSQL("", "s.total_size, r.name, rm.digest\nLIMIT :limit")),
	},
	{
		Name:     "larger-than",
		Patterns: []string{"[list] " + imgs + " in REG larger SIZE", "[list] " + imgs + " larger SIZE in REG"},
		Example:  "which images in registry.example/prod are larger than 10 KiB",
		Reading:  "the digests in {REG} (index children left out) larger than {SIZE}",
		scope:    scopeInventory,
		notes:    []string{noteSizes},
		sql:      inv(sizeSQL(" AND s.total_size > :bytes", "s.total_size DESC, r.name, rm.digest")),
	},
	{
		Name:     "smaller-than",
		Patterns: []string{"[list] " + imgs + " in REG smaller SIZE", "[list] " + imgs + " smaller SIZE in REG"},
		Example:  "which images in registry.example/prod are smaller than 10 KiB",
		Reading:  "the digests in {REG} (index children left out) smaller than {SIZE}",
		scope:    scopeInventory,
		notes:    []string{noteSizes},
		sql:      inv(sizeSQL(" AND s.total_size < :bytes", "s.total_size, r.name, rm.digest")),
	},
}

// defaultLimit is how many rows "largest images" shows without N: a
// screenful.
const defaultLimit = 20

func init() {
	names := map[string]bool{}
	for _, f := range forms {
		if names[f.Name] {
			panic("query: two forms named " + f.Name)
		}
		names[f.Name] = true
		f.vocab = map[string]bool{}
		for _, s := range f.Patterns {
			n, err := compilePattern(s)
			if err != nil {
				panic("query: form " + f.Name + ": " + err.Error())
			}
			f.pats = append(f.pats, n)
			f.bnds = append(f.bnds, n.bounds())
			n.words(f.vocab)
		}
		for w := range f.vocab {
			if fillers[w] {
				panic("query: form " + f.Name + ": a pattern uses the filler word " + w + ", which questions never keep")
			}
			if strings.ToLower(w) == w {
				vocabulary[w] = true
			}
		}
	}
	for _, w := range extraWords {
		vocabulary[w] = true
	}
	seen := map[string]bool{}
	addSurface := func(w string) {
		if !seen[w] {
			seen[w] = true
			surfaceWords = append(surfaceWords, w)
		}
	}
	for w := range vocabulary {
		addSurface(w)
	}
	for w := range synonyms {
		addSurface(w)
	}
	for w := range fillers {
		addSurface(w)
	}
	for w := range notYet {
		addSurface(w)
	}
	// Deterministic order: correct keeps the first of equally close words.
	sort.Strings(surfaceWords)
}

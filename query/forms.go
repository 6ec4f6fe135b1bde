package query

import "fmt"

// Source is where an answer comes from.
type Source string

// Sources of answers.
const (
	FromInventory Source = "inventory"
	FromManifests Source = "manifests"
)

// Scopes: how a form picks its source.
const (
	scopeInREG     = iota // REG from the inventory when synced, else from the manifests
	scopeInventory        // the inventory only
	scopePromoted         // the manifests, checked against the inventory
	scopeUnmanaged        // the inventory, checked against the manifests
	scopeCompare          // REG and REG2, each as scopeInREG
)

// Form is one kind of question, with the SQL that answers it. The SQL is
// fixed text: slot values are bound as named parameters (:reg, :reg2,
// :pattern, :digest, :since, :image, :tag, :limit).
type Form struct {
	Name      string
	Templates []string // the first is the canonical wording
	Example   string
	Doc       string
	scope     int
	// sql maps a source (for scopeCompare "inventory/manifests" and so
	// on, REG's first) to the statement.
	sql   map[string]string
	templ []template
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

// under is the SQL for "col is param, or lies below it by whole path
// segments". substr, not LIKE: '_' and '%' in names are not wildcards.
func under(col, param string) string {
	return fmt.Sprintf("(%[1]s = :%[2]s OR substr(%[1]s, 1, length(:%[2]s) + 1) = :%[2]s || '/')", col, param)
}

// rel is col relative to REG (the image name).
func rel(col, param string) string {
	return fmt.Sprintf("substr(%s, length(:%s) + 2)", col, param)
}

// tagsOf lists, comma-separated and sorted, the tags of rm.digest in r.
const tagsOf = `COALESCE((SELECT group_concat(t.tag, ',' ORDER BY t.tag) FROM tags t WHERE t.repository_id = r.id AND t.digest = rm.digest), '')`

// isRoot says rm.digest is tagged, or is not a child of an index the same
// repository holds (children travel with their index).
const isRoot = `(EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = rm.repository_id AND t.digest = rm.digest)
    OR NOT EXISTS (SELECT 1 FROM manifest_children c JOIN repository_manifests p ON p.digest = c.parent_digest AND p.repository_id = rm.repository_id WHERE c.child_digest = rm.digest))`

// digestPrefix matches col against a full digest or a prefix of one.
func digestPrefix(col string) string {
	return fmt.Sprintf("substr(%s, 1, length(:digest)) = :digest", col)
}

// content is what a REG holds as (image, digest, tag) rows: one row with
// tag ” per digest (index children left out), one per tag.
func content(src Source, param string) string {
	if src == FromManifests {
		return fmt.Sprintf(`SELECT %s, digest, tag FROM promotions WHERE %s`, rel("repository", param), under("repository", param))
	}
	return fmt.Sprintf(`SELECT %[1]s, rm.digest, '' FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id
    WHERE %[2]s AND %[3]s
  UNION
  SELECT %[1]s, t.digest, t.tag FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE %[2]s`,
		rel("r.name", param), under("r.name", param), isRoot)
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

func historySQL(cond string) string {
	return `SELECT h.at, h.repository, h.tag, h.change, COALESCE(h.old_digest, '') AS old_digest, COALESCE(h.new_digest, '') AS new_digest
FROM tag_history h
WHERE ` + under("h.repository", "reg") + cond + `
ORDER BY h.at, h.repository, h.tag, h.id`
}

const (
	sinceDate = ` AND julianday(h.at) >= julianday(:since)`
	sinceSync = ` AND EXISTS (SELECT 1 FROM repositories r WHERE r.name = h.repository AND julianday(h.at) >= julianday(r.synced_at))`
	onlyMoved = ` AND h.change = 'moved'`
)

var forms = []*Form{
	{
		Name:      "count-digests",
		Templates: []string{"how many [unique] digests in REG", "count [unique] digests in REG"},
		Example:   "how many unique digests in registry.example/prod",
		Doc:       "distinct manifest digests (index children included in the inventory; listed digests in manifests)",
		scope:     scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT COUNT(DISTINCT rm.digest) AS digests FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id WHERE ` + under("r.name", "reg"),
			"manifests": `SELECT COUNT(DISTINCT digest) AS digests FROM promotions WHERE ` + under("repository", "reg"),
		},
	},
	{
		Name:      "count-images",
		Templates: []string{"how many [unique] images in REG", "count [unique] images in REG"},
		Example:   "how many images in registry.example/prod",
		Doc:       "image names (repositories below REG holding at least one digest)",
		scope:     scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT COUNT(*) AS images FROM repositories r WHERE ` + under("r.name", "reg") + ` AND EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.repository_id = r.id)`,
			"manifests": `SELECT COUNT(DISTINCT repository) AS images FROM promotions WHERE ` + under("repository", "reg"),
		},
	},
	{
		Name:      "count-tags",
		Templates: []string{"how many [unique] tags in REG", "count [unique] tags in REG"},
		Example:   "how many tags in registry.example/prod",
		Doc:       "(repository, tag) pairs",
		scope:     scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT COUNT(*) AS tags FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE ` + under("r.name", "reg"),
			"manifests": `SELECT COUNT(*) AS tags FROM (SELECT DISTINCT repository, tag FROM promotions WHERE ` + under("repository", "reg") + ` AND tag <> '')`,
		},
	},
	{
		Name:      "count-repositories",
		Templates: []string{"how many [unique] repositories in REG", "count [unique] repositories in REG"},
		Example:   "how many repositories in registry.example",
		Doc:       "repositories at or below REG",
		scope:     scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT COUNT(*) AS repositories FROM repositories r WHERE ` + under("r.name", "reg"),
			"manifests": `SELECT COUNT(DISTINCT repository) AS repositories FROM promotions WHERE ` + under("repository", "reg"),
		},
	},
	{
		Name: "list-repositories",
		Templates: []string{"list repositories in REG", "what repositories in REG",
			"list repositories in REG matching PATTERN", "what repositories in REG matching PATTERN"},
		Example: "list repositories in registry.example matching *app*",
		Doc:     "repositories with their digest and tag counts; PATTERN is a glob on the name (a plain word matches anywhere)",
		scope:   scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT r.name AS repository,
  (SELECT COUNT(*) FROM repository_manifests rm WHERE rm.repository_id = r.id) AS digests,
  (SELECT COUNT(*) FROM tags t WHERE t.repository_id = r.id) AS tags
FROM repositories r
WHERE ` + under("r.name", "reg") + ` AND r.name GLOB :pattern
ORDER BY r.name`,
			"manifests": `SELECT repository, COUNT(DISTINCT digest) AS digests, COUNT(DISTINCT NULLIF(tag, '')) AS tags
FROM promotions
WHERE ` + under("repository", "reg") + ` AND repository GLOB :pattern
GROUP BY repository
ORDER BY repository`,
		},
	},
	{
		Name: "list-images",
		Templates: []string{"list images in REG", "what images in REG",
			"list images in REG matching PATTERN", "what images in REG matching PATTERN"},
		Example: "list images in registry.example/prod",
		Doc:     "image names relative to REG with digest and tag counts; PATTERN is a glob on the image name",
		scope:   scopeInREG,
		sql: map[string]string{
			"inventory": `SELECT ` + rel("r.name", "reg") + ` AS image,
  (SELECT COUNT(*) FROM repository_manifests rm WHERE rm.repository_id = r.id) AS digests,
  (SELECT COUNT(*) FROM tags t WHERE t.repository_id = r.id) AS tags
FROM repositories r
WHERE ` + under("r.name", "reg") + ` AND ` + rel("r.name", "reg") + ` GLOB :pattern
  AND EXISTS (SELECT 1 FROM repository_manifests rm WHERE rm.repository_id = r.id)
ORDER BY image`,
			"manifests": `SELECT ` + rel("repository", "reg") + ` AS image, COUNT(DISTINCT digest) AS digests, COUNT(DISTINCT NULLIF(tag, '')) AS tags
FROM promotions
WHERE ` + under("repository", "reg") + ` AND ` + rel("repository", "reg") + ` GLOB :pattern
GROUP BY image
ORDER BY image`,
		},
	},
	{
		Name: "list-tags",
		Templates: []string{"list tags in REG", "what tags in REG",
			"list tags in REG matching PATTERN", "what tags in REG matching PATTERN"},
		Example: "list tags in registry.example/prod matching v1.*",
		Doc:     "image, tag and digest; PATTERN is a glob on the tag",
		scope:   scopeInREG,
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
		Name:      "where-digest",
		Templates: []string{"where [is] DIGEST", "find DIGEST", "what repositories hold DIGEST"},
		Example:   "where is sha256:1111",
		Doc:       "repositories holding a digest (or a digest prefix), with its tags there",
		scope:     scopeInventory,
		sql: map[string]string{
			"inventory": `SELECT r.name AS repository, rm.digest AS digest, ` + tagsOf + ` AS tags
FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id
WHERE ` + digestPrefix("rm.digest") + `
ORDER BY r.name, rm.digest`,
		},
	},
	{
		Name:      "tags-of-digest",
		Templates: []string{"what tags point to DIGEST", "list tags of DIGEST", "what tags [are] on DIGEST"},
		Example:   "which tags point to sha256:1111",
		Doc:       "every (repository, tag) at a digest (or a digest prefix)",
		scope:     scopeInventory,
		sql: map[string]string{
			"inventory": `SELECT r.name AS repository, t.tag, t.digest
FROM tags t JOIN repositories r ON r.id = t.repository_id
WHERE ` + digestPrefix("t.digest") + `
ORDER BY r.name, t.tag`,
		},
	},
	{
		Name:      "not-promoted",
		Templates: []string{"what [is] not [yet] promoted to REG", "what [is] missing in REG", "what [is] left to promote to REG"},
		Example:   "what is not yet promoted to registry.example/prod",
		Doc:       "promotions (from the manifests) into REG that the inventory does not show done: a row per missing digest ('' tag) or tag",
		scope:     scopePromoted,
		sql: map[string]string{
			"manifests": `SELECT p.repository, p.digest, p.tag,
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
ORDER BY p.repository, p.digest, p.tag`,
		},
	},
	{
		Name:      "unmanaged",
		Templates: []string{"what in REG [is] in no manifest", "what in REG [is] not in any manifest", "unmanaged images in REG"},
		Example:   "what in registry.example/prod is in no manifest",
		Doc:       "digests REG holds (index children left out) that no loaded manifest promotes to that repository",
		scope:     scopeUnmanaged,
		sql: map[string]string{
			"inventory": `WITH RECURSIVE managed(repository, digest) AS (
  SELECT repository, digest FROM promotions WHERE ` + under("repository", "reg") + `
  UNION
  SELECT m.repository, c.child_digest FROM managed m JOIN manifest_children c ON c.parent_digest = m.digest
)
SELECT r.name AS repository, rm.digest AS digest, ` + tagsOf + ` AS tags
FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id
WHERE ` + under("r.name", "reg") + ` AND ` + isRoot + `
  AND NOT EXISTS (SELECT 1 FROM managed m WHERE m.repository = r.name AND m.digest = rm.digest)
ORDER BY r.name, rm.digest`,
		},
	},
	{
		Name:      "tags-moved",
		Templates: []string{"what tags moved in REG"},
		Example:   "which tags moved in registry.example/prod",
		Doc:       "every tag move the inventory recorded under REG",
		scope:     scopeInventory,
		sql:       map[string]string{"inventory": historySQL(onlyMoved)},
	},
	{
		Name:      "tags-moved-since",
		Templates: []string{"what tags moved in REG since DATE"},
		Example:   "which tags moved in registry.example/prod since 2026-01-01",
		Doc:       "tag moves recorded under REG at or after DATE (YYYY-MM-DD or RFC 3339, UTC)",
		scope:     scopeInventory,
		sql:       map[string]string{"inventory": historySQL(onlyMoved + sinceDate)},
	},
	{
		Name:      "tags-moved-last-sync",
		Templates: []string{"what tags moved in REG since [the] last sync", "what tags moved in REG [in the] last sync"},
		Example:   "which tags moved in registry.example/prod since the last sync",
		Doc:       "tag moves found by the latest sync of each repository under REG",
		scope:     scopeInventory,
		sql:       map[string]string{"inventory": historySQL(onlyMoved + sinceSync)},
	},
	{
		Name:      "changed-since",
		Templates: []string{"what changed in REG since DATE"},
		Example:   "what changed in registry.example/prod since 2026-01-01",
		Doc:       "tags added, moved or removed under REG at or after DATE",
		scope:     scopeInventory,
		sql:       map[string]string{"inventory": historySQL(sinceDate)},
	},
	{
		Name:      "changed-last-sync",
		Templates: []string{"what changed in REG since [the] last sync", "what changed in REG [in the] last sync"},
		Example:   "what changed in registry.example/prod since the last sync",
		Doc:       "tag changes found by the latest sync of each repository under REG",
		scope:     scopeInventory,
		sql:       map[string]string{"inventory": historySQL(sinceSync)},
	},
	{
		Name:      "largest",
		Templates: []string{"largest images in REG", "largest N images in REG", "top N largest images in REG", "top N images in REG"},
		Example:   "largest 5 images in registry.example/prod",
		Doc:       "digests under REG by total size (manifest, config and layers; an index adds its images), 20 unless N",
		scope:     scopeInventory,
		sql: map[string]string{
			"inventory": `SELECT r.name AS repository, rm.digest AS digest, ` + tagsOf + ` AS tags, s.total_size AS size
FROM repository_manifests rm JOIN repositories r ON r.id = rm.repository_id JOIN manifest_sizes s ON s.digest = rm.digest
WHERE ` + under("r.name", "reg") + ` AND ` + isRoot + `
ORDER BY s.total_size DESC, r.name, rm.digest
LIMIT :limit`,
		},
	},
	{
		Name:      "compare",
		Templates: []string{"compare REG with REG2", "compare REG to REG2", "diff REG REG2", "diff between REG with REG2"},
		Example:   "compare registry.example/staging with registry.example/prod",
		Doc:       "(image, digest, tag) rows only one side holds ('' tag: the digest itself); each side from the inventory when synced, else the manifests",
		scope:     scopeCompare,
		sql: map[string]string{
			"inventory/inventory": compareSQL(FromInventory, FromInventory),
			"inventory/manifests": compareSQL(FromInventory, FromManifests),
			"manifests/inventory": compareSQL(FromManifests, FromInventory),
			"manifests/manifests": compareSQL(FromManifests, FromManifests),
		},
	},
	{
		Name:      "platforms",
		Templates: []string{"what platforms [does] IMAGE [have]", "list platforms of IMAGE", "platforms of IMAGE"},
		Example:   "which platforms does registry.example/prod/multi:v2 have",
		Doc:       "os, architecture and variant of each child of the index IMAGE:TAG points to (one row with empty platform for a single image)",
		scope:     scopeInventory,
		sql: map[string]string{
			"inventory": `SELECT os, architecture, variant, digest FROM (
  SELECT c.os, c.architecture, c.variant, c.child_digest AS digest, c.position
  FROM tags t JOIN repositories r ON r.id = t.repository_id JOIN manifest_children c ON c.parent_digest = t.digest
  WHERE r.name = :image AND t.tag = :tag
  UNION ALL
  SELECT '', '', '', t.digest, 0
  FROM tags t JOIN repositories r ON r.id = t.repository_id JOIN manifests m ON m.digest = t.digest
  WHERE r.name = :image AND t.tag = :tag AND m.is_index = 0
)
ORDER BY position`,
		},
	},
	{
		Name:      "layer-users",
		Templates: []string{"what images use layer DIGEST", "who uses layer DIGEST"},
		Example:   "which images use layer sha256:aaaa",
		Doc:       "repositories and image digests whose layers include DIGEST (or a prefix)",
		scope:     scopeInventory,
		sql: map[string]string{
			"inventory": `SELECT DISTINCT r.name AS repository, rm.digest AS digest, ` + tagsOf + ` AS tags, b.blob_digest AS layer
FROM manifest_blobs b JOIN repository_manifests rm ON rm.digest = b.manifest_digest JOIN repositories r ON r.id = rm.repository_id
WHERE b.kind = 'layer' AND ` + digestPrefix("b.blob_digest") + `
ORDER BY r.name, rm.digest, layer`,
		},
	},
}

func init() {
	for _, f := range forms {
		for _, s := range f.Templates {
			f.templ = append(f.templ, parseTemplate(s))
		}
	}
}

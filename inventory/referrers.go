package inventory

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cipdev/cip/internal/referrer"
	"github.com/cipdev/cip/migrations"
)

// deriveReferrers recomputes the referrers rows a repository's tags show
// (found_by tag-schema and cosign-tag; rows the referrers API gave are
// kept): the referrers a sha256-<hex> index lists, and the manifests of
// sha256-<hex>.sig, .att and .sbom tags. The tag test is
// referrer.ParseTag's: "sha256-", 64 lowercase hex digits, and a known
// suffix or none. $REPO stands for the rows' filter: deriveOne's
// "repository_id = ?1" (?1 the repository's id), or deriveAll's "?1 IS
// NULL" (every repository: migration 0006 fills the rows of an older
// inventory so). One statement for both, "(?1 IS NULL OR repository_id =
// ?1)", kept SQLite from using the (repository_id, …) keys: each
// repository's write scanned every tag and referrer of the inventory, and
// a fresh crawl of 22 mirrors of 445 repositories spent three quarters of
// its CPU there (TestDeriveReferrersOneRepositorySearches).
const deriveReferrers = `
DELETE FROM referrers WHERE $REPO AND found_by IN ('tag-schema', 'cosign-tag');
INSERT OR IGNORE INTO referrers(repository_id, subject_digest, referrer_digest, artifact_type, found_by)
SELECT t.repository_id, 'sha256:' || substr(t.tag, 8, 64), c.child_digest, COALESCE(m.artifact_type, ''), 'tag-schema'
FROM tags t
JOIN manifest_children c ON c.parent_digest = t.digest
JOIN manifests m ON m.digest = c.child_digest
WHERE t.$REPO
  AND substr(t.tag, 1, 7) = 'sha256-' AND length(t.tag) = 71 AND NOT substr(t.tag, 8) GLOB '*[^0-9a-f]*'
UNION ALL
SELECT t.repository_id, 'sha256:' || substr(t.tag, 8, 64), t.digest,
    COALESCE((SELECT b.media_type FROM manifest_blobs b
              WHERE b.manifest_digest = t.digest AND b.kind = 'layer' ORDER BY b.position LIMIT 1),
             CASE substr(t.tag, 73) WHEN 'sig' THEN '` + referrer.CosignSimpleSigning + `'
                                    WHEN 'att' THEN '` + referrer.DSSEEnvelope + `'
                                    ELSE '` + referrer.CosignSBOMType + `' END),
    'cosign-tag'
FROM tags t
WHERE t.$REPO
  AND substr(t.tag, 1, 7) = 'sha256-' AND substr(t.tag, 73) IN ('sig', 'att', 'sbom') AND substr(t.tag, 72, 1) = '.'
  AND NOT substr(t.tag, 8, 64) GLOB '*[^0-9a-f]*'`

var (
	deriveOne = strings.ReplaceAll(deriveReferrers, "$REPO", "repository_id = ?1")
	deriveAll = strings.ReplaceAll(strings.ReplaceAll(deriveReferrers, "t.$REPO", "$REPO"), "$REPO", "?1 IS NULL")
)

// deriveReferrersOf recomputes the derived referrers rows of repository
// repoID, or of every repository when repoID is nil.
func deriveReferrersOf(ctx context.Context, tx *sql.Tx, repoID any) error {
	q := deriveOne
	if repoID == nil {
		q = deriveAll
	}
	if _, err := tx.ExecContext(ctx, q, repoID); err != nil {
		return fmt.Errorf("derive referrers from tags: %w", err)
	}
	return nil
}

// afterMigration runs Go code a migration needs after its SQL, in the
// same transaction: 0006 derives the referrers rows of the tags an older
// inventory already holds.
var afterMigration = map[int]func(context.Context, *sql.Tx) error{
	6: func(ctx context.Context, tx *sql.Tx) error { return deriveReferrersOf(ctx, tx, nil) },
}

// Referrer is one referrer a repository holds for a subject.
type Referrer struct {
	Subject, Digest string
	ArtifactType    string
	FoundBy         string // api, tag-schema or cosign-tag
}

// Ways a referrer is found (the found_by column).
const (
	FoundByAPI       = "api"
	FoundByTagSchema = "tag-schema"
	FoundByCosignTag = "cosign-tag"
)

// ReferrerState is what one look-up of a repository's referrers found
// (sync.Referrers): its referrer tags for some subjects, and what its
// referrers API answered for some subjects.
type ReferrerState struct {
	Repository string
	// TagSubjects are the subjects whose referrer tags were looked at in a
	// tag listing: Tags holds those the listing shows (tag -> digest), and
	// every other referrer tag of these subjects is gone. Nil when the
	// repository's tags were not listed by this look-up (a crawl of the
	// same run wrote them).
	TagSubjects []string
	Tags        map[string]string
	// Trusted names the tags of Tags taken from the inventory without a
	// HEAD (their checked_at is kept).
	Trusted map[string]bool
	// API maps each subject the referrers API was asked about to the
	// referrers it listed (their digests; none is an empty list).
	API map[string][]string
	// NoAPI lists subjects asked of a registry that does not serve the
	// referrers API (it answered 404).
	NoAPI []string
	// New holds every manifest the look-up got that the inventory lacks
	// (referrers, and the children of referrers that are indexes).
	New []*Manifest
}

// WriteReferrers records look-ups of referrers, each repository in one
// savepoint of one transaction: new manifests; the referrer tags of the
// subjects looked at (added, moved, removed, with tag history) and the
// digests they reach; the API's answers (replacing earlier API rows of
// the same subjects) and when they were given; then the referrers rows
// the repository's tags show. It returns the tag changes.
func (d *DB) WriteReferrers(ctx context.Context, runID int64, sts []ReferrerState) ([]TagChange, error) {
	if len(sts) == 0 {
		return nil, nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("record referrers of %s: %w", sts[0].Repository, err)
	}
	defer tx.Rollback()
	now := d.now()
	var changes []TagChange
	for _, st := range sts {
		cs, err := writeReferrers(ctx, tx, runID, st, now)
		if err != nil {
			return nil, fmt.Errorf("record referrers of %s: %w", st.Repository, err)
		}
		changes = append(changes, cs...)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("record referrers of %s: %w", sts[0].Repository, err)
	}
	return changes, nil
}

func writeReferrers(ctx context.Context, tx *sql.Tx, runID int64, st ReferrerState, now string) ([]TagChange, error) {
	if err := insertManifests(ctx, tx, st.New, now); err != nil {
		return nil, err
	}
	repoID, err := upsertRepository(ctx, tx, st.Repository)
	if err != nil {
		return nil, err
	}
	var changes []TagChange
	if st.TagSubjects != nil {
		old, err := queryTags(ctx, tx, st.Repository)
		if err != nil {
			return nil, err
		}
		was, cur := map[string]string{}, map[string]string{}
		for _, s := range st.TagSubjects {
			for _, k := range []referrer.Kind{referrer.TagSchema, referrer.CosignSignature, referrer.CosignAttestation, referrer.CosignSBOM} {
				tag := referrer.Tag(s, k)
				if tag == "" {
					continue
				}
				if dg, ok := old[tag]; ok {
					was[tag] = dg
				}
				if dg, ok := st.Tags[tag]; ok {
					cur[tag] = dg
				}
			}
		}
		for _, c := range diffTags(st.Repository, was, cur) {
			switch c.Change {
			case "removed":
				_, err = tx.ExecContext(ctx, `DELETE FROM tags WHERE repository_id = ? AND tag = ?`, repoID, c.Tag)
			default:
				_, err = tx.ExecContext(ctx, `INSERT INTO tags(repository_id, tag, digest, updated_at, checked_at) VALUES (?, ?, ?, ?, ?4)
					ON CONFLICT(repository_id, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at, checked_at = excluded.checked_at`,
					repoID, c.Tag, c.New, now)
			}
			if err != nil {
				return nil, fmt.Errorf("record tag %s: %w", c.Tag, err)
			}
			if err := insertHistory(ctx, tx, runID, c, now); err != nil {
				return nil, err
			}
			changes = append(changes, c)
		}
		for _, subject := range st.TagSubjects {
			if _, err := tx.ExecContext(ctx, `INSERT INTO referrer_tag_checks(repository_id, subject_digest, checked_at) VALUES (?, ?, ?)
				ON CONFLICT(repository_id, subject_digest) DO UPDATE SET checked_at = excluded.checked_at`, repoID, subject, now); err != nil {
				return nil, fmt.Errorf("record referrer tags check of %s: %w", subject, err)
			}
		}
		for tag, dg := range cur {
			if err := recordDigest(ctx, tx, repoID, Copy{Repository: st.Repository, Digest: dg}); err != nil {
				return nil, err
			}
			if st.Trusted[tag] {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE tags SET checked_at = ? WHERE repository_id = ? AND tag = ?`, now, repoID, tag); err != nil {
				return nil, fmt.Errorf("mark tag %s checked: %w", tag, err)
			}
		}
	}
	for _, subject := range sortedKeys(st.API) {
		if _, err := tx.ExecContext(ctx, `DELETE FROM referrers WHERE repository_id = ? AND subject_digest = ? AND found_by = 'api'`, repoID, subject); err != nil {
			return nil, fmt.Errorf("record referrers of %s: %w", subject, err)
		}
		for _, dg := range st.API[subject] {
			if err := recordDigest(ctx, tx, repoID, Copy{Repository: st.Repository, Digest: dg}); err != nil {
				return nil, err
			}
			if err := insertReferrer(ctx, tx, repoID, subject, dg, FoundByAPI); err != nil {
				return nil, err
			}
		}
		if err := recordCheck(ctx, tx, repoID, subject, true, now); err != nil {
			return nil, err
		}
	}
	for _, subject := range st.NoAPI {
		if err := recordCheck(ctx, tx, repoID, subject, false, now); err != nil {
			return nil, err
		}
	}
	if err := deriveReferrersOf(ctx, tx, repoID); err != nil {
		return nil, err
	}
	return changes, nil
}

// insertReferrer records that repository repoID holds referrer dg (a
// manifest the inventory has) for subject, with the manifest's artifact
// type; a row already there (found another way) is kept.
func insertReferrer(ctx context.Context, tx *sql.Tx, repoID int64, subject, dg, foundBy string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO referrers(repository_id, subject_digest, referrer_digest, artifact_type, found_by)
		SELECT ?, ?, m.digest, COALESCE(m.artifact_type, ''), ? FROM manifests m WHERE m.digest = ?
		ON CONFLICT DO NOTHING`, repoID, subject, foundBy, dg)
	if err != nil {
		return fmt.Errorf("record referrer %s of %s: %w", dg, subject, err)
	}
	return nil
}

func recordCheck(ctx context.Context, tx *sql.Tx, repoID int64, subject string, api bool, now string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO referrer_checks(repository_id, subject_digest, checked_at, api) VALUES (?, ?, ?, ?)
		ON CONFLICT(repository_id, subject_digest) DO UPDATE SET checked_at = excluded.checked_at, api = excluded.api`, repoID, subject, now, api)
	if err != nil {
		return fmt.Errorf("record referrers check of %s: %w", subject, err)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// FreshReferrerChecks returns the subjects of repo whose referrers cip
// asked the registry's referrers API about at or after since, with
// whether the registry served the API then.
func (d *DB) FreshReferrerChecks(ctx context.Context, repo string, since time.Time) (map[string]bool, error) {
	rows, err := d.cached().QueryContext(ctx, `SELECT c.subject_digest, c.api FROM referrer_checks c JOIN repositories r ON r.id = c.repository_id
		WHERE r.name = ? AND julianday(c.checked_at) >= julianday(?)`, repo, since.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return nil, fmt.Errorf("read referrer checks of %s: %w", repo, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var s string
		var api bool
		if err := rows.Scan(&s, &api); err != nil {
			return nil, fmt.Errorf("read referrer checks of %s: %w", repo, err)
		}
		out[s] = api
	}
	return out, rows.Err()
}

// FreshReferrerTags reports what cip knows of repo's referrer tags as of
// since: listed is true when a complete crawl listed the repository at or
// after since (every subject's referrer tags are then in the inventory as
// the listing showed them); subjects names the subjects whose referrer
// tags a referrers look-up's live listing showed at or after since.
func (d *DB) FreshReferrerTags(ctx context.Context, repo string, since time.Time) (listed bool, subjects map[string]bool, err error) {
	at := since.UTC().Format(time.RFC3339Nano)
	err = d.cached().QueryRowContext(ctx, `SELECT COUNT(*) > 0 FROM repositories WHERE name = ? AND julianday(synced_at) >= julianday(?)`, repo, at).Scan(&listed)
	if err != nil {
		return false, nil, fmt.Errorf("read when %s was crawled: %w", repo, err)
	}
	rows, err := d.cached().QueryContext(ctx, `SELECT c.subject_digest FROM referrer_tag_checks c JOIN repositories r ON r.id = c.repository_id
		WHERE r.name = ? AND julianday(c.checked_at) >= julianday(?)`, repo, at)
	if err != nil {
		return false, nil, fmt.Errorf("read referrer tag checks of %s: %w", repo, err)
	}
	defer rows.Close()
	subjects = map[string]bool{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return false, nil, fmt.Errorf("read referrer tag checks of %s: %w", repo, err)
		}
		subjects[s] = true
	}
	if err := rows.Err(); err != nil {
		return false, nil, fmt.Errorf("read referrer tag checks of %s: %w", repo, err)
	}
	return listed, subjects, nil
}

// Referrers returns the referrers repo holds for subject, by digest.
func (d *DB) Referrers(ctx context.Context, repo, subject string) ([]Referrer, error) {
	rows, err := d.cached().QueryContext(ctx, `SELECT f.subject_digest, f.referrer_digest, f.artifact_type, f.found_by
		FROM referrers f JOIN repositories r ON r.id = f.repository_id
		WHERE r.name = ? AND f.subject_digest = ? ORDER BY f.referrer_digest`, repo, subject)
	if err != nil {
		return nil, fmt.Errorf("read referrers of %s@%s: %w", repo, subject, err)
	}
	defer rows.Close()
	var out []Referrer
	for rows.Next() {
		var f Referrer
		if err := rows.Scan(&f.Subject, &f.Digest, &f.ArtifactType, &f.FoundBy); err != nil {
			return nil, fmt.Errorf("read referrers of %s@%s: %w", repo, subject, err)
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// ReferrerDigests returns the digests repo holds as referrers of another,
// however found.
func (d *DB) ReferrerDigests(ctx context.Context, repo string) (map[string]bool, error) {
	rows, err := d.cached().QueryContext(ctx, `SELECT DISTINCT f.referrer_digest FROM referrers f JOIN repositories r ON r.id = f.repository_id WHERE r.name = ?`, repo)
	if err != nil {
		return nil, fmt.Errorf("read referrers of %s: %w", repo, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("read referrers of %s: %w", repo, err)
		}
		out[s] = true
	}
	return out, rows.Err()
}

// SourceDigest is a wanted digest in the source repository that holds it.
type SourceDigest struct {
	Repository, Digest string
}

// WantedSourceDigests lists, for load loadID, every wanted digest with the
// first source repository (by name) that holds it, by repository and
// digest: the subjects whose referrers travel with them.
func (d *DB) WantedSourceDigests(ctx context.Context, loadID int64) ([]SourceDigest, error) {
	rows, err := d.db.QueryContext(ctx, `
		SELECT DISTINCT (SELECT sr.name FROM wanted_route_sources s
		        JOIN repositories sr ON sr.name = s.src || '/' || w.image
		        JOIN repository_manifests srm ON srm.repository_id = sr.id AND srm.digest = w.digest
		        WHERE s.set_id = w.set_id AND s.route = w.route
		        ORDER BY s.src LIMIT 1) AS repo, w.digest
		FROM manifest_loads l CROSS JOIN wanted_digests w ON w.set_id = l.set_id
		WHERE l.id = ? AND repo IS NOT NULL
		ORDER BY repo, w.digest`, loadID)
	if err != nil {
		return nil, fmt.Errorf("read wanted source digests of load %d: %w", loadID, err)
	}
	defer rows.Close()
	var out []SourceDigest
	for rows.Next() {
		var s SourceDigest
		if err := rows.Scan(&s.Repository, &s.Digest); err != nil {
			return nil, fmt.Errorf("read wanted source digests of load %d: %w", loadID, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// UnsourcedDigests lists, for load loadID, the wanted digests that no
// source repository holds as far as the inventory knows, each with its
// first source repository (by name), by repository and digest: a
// destination that already has them never made cip read the source.
func (d *DB) UnsourcedDigests(ctx context.Context, loadID int64) ([]SourceDigest, error) {
	rows, err := d.db.QueryContext(ctx, `
		SELECT DISTINCT (SELECT MIN(s.src) FROM wanted_route_sources s WHERE s.set_id = w.set_id AND s.route = w.route) || '/' || w.image AS repo, w.digest
		FROM manifest_loads l CROSS JOIN wanted_digests w ON w.set_id = l.set_id
		WHERE l.id = ? AND NOT EXISTS (
			SELECT 1 FROM wanted_route_sources s
			JOIN repositories sr ON sr.name = s.src || '/' || w.image
			JOIN repository_manifests srm ON srm.repository_id = sr.id AND srm.digest = w.digest
			WHERE s.set_id = w.set_id AND s.route = w.route)
		ORDER BY repo, w.digest`, loadID)
	if err != nil {
		return nil, fmt.Errorf("read unsourced digests of load %d: %w", loadID, err)
	}
	defer rows.Close()
	var out []SourceDigest
	for rows.Next() {
		var s SourceDigest
		if err := rows.Scan(&s.Repository, &s.Digest); err != nil {
			return nil, fmt.Errorf("read unsourced digests of load %d: %w", loadID, err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ActionRefer is the plan action of a referrer to copy.
const ActionRefer = "refer"

// ReferRow is a referrer that travels with a wanted digest: the source
// repository holds it for Subject (the wanted digest, one of its index
// children, or another referrer Depth-1 levels down), and the destination
// repository does not (Held, when asked for every row).
type ReferRow struct {
	Dst          string `json:"destination"`
	Image        string `json:"image"`
	DstRepo      string `json:"destination_repository"`
	SrcRepo      string `json:"source_repository"`
	Digest       string `json:"digest"` // the wanted digest it travels with
	Subject      string `json:"subject"`
	Referrer     string `json:"referrer"`
	ArtifactType string `json:"artifact_type"`
	FoundBy      string `json:"found_by"` // how the source holds it: api, tag-schema or cosign-tag
	Depth        int    `json:"depth"`    // 1 for a referrer of the digest or a child, 2 for a referrer of that, ...
	Held         bool   `json:"held"`     // the destination holds it (only when every row was asked for)
	File         string `json:"file"`
	Line         int    `json:"line"`
}

// Refers reads the referrers that travel with load loadID's wanted
// digests (migrations/plan_referrers.sql): those sel selects, along with
// every referrer between them and the wanted digest, at most maxDepth
// levels of referrers of referrers deep. It lists those the destination
// lacks, or with all every one (Held says which). Each (destination
// repository, subject, referrer) comes once, at its smallest depth,
// ordered by destination, image, wanted digest, depth, subject and
// referrer.
func (d *DB) Refers(ctx context.Context, loadID int64, sel referrer.Selection, maxDepth int, all bool) ([]ReferRow, error) {
	if sel.None() {
		return nil, nil
	}
	rows, err := d.db.QueryContext(ctx, migrations.PlanReferrers, loadID, maxDepth, all)
	if err != nil {
		return nil, fmt.Errorf("read referrers of load %d: %w", loadID, err)
	}
	defer rows.Close()
	type key struct{ dstRepo, subject, referrer string }
	at := map[key]int{}
	var out []ReferRow
	for rows.Next() {
		var r ReferRow
		var chain string
		if err := rows.Scan(&r.Dst, &r.Image, &r.DstRepo, &r.SrcRepo, &r.Digest, &r.Subject, &r.Referrer, &r.ArtifactType,
			&r.FoundBy, &r.Depth, &chain, &r.File, &r.Line, &r.Held); err != nil {
			return nil, fmt.Errorf("read referrers of load %d: %w", loadID, err)
		}
		var types []string
		if err := json.Unmarshal([]byte(chain), &types); err != nil {
			return nil, fmt.Errorf("read referrers of load %d: chain %q: %w", loadID, chain, err)
		}
		if !slices.ContainsFunc(types, func(t string) bool { return !sel.Match(t) }) {
			k := key{r.DstRepo, r.Subject, r.Referrer}
			if i, ok := at[k]; !ok {
				at[k] = len(out)
				out = append(out, r)
			} else if r.Depth < out[i].Depth {
				out[i] = r
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read referrers of load %d: %w", loadID, err)
	}
	slices.SortFunc(out, func(a, b ReferRow) int {
		return cmp.Or(strings.Compare(a.Dst, b.Dst), strings.Compare(a.Image, b.Image), strings.Compare(a.Digest, b.Digest),
			cmp.Compare(a.Depth, b.Depth), strings.Compare(a.Subject, b.Subject), strings.Compare(a.Referrer, b.Referrer))
	})
	return out, nil
}

// RecordReferrers records, in one transaction, referrers cip put: each
// referrer's manifest (ms: those cip built, a merged fallback index or
// cosign tag; the others are in the inventory already), that the
// repository holds it, how a client finds it there (rs), and the tags cip
// moved or added for them (tags: repository, tag, digest), with the
// referrers rows those tags show. forget lists (repository, digest) pairs
// a merge superseded: a cosign tag's previous manifest, whose every layer
// the merged one holds. The registry keeps it untagged, as cosign leaves
// it; the inventory stops recording it there (unless a tag still names
// it), so that no crawl confirms it with a HEAD on every run.
func (d *DB) RecordReferrers(ctx context.Context, runID int64, ms []*Manifest, rs []RecordedReferrer, tags, forget []Copy) ([]TagChange, error) {
	if len(ms) == 0 && len(rs) == 0 && len(tags) == 0 && len(forget) == 0 {
		return nil, nil
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("record referrers: %w", err)
	}
	defer tx.Rollback()
	now := d.now()
	if err := insertManifests(ctx, tx, ms, now); err != nil {
		return nil, fmt.Errorf("record referrers: %w", err)
	}
	ids := map[string]int64{}
	id := func(repo string) (int64, error) {
		if v, ok := ids[repo]; ok {
			return v, nil
		}
		v, err := upsertRepository(ctx, tx, repo)
		ids[repo] = v
		return v, err
	}
	for _, r := range rs {
		repoID, err := id(r.Repository)
		if err != nil {
			return nil, err
		}
		if err := recordDigest(ctx, tx, repoID, Copy{Repository: r.Repository, Digest: r.Digest}); err != nil {
			return nil, err
		}
		if r.FoundBy == FoundByAPI {
			if err := insertReferrer(ctx, tx, repoID, r.Subject, r.Digest, FoundByAPI); err != nil {
				return nil, err
			}
		}
	}
	var changes []TagChange
	for _, c := range tags {
		repoID, err := id(c.Repository)
		if err != nil {
			return nil, err
		}
		if err := recordDigest(ctx, tx, repoID, c); err != nil {
			return nil, err
		}
		tc, err := recordTag(ctx, tx, runID, repoID, c, now)
		if err != nil {
			return nil, err
		}
		if tc.Change != "" {
			changes = append(changes, tc)
		}
	}
	for _, c := range forget {
		repoID, err := id(c.Repository)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM repository_manifests WHERE repository_id = ?1 AND digest = ?2
			AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = ?1 AND t.digest = ?2)`, repoID, c.Digest); err != nil {
			return nil, fmt.Errorf("forget %s@%s: %w", c.Repository, c.Digest, err)
		}
	}
	for _, repoID := range ids {
		if err := deriveReferrersOf(ctx, tx, repoID); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("record referrers: %w", err)
	}
	return changes, nil
}

// RecordedReferrer is a referrer cip put into a repository for a subject:
// FoundBy is how clients find it there (api when the registry answered the
// PUT with OCI-Subject; otherwise the tags recorded with it show it).
type RecordedReferrer struct {
	Repository, Subject, Digest, FoundBy string
}

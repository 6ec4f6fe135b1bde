package inventory

import (
	"context"
	"fmt"
)

// UntaggedDigest is a digest a repository holds that none of its tags
// reaches, with those of its children (as the inventory records them)
// that are untagged in the repository too.
type UntaggedDigest struct {
	Digest   string
	Children []string // sorted
}

// UntaggedDigests returns what repo holds without a tag, by digest: what
// cip put there untagged, what a live HEAD found there (a manifest named
// it), what GCR's listing showed, and the untagged children of each. A
// registry's tag listing cannot show these (outside GCR's extension), so
// a crawl confirms them by digest instead of forgetting them. A digest
// some tag of the inventory reaches (an index's child included) is not
// listed: a crawl learns about it from the tags.
func (d *DB) UntaggedDigests(ctx context.Context, repo string) ([]UntaggedDigest, error) {
	rows, err := d.cached().QueryContext(ctx, `
		WITH RECURSIVE repo(id) AS (SELECT id FROM repositories WHERE name = ?),
		reach(digest) AS (
			SELECT t.digest FROM tags t JOIN repo ON t.repository_id = repo.id
			UNION
			SELECT c.child_digest FROM manifest_children c JOIN reach r ON c.parent_digest = r.digest
		),
		untagged(digest) AS (
			SELECT rm.digest FROM repository_manifests rm JOIN repo ON rm.repository_id = repo.id
			WHERE rm.digest NOT IN (SELECT digest FROM reach)
		)
		SELECT u.digest, COALESCE(c.child_digest, '')
		FROM untagged u
		LEFT JOIN manifest_children c ON c.parent_digest = u.digest AND c.child_digest IN (SELECT digest FROM untagged)
		ORDER BY u.digest, c.child_digest`, repo)
	if err != nil {
		return nil, fmt.Errorf("read untagged digests of %s: %w", repo, err)
	}
	defer rows.Close()
	var out []UntaggedDigest
	for rows.Next() {
		var dg, child string
		if err := rows.Scan(&dg, &child); err != nil {
			return nil, fmt.Errorf("read untagged digests of %s: %w", repo, err)
		}
		if n := len(out); n == 0 || out[n-1].Digest != dg {
			out = append(out, UntaggedDigest{Digest: dg})
		}
		if child != "" {
			u := &out[len(out)-1]
			if n := len(u.Children); n == 0 || u.Children[n-1] != child {
				u.Children = append(u.Children, child)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read untagged digests of %s: %w", repo, err)
	}
	return out, nil
}

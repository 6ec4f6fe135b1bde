-- Planning by set difference (inventory.Plan's pendingQuery, see
-- docs/schema.md): for each (destination repository, image) target, the
-- wanted (tag, digest) pairs EXCEPT the repository's tags, and the wanted
-- untagged digests EXCEPT the digests the repository holds. SQLite runs
-- such an EXCEPT as a merge of two ranges in the same order.
--
-- M's tags in tag order (the tags table is in tag order per repository;
-- the primary key is in digest order, for the tags of one wanted digest).
CREATE INDEX wanted_tags_by_tag ON wanted_tags(set_id, route, image, tag, digest);

-- Whether a wanted digest carries tags. A repository holds every digest
-- its tags point at (WriteRepository and RecordCopies keep this), so a
-- tagged digest is judged by its tags and only untagged digests need the
-- digest difference: the partial index keeps that side empty when, as in
-- the Kubernetes manifests, every digest is tagged.
ALTER TABLE wanted_digests ADD COLUMN tagged INTEGER NOT NULL DEFAULT 0;
UPDATE wanted_digests SET tagged = EXISTS (
    SELECT 1 FROM wanted_tags t
    WHERE t.set_id = wanted_digests.set_id AND t.route = wanted_digests.route
      AND t.image = wanted_digests.image AND t.digest = wanted_digests.digest);
CREATE INDEX wanted_digests_untagged ON wanted_digests(set_id, route, image, digest) WHERE tagged = 0;

-- The invariant above, for tags recorded before RecordCopies kept it.
INSERT OR IGNORE INTO repository_manifests(repository_id, digest)
SELECT repository_id, digest FROM tags;

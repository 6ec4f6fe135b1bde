-- The plan's pending rows, by set difference: what inventory.Plan runs
-- instead of reading the plan and plan_tag_moves views (0003, 0004), with
-- the same rows. Not a migration: it is read, not applied, and
-- TestPlanEqualsViews holds it equal to the views on random inventories.
-- Change it together with them.
--
-- For load ?1: the plan view's rows that are not skip, and the
-- plan_tag_moves view, computed as set differences: for each (destination
-- repository, image) target, the wanted (tag, digest) pairs EXCEPT the
-- repository's tags, and the wanted untagged digests EXCEPT the digests the
-- repository holds. A repository holds every digest its tags point at
-- (WriteRepository and RecordCopies keep it so), so a tagged digest with
-- all its wanted tags is held, and one with a tag missing is looked up
-- once. SQLite evaluates each EXCEPT as a merge of two index ranges already
-- in order (EXPLAIN QUERY PLAN: MERGE (EXCEPT)), so a steady-state plan
-- reads M and D sequentially instead of seeking D once per wanted row; only
-- what the differences leave (the pending few) is looked up one by one.
-- Rows have kind 'row', moves kind 'move'; inventory.Plan sorts them.
--
-- The join order is forced (MATERIALIZED, CROSS JOIN, INDEXED BY the
-- primary key of repository_manifests, whose rows of one repository are
-- adjacent): without statistics the planner otherwise scans tags or seeks
-- repository_manifests by digest, minutes instead of a second at k8s.io
-- scale (BenchmarkPlanK8s).
WITH tg AS MATERIALIZED (
    SELECT t.set_id, t.route, t.dst, t.image, t.dst_repo, t.repository_id, g.src, g.file,
        sr.id AS src_repository_id,
        (SELECT COUNT(*) FROM wanted_route_sources s WHERE s.set_id = t.set_id AND s.route = t.route) AS sources,
        CASE WHEN t.repository_id IS NOT NULL THEN
        (SELECT json_group_array(digest) FROM (
            SELECT w.digest FROM wanted_digests w INDEXED BY wanted_digests_untagged
            WHERE w.set_id = t.set_id AND w.route = t.route AND w.image = t.image AND w.tagged = 0
            EXCEPT
            SELECT rm.digest FROM repository_manifests rm WHERE rm.repository_id = t.repository_id
            ORDER BY 1)) END AS untagged_absent,
        CASE WHEN t.repository_id IS NOT NULL THEN
        (SELECT json_group_array(json_array(tag, digest)) FROM (
            SELECT wt.tag, wt.digest FROM wanted_tags wt INDEXED BY wanted_tags_by_tag
            WHERE wt.set_id = t.set_id AND wt.route = t.route AND wt.image = t.image
            EXCEPT
            SELECT dt.tag, dt.digest FROM tags dt WHERE dt.repository_id = t.repository_id
            ORDER BY 1, 2)) END AS tags_absent
    FROM plan_targets t
    CROSS JOIN wanted_routes g ON g.set_id = t.set_id AND g.route = t.route
    LEFT JOIN repositories sr ON sr.name = g.src || '/' || t.image
    WHERE t.load_id = ?1
),
tags_absent AS MATERIALIZED (
    SELECT tg.set_id, tg.route, tg.dst, tg.image, tg.dst_repo, tg.repository_id, tg.src, tg.file,
        tg.src_repository_id, tg.sources, j.value ->> 0 AS tag, j.value ->> 1 AS digest,
        EXISTS (SELECT 1 FROM repository_manifests rm INDEXED BY sqlite_autoindex_repository_manifests_1
                WHERE rm.repository_id = tg.repository_id AND rm.digest = j.value ->> 1) AS held
    FROM tg, json_each(tg.tags_absent) j
),
absent AS (
    -- A repository the inventory does not know lacks every wanted digest
    -- (a new destination, a first run): no difference to take.
    SELECT tg.set_id, tg.route, tg.dst, tg.image, tg.dst_repo, tg.repository_id, tg.src, tg.file,
        tg.src_repository_id, tg.sources, w.digest
    FROM tg CROSS JOIN wanted_digests w ON w.set_id = tg.set_id AND w.route = tg.route AND w.image = tg.image
    WHERE tg.repository_id IS NULL
    UNION ALL
    SELECT tg.set_id, tg.route, tg.dst, tg.image, tg.dst_repo, tg.repository_id, tg.src, tg.file,
        tg.src_repository_id, tg.sources, j.value AS digest
    FROM tg, json_each(tg.untagged_absent) j
    UNION ALL
    SELECT DISTINCT x.set_id, x.route, x.dst, x.image, x.dst_repo, x.repository_id, x.src, x.file,
        x.src_repository_id, x.sources, x.digest
    FROM tags_absent x WHERE NOT x.held
),
pending AS (
    -- Digests the destination repository lacks: copy from the first source
    -- (by name) that holds them, else lost.
    SELECT a.set_id, a.route, a.dst, a.image, a.dst_repo, a.src, a.file, a.digest, 0 AS in_dst,
        CASE
            WHEN EXISTS (SELECT 1 FROM repository_manifests srm INDEXED BY sqlite_autoindex_repository_manifests_1
                         WHERE srm.repository_id = a.src_repository_id AND srm.digest = a.digest)
                THEN a.src || '/' || a.image
            WHEN a.sources > 1 THEN
                (SELECT s.src || '/' || a.image FROM wanted_route_sources s
                 JOIN repositories sr ON sr.name = s.src || '/' || a.image
                 JOIN repository_manifests srm INDEXED BY sqlite_autoindex_repository_manifests_1
                     ON srm.repository_id = sr.id AND srm.digest = a.digest
                 WHERE s.set_id = a.set_id AND s.route = a.route
                 ORDER BY s.src LIMIT 1)
        END AS src_repo,
        (SELECT json_array(group_concat(wt.tag, ' '), group_concat(CASE WHEN NOT EXISTS (
                SELECT 1 FROM tags dt WHERE dt.repository_id = a.repository_id AND dt.tag = wt.tag AND dt.digest = a.digest)
                THEN wt.tag END, ' '))
         FROM (SELECT wt.tag FROM wanted_tags wt
               WHERE wt.set_id = a.set_id AND wt.route = a.route AND wt.image = a.image AND wt.digest = a.digest
               ORDER BY wt.tag) wt) AS tags
    FROM absent a
    UNION ALL
    -- Digests the destination repository holds without every wanted tag.
    SELECT x.set_id, x.route, x.dst, x.image, x.dst_repo, x.src, x.file, x.digest, 1, NULL,
        json_array((SELECT group_concat(wt.tag, ' ') FROM (SELECT wt.tag FROM wanted_tags wt
                    WHERE wt.set_id = x.set_id AND wt.route = x.route AND wt.image = x.image AND wt.digest = x.digest
                    ORDER BY wt.tag) wt),
                   group_concat(x.tag, ' '))
    FROM tags_absent x WHERE x.held
    GROUP BY x.set_id, x.route, x.dst, x.image, x.digest
)
SELECT 'row' AS kind, p.dst, p.image, p.digest,
    CASE WHEN p.in_dst THEN 'tag' WHEN p.src_repo IS NOT NULL THEN 'copy' ELSE 'lost' END,
    p.src, COALESCE(p.src_repo, ''), p.dst_repo,
    COALESCE(p.tags ->> 0, ''), COALESCE(p.tags ->> 1, ''), p.file, w.line
FROM pending p
CROSS JOIN wanted_digests w ON w.set_id = p.set_id AND w.route = p.route AND w.image = p.image AND w.digest = p.digest
UNION ALL
-- Tag moves: a wanted (tag, digest) the repository lacks while it has the tag.
SELECT 'move', x.dst, x.image, x.tag, '', '', dt.digest, x.digest, '', '', x.file, wt.line
FROM tags_absent x
CROSS JOIN tags dt ON dt.repository_id = x.repository_id AND dt.tag = x.tag
CROSS JOIN wanted_tags wt ON wt.set_id = x.set_id AND wt.route = x.route AND wt.image = x.image
    AND wt.digest = x.digest AND wt.tag = x.tag

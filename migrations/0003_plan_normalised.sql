-- Promotion, normalised: the manifests' intent (M) is stored once per
-- distinct manifest set (keyed by a content hash) as routes (a manifest's
-- source and destinations) and the images, digests and tags they carry;
-- M × destinations is a join, not a table. A load whose manifests did not
-- change reuses the set and inserts one manifest_loads row. The plan views
-- resolve each (destination, image) repository once and look digests and
-- tags up by repository id. Replaces 0002's per-destination M tables and
-- views; docs/schema.md ("Plan queries") explains them.

DROP VIEW plan_tag_moves;
DROP VIEW plan;
DROP VIEW plan_digests;
DROP TABLE wanted_tags;
DROP TABLE wanted_sources;
DROP TABLE wanted_digests;
DROP TABLE manifest_loads;

-- One distinct manifest set (what a load promotes), by content.
CREATE TABLE wanted_sets (
    id         INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,     -- sha256 of the set's routes, images, digests and tags
    created_at TEXT NOT NULL
);

-- One load of promoter manifests (a promote, run or verify command).
CREATE TABLE manifest_loads (
    id        INTEGER PRIMARY KEY,
    loaded_at TEXT NOT NULL,
    origin    TEXT NOT NULL,             -- the --manifest file or --thin-manifest-dir
    set_id    INTEGER NOT NULL REFERENCES wanted_sets(id)
);
CREATE INDEX manifest_loads_set ON manifest_loads(set_id);

-- A route: one manifest's source and destination registries (manifests
-- naming one digest for one destination are merged into routes of their
-- own, so that each (destination, image, digest) has one route).
CREATE TABLE wanted_routes (
    set_id INTEGER NOT NULL REFERENCES wanted_sets(id) ON DELETE CASCADE,
    route  INTEGER NOT NULL,
    src    TEXT NOT NULL,                -- source registry (the first by name when several)
    file   TEXT NOT NULL,                -- images file (the first in file order)
    PRIMARY KEY (set_id, route)
) WITHOUT ROWID;

-- The source registries a route's digests may come from (usually one).
CREATE TABLE wanted_route_sources (
    set_id INTEGER NOT NULL REFERENCES wanted_sets(id) ON DELETE CASCADE,
    route  INTEGER NOT NULL,
    src    TEXT NOT NULL,                -- source registry, e.g. gcr.io/k8s-staging-foo
    PRIMARY KEY (set_id, route, src)
) WITHOUT ROWID;

-- A route's destination registries.
CREATE TABLE wanted_destinations (
    set_id INTEGER NOT NULL REFERENCES wanted_sets(id) ON DELETE CASCADE,
    route  INTEGER NOT NULL,
    dst    TEXT NOT NULL,                -- destination registry, e.g. us-docker.pkg.dev/k8s-artifacts-prod/images/foo
    PRIMARY KEY (set_id, route, dst)
) WITHOUT ROWID;

-- The images a route promotes.
CREATE TABLE wanted_images (
    set_id INTEGER NOT NULL REFERENCES wanted_sets(id) ON DELETE CASCADE,
    route  INTEGER NOT NULL,
    image  TEXT NOT NULL,                -- image path below the registries, e.g. pause
    PRIMARY KEY (set_id, route, image)
) WITHOUT ROWID;

-- M: one row per (route, image, digest); with the route's destinations,
-- one wanted (destination, image, digest) each.
CREATE TABLE wanted_digests (
    set_id INTEGER NOT NULL REFERENCES wanted_sets(id) ON DELETE CASCADE,
    route  INTEGER NOT NULL,
    image  TEXT NOT NULL,
    digest TEXT NOT NULL,
    line   INTEGER NOT NULL,             -- line of the digest in the route's file
    PRIMARY KEY (set_id, route, image, digest)
) WITHOUT ROWID;

-- M's tags: (route, image, digest, tag). Loading guarantees one digest per
-- (destination, image, tag).
CREATE TABLE wanted_tags (
    set_id INTEGER NOT NULL REFERENCES wanted_sets(id) ON DELETE CASCADE,
    route  INTEGER NOT NULL,
    image  TEXT NOT NULL,
    digest TEXT NOT NULL,
    tag    TEXT NOT NULL,
    line   INTEGER NOT NULL,
    PRIMARY KEY (set_id, route, image, digest, tag)
) WITHOUT ROWID;

-- Each load's (destination, image) targets with the destination repository
-- resolved once: repository_id is NULL while the repository is unknown.
CREATE VIEW plan_targets AS
SELECT l.id AS load_id, l.set_id, d.route, d.dst, i.image,
    d.dst || '/' || i.image AS dst_repo,
    r.id AS repository_id
FROM manifest_loads l
CROSS JOIN wanted_destinations d ON d.set_id = l.set_id
CROSS JOIN wanted_images i ON i.set_id = d.set_id AND i.route = d.route
LEFT JOIN repositories r ON r.name = d.dst || '/' || i.image;

-- The plan: one action per wanted (destination, image, digest).
--   skip: M ∩ D, the digest is there with every wanted tag
--   tag:  the digest is there, some wanted tags are not (no blob traffic)
--   copy: (M ∩ S) \ D, in a source repository and not in the destination
--   lost: M \ (S ∪ D), in neither (a warning)
CREATE VIEW plan AS
SELECT load_id, dst, image, digest, dst_repo, src, src_repo,
    COALESCE(tags, '') AS tags,
    COALESCE(tags_missing, '') AS tags_missing,
    CASE
        WHEN in_dst AND tags_missing IS NULL THEN 'skip'
        WHEN in_dst THEN 'tag'
        WHEN src_repo IS NOT NULL THEN 'copy'
        ELSE 'lost'
    END AS action,
    file, line
FROM (
    SELECT t.load_id, t.dst, t.image, w.digest, t.dst_repo, g.src, g.file, w.line,
        rm.digest IS NOT NULL AS in_dst,
        -- The first source (by name) whose repository holds the digest, looked
        -- up only for digests the destination lacks.
        CASE WHEN rm.digest IS NULL THEN
            (SELECT s.src || '/' || w.image FROM wanted_route_sources s
             JOIN repositories sr ON sr.name = s.src || '/' || w.image
             JOIN repository_manifests srm ON srm.repository_id = sr.id AND srm.digest = w.digest
             WHERE s.set_id = w.set_id AND s.route = w.route
             ORDER BY s.src LIMIT 1)
        END AS src_repo,
        (SELECT group_concat(wt.tag, ' ') FROM (SELECT wt.tag FROM wanted_tags wt
             WHERE wt.set_id = w.set_id AND wt.route = w.route AND wt.image = w.image AND wt.digest = w.digest
             ORDER BY wt.tag) wt) AS tags,
        (SELECT group_concat(wt.tag, ' ') FROM (SELECT wt.tag FROM wanted_tags wt
             WHERE wt.set_id = w.set_id AND wt.route = w.route AND wt.image = w.image AND wt.digest = w.digest
               AND NOT EXISTS (SELECT 1 FROM tags dt
                               WHERE dt.repository_id = t.repository_id AND dt.tag = wt.tag AND dt.digest = wt.digest)
             ORDER BY wt.tag) wt) AS tags_missing
    FROM plan_targets t
    CROSS JOIN wanted_digests w ON w.set_id = t.set_id AND w.route = t.route AND w.image = t.image
    JOIN wanted_routes g ON g.set_id = w.set_id AND g.route = w.route
    LEFT JOIN repository_manifests rm ON rm.repository_id = t.repository_id AND rm.digest = w.digest
);

-- Tag moves: a wanted tag that the destination repository already has at
-- another digest. cip refuses to move tags; any row here stops the run.
CREATE VIEW plan_tag_moves AS
SELECT t.load_id, t.dst, t.image, wt.tag, dt.digest AS digest_now, wt.digest AS digest_wanted, g.file, wt.line
FROM plan_targets t
CROSS JOIN wanted_tags wt ON wt.set_id = t.set_id AND wt.route = t.route AND wt.image = t.image
JOIN tags dt ON dt.repository_id = t.repository_id AND dt.tag = wt.tag
JOIN wanted_routes g ON g.set_id = wt.set_id AND g.route = wt.route
WHERE dt.digest <> wt.digest;

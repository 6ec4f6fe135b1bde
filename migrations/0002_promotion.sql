-- Promotion: the manifests' intent (M) loaded into tables, and the plan as
-- views over M, the source repositories (S) and the destination
-- repositories (D). Every `cip promote`, `cip run` and `cip verify` loads
-- its manifests once (one manifest_loads row); the plan is read with
-- `WHERE load_id = ?`. docs/schema.md ("Plan queries") explains the views.

-- One load of promoter manifests.
CREATE TABLE manifest_loads (
    id        INTEGER PRIMARY KEY,
    loaded_at TEXT NOT NULL,
    origin    TEXT NOT NULL              -- the --manifest file or --thin-manifest-dir
);

-- M: one row per (destination registry, image, digest) a load promotes,
-- however many manifests name it.
CREATE TABLE wanted_digests (
    load_id INTEGER NOT NULL REFERENCES manifest_loads(id) ON DELETE CASCADE,
    dst     TEXT NOT NULL,               -- destination registry, e.g. gcr.io/k8s-artifacts-prod
    image   TEXT NOT NULL,               -- image path below the registries, e.g. pause
    digest  TEXT NOT NULL,
    file    TEXT NOT NULL,               -- first images file (in file order) naming it
    line    INTEGER NOT NULL,
    PRIMARY KEY (load_id, dst, image, digest)
) WITHOUT ROWID;

-- The source registries a wanted digest may come from (usually one).
CREATE TABLE wanted_sources (
    load_id INTEGER NOT NULL REFERENCES manifest_loads(id) ON DELETE CASCADE,
    dst     TEXT NOT NULL,
    image   TEXT NOT NULL,
    digest  TEXT NOT NULL,
    src     TEXT NOT NULL,               -- source registry, e.g. gcr.io/k8s-staging-foo
    PRIMARY KEY (load_id, dst, image, digest, src)
) WITHOUT ROWID;

-- M's tags: (destination registry, image, tag) -> digest. Validation
-- guarantees one digest per tag across a load.
CREATE TABLE wanted_tags (
    load_id INTEGER NOT NULL REFERENCES manifest_loads(id) ON DELETE CASCADE,
    dst     TEXT NOT NULL,
    image   TEXT NOT NULL,
    tag     TEXT NOT NULL,
    digest  TEXT NOT NULL,
    file    TEXT NOT NULL,
    line    INTEGER NOT NULL,
    PRIMARY KEY (load_id, dst, image, tag)
) WITHOUT ROWID;
CREATE INDEX wanted_tags_digest ON wanted_tags(load_id, dst, image, digest);

-- Where each wanted digest is: in its destination repository (D = dst/image)
-- or in a source repository (S = src/image), and which wanted tags D lacks.
CREATE VIEW plan_digests AS
SELECT w.load_id, w.dst, w.image, w.digest, w.file, w.line,
    w.dst || '/' || w.image AS dst_repo,
    EXISTS (SELECT 1 FROM repositories r
            JOIN repository_manifests rm ON rm.repository_id = r.id AND rm.digest = w.digest
            WHERE r.name = w.dst || '/' || w.image) AS in_dst,
    -- The first source (by name) whose repository holds the digest; NULL when none does.
    (SELECT s.src || '/' || s.image FROM wanted_sources s
            JOIN repositories r ON r.name = s.src || '/' || s.image
            JOIN repository_manifests rm ON rm.repository_id = r.id AND rm.digest = s.digest
            WHERE s.load_id = w.load_id AND s.dst = w.dst AND s.image = w.image AND s.digest = w.digest
            ORDER BY s.src LIMIT 1) AS src_repo,
    (SELECT MIN(s.src) FROM wanted_sources s
            WHERE s.load_id = w.load_id AND s.dst = w.dst AND s.image = w.image AND s.digest = w.digest) AS src,
    (SELECT group_concat(tag, ' ') FROM (SELECT t.tag FROM wanted_tags t
            WHERE t.load_id = w.load_id AND t.dst = w.dst AND t.image = w.image AND t.digest = w.digest
            ORDER BY t.tag)) AS tags,
    (SELECT group_concat(tag, ' ') FROM (SELECT t.tag FROM wanted_tags t
            WHERE t.load_id = w.load_id AND t.dst = w.dst AND t.image = w.image AND t.digest = w.digest
              AND NOT EXISTS (SELECT 1 FROM repositories r
                              JOIN tags dt ON dt.repository_id = r.id AND dt.tag = t.tag AND dt.digest = t.digest
                              WHERE r.name = w.dst || '/' || w.image)
            ORDER BY t.tag)) AS tags_missing
FROM wanted_digests w;

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
FROM plan_digests;

-- Tag moves: a wanted tag that the destination repository already has at
-- another digest. cip refuses to move tags; any row here stops the run.
CREATE VIEW plan_tag_moves AS
SELECT t.load_id, t.dst, t.image, t.tag, dt.digest AS digest_now, t.digest AS digest_wanted, t.file, t.line
FROM wanted_tags t
JOIN repositories r ON r.name = t.dst || '/' || t.image
JOIN tags dt ON dt.repository_id = r.id AND dt.tag = t.tag
WHERE dt.digest <> t.digest;

-- The inventory: what registries hold, as last seen by `cip sync`.
-- Manifests are content-addressed and shared by every repository that holds
-- them; repository membership and tags are per repository.

-- A repository, named in full: host[:port]/path.
CREATE TABLE repositories (
    id         INTEGER PRIMARY KEY,
    registry   TEXT NOT NULL,            -- host[:port], e.g. gcr.io, 127.0.0.1:5000
    path       TEXT NOT NULL,            -- path below the host, e.g. k8s-staging-foo/bar
    name       TEXT NOT NULL UNIQUE,     -- registry || '/' || path
    synced_at  TEXT,                     -- RFC 3339 UTC of the last complete crawl
    UNIQUE (registry, path)
);

-- Every manifest ever fetched, keyed by digest. raw holds the exact bytes,
-- so the digest can be re-verified and copies stay byte for byte.
CREATE TABLE manifests (
    digest        TEXT PRIMARY KEY,      -- sha256:<hex> (or sha512:<hex>)
    media_type    TEXT NOT NULL,
    size          INTEGER NOT NULL,      -- bytes of raw
    is_index      INTEGER NOT NULL,      -- 1 for manifest lists and OCI indexes
    config_digest TEXT,                  -- images only
    raw           BLOB NOT NULL,
    fetched_at    TEXT NOT NULL
);

-- Index -> child edges, with the platform each child serves.
CREATE TABLE manifest_children (
    parent_digest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    position      INTEGER NOT NULL,      -- order in the index
    child_digest  TEXT NOT NULL,
    media_type    TEXT NOT NULL,
    size          INTEGER NOT NULL,
    os            TEXT NOT NULL DEFAULT '',
    architecture  TEXT NOT NULL DEFAULT '',
    variant       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (parent_digest, position)
);
CREATE INDEX manifest_children_child ON manifest_children(child_digest);

-- Config and layer blobs referenced by image manifests.
CREATE TABLE manifest_blobs (
    manifest_digest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    position        INTEGER NOT NULL,    -- 0 is the config, then layers in order
    kind            TEXT NOT NULL CHECK (kind IN ('config', 'layer')),
    blob_digest     TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    size            INTEGER NOT NULL,
    PRIMARY KEY (manifest_digest, position)
);
CREATE INDEX manifest_blobs_blob ON manifest_blobs(blob_digest);

-- Which digests a repository holds: every tagged digest, the children of
-- every index it holds (recursively), and untagged digests: those the
-- registry listed (GCR's tags/list extension), and those cip put there or
-- found there by digest, which each sync confirms with a HEAD by digest.
CREATE TABLE repository_manifests (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest        TEXT NOT NULL REFERENCES manifests(digest),
    PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;
CREATE INDEX repository_manifests_digest ON repository_manifests(digest);

-- Tags as last seen.
CREATE TABLE tags (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    tag           TEXT NOT NULL,
    digest        TEXT NOT NULL REFERENCES manifests(digest),
    updated_at    TEXT NOT NULL,         -- when cip first saw the tag at this digest
    PRIMARY KEY (repository_id, tag)
) WITHOUT ROWID;
CREATE INDEX tags_digest ON tags(digest);

-- One row per sync (or promotion) run.
CREATE TABLE sync_runs (
    id                INTEGER PRIMARY KEY,
    started_at        TEXT NOT NULL,
    finished_at       TEXT,
    refs              TEXT NOT NULL,     -- what was asked for, space separated
    repositories      INTEGER NOT NULL DEFAULT 0,
    tags              INTEGER NOT NULL DEFAULT 0,
    manifests_fetched INTEGER NOT NULL DEFAULT 0,
    requests          INTEGER NOT NULL DEFAULT 0,
    errors            TEXT NOT NULL DEFAULT ''  -- newline separated; empty when none
);

-- Every tag change cip observed.
CREATE TABLE tag_history (
    id          INTEGER PRIMARY KEY,
    repository  TEXT NOT NULL,           -- full repository name (survives repository removal)
    tag         TEXT NOT NULL,
    old_digest  TEXT,                    -- NULL when added
    new_digest  TEXT,                    -- NULL when removed
    change      TEXT NOT NULL CHECK (change IN ('added', 'moved', 'removed')),
    at          TEXT NOT NULL,
    sync_run_id INTEGER REFERENCES sync_runs(id)
);
CREATE INDEX tag_history_repository ON tag_history(repository, at);

-- Size of each manifest with what it references: an image is its manifest,
-- config and layers; an index is its own bytes plus its image children.
CREATE VIEW manifest_sizes AS
WITH image_sizes AS (
    SELECT m.digest, m.size + COALESCE((SELECT SUM(b.size) FROM manifest_blobs b WHERE b.manifest_digest = m.digest), 0) AS total
    FROM manifests m WHERE m.is_index = 0
)
SELECT digest, total AS total_size FROM image_sizes
UNION ALL
SELECT m.digest, m.size + COALESCE((SELECT SUM(i.total) FROM manifest_children c JOIN image_sizes i ON i.digest = c.child_digest WHERE c.parent_digest = m.digest), 0)
FROM manifests m WHERE m.is_index = 1;


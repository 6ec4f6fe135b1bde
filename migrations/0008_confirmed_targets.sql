-- Change-scoped runs: a promotion contacts only the destination
-- repositories whose wanted content changed, or whose last confirmation is
-- older than --confirm-ttl (docs/scale.md). A target is a destination
-- repository (destination registry || '/' || image) of a manifest set.

-- Each target of a manifest set, with a hash of what the set wants there.
CREATE TABLE wanted_targets (
    set_id   INTEGER NOT NULL REFERENCES wanted_sets(id) ON DELETE CASCADE,
    dst_repo TEXT NOT NULL,              -- destination repository (dst || '/' || image)
    hash     TEXT NOT NULL,              -- sha256 of its wanted digests and their tags
    PRIMARY KEY (set_id, dst_repo)
) WITHOUT ROWID;

-- The last live confirmation of each target: when cip last saw it hold
-- every wanted digest and tag (a crawl listing it, or its own verified
-- writes), and for which wanted content.
CREATE TABLE confirmed_targets (
    dst_repo     TEXT PRIMARY KEY,       -- destination repository
    hash         TEXT NOT NULL,          -- the wanted_targets hash it was confirmed for
    confirmed_at TEXT NOT NULL           -- RFC 3339 UTC: the oldest confirmation of its wanted tags, or of the crawl
) WITHOUT ROWID;

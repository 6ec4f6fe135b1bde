-- When cip last read a subject's referrer tags (sha256-<hex>, and cosign's
-- .sig, .att and .sbom) from a live tag listing of a repository, in a
-- referrers look-up (sync.Referrers), so that a run within --confirm-ttl
-- takes them from the inventory instead of listing the repository again
-- (a staging repository of a promotion whose digests are all in the
-- mirrors is otherwise listed on every run only for its referrer tags). A
-- complete crawl lists every tag: repositories.synced_at counts for every
-- subject of the repository.
CREATE TABLE referrer_tag_checks (
    repository_id  INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE, -- the repository listed
    subject_digest TEXT NOT NULL,        -- the subject whose referrer tags the listing showed (or showed none)
    checked_at     TEXT NOT NULL,        -- RFC 3339 UTC of the listing's record
    PRIMARY KEY (repository_id, subject_digest)
) WITHOUT ROWID;

-- Referrers: signatures, attestations, SBOMs and every other manifest that
-- refers to another (its subject), found in three places: the OCI 1.1
-- referrers API, the referrers tag schema (tag sha256-<hex> holding an
-- index of the referrers of sha256:<hex>) and cosign's tags
-- (sha256-<hex>.sig, .att, .sbom). docs/schema.md ("Referrers") explains
-- how they are found, planned and copied.

-- What a manifest says it refers to, and its artifact type, read from its
-- bytes (ParseManifest).
ALTER TABLE manifests ADD COLUMN subject_digest TEXT;   -- the subject field's digest; NULL when none
ALTER TABLE manifests ADD COLUMN artifact_type TEXT;    -- artifactType, else the config's media type (OCI 1.1); NULL for plain indexes
CREATE INDEX manifests_subject ON manifests(subject_digest) WHERE subject_digest IS NOT NULL;

-- Manifests fetched before this migration: the same fields out of raw.
UPDATE manifests SET
    subject_digest = CASE WHEN json_valid(CAST(raw AS TEXT)) THEN json_extract(CAST(raw AS TEXT), '$.subject.digest') END,
    artifact_type = CASE WHEN json_valid(CAST(raw AS TEXT)) THEN COALESCE(
        NULLIF(json_extract(CAST(raw AS TEXT), '$.artifactType'), ''),
        CASE WHEN is_index = 0 THEN json_extract(CAST(raw AS TEXT), '$.config.mediaType') END) END;

-- A referrer a repository holds for a subject, and how cip found it.
CREATE TABLE referrers (
    repository_id   INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE, -- the repository holding both
    subject_digest  TEXT NOT NULL,       -- what is referred to: sha256:<hex>
    referrer_digest TEXT NOT NULL REFERENCES manifests(digest), -- the signature, attestation, SBOM, ... (a manifest)
    artifact_type   TEXT NOT NULL,       -- e.g. application/vnd.dev.sigstore.bundle.v0.3+json; '' when the registry gave none
    found_by        TEXT NOT NULL,       -- api (the referrers API), tag-schema (a sha256-<hex> index), cosign-tag (a .sig, .att or .sbom tag)
    PRIMARY KEY (repository_id, subject_digest, referrer_digest),
    CHECK (found_by IN ('api', 'tag-schema', 'cosign-tag'))
) WITHOUT ROWID;
CREATE INDEX referrers_referrer ON referrers(referrer_digest);
-- The rows found by tags are derived from a repository's tags whenever it
-- is written (inventory's deriveReferrers, which also fills them for the
-- inventories this migration finds).

-- When cip last asked a registry's referrers API about a subject (or found
-- that the registry does not serve it), so that a run within --tag-ttl
-- plans from the referrers rows above without asking again.
CREATE TABLE referrer_checks (
    repository_id  INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE, -- the repository asked
    subject_digest TEXT NOT NULL,        -- the subject asked about
    checked_at     TEXT NOT NULL,        -- RFC 3339 UTC of the answer
    api            INTEGER NOT NULL,     -- 1: the registry served the referrers API; 0: it did not (404), tags only
    PRIMARY KEY (repository_id, subject_digest)
) WITHOUT ROWID;

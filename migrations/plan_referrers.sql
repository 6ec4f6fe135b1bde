-- The plan's refer rows: for load ?1, every referrer that a wanted digest's
-- source repository holds for it (or for one of its index children,
-- however nested, or, up to ?2 levels deep, for another such referrer) and
-- that the destination repository does not; with ?3 = 1, those it holds
-- too (held = 1), which cip verify checks live. Not a migration: it is
-- read, not applied (inventory.Refers), like plan_pending.sql.
--
-- A destination holds a referrer when its referrers rows have the pair
-- (subject, referrer) however found: its referrers API listed it (or cip's
-- PUT of it was answered with OCI-Subject), its sha256-<hex> index lists
-- it, or its cosign tag is that manifest. A cosign tag that cip merged (the
-- destination keeps its own signatures plus the source's) has another
-- digest: it holds the source's referrer when its layers include every
-- layer of the source's, with the same artifact type.
--
-- Rows carry the chain of artifact types from the wanted digest down to
-- the referrer (a JSON array, the referrer's own type last): --referrers
-- lets a referrer travel only when every type on its chain is selected
-- (inventory.Plan filters), so a signature on an attestation stays behind
-- with the attestation. Only wanted digests whose source repository holds
-- any referrer are looked at, so a plan without referrers costs one look-up
-- per wanted (route, image, digest).
WITH RECURSIVE
entries AS MATERIALIZED (
    -- Each wanted (route, image, digest), with the first source (by name)
    -- whose repository holds it.
    SELECT w.set_id, w.route, w.image, w.digest,
        (SELECT sr.id FROM wanted_route_sources s
         JOIN repositories sr ON sr.name = s.src || '/' || w.image
         JOIN repository_manifests srm ON srm.repository_id = sr.id AND srm.digest = w.digest
         WHERE s.set_id = w.set_id AND s.route = w.route
         ORDER BY s.src LIMIT 1) AS src_id
    FROM manifest_loads l
    CROSS JOIN wanted_digests w ON w.set_id = l.set_id
    WHERE l.id = ?1
),
roots AS MATERIALIZED (
    SELECT DISTINCT e.src_id, e.digest FROM entries e
    WHERE e.src_id IS NOT NULL AND EXISTS (SELECT 1 FROM referrers r WHERE r.repository_id = e.src_id)
),
subjects(src_id, root, digest) AS (
    SELECT src_id, digest, digest FROM roots
    UNION
    SELECT s.src_id, s.root, c.child_digest FROM subjects s
    JOIN manifest_children c ON c.parent_digest = s.digest
),
tree(src_id, root, subject, referrer, artifact_type, found_by, depth, chain) AS (
    SELECT s.src_id, s.root, r.subject_digest, r.referrer_digest, r.artifact_type, r.found_by, 1, json_array(r.artifact_type)
    FROM subjects s
    JOIN referrers r ON r.repository_id = s.src_id AND r.subject_digest = s.digest
    UNION
    SELECT f.src_id, f.root, r.subject_digest, r.referrer_digest, r.artifact_type, r.found_by, f.depth + 1,
        json_insert(f.chain, '$[#]', r.artifact_type)
    FROM tree f
    JOIN referrers r ON r.repository_id = f.src_id AND r.subject_digest = f.referrer
    WHERE f.depth < ?2
)
SELECT dst, image, dst_repo, src_repo, root, subject, referrer, artifact_type, found_by, depth, chain, file, line, held
FROM (
    SELECT t.dst, t.image, t.dst_repo, sr.name AS src_repo, f.root, f.subject, f.referrer, f.artifact_type, f.found_by,
        f.depth, f.chain, g.file, w.line,
        t.repository_id IS NOT NULL AND (
            EXISTS (SELECT 1 FROM referrers d
                    WHERE d.repository_id = t.repository_id AND d.subject_digest = f.subject AND d.referrer_digest = f.referrer)
            OR (f.found_by = 'cosign-tag' AND EXISTS (
                SELECT 1 FROM referrers d
                WHERE d.repository_id = t.repository_id AND d.subject_digest = f.subject
                  AND d.found_by = 'cosign-tag' AND d.artifact_type = f.artifact_type
                  AND NOT EXISTS (SELECT 1 FROM manifest_blobs sb
                                  WHERE sb.manifest_digest = f.referrer AND sb.kind = 'layer'
                                    AND NOT EXISTS (SELECT 1 FROM manifest_blobs db
                                                    WHERE db.manifest_digest = d.referrer_digest AND db.kind = 'layer'
                                                      AND db.blob_digest = sb.blob_digest))))
        ) AS held
    FROM tree f
    JOIN entries e ON e.src_id = f.src_id AND e.digest = f.root
    JOIN plan_targets t ON t.load_id = ?1 AND t.set_id = e.set_id AND t.route = e.route AND t.image = e.image
    JOIN wanted_routes g ON g.set_id = e.set_id AND g.route = e.route
    JOIN wanted_digests w ON w.set_id = e.set_id AND w.route = e.route AND w.image = e.image AND w.digest = e.digest
    JOIN repositories sr ON sr.id = f.src_id
)
WHERE ?3 OR NOT held

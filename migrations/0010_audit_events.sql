-- Audit verdicts: every registry change `cip audit serve` judged against
-- the promoter manifests, one row per event however often its sender
-- delivered it (the sender's event id is unique per source). Pulls and
-- blob uploads are not judged and not recorded. docs/schema.md ("Audit
-- events") lists the reasons.

-- One judged registry event.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,           -- envelope it came in: distribution (registry notification) or pubsub (GCR / Artifact Registry)
    event_id    TEXT NOT NULL,           -- the sender's id (distribution event id, Pub/Sub messageId; a sha256 of the event when it had none)
    received_at TEXT NOT NULL,           -- RFC 3339 UTC when cip first received it
    occurred_at TEXT NOT NULL,           -- when the sender says it happened, as sent ('' when not given)
    action      TEXT NOT NULL,           -- push or delete (for an invalid event, what the sender said)
    registry    TEXT NOT NULL,           -- host[:port] of the registry changed
    repository  TEXT NOT NULL,           -- full repository name, host[:port]/path
    digest      TEXT NOT NULL,           -- the manifest's sha256:<hex> ('' when the event named none)
    tag         TEXT NOT NULL,           -- the tag pushed or deleted ('' when untagged)
    verdict     TEXT NOT NULL CHECK (verdict IN ('VERIFIED', 'REJECTED')), -- VERIFIED: the manifests account for it; REJECTED: they do not
    reason      TEXT NOT NULL,           -- promoted, child or referrer (VERIFIED); not-in-manifest, tag-mismatch, deletion, unknown-repository or invalid-event (REJECTED)
    detail      TEXT NOT NULL,           -- one sentence for people: which manifest entry, parent or rule decided
    UNIQUE (source, event_id)
);
CREATE INDEX audit_events_received ON audit_events(received_at);

-- The request quotas cip measured: what a registry host (or, on a host
-- whose quota is per project, one project of it) accepted per second when
-- it last answered 429 (registry.Transport's throttling episode), so that
-- the next run starts each host's pace just under its quota instead of
-- guessing and meeting the quota again. Kept one row per (host, project);
-- project is '' where the quota is the host's.
CREATE TABLE host_quotas (
    host        TEXT NOT NULL,   -- registry host[:port]
    project     TEXT NOT NULL,   -- the project (first repository component), '' for the host's own
    qps         REAL NOT NULL CHECK (qps > 0), -- requests/s accepted
    measured_at TEXT NOT NULL,   -- RFC 3339 UTC
    PRIMARY KEY (host, project)
) WITHOUT ROWID;

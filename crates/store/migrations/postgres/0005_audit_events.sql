-- The audit trail (EXTENSIONS E4): one file for both backends (sqlite/ links here; SQLite reads
-- BIGINT as INTEGER). Times are Unix milliseconds. An aggregated event (failed exchanges per
-- client, address and minute) has an aggregate_key, and its count grows in place.
CREATE TABLE audit_events (
    id              TEXT    PRIMARY KEY NOT NULL,
    time            BIGINT NOT NULL,
    type            TEXT    NOT NULL,
    actor_type      TEXT    NOT NULL,
    actor_id        TEXT,
    actor_name      TEXT,
    target_type     TEXT,
    target_id       TEXT,
    target_name     TEXT,
    target_owner_id TEXT,
    source_ip       TEXT,
    user_agent      TEXT,
    tracking_id     TEXT,
    outcome         TEXT    NOT NULL,
    details         TEXT    NOT NULL,
    count           BIGINT NOT NULL DEFAULT 1,
    aggregate_key   TEXT    UNIQUE
);

CREATE INDEX audit_events_time ON audit_events (time, id);
CREATE INDEX audit_events_actor ON audit_events (actor_id, time);
CREATE INDEX audit_events_target ON audit_events (target_id, time);
CREATE INDEX audit_events_owner ON audit_events (target_owner_id, time);

-- The last five source addresses a PAT was used from, newest first (a JSON array).
ALTER TABLE pats ADD COLUMN last_used_ips TEXT NOT NULL DEFAULT '[]';

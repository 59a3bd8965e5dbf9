-- Shared Signals streams (EXTENSIONS E11) and their SETs in the outbox.
-- Times are Unix milliseconds.
CREATE TABLE ssf_streams (
    id                   TEXT    PRIMARY KEY NOT NULL,
    -- The PAT whose token created it: one stream per client id.
    client_id            TEXT    NOT NULL UNIQUE,
    -- One of ten slots: the unique index keeps the tenant's limit against concurrent creates
    -- on any backend, where a count would race.
    slot                 BIGINT  NOT NULL UNIQUE CHECK (slot >= 0 AND slot < 10),
    audience             TEXT    NOT NULL,
    method               TEXT    NOT NULL,
    endpoint_url         TEXT,
    -- Sent with every push, so it is kept as it is, like a webhook's secret.
    authorization_header TEXT,
    events_requested     TEXT    NOT NULL,
    description          TEXT    NOT NULL,
    status               TEXT    NOT NULL,
    reason               TEXT,
    created              BIGINT  NOT NULL,
    updated              BIGINT  NOT NULL
);

-- A SET waiting for its stream (pushed by the delivery loop, or polled); `id` is its `jti`.
ALTER TABLE outbox ADD COLUMN stream_id TEXT;
CREATE INDEX outbox_stream ON outbox (stream_id, status, seq);

-- Webhooks, the outbox their deliveries (and owners' mail) go through, and the markers that make
-- each expiry notice happen once (EXTENSIONS E6, E7, E8). Times are Unix milliseconds.
CREATE TABLE webhooks (
    id          TEXT   PRIMARY KEY NOT NULL,
    url         TEXT   NOT NULL,
    events      TEXT   NOT NULL,
    description TEXT   NOT NULL,
    -- The signing secret (whsec_…) must be read back to sign with, so it is kept as it is.
    secret      TEXT   NOT NULL,
    created     BIGINT NOT NULL
);

-- One row per delivery, written in the transaction of the event it tells of. `seq` orders a
-- webhook's deliveries; `message_id` is the webhook-id header, the same on a redelivery.
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT   NOT NULL UNIQUE,
    message_id   TEXT   NOT NULL,
    webhook_id   TEXT,
    channel      TEXT   NOT NULL,
    recipient    TEXT,
    event_type   TEXT   NOT NULL,
    payload      TEXT   NOT NULL,
    status       TEXT   NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    created      BIGINT NOT NULL,
    next_attempt BIGINT NOT NULL,
    lease_until  BIGINT,
    last_attempt BIGINT,
    last_status  BIGINT,
    last_error   TEXT,
    delivered    BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt);
CREATE INDEX outbox_webhook ON outbox (webhook_id, status, seq);

CREATE TABLE expiry_notices (
    pat_id     TEXT   NOT NULL,
    threshold  TEXT   NOT NULL,
    expiration BIGINT NOT NULL,
    PRIMARY KEY (pat_id, threshold, expiration)
);
CREATE INDEX pats_expiration ON pats (expiration_date);

ALTER TABLE identities ADD COLUMN email TEXT;

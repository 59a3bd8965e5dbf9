-- patd schema on PostgreSQL. Timestamps are Unix milliseconds (UTC) as on SQLite, so both
-- backends compare, sort and filter identically; JSON columns hold arrays of strings.

CREATE TABLE identities (
    id           TEXT   PRIMARY KEY,
    name         TEXT   NOT NULL UNIQUE,
    levels       TEXT   NOT NULL,
    extra_rights TEXT   NOT NULL,
    created      BIGINT NOT NULL
);

CREATE TABLE pats (
    id                          TEXT    PRIMARY KEY,
    owner_id                    TEXT    NOT NULL REFERENCES identities (id),
    name                        TEXT    NOT NULL,
    secret_digest               BYTEA   NOT NULL,
    scope                       TEXT    NOT NULL,
    access_token_validity       BIGINT  NOT NULL,
    expiration_date             BIGINT,
    never_expires_acknowledged  BOOLEAN NOT NULL,
    managed                     BOOLEAN NOT NULL,
    created                     BIGINT  NOT NULL,
    last_used                   BIGINT,
    -- Name uniqueness per owner is the database's job, so concurrent creates cannot both win.
    CONSTRAINT pats_owner_name_unique UNIQUE (owner_id, name)
);

CREATE INDEX pats_created_id ON pats (created, id);
CREATE INDEX pats_owner ON pats (owner_id);

CREATE TABLE signing_keys (
    kid         TEXT   PRIMARY KEY,
    private_pem TEXT   NOT NULL,
    created     BIGINT NOT NULL
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

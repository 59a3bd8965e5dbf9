-- patd schema on SQLite. Timestamps are Unix milliseconds (UTC); JSON columns hold arrays of strings.

CREATE TABLE identities (
    id           TEXT    PRIMARY KEY NOT NULL,
    name         TEXT    NOT NULL UNIQUE,
    levels       TEXT    NOT NULL,
    extra_rights TEXT    NOT NULL,
    created      INTEGER NOT NULL
);

CREATE TABLE pats (
    id                          TEXT    PRIMARY KEY NOT NULL,
    owner_id                    TEXT    NOT NULL REFERENCES identities (id),
    name                        TEXT    NOT NULL,
    secret_digest               BLOB    NOT NULL,
    scope                       TEXT    NOT NULL,
    access_token_validity       INTEGER NOT NULL,
    expiration_date             INTEGER,
    never_expires_acknowledged  INTEGER NOT NULL,
    managed                     INTEGER NOT NULL,
    created                     INTEGER NOT NULL,
    last_used                   INTEGER,
    -- Name uniqueness per owner is the database's job, so concurrent creates cannot both win.
    CONSTRAINT pats_owner_name_unique UNIQUE (owner_id, name)
);

CREATE INDEX pats_created_id ON pats (created, id);

CREATE TABLE signing_keys (
    kid         TEXT    PRIMARY KEY NOT NULL,
    private_pem TEXT    NOT NULL,
    created     INTEGER NOT NULL
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

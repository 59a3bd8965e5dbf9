-- The web page (EXTENSIONS E12): sign-in links, sessions and OpenID Connect logins under way.
-- Only SHA-256 digests of their secrets are stored. Times are Unix milliseconds.
CREATE TABLE web_sign_in_links (
    digest      TEXT   NOT NULL PRIMARY KEY,
    identity_id TEXT   NOT NULL,
    created     BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX web_sign_in_links_expires ON web_sign_in_links (expires_at);

CREATE TABLE web_sessions (
    digest      TEXT   NOT NULL PRIMARY KEY,
    identity_id TEXT   NOT NULL,
    method      TEXT   NOT NULL,
    created     BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL
);
CREATE INDEX web_sessions_last_seen ON web_sessions (last_seen);
CREATE INDEX web_sessions_identity ON web_sessions (identity_id);

-- An authorization request sent to the OpenID Connect provider, keyed by its state's digest:
-- the nonce and PKCE verifier the callback needs, whichever node it reaches.
CREATE TABLE web_oidc_logins (
    state_digest  TEXT   NOT NULL PRIMARY KEY,
    nonce         TEXT   NOT NULL,
    pkce_verifier TEXT   NOT NULL,
    return_to     TEXT,
    created       BIGINT NOT NULL
);
CREATE INDEX web_oidc_logins_created ON web_oidc_logins (created);

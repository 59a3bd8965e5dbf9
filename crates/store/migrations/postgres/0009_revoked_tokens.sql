-- Access tokens revoked by their jti (EXTENSIONS E10), kept until they would have expired and
-- pruned after. Times are Unix milliseconds: the token's iat and exp, whole seconds. A PAT's
-- rows are read with its exchange record, so a revocation is as fresh as a deletion.
CREATE TABLE revoked_tokens (
    jti        TEXT   NOT NULL PRIMARY KEY,
    pat_id     TEXT   NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_pat ON revoked_tokens (pat_id, expires_at);
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at);

-- Rotation (EXTENSIONS E5). While a grace period lasts, the replaced secret's digest and when it
-- stops exchanging (Unix milliseconds); and, after a rotation with revokeIssuedTokens, the whole
-- second (Unix milliseconds) before which access tokens minted from the PAT are refused.
ALTER TABLE pats ADD COLUMN previous_secret_digest BLOB;
ALTER TABLE pats ADD COLUMN previous_secret_until BIGINT;
ALTER TABLE pats ADD COLUMN tokens_valid_after BIGINT;

-- Leaked-secret reports and POST /oauth/revoke (EXTENSIONS E9, E10) find a PAT by its secret's
-- digest, since a secret does not name its PAT's id: the current digest, and a replaced one
-- that may still be in its grace period (most rows have none, hence the partial index). Not
-- UNIQUE: two PATs can never share a secret's 190 random bits, and a failed migration would
-- stop every node for a guarantee the generator already gives.
CREATE INDEX pats_secret_digest ON pats (secret_digest);
CREATE INDEX pats_previous_secret_digest ON pats (previous_secret_digest)
    WHERE previous_secret_digest IS NOT NULL;

-- When a signing key was retired (`patd key retire`), in Unix milliseconds; NULL while it is in
-- use. A retired key neither signs nor verifies, and leaves the JWK set.
ALTER TABLE signing_keys ADD COLUMN retired BIGINT;

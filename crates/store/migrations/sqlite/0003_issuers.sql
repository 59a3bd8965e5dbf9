-- Every public URL (JWT `iss`) a node of this database has served under, so that nodes sharing
-- the database accept each other's tokens and still refuse any other issuer.
CREATE TABLE issuers (
    url          TEXT   PRIMARY KEY NOT NULL,
    last_started BIGINT NOT NULL
);

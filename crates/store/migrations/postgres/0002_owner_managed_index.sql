-- Lets the per-owner limit count an owner's non-managed PATs from the index alone.
CREATE INDEX pats_owner_managed ON pats (owner_id, managed);

-- Admin lists over a whole tenant (issue 15): every sorter of CONTRACT §6, either way, is one
-- index read forwards or backwards, and the same index's leading columns serve that field's
-- filters. A list first finds its page's ids from an index alone, then reads those rows.
-- A date that may be missing is indexed as COALESCE(c, 9223372036854775807): a missing one
-- sorts after every date, as the list's ORDER BY says, and every filter on it is a range of
-- that one key (`isnull` is its greatest value), in the same words as the index.
CREATE INDEX pats_name_id ON pats (name, id);
CREATE INDEX pats_last_used_id ON pats (COALESCE(last_used, 9223372036854775807), id);
CREATE INDEX pats_expiration_id ON pats (COALESCE(expiration_date, 9223372036854775807), id);
CREATE INDEX pats_managed_created ON pats (managed, created, id);

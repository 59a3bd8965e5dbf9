//! The queries written once for both backends, generic over sqlx's `Database` with the few
//! differences supplied by `Dialect`, and `store_by_queries!`, which makes a backend a `Store`
//! out of them. A new table's queries go here.

use crate::list;
use crate::sql::{
    event_from_row, insert_events, push_audit_where, upsert_aggregates, EVENT_CHUNK, EVENT_COLUMNS,
};
use crate::sql::{
    exchange_record, from_millis, identity_from_row, insert_limited, insert_values,
    is_unique_violation, millis, owned_pat_from_row, signing_key_from_row, to_json, Dialect,
    RowAccess, Statement, Value, FIRST_KEY_SETTING, INSERT_CHUNK, KEYS_CHANNEL, LISTS_CHANNEL,
    PATS_CHANNEL, PAT_COLUMNS,
};
use crate::{
    AuditPage, LastUse, OwnedPat, PatPage, PatQuery, Retirement, SigningKeyReplacement, StoreError,
    StoredSigningKey,
};
use patd_core::audit::{AuditEvent, AuditQuery};
use patd_core::exchange::ExchangeRecord;
use patd_core::identity::Identity;
use patd_core::ids::PatId;
use patd_core::pat::{NewPat, PatRecord};
use patd_core::secret::SecretDigest;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Type};
use time::OffsetDateTime;

/// `FROM … WHERE …` of a PAT's revoked tokens still to be listed: binds the PAT's id, now, and
/// its `tokens_valid_after` twice.
fn revoked_rows<DB: Dialect>() -> String {
    let [pat, now, after_null, after] = params::<DB, 4>();
    format!(
        "FROM revoked_tokens r WHERE r.pat_id = {pat} AND r.expires_at > {now} \
           AND ({after_null} IS NULL OR r.issued_at >= {after})"
    )
}

/// The first `N` positional parameters of the backend, for statements written as text.
fn params<DB: Dialect, const N: usize>() -> [String; N] {
    std::array::from_fn(|index| DB::param(index + 1))
}

/// The queries written once for both backends. `reader` serves the reads and `writer` the
/// writes (SQLite has one writer; on PostgreSQL both are the same pool).
pub(crate) struct Queries<'p, DB: Database> {
    pub reader: &'p Pool<DB>,
    pub writer: &'p Pool<DB>,
}

impl<DB> Queries<'_, DB>
where
    DB: Dialect,
    DB::Row: RowAccess,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
{
    pub(crate) async fn insert_pats(&self, pats: &[NewPat]) -> Result<(), StoreError> {
        let mut transaction = self.writer.begin().await?;
        for chunk in pats.chunks(INSERT_CHUNK) {
            let statement = insert_values::<DB>(chunk);
            match statement.query().execute(&mut *transaction).await {
                Err(err) if is_unique_violation(&err) => return Err(StoreError::NameTaken),
                other => {
                    other?;
                }
            }
        }
        transaction.commit().await?;
        Ok(())
    }

    pub(crate) async fn pat(&self, id: &PatId) -> Result<Option<OwnedPat>, StoreError> {
        let sql = format!(
            "SELECT {PAT_COLUMNS}, i.name AS owner_name FROM pats p \
             JOIN identities i ON i.id = p.owner_id WHERE p.id = {}",
            DB::param(1)
        );
        sqlx::query::<DB>(&sql)
            .bind(id.as_str())
            .fetch_optional(self.reader)
            .await?
            .map(|row| owned_pat_from_row(&row))
            .transpose()
    }

    /// A page of PATs and, when asked, the total; the plan as `list.rs` decides it.
    pub(crate) async fn list_pats(&self, query: &PatQuery) -> Result<PatPage, StoreError> {
        let (plan, total, _, _) = self.list_plan(query).await?;
        let items = list::page::<DB>(query, plan)
            .query()
            .fetch_all(self.reader)
            .await?
            .iter()
            .map(owned_pat_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let total = query.request.count.then_some(total).flatten();
        Ok(PatPage {
            items,
            total: total.map(|total| u64::try_from(total).unwrap_or_default()),
        })
    }

    /// The plan of a list, the number of matches it was decided by (exact when the client
    /// asked for the total, else counted up to the bound; none when the plan needs neither),
    /// the statement that counted them, and the tenant size the bound was worked out for.
    async fn list_plan(
        &self,
        query: &PatQuery,
    ) -> Result<(list::Plan, Option<i64>, Option<Statement<DB>>, i64), StoreError> {
        let tenant = if list::needs_probe(query) {
            self.estimated_pats().await
        } else {
            list::UNKNOWN_TENANT
        };
        let counter = if query.request.count {
            Some(list::count::<DB>(query))
        } else if list::needs_probe(query) {
            Some(list::probe::<DB>(query, tenant))
        } else {
            None
        };
        let matches = match &counter {
            Some(statement) => Some(
                statement
                    .query()
                    .fetch_one(self.reader)
                    .await?
                    .int("total")?,
            ),
            None => None,
        };
        Ok((list::plan(query, matches, tenant), matches, counter, tenant))
    }

    /// About how many PATs are stored, from the planner's statistics (a lookup, not a count);
    /// `list::UNKNOWN_TENANT` while there are none.
    async fn estimated_pats(&self) -> i64 {
        let estimate = sqlx::query::<DB>(DB::ROWS)
            .fetch_one(self.reader)
            .await
            .ok()
            .and_then(|row| row.opt_int("total").ok().flatten());
        match estimate {
            Some(rows) if rows > 0 => rows,
            _ => list::UNKNOWN_TENANT,
        }
    }

    /// The plan `list_pats` would choose, and the database's plans for its statements as it
    /// prints them: the probe or the count, then the page.
    pub(crate) async fn explain_list(&self, query: &PatQuery) -> Result<Vec<String>, StoreError> {
        let (plan, matches, counter, tenant) = self.list_plan(query).await?;
        let mut lines = vec![format!(
            "plan: {plan:?} (matches {matches:?}, bound {}, tenant about {tenant})",
            list::walk_bound(query, tenant)
        )];
        let [prefix, column] = DB::EXPLAIN;
        for statement in counter.into_iter().chain([list::page::<DB>(query, plan)]) {
            for row in statement
                .prefixed(prefix)
                .query()
                .fetch_all(self.reader)
                .await?
            {
                lines.push(row.text(column)?);
            }
        }
        Ok(lines)
    }

    /// One page of `select` (`LIMIT`, `OFFSET` appended), each row decoded, and the total that
    /// `count` finds when it is given.
    async fn page<T>(
        &self,
        mut select: Statement<DB>,
        (limit, offset): (u32, u64),
        count: Option<Statement<DB>>,
        decode: impl Fn(&DB::Row) -> Result<T, StoreError>,
    ) -> Result<(Vec<T>, Option<u64>), StoreError> {
        select
            .push(" LIMIT ")
            .bind(Value::Int(i64::from(limit)))
            .push(" OFFSET ")
            .bind(Value::Int(i64::try_from(offset).unwrap_or(i64::MAX)));
        let items = select
            .query()
            .fetch_all(self.reader)
            .await?
            .iter()
            .map(decode)
            .collect::<Result<Vec<_>, _>>()?;
        let total = match count {
            Some(count) => {
                let row = count.query().fetch_one(self.reader).await?;
                Some(u64::try_from(row.int("total")?).unwrap_or_default())
            }
            None => None,
        };
        Ok((items, total))
    }

    pub(crate) async fn pats_by_ids(&self, ids: &[PatId]) -> Result<Vec<OwnedPat>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut select = Statement::<DB>::new(format!(
            "SELECT {PAT_COLUMNS}, i.name AS owner_name FROM pats p \
             JOIN identities i ON i.id = p.owner_id WHERE p.id IN "
        ));
        select.bind_tuple(ids.iter().map(|id| Value::Text(id.as_str().to_owned())));
        select
            .query()
            .fetch_all(self.reader)
            .await?
            .iter()
            .map(owned_pat_from_row)
            .collect()
    }

    /// Writes the patchable fields of every PAT and their events in one transaction, announcing
    /// each.
    pub(crate) async fn update_pats(
        &self,
        pats: &[PatRecord],
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let [name, scope, expiry, acknowledged, id] = params::<DB, 5>();
        let sql = format!(
            "UPDATE pats SET name = {name}, scope = {scope}, expiration_date = {expiry}, \
             never_expires_acknowledged = {acknowledged} WHERE id = {id}"
        );
        let mut transaction = self.writer.begin().await?;
        for pat in pats {
            let result = sqlx::query::<DB>(&sql)
                .bind(pat.name.as_str())
                .bind(to_json(pat.scope.entries()))
                .bind(pat.expiry.date().map(millis))
                .bind(pat.never_expires_acknowledged)
                .bind(pat.id.as_str())
                .execute(&mut *transaction)
                .await;
            match result {
                Err(err) if is_unique_violation(&err) => return Err(StoreError::NameTaken),
                Err(err) => return Err(err.into()),
                Ok(done) if DB::rows_affected(&done) == 0 => return Err(StoreError::NotFound),
                Ok(_) => notify::<DB>(&mut *transaction, PATS_CHANNEL, pat.id.as_str()).await?,
            }
        }
        write_events::<DB>(&mut *transaction, events).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Gives the PAT its new secret: the digest stored now becomes the previous one while the
    /// grace lasts (read and replaced in one statement, so concurrent rotations chain), the expiry
    /// and the revocation second are set, and the event is stored and the change announced, in
    /// one transaction. `false`: no such PAT.
    pub(crate) async fn rotate_pat(
        &self,
        rotation: &patd_core::rotation::Rotation,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let [until_for_digest, until, digest, expiry, valid_after, id] = params::<DB, 6>();
        // `previous_secret_digest = secret_digest` reads the row as it was before this update.
        let sql = format!(
            "UPDATE pats SET \
                 previous_secret_digest = CASE WHEN {until_for_digest} IS NULL THEN NULL \
                     ELSE secret_digest END, \
                 previous_secret_until = {until}, secret_digest = {digest}, \
                 expiration_date = {expiry}, \
                 tokens_valid_after = COALESCE({valid_after}, tokens_valid_after) \
             WHERE id = {id}"
        );
        let until = rotation.previous_until.map(millis);
        let mut transaction = self.writer.begin().await?;
        let done = sqlx::query::<DB>(&sql)
            .bind(until)
            .bind(until)
            .bind(rotation.digest.as_bytes().as_slice())
            .bind(rotation.expiry.date().map(millis))
            .bind(rotation.tokens_valid_after.map(millis))
            .bind(rotation.id.as_str())
            .execute(&mut *transaction)
            .await?;
        let rotated = DB::rows_affected(&done) > 0;
        if rotated {
            notify::<DB>(&mut *transaction, PATS_CHANNEL, rotation.id.as_str()).await?;
            write_events::<DB>(&mut *transaction, std::slice::from_ref(event)).await?;
        }
        transaction.commit().await?;
        Ok(rotated)
    }

    pub(crate) async fn delete_pat(
        &self,
        id: &PatId,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM pats WHERE id = {}", DB::param(1));
        let mut transaction = self.writer.begin().await?;
        let done = sqlx::query::<DB>(&sql)
            .bind(id.as_str())
            .execute(&mut *transaction)
            .await?;
        let deleted = DB::rows_affected(&done) > 0;
        if deleted {
            notify::<DB>(&mut *transaction, PATS_CHANNEL, id.as_str()).await?;
            write_events::<DB>(&mut *transaction, std::slice::from_ref(event)).await?;
        }
        transaction.commit().await?;
        Ok(deleted)
    }

    /// The exchange records of those of `ids` that exist, in one read of the PATs and one of
    /// their revoked tokens. The id list is padded to a power of two (repeating an id), so that
    /// a connection prepares a handful of statements, not one per batch size.
    pub(crate) async fn pats_for_exchange(
        &self,
        ids: &[PatId],
    ) -> Result<Vec<ExchangeRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let padded: Vec<&PatId> = ids
            .iter()
            .chain(std::iter::repeat(&ids[ids.len() - 1]))
            .take(ids.len().next_power_of_two())
            .collect();
        let mut select = Statement::<DB>::new(format!(
            "SELECT {PAT_COLUMNS}, p.secret_digest, p.last_used_ips, p.previous_secret_digest, \
                 p.previous_secret_until, p.tokens_valid_after, i.name AS owner_name, \
                 i.levels AS owner_levels, i.extra_rights AS owner_extra_rights \
             FROM pats p JOIN identities i ON i.id = p.owner_id WHERE p.id IN "
        ));
        select.bind_tuple(padded.iter().map(|id| Value::Text(id.as_str().to_owned())));
        let records = select
            .query()
            .fetch_all(self.reader)
            .await?
            .iter()
            .map(exchange_record)
            .collect::<Result<Vec<_>, _>>()?;
        self.with_revoked_jtis(records).await
    }

    /// The exchange record of the PAT whose secret, or whose replaced secret (in its grace or
    /// past it: the caller decides), has `digest`; both columns are indexed (migration 0007).
    pub(crate) async fn pat_by_digest(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<ExchangeRecord>, StoreError> {
        let [current, previous] = params::<DB, 2>();
        let sql = format!(
            "SELECT {PAT_COLUMNS}, p.secret_digest, p.last_used_ips, p.previous_secret_digest, \
                 p.previous_secret_until, p.tokens_valid_after, i.name AS owner_name, \
                 i.levels AS owner_levels, i.extra_rights AS owner_extra_rights \
             FROM pats p JOIN identities i ON i.id = p.owner_id \
             WHERE p.secret_digest = {current} OR p.previous_secret_digest = {previous} \
             LIMIT 1"
        );
        let record = sqlx::query::<DB>(&sql)
            .bind(digest.as_bytes().as_slice())
            .bind(digest.as_bytes().as_slice())
            .fetch_optional(self.reader)
            .await?
            .map(|row| exchange_record(&row))
            .transpose()?;
        Ok(self
            .with_revoked_jtis(record.into_iter().collect())
            .await?
            .pop())
    }

    /// `records` with the `jti`s of their PATs' access tokens revoked one by one that are still
    /// to be refused: unexpired, not already refused by `tokens_valid_after`, the newest
    /// `MAX_REVOKED_PER_PAT` of each (past the cap the newest are the ones `tokens_valid_after`
    /// does not cover). One read for all of them; most PATs have none.
    async fn with_revoked_jtis(
        &self,
        mut records: Vec<ExchangeRecord>,
    ) -> Result<Vec<ExchangeRecord>, StoreError> {
        if records.is_empty() {
            return Ok(records);
        }
        let mut select = Statement::<DB>::new(
            "SELECT r.pat_id, r.jti, r.issued_at FROM revoked_tokens r WHERE r.expires_at > ",
        );
        select
            .bind(Value::Int(millis(OffsetDateTime::now_utc())))
            .push(" AND r.pat_id IN ");
        let padded = records
            .iter()
            .chain(std::iter::repeat(&records[records.len() - 1]))
            .take(records.len().next_power_of_two());
        select.bind_tuple(padded.map(|record| Value::Text(record.pat.id.as_str().to_owned())));
        select.push(" ORDER BY r.issued_at DESC");
        let rows = select.query().fetch_all(self.reader).await?;
        if rows.is_empty() {
            return Ok(records);
        }
        let mut by_pat: std::collections::HashMap<String, Vec<(String, i64)>> =
            std::collections::HashMap::new();
        for row in &rows {
            by_pat
                .entry(row.text("pat_id")?)
                .or_default()
                .push((row.text("jti")?, row.int("issued_at")?));
        }
        for record in &mut records {
            let Some(revoked) = by_pat.get(record.pat.id.as_str()) else {
                continue;
            };
            let valid_after = record.tokens_valid_after.map(millis);
            record.revoked_jtis = revoked
                .iter()
                .filter(|(_, issued_at)| valid_after.is_none_or(|after| *issued_at >= after))
                .take(patd_core::exchange::MAX_REVOKED_PER_PAT)
                .map(|(jti, _)| jti.clone())
                .collect();
        }
        Ok(records)
    }

    /// Revokes one access token (EXTENSIONS E10) with `event`, and announces it as a change
    /// of its PAT, so that every node's next check of the token reads it. Past
    /// `MAX_REVOKED_PER_PAT` listed tokens, the PAT's `tokens_valid_after` moves past the
    /// newest revoked one instead, which refuses them all.
    pub(crate) async fn revoke_token(
        &self,
        revocation: &patd_core::exchange::TokenRevocation,
        event: &AuditEvent,
    ) -> Result<crate::TokenRevoked, StoreError> {
        let pat_id = revocation.pat_id.as_str();
        let mut transaction = self.writer.begin().await?;
        // The PAT's row, locked on PostgreSQL, so that concurrent revocations count in turn.
        let read = format!(
            "SELECT tokens_valid_after FROM pats WHERE id = {}{}",
            DB::param(1),
            DB::LOCK_ROW
        );
        let Some(row) = sqlx::query::<DB>(&read)
            .bind(pat_id)
            .fetch_optional(&mut *transaction)
            .await?
        else {
            // Its PAT is gone, and so is every token it minted.
            return Ok(crate::TokenRevoked::NoPat);
        };
        let valid_after = row.opt_int("tokens_valid_after")?;
        let [jti, pat, issued, expires] = params::<DB, 4>();
        let insert = format!(
            "INSERT INTO revoked_tokens (jti, pat_id, issued_at, expires_at)              VALUES ({jti}, {pat}, {issued}, {expires}) ON CONFLICT (jti) DO NOTHING"
        );
        let done = sqlx::query::<DB>(&insert)
            .bind(revocation.jti.as_str())
            .bind(pat_id)
            .bind(millis(revocation.issued_at))
            .bind(millis(revocation.expires_at))
            .execute(&mut *transaction)
            .await?;
        if DB::rows_affected(&done) == 0 {
            return Ok(crate::TokenRevoked::Already);
        }
        let count = format!("SELECT COUNT(*) AS total {}", revoked_rows::<DB>());
        let listed = sqlx::query::<DB>(&count)
            .bind(pat_id)
            .bind(millis(OffsetDateTime::now_utc()))
            .bind(valid_after)
            .bind(valid_after)
            .fetch_one(&mut *transaction)
            .await?
            .int("total")?;
        let outcome = if listed > patd_core::exchange::MAX_REVOKED_PER_PAT as i64 {
            let [pat_for_max, id] = params::<DB, 2>();
            let cover = format!(
                "UPDATE pats SET tokens_valid_after =                      (SELECT MAX(issued_at) FROM revoked_tokens WHERE pat_id = {pat_for_max})                      + 1000                  WHERE id = {id}"
            );
            sqlx::query::<DB>(&cover)
                .bind(pat_id)
                .bind(pat_id)
                .execute(&mut *transaction)
                .await?;
            crate::TokenRevoked::WithEarlierTokens
        } else {
            crate::TokenRevoked::Revoked
        };
        // The event says what happened: past the cap, every earlier token went with this one.
        let mut event = event.clone();
        if outcome == crate::TokenRevoked::WithEarlierTokens {
            event
                .details
                .insert("earlierTokens".to_owned(), true.into());
        }
        notify::<DB>(&mut *transaction, PATS_CHANNEL, pat_id).await?;
        write_events::<DB>(&mut *transaction, std::slice::from_ref(&event)).await?;
        transaction.commit().await?;
        Ok(outcome)
    }

    /// Forgets the revocations of tokens that expired before `before`: they are refused for
    /// their `exp` alone now.
    pub(crate) async fn prune_revoked_tokens(
        &self,
        before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "DELETE FROM revoked_tokens WHERE expires_at < {}",
            DB::param(1)
        );
        let done = sqlx::query::<DB>(&sql)
            .bind(millis(before))
            .execute(self.writer)
            .await?;
        Ok(DB::rows_affected(&done))
    }

    pub(crate) async fn insert(
        &self,
        identity: &Identity,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let [id, name, levels, rights, created] = params::<DB, 5>();
        let sql = format!(
            "INSERT INTO identities (id, name, levels, extra_rights, created) \
             VALUES ({id}, {name}, {levels}, {rights}, {created})"
        );
        let mut transaction = self.writer.begin().await?;
        let result = sqlx::query::<DB>(&sql)
            .bind(identity.id.as_str())
            .bind(identity.name.as_str())
            .bind(to_json(&identity.level_names()))
            .bind(to_json(&identity.extra_rights.idn_names()))
            .bind(millis(OffsetDateTime::now_utc()))
            .execute(&mut *transaction)
            .await;
        match result {
            Err(err) if is_unique_violation(&err) => return Err(StoreError::IdentityNameTaken),
            other => other.map(drop)?,
        }
        write_events::<DB>(&mut *transaction, std::slice::from_ref(event)).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// The identity whose id, or whose name, is `value`.
    pub(crate) async fn find(
        &self,
        by: IdentityKey,
        value: &str,
    ) -> Result<Option<Identity>, StoreError> {
        let column = match by {
            IdentityKey::Id => "id",
            IdentityKey::Name => "name",
        };
        let sql = format!(
            "SELECT id, name, levels, extra_rights FROM identities WHERE {column} = {}",
            DB::param(1)
        );
        sqlx::query::<DB>(&sql)
            .bind(value)
            .fetch_optional(self.reader)
            .await?
            .map(|row| identity_from_row(&row, ""))
            .transpose()
    }

    pub(crate) async fn all(&self) -> Result<Vec<Identity>, StoreError> {
        let sql = format!(
            "SELECT id, name, levels, extra_rights FROM identities ORDER BY {}, id",
            DB::IDENTITY_NAME_ORDER
        );
        sqlx::query::<DB>(&sql)
            .fetch_all(self.reader)
            .await?
            .iter()
            .map(|row| identity_from_row(row, ""))
            .collect()
    }

    pub(crate) async fn none_exist(&self) -> Result<bool, StoreError> {
        let row = sqlx::query::<DB>("SELECT NOT EXISTS (SELECT 1 FROM identities) AS empty")
            .fetch_one(self.reader)
            .await?;
        row.boolean("empty")
    }

    pub(crate) async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        sqlx::query::<DB>(
            "SELECT kid, private_pem, created, retired FROM signing_keys ORDER BY created, kid",
        )
        .fetch_all(self.reader)
        .await?
        .iter()
        .map(signing_key_from_row)
        .collect()
    }

    pub(crate) async fn insert_signing_key(
        &self,
        key: &StoredSigningKey,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut transaction = self.writer.begin().await?;
        insert_key::<DB>(&mut *transaction, key).await?;
        notify::<DB>(&mut *transaction, KEYS_CHANNEL, &key.kid).await?;
        write_events::<DB>(&mut *transaction, std::slice::from_ref(event)).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Reads the key and the newest key, and retires the key only if it is not the newest, in
    /// one transaction. A rotation committed meanwhile only adds a newer key, so the newest
    /// never loses its place to a retired one.
    pub(crate) async fn retire_signing_key(
        &self,
        kid: &str,
        at: OffsetDateTime,
    ) -> Result<Retirement, StoreError> {
        let [first, second] = params::<DB, 2>();
        let mut transaction = self.writer.begin().await?;
        let found = sqlx::query::<DB>(&format!(
            "SELECT retired FROM signing_keys WHERE kid = {first}"
        ))
        .bind(kid)
        .fetch_optional(&mut *transaction)
        .await?;
        let Some(found) = found else {
            return Ok(Retirement::NotFound);
        };
        if let Some(retired) = found.opt_int("retired")? {
            return Ok(Retirement::AlreadyRetired(from_millis(retired, "retired")?));
        }
        let newest = sqlx::query::<DB>(
            "SELECT kid FROM signing_keys ORDER BY created DESC, kid DESC LIMIT 1",
        )
        .fetch_one(&mut *transaction)
        .await?
        .text("kid")?;
        if newest == kid {
            return Ok(Retirement::Current);
        }
        sqlx::query::<DB>(&format!(
            "UPDATE signing_keys SET retired = {first} WHERE kid = {second} AND retired IS NULL"
        ))
        .bind(millis(at))
        .bind(kid)
        .execute(&mut *transaction)
        .await?;
        notify::<DB>(&mut *transaction, KEYS_CHANNEL, kid).await?;
        transaction.commit().await?;
        Ok(Retirement::Retired(at))
    }

    /// Each row changes only if it still holds the text the caller read; if one does not, the
    /// transaction is rolled back and nothing is written.
    pub(crate) async fn replace_signing_keys(
        &self,
        replacements: &[SigningKeyReplacement],
    ) -> Result<bool, StoreError> {
        let [new, kid, old] = params::<DB, 3>();
        let sql = format!(
            "UPDATE signing_keys SET private_pem = {new} WHERE kid = {kid} AND private_pem = {old}"
        );
        let mut transaction = self.writer.begin().await?;
        for replacement in replacements {
            let done = sqlx::query::<DB>(&sql)
                .bind(replacement.new.as_str())
                .bind(replacement.kid.as_str())
                .bind(replacement.old.as_str())
                .execute(&mut *transaction)
                .await?;
            if DB::rows_affected(&done) != 1 {
                transaction.rollback().await?;
                return Ok(false);
            }
        }
        notify::<DB>(&mut *transaction, KEYS_CHANNEL, "replaced").await?;
        transaction.commit().await?;
        Ok(true)
    }

    /// The marker setting and the key go in one transaction: a node that starts at the same
    /// moment waits on the marker's unique key until this commits, then stores nothing.
    pub(crate) async fn insert_first_signing_key(
        &self,
        key: &StoredSigningKey,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.writer.begin().await?;
        let [setting, value] = params::<DB, 2>();
        let sql = format!(
            "INSERT INTO settings (key, value) VALUES ({setting}, {value}) \
             ON CONFLICT (key) DO NOTHING"
        );
        let won = sqlx::query::<DB>(&sql)
            .bind(FIRST_KEY_SETTING)
            .bind(key.kid.as_str())
            .execute(&mut *transaction)
            .await?;
        let won = DB::rows_affected(&won) == 1;
        if won {
            insert_key::<DB>(&mut *transaction, key).await?;
            notify::<DB>(&mut *transaction, KEYS_CHANNEL, &key.kid).await?;
            write_events::<DB>(&mut *transaction, std::slice::from_ref(event)).await?;
        }
        transaction.commit().await?;
        Ok(won)
    }

    pub(crate) async fn setting_or_insert(
        &self,
        key: &str,
        value: &str,
    ) -> Result<String, StoreError> {
        let [first, second] = params::<DB, 2>();
        let insert = format!(
            "INSERT INTO settings (key, value) VALUES ({first}, {second}) \
             ON CONFLICT (key) DO NOTHING"
        );
        sqlx::query::<DB>(&insert)
            .bind(key)
            .bind(value)
            .execute(self.writer)
            .await?;
        let select = format!("SELECT value FROM settings WHERE key = {first}");
        let row = sqlx::query::<DB>(&select)
            .bind(key)
            .fetch_one(self.writer)
            .await?;
        row.text("value")
    }

    pub(crate) async fn register_issuer(&self, url: &str) -> Result<(), StoreError> {
        let [issuer, started] = params::<DB, 2>();
        let sql = format!(
            "INSERT INTO issuers (url, last_started) VALUES ({issuer}, {started}) \
             ON CONFLICT (url) DO UPDATE SET last_started = excluded.last_started"
        );
        let mut transaction = self.writer.begin().await?;
        sqlx::query::<DB>(&sql)
            .bind(url)
            .bind(millis(OffsetDateTime::now_utc()))
            .execute(&mut *transaction)
            .await?;
        notify::<DB>(&mut *transaction, KEYS_CHANNEL, "issuer").await?;
        transaction.commit().await?;
        Ok(())
    }

    pub(crate) async fn issuers(&self) -> Result<Vec<String>, StoreError> {
        sqlx::query::<DB>("SELECT url FROM issuers ORDER BY url")
            .fetch_all(self.reader)
            .await?
            .iter()
            .map(|row| row.text("url"))
            .collect()
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(self.reader).await?;
        Ok(())
    }

    pub(crate) async fn optimize(&self) -> Result<(), StoreError> {
        sqlx::raw_sql(DB::ANALYZE).execute(self.writer).await?;
        Ok(())
    }

    pub(crate) fn pool_stats(&self) -> crate::PoolStats {
        let mut pools = vec![self.reader];
        if !std::ptr::eq(self.reader, self.writer) {
            pools.push(self.writer);
        }
        pools.iter().fold(crate::PoolStats::default(), |sum, pool| {
            let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
            crate::PoolStats {
                in_use: sum.in_use + pool.size().saturating_sub(idle),
                idle: sum.idle + idle,
            }
        })
    }

    /// A batch of uses in a fixed number of statements, however many PATs it holds: the rows
    /// locked in id order (PostgreSQL; so that two nodes' batches cannot deadlock) with their
    /// stored address lists read; one conditional `UPDATE` of `lastUsed` (concurrent nodes write
    /// once) that returns the PATs it changed; one `UPDATE` of the address lists that gained an
    /// address, merged with the stored ones read under the lock so that other batches' and
    /// nodes' addresses keep their place; the `pat.used` events of what happened (`UseEvent`).
    /// The values travel as `VALUES` tables that the `UPDATE`s join. One transaction.
    pub(crate) async fn record_last_used(
        &self,
        uses: &[LastUse],
    ) -> Result<Vec<AuditEvent>, StoreError> {
        if uses.is_empty() {
            return Ok(Vec::new());
        }
        let mut transaction = self.writer.begin().await?;
        let stored = self.lock_for_last_used(&mut transaction, uses).await?;
        let daily: Vec<&LastUse> = uses.iter().filter(|last_use| last_use.daily).collect();
        let written = self.write_last_used(&mut transaction, &daily).await?;
        let mut lists: Vec<(&str, String)> = Vec::new();
        let mut events: Vec<AuditEvent> = Vec::new();
        for last_use in uses {
            // A PAT deleted since its use has no row: nothing happened to it.
            let Some(before) = stored.get(last_use.id.as_str()) else {
                continue;
            };
            let is_new = |ip: &String| !before.contains(ip);
            if last_use.new_ips.iter().any(is_new) {
                let mut recent = last_use.new_ips.clone();
                recent.extend(
                    before
                        .iter()
                        .filter(|ip| !last_use.new_ips.contains(ip))
                        .cloned(),
                );
                recent.truncate(RECENT_IPS);
                lists.push((last_use.id.as_str(), to_json(&recent)));
            }
            let set_last_used = written.contains(last_use.id.as_str());
            for used in &last_use.events {
                let new_source = used.new_ip.as_ref().is_some_and(is_new);
                if new_source || (used.daily && set_last_used) {
                    events.push(used.event.clone().used_because(new_source));
                }
            }
        }
        if !lists.is_empty() {
            let mut update = Statement::<DB>::new("WITH v (id, ips) AS (VALUES ");
            for (index, (id, ips)) in lists.iter().enumerate() {
                if index > 0 {
                    update.push(", ");
                }
                update.bind_tuple([Value::Text((*id).to_owned()), Value::Text(ips.clone())]);
            }
            update.push(") UPDATE pats SET last_used_ips = v.ips FROM v WHERE pats.id = v.id");
            update.query().execute(&mut *transaction).await?;
        }
        write_events::<DB>(&mut *transaction, &events).await?;
        transaction.commit().await?;
        Ok(events)
    }

    /// Locks the batch's rows in id order (where the backend locks rows) and reads the stored
    /// address lists of those that exist.
    async fn lock_for_last_used(
        &self,
        transaction: &mut sqlx::Transaction<'_, DB>,
        uses: &[LastUse],
    ) -> Result<std::collections::HashMap<String, Vec<String>>, StoreError> {
        let mut select = Statement::<DB>::new("SELECT id, last_used_ips FROM pats WHERE id IN ");
        select.bind_tuple(
            uses.iter()
                .map(|last_use| Value::Text(last_use.id.as_str().to_owned())),
        );
        select.push(" ORDER BY id");
        select.push(DB::LOCK_ROW);
        let rows = select.query().fetch_all(&mut **transaction).await?;
        rows.iter()
            .map(|row| {
                let ips: Vec<String> =
                    serde_json::from_str(&row.text("last_used_ips")?).unwrap_or_default();
                Ok((row.text("id")?, ips))
            })
            .collect()
    }

    /// Sets `lastUsed` of the PATs whose stored value is older than their `not_after` (or
    /// missing), and returns the ids of those it set.
    async fn write_last_used(
        &self,
        transaction: &mut sqlx::Transaction<'_, DB>,
        uses: &[&LastUse],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        if uses.is_empty() {
            return Ok(std::collections::HashSet::new());
        }
        let mut update = Statement::<DB>::new("WITH v (id, at, not_after) AS (VALUES ");
        for (index, last_use) in uses.iter().enumerate() {
            if index > 0 {
                update.push(", ");
            }
            update.bind_tuple([
                Value::Text(last_use.id.as_str().to_owned()),
                Value::Int(millis(last_use.at)),
                Value::Int(millis(last_use.not_after)),
            ]);
        }
        // A join, not a subquery a row: the database seeks each PAT by its id.
        update.push(
            ") UPDATE pats SET last_used = v.at FROM v WHERE pats.id = v.id \
             AND (pats.last_used IS NULL OR pats.last_used <= v.not_after) RETURNING pats.id",
        );
        let written = update
            .query()
            .fetch_all(&mut **transaction)
            .await?
            .iter()
            .map(|row| row.text("id"))
            .collect::<Result<std::collections::HashSet<_>, _>>()?;
        if !written.is_empty() {
            notify::<DB>(
                &mut **transaction,
                LISTS_CHANNEL,
                &written.len().to_string(),
            )
            .await?;
        }
        Ok(written)
    }

    /// Adds each aggregate's count to its row (one per client, address and minute), creating
    /// the row the first time.
    pub(crate) async fn record_auth_failures(
        &self,
        aggregates: &[(AuditEvent, i64, String)],
    ) -> Result<(), StoreError> {
        let mut transaction = self.writer.begin().await?;
        for chunk in aggregates.chunks(EVENT_CHUNK) {
            upsert_aggregates::<DB>(chunk)
                .query()
                .execute(&mut *transaction)
                .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    pub(crate) async fn audit_events(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        let direction = if query.descending { "DESC" } else { "ASC" };
        let mut select =
            Statement::<DB>::new(format!("SELECT {EVENT_COLUMNS} FROM audit_events e"));
        push_audit_where(&mut select, query);
        select.push(&format!(" ORDER BY e.time {direction}, e.id {direction}"));
        let count = query.count.then(|| {
            let mut count = Statement::<DB>::new("SELECT COUNT(*) AS total FROM audit_events e");
            push_audit_where(&mut count, query);
            count
        });
        let (items, total) = self
            .page(select, (query.limit, query.offset), count, event_from_row)
            .await?;
        Ok(AuditPage { items, total })
    }

    /// Deletes the events older than `before`, a bounded number per transaction so that the
    /// writer is never held for long.
    pub(crate) async fn prune_audit_events(
        &self,
        before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let [cutoff, limit] = params::<DB, 2>();
        let sql = format!(
            "DELETE FROM audit_events WHERE id IN \
             (SELECT id FROM audit_events WHERE time < {cutoff} LIMIT {limit})"
        );
        let mut pruned = 0;
        loop {
            let done = sqlx::query::<DB>(&sql)
                .bind(millis(before))
                .bind(PRUNE_CHUNK)
                .execute(self.writer)
                .await?;
            let deleted = DB::rows_affected(&done);
            pruned += deleted;
            if deleted < PRUNE_CHUNK as u64 {
                return Ok(pruned);
            }
        }
    }
}

/// One PAT to insert: within `limit` for its owner, with its `pat.created` event.
#[derive(Clone, Copy)]
pub(crate) struct PatInsert<'a> {
    pub new_pat: &'a NewPat,
    pub limit: Option<u32>,
    pub event: &'a AuditEvent,
}

/// Inserts the PAT, unless its owner is at the limit or has the name, and its event, on a
/// connection inside the caller's transaction (which keeps other writers of the owner out).
pub(crate) async fn insert_within_limit<DB>(
    connection: &mut DB::Connection,
    insert: PatInsert<'_>,
) -> Result<(), StoreError>
where
    DB: Dialect,
    DB::Row: RowAccess,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
{
    let statement = insert_limited::<DB>(insert.new_pat, insert.limit);
    match statement.query().execute(&mut *connection).await {
        Err(err) if is_unique_violation(&err) => return Err(StoreError::NameTaken),
        Err(err) => return Err(err.into()),
        Ok(done) if DB::rows_affected(&done) == 0 => {
            return Err(StoreError::LimitReached {
                max: insert.limit.unwrap_or_default(),
            })
        }
        Ok(_) => {}
    }
    write_events::<DB>(connection, std::slice::from_ref(insert.event)).await
}

/// How many source addresses are kept per PAT (GitLab's `last_used_ips`).
pub const RECENT_IPS: usize = 5;

/// Events deleted per transaction when pruning.
const PRUNE_CHUNK: i64 = 10_000;

/// Stores `events` in the transaction of the change they record.
pub(crate) async fn write_events<DB>(
    connection: &mut DB::Connection,
    events: &[AuditEvent],
) -> Result<(), StoreError>
where
    DB: Dialect,
    DB::Row: RowAccess,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
{
    for chunk in events.chunks(EVENT_CHUNK) {
        insert_events::<DB>(chunk)
            .query()
            .execute(&mut *connection)
            .await?;
    }
    // The notifications go in the same transaction: a committed event is always told of.
    crate::outbox::enqueue::<DB>(connection, events).await
}

async fn insert_key<DB>(
    connection: &mut DB::Connection,
    key: &StoredSigningKey,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    let [kid, pem, created] = params::<DB, 3>();
    let sql = format!(
        "INSERT INTO signing_keys (kid, private_pem, created) VALUES ({kid}, {pem}, {created}) \
         ON CONFLICT (kid) DO NOTHING"
    );
    sqlx::query::<DB>(&sql)
        .bind(key.kid.as_str())
        .bind(key.private_key.as_str())
        .bind(millis(key.created))
        .execute(connection)
        .await?;
    Ok(())
}

/// Announces a write on `channel`, where the backend has other nodes to tell.
pub(crate) async fn notify<DB>(
    connection: &mut DB::Connection,
    channel: &str,
    payload: &str,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> DB::Arguments<'a>: IntoArguments<'a, DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
{
    if let Some(sql) = DB::NOTIFY {
        sqlx::query::<DB>(sql)
            .bind(channel)
            .bind(payload)
            .execute(connection)
            .await?;
    }
    Ok(())
}

/// Which column an identity is looked up by.
pub(crate) enum IdentityKey {
    Id,
    Name,
}

/// Implements `Store` for a backend out of `Queries` (its `queries()`), but for what each backend
/// does its own way, which it provides as inherent methods: `insert_pat_here` (how the per-owner
/// limit is kept race-free: a locked owner row, or SQLite's group commit), `after_keys_replaced`
/// (SQLite empties its write-ahead log) and `subscribe_here` (PostgreSQL's change feed).
macro_rules! store_by_queries {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::Store for $store {
            async fn insert_identity(
                &self,
                identity: &patd_core::identity::Identity,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().insert(identity, event).await
            }

            async fn identity(
                &self,
                id: &patd_core::ids::IdentityId,
            ) -> Result<Option<patd_core::identity::Identity>, $crate::StoreError> {
                self.intact()?;
                self.queries()
                    .find($crate::queries::IdentityKey::Id, id.as_str())
                    .await
            }

            async fn identity_by_name(
                &self,
                name: &str,
            ) -> Result<Option<patd_core::identity::Identity>, $crate::StoreError> {
                self.intact()?;
                self.queries()
                    .find($crate::queries::IdentityKey::Name, name)
                    .await
            }

            async fn identities(
                &self,
            ) -> Result<Vec<patd_core::identity::Identity>, $crate::StoreError> {
                self.intact()?;
                self.queries().all().await
            }

            async fn has_no_identities(&self) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries().none_exist().await
            }

            async fn insert_pat(
                &self,
                new_pat: &patd_core::pat::NewPat,
                limit: Option<u32>,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.insert_pat_here($crate::queries::PatInsert {
                    new_pat,
                    limit,
                    event,
                })
                .await
            }

            async fn insert_pats(
                &self,
                pats: &[patd_core::pat::NewPat],
            ) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().insert_pats(pats).await
            }

            async fn pat(
                &self,
                id: &patd_core::ids::PatId,
            ) -> Result<Option<$crate::OwnedPat>, $crate::StoreError> {
                self.intact()?;
                self.queries().pat(id).await
            }

            async fn list_pats(
                &self,
                query: &$crate::PatQuery,
            ) -> Result<$crate::PatPage, $crate::StoreError> {
                self.intact()?;
                self.queries().list_pats(query).await
            }

            async fn pats_by_ids(
                &self,
                ids: &[patd_core::ids::PatId],
            ) -> Result<Vec<$crate::OwnedPat>, $crate::StoreError> {
                self.intact()?;
                self.queries().pats_by_ids(ids).await
            }

            async fn update_pats(
                &self,
                pats: &[patd_core::pat::PatRecord],
                events: &[patd_core::audit::AuditEvent],
            ) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().update_pats(pats, events).await
            }

            async fn update_pat(
                &self,
                pat: &patd_core::pat::PatRecord,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries()
                    .update_pats(std::slice::from_ref(pat), std::slice::from_ref(event))
                    .await
            }

            async fn delete_pat(
                &self,
                id: &patd_core::ids::PatId,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries().delete_pat(id, event).await
            }

            async fn revoke_token(
                &self,
                revocation: &patd_core::exchange::TokenRevocation,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<$crate::TokenRevoked, $crate::StoreError> {
                self.intact()?;
                self.queries().revoke_token(revocation, event).await
            }

            async fn insert_sign_in_link(
                &self,
                link: &patd_core::web::SignInLink,
            ) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().insert_sign_in_link(link).await
            }

            async fn sign_in_link(
                &self,
                digest: &patd_core::web::WebDigest,
                now: time::OffsetDateTime,
            ) -> Result<Option<patd_core::ids::IdentityId>, $crate::StoreError> {
                self.intact()?;
                self.queries().sign_in_link(digest, now).await
            }

            async fn redeem_sign_in_link(
                &self,
                link: &patd_core::web::WebDigest,
                session: &patd_core::web::Session,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries()
                    .redeem_sign_in_link(link, session, event)
                    .await
            }

            async fn insert_session(
                &self,
                session: &patd_core::web::Session,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().insert_session(session, event).await
            }

            async fn session(
                &self,
                digest: &patd_core::web::WebDigest,
            ) -> Result<Option<patd_core::web::Session>, $crate::StoreError> {
                self.intact()?;
                self.queries().session(digest).await
            }

            async fn touch_session(
                &self,
                digest: &patd_core::web::WebDigest,
                at: time::OffsetDateTime,
            ) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().touch_session(digest, at).await
            }

            async fn delete_session(
                &self,
                digest: &patd_core::web::WebDigest,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries().delete_session(digest, event).await
            }

            async fn prune_web(
                &self,
                sessions_idle_before: time::OffsetDateTime,
                sessions_begun_before: time::OffsetDateTime,
                links_before: time::OffsetDateTime,
                logins_before: time::OffsetDateTime,
            ) -> Result<u64, $crate::StoreError> {
                self.intact()?;
                self.queries()
                    .prune_web(
                        sessions_idle_before,
                        sessions_begun_before,
                        links_before,
                        logins_before,
                    )
                    .await
            }

            async fn identity_by_email(
                &self,
                email: &str,
            ) -> Result<Option<patd_core::identity::Identity>, $crate::StoreError> {
                self.intact()?;
                self.queries().identity_by_email(email).await
            }

            async fn insert_oidc_login(
                &self,
                login: &$crate::OidcLogin,
            ) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().insert_oidc_login(login).await
            }

            async fn take_oidc_login(
                &self,
                state_digest: &patd_core::web::WebDigest,
            ) -> Result<Option<$crate::OidcLogin>, $crate::StoreError> {
                self.intact()?;
                self.queries().take_oidc_login(state_digest).await
            }

            async fn prune_revoked_tokens(
                &self,
                before: time::OffsetDateTime,
            ) -> Result<u64, $crate::StoreError> {
                self.intact()?;
                self.queries().prune_revoked_tokens(before).await
            }

            async fn rotate_pat(
                &self,
                rotation: &patd_core::rotation::Rotation,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries().rotate_pat(rotation, event).await
            }

            async fn insert_webhook(
                &self,
                hook: &patd_core::notify::Webhook,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().insert_webhook(hook, event).await
            }

            async fn webhooks(
                &self,
            ) -> Result<Vec<patd_core::notify::Webhook>, $crate::StoreError> {
                self.intact()?;
                self.queries().webhooks().await
            }

            async fn webhook(
                &self,
                id: &str,
            ) -> Result<Option<patd_core::notify::Webhook>, $crate::StoreError> {
                self.intact()?;
                self.queries().webhook(id).await
            }

            async fn update_webhook(
                &self,
                hook: &patd_core::notify::Webhook,
            ) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries().update_webhook(hook).await
            }

            async fn delete_webhook(
                &self,
                id: &str,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries().delete_webhook(id, event).await
            }

            async fn deliveries(
                &self,
                webhook_id: &str,
                limit: i64,
                offset: i64,
            ) -> Result<Vec<$crate::Delivery>, $crate::StoreError> {
                self.intact()?;
                self.queries().deliveries(webhook_id, limit, offset).await
            }

            async fn redeliver(
                &self,
                webhook_id: &str,
                delivery_id: &str,
                now: time::OffsetDateTime,
            ) -> Result<Option<$crate::Delivery>, $crate::StoreError> {
                self.intact()?;
                self.queries().redeliver(webhook_id, delivery_id, now).await
            }

            async fn due_deliveries(
                &self,
                now: time::OffsetDateTime,
                channels: &[&str],
                limit: i64,
            ) -> Result<Vec<$crate::Delivery>, $crate::StoreError> {
                self.intact()?;
                self.queries().due_deliveries(now, channels, limit).await
            }

            async fn claim_delivery(
                &self,
                id: &str,
                now: time::OffsetDateTime,
                lease_until: time::OffsetDateTime,
            ) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries().claim_delivery(id, now, lease_until).await
            }

            async fn finish_delivery(
                &self,
                id: &str,
                now: time::OffsetDateTime,
                outcome: &$crate::DeliveryOutcome,
            ) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().finish_delivery(id, now, outcome).await
            }

            async fn expiring_pats(
                &self,
                from: time::OffsetDateTime,
                to: time::OffsetDateTime,
                limit: i64,
                offset: i64,
            ) -> Result<Vec<$crate::OwnedPat>, $crate::StoreError> {
                self.intact()?;
                self.queries().expiring_pats(from, to, limit, offset).await
            }

            async fn record_expiry_notice(
                &self,
                pat_id: &str,
                thresholds: &[&str],
                expiration: time::OffsetDateTime,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries()
                    .record_expiry_notice(pat_id, thresholds, expiration, event)
                    .await
            }

            async fn set_identity_email(
                &self,
                id: &str,
                email: Option<&str>,
            ) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries().set_identity_email(id, email).await
            }

            async fn set_setting(&self, key: &str, value: &str) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().set_setting(key, value).await
            }

            async fn pats_for_exchange(
                &self,
                ids: &[patd_core::ids::PatId],
            ) -> Result<Vec<patd_core::exchange::ExchangeRecord>, $crate::StoreError> {
                self.intact()?;
                self.queries().pats_for_exchange(ids).await
            }

            async fn pat_by_digest(
                &self,
                digest: &patd_core::secret::SecretDigest,
            ) -> Result<Option<patd_core::exchange::ExchangeRecord>, $crate::StoreError> {
                self.intact()?;
                self.queries().pat_by_digest(digest).await
            }

            async fn record_last_used(
                &self,
                uses: &[$crate::LastUse],
            ) -> Result<Vec<patd_core::audit::AuditEvent>, $crate::StoreError> {
                self.intact()?;
                self.queries().record_last_used(uses).await
            }

            async fn signing_keys(
                &self,
            ) -> Result<Vec<$crate::StoredSigningKey>, $crate::StoreError> {
                self.intact()?;
                self.queries().signing_keys().await
            }

            async fn insert_signing_key(
                &self,
                key: &$crate::StoredSigningKey,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().insert_signing_key(key, event).await
            }

            async fn replace_signing_keys(
                &self,
                replacements: &[$crate::SigningKeyReplacement],
            ) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                let replaced = self.queries().replace_signing_keys(replacements).await?;
                if replaced {
                    self.after_keys_replaced().await;
                }
                Ok(replaced)
            }

            async fn insert_first_signing_key(
                &self,
                key: &$crate::StoredSigningKey,
                event: &patd_core::audit::AuditEvent,
            ) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries().insert_first_signing_key(key, event).await
            }

            async fn retire_signing_key(
                &self,
                kid: &str,
                at: time::OffsetDateTime,
            ) -> Result<$crate::Retirement, $crate::StoreError> {
                self.intact()?;
                self.queries().retire_signing_key(kid, at).await
            }

            async fn register_issuer(&self, url: &str) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().register_issuer(url).await
            }

            async fn issuers(&self) -> Result<Vec<String>, $crate::StoreError> {
                self.intact()?;
                self.queries().issuers().await
            }

            async fn setting(&self, key: &str) -> Result<Option<String>, $crate::StoreError> {
                self.intact()?;
                self.queries().setting(key).await
            }

            async fn insert_stream(
                &self,
                stream: &patd_core::ssf::Stream,
            ) -> Result<$crate::StreamInsert, $crate::StoreError> {
                self.intact()?;
                self.queries().insert_stream(stream).await
            }

            async fn streams(&self) -> Result<Vec<patd_core::ssf::Stream>, $crate::StoreError> {
                self.intact()?;
                self.queries().streams().await
            }

            async fn stream(
                &self,
                id: &str,
            ) -> Result<Option<patd_core::ssf::Stream>, $crate::StoreError> {
                self.intact()?;
                self.queries().stream(id).await
            }

            async fn update_stream(
                &self,
                stream: &patd_core::ssf::Stream,
            ) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries().update_stream(stream).await
            }

            async fn delete_stream(&self, id: &str) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries().delete_stream(id).await
            }

            async fn queue_stream_set(
                &self,
                stream_id: &str,
                signal: &patd_core::ssf::Signal,
            ) -> Result<bool, $crate::StoreError> {
                self.intact()?;
                self.queries().queue_stream_set(stream_id, signal).await
            }

            async fn poll_stream(
                &self,
                stream_id: &str,
                ack: &[String],
                errors: &[(String, String)],
                max: i64,
            ) -> Result<(Vec<$crate::Delivery>, bool), $crate::StoreError> {
                self.intact()?;
                self.queries()
                    .poll_stream(stream_id, ack, errors, max)
                    .await
            }

            async fn setting_or_insert(
                &self,
                key: &str,
                value: &str,
            ) -> Result<String, $crate::StoreError> {
                self.intact()?;
                self.queries().setting_or_insert(key, value).await
            }

            async fn record_auth_failures(
                &self,
                aggregates: &[(patd_core::audit::AuditEvent, i64, String)],
            ) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().record_auth_failures(aggregates).await
            }

            async fn audit_events(
                &self,
                query: &patd_core::audit::AuditQuery,
            ) -> Result<$crate::AuditPage, $crate::StoreError> {
                self.intact()?;
                self.queries().audit_events(query).await
            }

            async fn prune_audit_events(
                &self,
                before: time::OffsetDateTime,
            ) -> Result<u64, $crate::StoreError> {
                self.intact()?;
                self.queries().prune_audit_events(before).await
            }

            async fn ping(&self) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().ping().await
            }

            async fn optimize(&self) -> Result<(), $crate::StoreError> {
                self.intact()?;
                self.queries().optimize().await
            }

            fn pool_stats(&self) -> $crate::PoolStats {
                self.queries().pool_stats()
            }

            async fn subscribe(
                &self,
            ) -> Result<Option<tokio::sync::mpsc::Receiver<$crate::StoreEvent>>, $crate::StoreError>
            {
                self.intact()?;
                self.subscribe_here().await
            }
        }
    };
}
pub(crate) use store_by_queries;

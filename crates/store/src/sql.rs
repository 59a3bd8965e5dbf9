//! SQL shared by the backends: statements built as text with each backend's placeholders and
//! owned values (`Statement`), the list query's `WHERE` and `ORDER BY` built from the typed
//! filter (every value bound, never pasted), the new-PAT inserts, and rows turned back into
//! domain values. The few places where SQLite and PostgreSQL differ go through [`Dialect`] and
//! [`RowAccess`].

use crate::{millis_comparison, OwnedPat, PatQuery, StoreError, StoredSigningKey};
use patd_core::audit::{
    Actor, ActorType, AuditComparison, AuditEvent, AuditQuery, EventType, Outcome, Target,
};
use patd_core::exchange::{ExchangeRecord, PreviousSecret};
use patd_core::expiry::Expiry;
use patd_core::filter::{Comparison, Filter, NameMatch, TimeField};
use patd_core::identity::Identity;
use patd_core::ids::{IdentityId, PatId};
use patd_core::listing::SortField;
use patd_core::name::{IdentityName, PatName};
use patd_core::pat::{NewPat, PatRecord, Validity};
use patd_core::rights::{Level, Right, Rights};
use patd_core::scope::Scope;
use patd_core::secret::SecretDigest;
use sqlx::query::Query;
use sqlx::{Database, Encode, Type};
use std::marker::PhantomData;
use time::OffsetDateTime;

/// The columns of a PAT, from `pats p`.
pub(crate) const PAT_COLUMNS: &str = "p.id, p.owner_id, p.name, p.scope, p.access_token_validity, \
     p.expiration_date, p.never_expires_acknowledged, p.managed, p.created, p.last_used";

/// What differs between the SQL of two backends.
pub(crate) trait Dialect: Database {
    /// The `n`th positional parameter, from 1: `?` or `$n`.
    fn param(n: usize) -> String;
    /// `p.name` contains a value, case-sensitively: the text around the value's placeholder.
    const CONTAINS: [&'static str; 2];
    /// Whether `CONTAINS` is a `LIKE` that takes the value as a pattern (`%value%`, escaped with
    /// a backslash), which a trigram index serves.
    const CONTAINS_LIKE: bool;
    /// `p.name` starts with a value, case-sensitively: the text around the value's two
    /// placeholders.
    const STARTS_WITH: [&'static str; 3];
    /// `p.name` compared byte-wise on every backend: in an ORDER BY and in the filters, so that
    /// both read the same index.
    const PAT_NAME: &'static str;
    /// An identity's `name` in an ORDER BY, compared byte-wise on every backend.
    const IDENTITY_NAME_ORDER: &'static str;
    /// The statement that announces a write to other nodes (channel, payload), delivered when
    /// the transaction commits; `None` where every writer is this process.
    const NOTIFY: Option<&'static str>;
    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
    /// What makes a list walk the index of `field`'s order (list.rs, `Plan::WalkOrder`): SQLite
    /// is told the index; PostgreSQL weighs the LIMIT itself and walks it when told nothing.
    fn walk_index(field: SortField) -> &'static str;
    /// What ends a subquery so that the planner plans it apart from the query around it.
    const FENCE: &'static str;
    /// Whether a list that reads its matches reads their sort keys in the same scan (else it
    /// finds their ids first, then looks up the keys of just those).
    const MATCHES_WITH_KEYS: bool;
    /// What shows a statement's plan: the prefix, and the column of each line of it.
    const EXPLAIN: [&'static str; 2];
    /// One row, `total`: the planner's estimate of the PATs stored (NULL, or an error, while
    /// it has none).
    const ROWS: &'static str;
    /// Refreshes the planner's statistics of the tables whose plans depend on them.
    const ANALYZE: &'static str;
    /// What follows a `SELECT` of one row to lock it until the transaction ends; empty where the
    /// transaction already has the only writer.
    const LOCK_ROW: &'static str;
    /// What begins a transaction that will write (creates.rs).
    const BEGIN_WRITE: &'static str;
    /// How many group-commit tasks write creates at once (creates.rs): one where the database
    /// admits one writer, more where batches of different owners can commit side by side.
    const WRITERS: usize;
    /// `NOTIFY` for many payloads in one statement: the text before the channel's placeholder,
    /// and after it up to the `VALUES` rows of the payloads, which `) AS v (id)` closes.
    const NOTIFY_EACH: Option<[&'static str; 2]>;
}

/// Implements [`Dialect::rows_affected`] for a backend (each has its own result type).
macro_rules! rows_affected {
    () => {
        fn rows_affected(result: &Self::QueryResult) -> u64 {
            result.rows_affected()
        }
    };
}
pub(crate) use rows_affected;

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Text(String),
    Int(i64),
    OptInt(Option<i64>),
    OptText(Option<String>),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// SQL text with each backend's placeholders, and the values it binds, owned: what sqlx's
/// `QueryBuilder` does, in a form that code generic over the backend can run.
pub(crate) struct Statement<DB> {
    sql: String,
    values: Vec<Value>,
    backend: PhantomData<DB>,
}

impl<DB: Dialect> Statement<DB> {
    pub(crate) fn new(sql: impl Into<String>) -> Statement<DB> {
        Statement {
            sql: sql.into(),
            values: Vec::new(),
            backend: PhantomData,
        }
    }

    /// The same statement behind `prefix` (`EXPLAIN`, say), binding the same values.
    pub(crate) fn prefixed(self, prefix: &str) -> Statement<DB> {
        Statement {
            sql: format!("{prefix}{}", self.sql),
            ..self
        }
    }

    pub(crate) fn push(&mut self, sql: &str) -> &mut Statement<DB> {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind(&mut self, value: Value) -> &mut Statement<DB> {
        self.values.push(value);
        self.sql.push_str(&DB::param(self.values.len()));
        self
    }

    pub(crate) fn bind_text(&mut self, value: &str) -> &mut Statement<DB> {
        self.bind(Value::Text(value.to_owned()))
    }

    /// `(v1, v2, …)`, a placeholder for each value.
    pub(crate) fn bind_tuple(&mut self, values: impl IntoIterator<Item = Value>) {
        self.push("(");
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.push(", ");
            }
            self.bind(value);
        }
        self.push(")");
    }
}

impl<DB> Statement<DB>
where
    DB: Dialect,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
{
    /// The query, ready to run, borrowing the text and the values.
    pub(crate) fn query(&self) -> Query<'_, DB, DB::Arguments<'_>> {
        let mut query = sqlx::query::<DB>(&self.sql);
        for value in &self.values {
            query = match value {
                Value::Text(text) => query.bind(text.as_str()),
                Value::Int(number) => query.bind(*number),
                Value::OptInt(number) => query.bind(*number),
                Value::OptText(text) => query.bind(text.as_deref()),
                Value::Bool(flag) => query.bind(*flag),
                Value::Bytes(bytes) => query.bind(bytes.as_slice()),
            };
        }
        query
    }
}

/// The channel that carries the id of every PAT written.
pub(crate) const PATS_CHANNEL: &str = "patd_pats";
/// The channel that says a signing key was added or a node registered its issuer.
pub(crate) const KEYS_CHANNEL: &str = "patd_keys";
/// The channel that says `lastUsed` was written for some PATs.
pub(crate) const LISTS_CHANNEL: &str = "patd_lists";

/// The setting that marks the first signing key as created, so that it is created once.
pub(crate) const FIRST_KEY_SETTING: &str = "first_signing_key";

/// The `WHERE` clause of a list: visibility, then the client's filter.
pub(crate) fn push_where<DB: Dialect>(statement: &mut Statement<DB>, query: &PatQuery) {
    statement.push(" WHERE 1 = 1");
    if let Some(owner) = &query.owner {
        statement
            .push(" AND p.owner_id = ")
            .bind_text(owner.as_str());
    }
    if !query.include_managed {
        statement.push(" AND p.managed = ").bind(Value::Bool(false));
    }
    if let Some(filter) = &query.request.filter {
        statement.push(" AND ");
        push_filter(statement, filter);
    }
}

/// The `ORDER BY` of a list: the sorters, then `id` so that the order is total and pages never
/// overlap. A missing date sorts as later than any date. `id` runs the way the last sorter does,
/// so that one sorter, either way, is one index read forwards or backwards (migration 0012).
pub(crate) fn push_order<DB: Dialect>(statement: &mut Statement<DB>, query: &PatQuery) {
    statement.push(" ORDER BY ");
    let mut last = "ASC";
    for sorter in &query.request.sorters {
        let direction = if sorter.descending { "DESC" } else { "ASC" };
        last = direction;
        statement.push(&match sorter.field {
            SortField::Name => format!("{} {direction}, ", DB::PAT_NAME),
            SortField::Created => format!("p.created {direction}, "),
            SortField::LastUsed => format!("{} {direction}, ", date_key(TimeField::LastUsed)),
            SortField::ExpirationDate => {
                format!("{} {direction}, ", date_key(TimeField::ExpirationDate))
            }
        });
    }
    statement.push(&format!("p.id {last}"));
}

/// The least text greater than every text that starts with `prefix`, in code point (byte) order:
/// the prefix with its last character raised by one, dropping characters that cannot be raised.
/// `None` when no such text exists (every character is the greatest).
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value, stepping over the surrogates.
        let next = (u32::from(last) + 1..=0x10_FFFF).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Whether a date may be missing.
fn nullable(field: TimeField) -> bool {
    !matches!(field, TimeField::Created)
}

/// What a missing date is, as a key: later than every date (`time` stops at year 9999).
const MISSING: &str = "9223372036854775807";

/// A date as the lists sort and filter it: a missing one as `MISSING`, so that the order and
/// every test on the field read one key, the one its index holds (migration 0012).
fn date_key(field: TimeField) -> &'static str {
    match field {
        TimeField::Created => "p.created",
        TimeField::LastUsed => "COALESCE(p.last_used, 9223372036854775807)",
        TimeField::ExpirationDate => "COALESCE(p.expiration_date, 9223372036854775807)",
    }
}

/// A filter's `and`, `or` and `not` as SQL, each comparison written by `leaf`. Every comparison
/// is two-valued (a missing value compares false, never NULL), so `not` is the exact complement.
fn push_tree<DB: Dialect, C>(
    statement: &mut Statement<DB>,
    filter: &Filter<C>,
    leaf: &impl Fn(&mut Statement<DB>, &C),
) {
    match filter {
        Filter::And(left, right) | Filter::Or(left, right) => {
            let joiner = if matches!(filter, Filter::And(..)) {
                " AND "
            } else {
                " OR "
            };
            statement.push("(");
            push_tree(statement, left, leaf);
            statement.push(joiner);
            push_tree(statement, right, leaf);
            statement.push(")");
        }
        Filter::Not(inner) => {
            statement.push("(NOT ");
            push_tree(statement, inner, leaf);
            statement.push(")");
        }
        Filter::Compare(comparison) => leaf(statement, comparison),
    }
}

fn push_filter<DB: Dialect>(statement: &mut Statement<DB>, filter: &Filter) {
    push_tree(statement, filter, &push_comparison::<DB>);
}

fn push_comparison<DB: Dialect>(statement: &mut Statement<DB>, comparison: &Comparison) {
    match comparison {
        Comparison::Time { field, op, value } => {
            let key = date_key(*field);
            let (sql_op, bound) = millis_comparison(*op, *value);
            statement
                .push(&format!("({key} {sql_op} "))
                .bind(Value::Int(bound));
            // A missing date's key is above every bound: `gt` and `ge` leave it out here.
            if nullable(*field) && matches!(sql_op, ">" | ">=") {
                statement.push(&format!(" AND {key} < {MISSING}"));
            }
            statement.push(")");
        }
        Comparison::Presence { field, present } => {
            let test = if *present { "<" } else { "=" };
            statement.push(&format!("({} {test} {MISSING})", date_key(*field)));
        }
        Comparison::Name(NameMatch::Eq(value)) => {
            statement
                .push(&format!("({} = ", DB::PAT_NAME))
                .bind_text(value)
                .push(")");
        }
        Comparison::Name(NameMatch::Contains(value)) => {
            let [before, after] = DB::CONTAINS;
            let value = if DB::CONTAINS_LIKE {
                // `%value%`, the value's own `%`, `_` and `\` escaped.
                let mut pattern = String::with_capacity(value.len() + 2);
                pattern.push('%');
                for c in value.chars() {
                    if matches!(c, '%' | '_' | '\\') {
                        pattern.push('\\');
                    }
                    pattern.push(c);
                }
                pattern.push('%');
                pattern
            } else {
                value.clone()
            };
            statement.push(before).bind_text(&value).push(after);
        }
        Comparison::Name(NameMatch::StartsWith(value)) => {
            // In code point order (bytes, on both backends) the texts that start with `value`
            // are exactly those from `value` up to `prefix_end(value)`: a range an index on the
            // name seeks, and whose size the planner can estimate.
            statement
                .push(&format!("({} >= ", DB::PAT_NAME))
                .bind_text(value);
            match prefix_end(value) {
                Some(end) => {
                    statement
                        .push(&format!(" AND {} < ", DB::PAT_NAME))
                        .bind_text(&end);
                }
                None => {
                    let [before, between, after] = DB::STARTS_WITH;
                    statement
                        .push(" AND ")
                        .push(before)
                        .bind_text(value)
                        .push(between)
                        .bind_text(value)
                        .push(after);
                }
            }
            statement.push(")");
        }
        Comparison::Name(NameMatch::In(values)) => {
            statement.push(&format!("({} IN ", DB::PAT_NAME));
            statement.bind_tuple(values.iter().cloned().map(Value::Text));
            statement.push(")");
        }
        Comparison::Managed(value) => {
            statement
                .push("(p.managed = ")
                .bind(Value::Bool(*value))
                .push(")");
        }
    }
}

/// Typed column reads, implemented by each backend's row type.
pub(crate) trait RowAccess {
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn boolean(&self, column: &str) -> Result<bool, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Implements [`RowAccess`] for a backend's row type: the same `try_get` calls, typed per backend.
macro_rules! row_access {
    ($row:ty) => {
        impl $crate::sql::RowAccess for $row {
            fn text(&self, column: &str) -> Result<String, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn int(&self, column: &str) -> Result<i64, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn boolean(&self, column: &str) -> Result<bool, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
            fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, $crate::StoreError> {
                Ok(sqlx::Row::try_get(self, column)?)
            }
        }
    };
}
pub(crate) use row_access;

/// The columns a new PAT's row fills, in the order `push_new_pat` binds them.
pub(crate) const NEW_PAT_COLUMNS: &str = "id, owner_id, name, secret_digest, scope, \
     access_token_validity, expiration_date, never_expires_acknowledged, managed, created, last_used";

/// How many rows one multi-row `INSERT` carries: eleven parameters a row stay well under both
/// backends' limits.
pub(crate) const INSERT_CHUNK: usize = 1_000;

/// The values of `NEW_PAT_COLUMNS` for one new PAT.
fn new_pat_values(new_pat: &NewPat) -> [Value; 11] {
    let pat = &new_pat.record;
    [
        Value::Text(pat.id.as_str().to_owned()),
        Value::Text(pat.owner_id.as_str().to_owned()),
        Value::Text(pat.name.as_str().to_owned()),
        Value::Bytes(new_pat.digest.as_bytes().to_vec()),
        Value::Text(to_json(pat.scope.entries())),
        Value::Int(i64::from(pat.validity.seconds())),
        Value::OptInt(pat.expiry.date().map(millis)),
        Value::Bool(pat.never_expires_acknowledged),
        Value::Bool(pat.managed),
        Value::Int(millis(pat.created)),
        Value::OptInt(pat.last_used.map(millis)),
    ]
}

/// One `INSERT` of many new PATs, with no per-owner limit (the caller has checked it or lifts
/// it).
pub(crate) fn insert_values<'a, DB: Dialect>(
    pats: impl IntoIterator<Item = &'a NewPat>,
) -> Statement<DB> {
    let mut statement = Statement::new(format!("INSERT INTO pats ({NEW_PAT_COLUMNS}) VALUES "));
    for (index, new_pat) in pats.into_iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.bind_tuple(new_pat_values(new_pat));
    }
    statement
}

/// The insert of a new PAT that, with `limit`, stores nothing when the owner already has that
/// many non-managed PATs (managed PATs do not count and are not limited). The count and the
/// insert are one statement; the caller keeps other writers of the owner out meanwhile (SQLite
/// has one writer; PostgreSQL locks the owner's row).
pub(crate) fn insert_limited<DB: Dialect>(new_pat: &NewPat, limit: Option<u32>) -> Statement<DB> {
    let mut statement = Statement::new(format!("INSERT INTO pats ({NEW_PAT_COLUMNS}) SELECT "));
    for (index, value) in new_pat_values(new_pat).into_iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.bind(value);
    }
    if let (Some(limit), false) = (limit, new_pat.record.managed) {
        statement
            .push(" WHERE (SELECT COUNT(*) FROM pats WHERE owner_id = ")
            .bind_text(new_pat.record.owner_id.as_str())
            .push(" AND managed = FALSE) < ")
            .bind(Value::Int(i64::from(limit)));
    }
    statement
}

pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(crate) fn millis(at: OffsetDateTime) -> i64 {
    // Milliseconds since the epoch fit an i64 for every date `time` can hold.
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn from_millis(value: i64, column: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(value) * 1_000_000)
        .map_err(|err| corrupt(column, err))
}

pub(crate) fn to_json(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

fn from_json(raw: &str, column: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(raw).map_err(|err| corrupt(column, err))
}

pub(crate) fn corrupt(column: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{column}: {err}"))
}

pub(crate) fn pat_from_row(row: &impl RowAccess) -> Result<PatRecord, StoreError> {
    let id = row.text("id")?;
    let owner_id = row.text("owner_id")?;
    let name = row.text("name")?;
    let scope = row.text("scope")?;
    Ok(PatRecord {
        id: PatId::parse(&id).ok_or_else(|| corrupt("id", &id))?,
        owner_id: IdentityId::parse(&owner_id).ok_or_else(|| corrupt("owner_id", &owner_id))?,
        name: PatName::parse(&name).map_err(|err| corrupt("name", err))?,
        scope: Scope::parse(Some(from_json(&scope, "scope")?))
            .map_err(|err| corrupt("scope", err))?,
        validity: Validity::parse(Some(row.int("access_token_validity")?))
            .map_err(|err| corrupt("access_token_validity", err))?,
        expiry: Expiry::from_date(
            row.opt_int("expiration_date")?
                .map(|value| from_millis(value, "expiration_date"))
                .transpose()?,
        ),
        never_expires_acknowledged: row.boolean("never_expires_acknowledged")?,
        managed: row.boolean("managed")?,
        created: from_millis(row.int("created")?, "created")?,
        last_used: row
            .opt_int("last_used")?
            .map(|value| from_millis(value, "last_used"))
            .transpose()?,
    })
}

pub(crate) fn owned_pat_from_row(row: &impl RowAccess) -> Result<OwnedPat, StoreError> {
    Ok(OwnedPat {
        pat: pat_from_row(row)?,
        owner_name: row.text("owner_name")?,
    })
}

/// Reads an identity from `{prefix}id`-style columns; the exchange query prefixes them with
/// `owner_` and takes the id from the PAT's `owner_id`.
pub(crate) fn identity_from_row(
    row: &impl RowAccess,
    prefix: &str,
) -> Result<Identity, StoreError> {
    let id = if prefix.is_empty() {
        row.text("id")?
    } else {
        row.text("owner_id")?
    };
    let name = row.text(&format!("{prefix}name"))?;
    let levels = row.text(&format!("{prefix}levels"))?;
    let extra = row.text(&format!("{prefix}extra_rights"))?;
    Ok(Identity {
        id: IdentityId::parse(&id).ok_or_else(|| corrupt("identity id", &id))?,
        name: IdentityName::parse(&name).map_err(|err| corrupt("identity name", err))?,
        levels: from_json(&levels, "levels")?
            .iter()
            .map(|level| Level::parse(level))
            .collect::<Result<_, _>>()
            .map_err(|err| corrupt("levels", err))?,
        extra_rights: from_json(&extra, "extra_rights")?
            .iter()
            .map(|right| Right::parse_known(right))
            .collect::<Result<Rights, _>>()
            .map_err(|err| corrupt("extra_rights", err))?,
    })
}

pub(crate) fn exchange_record(row: &impl RowAccess) -> Result<ExchangeRecord, StoreError> {
    let pat = pat_from_row(row)?;
    let digest = SecretDigest::from_bytes(&row.bytes("secret_digest")?)
        .ok_or_else(|| corrupt("secret_digest", "not 32 bytes"))?;
    let owner = identity_from_row(row, "owner_")?;
    let recent_ips = from_json(&row.text("last_used_ips")?, "last_used_ips")?
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    let previous = match (
        row.opt_bytes("previous_secret_digest")?,
        row.opt_int("previous_secret_until")?,
    ) {
        (Some(bytes), Some(until)) => Some(PreviousSecret {
            digest: SecretDigest::from_bytes(&bytes)
                .ok_or_else(|| corrupt("previous_secret_digest", "not 32 bytes"))?,
            until: from_millis(until, "previous_secret_until")?,
        }),
        _ => None,
    };
    let tokens_valid_after = row
        .opt_int("tokens_valid_after")?
        .map(|at| from_millis(at, "tokens_valid_after"))
        .transpose()?;
    Ok(ExchangeRecord {
        pat,
        digest,
        owner,
        recent_ips,
        previous,
        tokens_valid_after,
        // Read apart, by `Queries::revoked_jtis`.
        revoked_jtis: Vec::new(),
    })
}

pub(crate) fn signing_key_from_row(row: &impl RowAccess) -> Result<StoredSigningKey, StoreError> {
    Ok(StoredSigningKey {
        kid: row.text("kid")?,
        private_key: row.text("private_pem")?,
        created: from_millis(row.int("created")?, "created")?,
        retired: row
            .opt_int("retired")?
            .map(|at| from_millis(at, "retired"))
            .transpose()?,
    })
}

/// The columns of `audit_events`, in the order of [`event_values`].
pub(crate) const EVENT_COLUMNS: &str = "id, time, type, actor_type, actor_id, actor_name, \
     target_type, target_id, target_name, target_owner_id, source_ip, user_agent, tracking_id, \
     outcome, details, count, aggregate_key";

/// Events in one multi-row `INSERT`: seventeen parameters a row stay under both backends' limits.
pub(crate) const EVENT_CHUNK: usize = 500;

/// The values of `EVENT_COLUMNS` for one event, counted `count` times under `aggregate_key`.
fn event_values(event: &AuditEvent, count: i64, aggregate_key: Option<String>) -> [Value; 17] {
    let target = event.target.as_ref();
    [
        Value::Text(event.id.clone()),
        Value::Int(millis(event.time)),
        Value::Text(event.kind.as_str().to_owned()),
        Value::Text(event.actor.kind.as_str().to_owned()),
        Value::OptText(event.actor.id.clone()),
        Value::OptText(event.actor.name.clone()),
        Value::OptText(target.map(|target| target.kind.to_owned())),
        Value::OptText(target.map(|target| target.id.clone())),
        Value::OptText(target.and_then(|target| target.name.clone())),
        Value::OptText(target.and_then(|target| target.owner_id.clone())),
        Value::OptText(event.source_ip.clone()),
        Value::OptText(event.user_agent.clone()),
        Value::OptText(event.tracking_id.clone()),
        Value::Text(event.outcome.as_str().to_owned()),
        Value::Text(serde_json::Value::Object(event.details.clone()).to_string()),
        Value::Int(count),
        Value::OptText(aggregate_key),
    ]
}

/// The insert of `events` (at most `EVENT_CHUNK`).
pub(crate) fn insert_events<DB: Dialect>(events: &[AuditEvent]) -> Statement<DB> {
    let mut statement = Statement::new(format!(
        "INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES "
    ));
    for (index, event) in events.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.bind_tuple(event_values(event, 1, None));
    }
    statement
}

/// The insert of aggregated events, each adding its count to the row of its key if there is one.
pub(crate) fn upsert_aggregates<DB: Dialect>(
    aggregates: &[(AuditEvent, i64, String)],
) -> Statement<DB> {
    let mut statement = Statement::new(format!(
        "INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES "
    ));
    for (index, (event, count, key)) in aggregates.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.bind_tuple(event_values(event, *count, Some(key.clone())));
    }
    statement.push(
        " ON CONFLICT (aggregate_key) DO UPDATE SET count = audit_events.count + excluded.count",
    );
    statement
}

/// The `WHERE` clause of an audit query: visibility, then the client's filter.
pub(crate) fn push_audit_where<DB: Dialect>(statement: &mut Statement<DB>, query: &AuditQuery) {
    statement.push(" WHERE 1 = 1");
    if let Some(caller) = &query.visible_to {
        statement
            .push(" AND (e.actor_id = ")
            .bind_text(caller.as_str())
            .push(" OR e.target_owner_id = ")
            .bind_text(caller.as_str())
            .push(")");
    }
    if let Some(filter) = &query.filter {
        statement.push(" AND ");
        push_audit_filter(statement, filter);
    }
}

fn push_audit_filter<DB: Dialect>(statement: &mut Statement<DB>, filter: &Filter<AuditComparison>) {
    push_tree(statement, filter, &push_audit_comparison::<DB>);
}

/// Nullable columns compare false when NULL, inside `COALESCE`, so `not` stays the complement.
fn push_audit_comparison<DB: Dialect>(statement: &mut Statement<DB>, comparison: &AuditComparison) {
    let (column, value) = match comparison {
        AuditComparison::Type(kinds) => {
            statement.push("(e.type IN ");
            statement.bind_tuple(
                kinds
                    .iter()
                    .map(|kind| Value::Text(kind.as_str().to_owned())),
            );
            statement.push(")");
            return;
        }
        AuditComparison::Time { op, value } => {
            let (sql, bound) = millis_comparison(*op, *value);
            statement
                .push(&format!("(e.time {sql} "))
                .bind(Value::Int(bound))
                .push(")");
            return;
        }
        AuditComparison::ActorId(id) => ("e.actor_id", id.as_str()),
        AuditComparison::TargetId(id) => ("e.target_id", id.as_str()),
        AuditComparison::TargetOwnerId(id) => ("e.target_owner_id", id.as_str()),
        AuditComparison::Outcome(outcome) => ("e.outcome", outcome.as_str()),
    };
    statement
        .push(&format!("(COALESCE({column} = "))
        .bind_text(value)
        .push(", FALSE))");
}

/// An event as stored. An aggregated event shows its count in `details.count`.
pub(crate) fn event_from_row(row: &impl RowAccess) -> Result<AuditEvent, StoreError> {
    let kind_text = row.text("type")?;
    let kind = EventType::parse(&kind_text).ok_or_else(|| corrupt("type", kind_text))?;
    let actor_text = row.text("actor_type")?;
    let actor_kind =
        ActorType::parse(&actor_text).ok_or_else(|| corrupt("actor_type", actor_text))?;
    let outcome_text = row.text("outcome")?;
    let outcome = Outcome::parse(&outcome_text).ok_or_else(|| corrupt("outcome", outcome_text))?;
    let mut details = match serde_json::from_str(&row.text("details")?) {
        Ok(serde_json::Value::Object(details)) => details,
        Ok(_) => return Err(corrupt("details", "not an object")),
        Err(err) => return Err(corrupt("details", err)),
    };
    if row.opt_text("aggregate_key")?.is_some() {
        details.insert("count".to_owned(), row.int("count")?.into());
    }
    let target = match (row.opt_text("target_type")?, row.opt_text("target_id")?) {
        (Some(kind), Some(id)) => Some(Target {
            kind: Target::kind_named(&kind),
            id,
            name: row.opt_text("target_name")?,
            owner_id: row.opt_text("target_owner_id")?,
        }),
        _ => None,
    };
    Ok(AuditEvent {
        id: row.text("id")?,
        time: from_millis(row.int("time")?, "time")?,
        kind,
        actor: Actor {
            kind: actor_kind,
            id: row.opt_text("actor_id")?,
            name: row.opt_text("actor_name")?,
        },
        target,
        source_ip: row.opt_text("source_ip")?,
        user_agent: row.opt_text("user_agent")?,
        tracking_id: row.opt_text("tracking_id")?,
        outcome,
        details,
        subject: None,
    })
}

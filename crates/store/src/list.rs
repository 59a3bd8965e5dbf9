//! Lists of PATs over a whole tenant: which way a page's ids are found (the plan), and the page's,
//! the count's and the probe's statements. The filter and the order themselves are `sql.rs`'s.
//!
//! A page is found in two steps: its ids, from an index where one serves, then those rows and
//! their owners' names. Finding the ids of a filtered page can go two ways, and which is cheaper
//! depends on how many PATs match, which neither planner weighs well against the LIMIT (SQLite
//! not at all; PostgreSQL assumes the matches are spread evenly along the order):
//! - **walk the order**: read the first sorter's index in order, test each PAT, stop when the
//!   page is full: about `(offset + limit) × all / matches` PATs read;
//! - **read the matches**: find every matching PAT (by the filter's own index where it has one,
//!   else by a scan) and sort them: about `matches` PATs read.
//!
//! The two cost the same at `matches = √((offset + limit) × all)`. So a filtered list first
//! counts its matches up to that bound (the probe: an index range, or the count the client asked
//! for anyway) and walks the order when there are more, reads them all when there are fewer.

use crate::sql::{push_order, push_where, Dialect, Statement, Value, PAT_COLUMNS};
use crate::PatQuery;
use patd_core::listing::SortField;

/// The tenant size the bound is worked out for when the database cannot say (no statistics
/// yet): large, which only sends more lists the way that reads their matches.
pub(crate) const UNKNOWN_TENANT: i64 = 1_000_000;

/// How a page's ids are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// One owner's PATs (or no filter): the database's own choice, an index of the owner or of
    /// the order, which serves well.
    Natural,
    /// Walk the first sorter's index in order, testing each PAT.
    WalkOrder,
    /// Read every match, then sort them.
    ReadMatches,
}

/// Below how many matches reading them all is cheaper than walking the order, in a tenant of
/// about `tenant` PATs (the planner's estimate: a rare match in a small tenant is not rare).
pub(crate) fn walk_bound(query: &PatQuery, tenant: i64) -> i64 {
    let request = &query.request;
    let reach = request.offset.saturating_add(u64::from(request.limit)) as f64;
    let tenant = tenant.max(1) as f64;
    // Truncation is intended: a bound, not a count.
    (reach * tenant).sqrt().clamp(1_000.0, 200_000.0) as i64
}

/// Whether the plan depends on the number of matches: a filtered list of the whole tenant
/// (leaving managed PATs out filters too).
pub(crate) fn needs_probe(query: &PatQuery) -> bool {
    query.owner.is_none() && (query.request.filter.is_some() || !query.include_managed)
}

/// The plan, given how many PATs match (exactly, or at least the bound).
pub(crate) fn plan(query: &PatQuery, matches: Option<i64>, tenant: i64) -> Plan {
    match matches {
        Some(matches) if needs_probe(query) => {
            if matches >= walk_bound(query, tenant) {
                Plan::WalkOrder
            } else {
                Plan::ReadMatches
            }
        }
        _ => Plan::Natural,
    }
}

/// The number of matches, counted up to `walk_bound`.
pub(crate) fn probe<DB: Dialect>(query: &PatQuery, tenant: i64) -> Statement<DB> {
    let mut statement = Statement::<DB>::new("SELECT COUNT(*) AS total FROM (SELECT 1 FROM pats p");
    push_where(&mut statement, query);
    statement
        .push(" LIMIT ")
        .bind(Value::Int(walk_bound(query, tenant)))
        .push(") probe");
    statement
}

/// The total the client asked for.
pub(crate) fn count<DB: Dialect>(query: &PatQuery) -> Statement<DB> {
    let mut statement = Statement::<DB>::new("SELECT COUNT(*) AS total FROM pats p");
    push_where(&mut statement, query);
    statement
}

/// The page: its ids found by `plan`, then their rows and their owners' names, in order.
pub(crate) fn page<DB: Dialect>(query: &PatQuery, plan: Plan) -> Statement<DB> {
    let request = &query.request;
    let mut statement = Statement::<DB>::new(format!(
        "SELECT {PAT_COLUMNS}, i.name AS owner_name FROM (SELECT p.id FROM "
    ));
    match plan {
        Plan::Natural => {
            statement.push("pats p");
            push_where(&mut statement, query);
        }
        Plan::WalkOrder => {
            let first = request
                .sorters
                .first()
                .map_or(SortField::Created, |s| s.field);
            statement.push("pats p").push(DB::walk_index(first));
            push_where(&mut statement, query);
        }
        Plan::ReadMatches if DB::MATCHES_WITH_KEYS => {
            // The matches with the keys they sort by, behind a fence that keeps the planner from
            // merging them with the ORDER BY (and so from walking the order after all).
            statement.push(
                "(SELECT p.id, p.name, p.created, p.last_used, p.expiration_date FROM pats p",
            );
            push_where(&mut statement, query);
            statement.push(DB::FENCE).push(") p");
        }
        Plan::ReadMatches => {
            // The matches' ids alone, so that the narrowest index that can test the filter
            // serves (the name's, for a name that contains a text), behind the same fence; then
            // the keys of just those.
            statement.push("(SELECT p.id FROM pats p");
            push_where(&mut statement, query);
            statement
                .push(DB::FENCE)
                .push(") matches CROSS JOIN pats p WHERE p.id = matches.id");
        }
    }
    push_order(&mut statement, query);
    statement
        .push(" LIMIT ")
        .bind(Value::Int(i64::from(request.limit)))
        .push(" OFFSET ")
        .bind(Value::Int(
            i64::try_from(request.offset).unwrap_or(i64::MAX),
        ))
        // SQLite reads a CROSS JOIN's left side first: the page's ids, then their rows. Left to
        // itself it would rather read every row in the ORDER BY's order to skip one sort of
        // 250. PostgreSQL plans it as any join.
        .push(
            ") page CROSS JOIN pats p CROSS JOIN identities i \
             WHERE p.id = page.id AND i.id = p.owner_id",
        );
    push_order(&mut statement, query);
    statement
}

//! What a list asks for beyond visibility: the filter, the order and the page (CONTRACT §6).

use crate::filter::Filter;
use crate::Rule;

/// The largest and default page.
pub const MAX_LIMIT: u32 = 250;

/// A field a list may be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortField {
    Name,
    Created,
    LastUsed,
    ExpirationDate,
}

/// One sort key. Missing values (`lastUsed`, `expirationDate` null) sort as if later than any
/// date: last ascending, first descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sorter {
    pub field: SortField,
    pub descending: bool,
}

/// A parsed list request. The store appends `id` to the order so that pages never overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    pub filter: Option<Filter>,
    pub sorters: Vec<Sorter>,
    pub limit: u32,
    pub offset: u64,
    pub count: bool,
}

/// The raw query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams<'a> {
    pub filters: Option<&'a str>,
    pub sorters: Option<&'a str>,
    pub limit: Option<&'a str>,
    pub offset: Option<&'a str>,
    pub count: Option<&'a str>,
}

impl ListRequest {
    pub fn parse(params: &ListParams<'_>) -> Result<ListRequest, Rule> {
        let filter = match params.filters {
            Some(text) if !text.trim().is_empty() => Some(Filter::parse(text)?),
            _ => None,
        };
        let sorters = match params.sorters {
            Some(text) if !text.trim().is_empty() => parse_sorters(text)?,
            _ => vec![Sorter {
                field: SortField::Created,
                descending: false,
            }],
        };
        let (limit, offset) = parse_page(params.limit, params.offset)?;
        let count = match params.count.map(str::trim) {
            None => false,
            Some(raw) if raw.eq_ignore_ascii_case("true") => true,
            Some(raw) if raw.eq_ignore_ascii_case("false") => false,
            Some(_) => return Err(Rule::Paging("count must be true or false".to_owned())),
        };
        Ok(ListRequest {
            filter,
            sorters,
            limit,
            offset,
            count,
        })
    }
}

/// `limit` (0 to 250, default 250) and `offset` (default 0), for every collection.
pub fn parse_page(limit: Option<&str>, offset: Option<&str>) -> Result<(u32, u64), Rule> {
    let limit = match limit {
        None => MAX_LIMIT,
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|limit| *limit <= MAX_LIMIT)
            .ok_or_else(|| {
                Rule::Paging(format!("limit must be an integer from 0 to {MAX_LIMIT}"))
            })?,
    };
    let offset = match offset {
        None => 0,
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|offset| *offset <= i64::MAX as u64)
            .ok_or_else(|| Rule::Paging("offset must be a non-negative integer".to_owned()))?,
    };
    Ok((limit, offset))
}

fn parse_sorters(text: &str) -> Result<Vec<Sorter>, Rule> {
    let mut sorters: Vec<Sorter> = Vec::new();
    for raw in text.split(',') {
        let raw = raw.trim();
        let (descending, name) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let field = match name {
            "name" => SortField::Name,
            "created" => SortField::Created,
            "lastUsed" => SortField::LastUsed,
            "expirationDate" => SortField::ExpirationDate,
            other => {
                return Err(Rule::Paging(format!(
                "sorter '{other}' is not supported; use name, created, lastUsed or expirationDate"
            )))
            }
        };
        if sorters.iter().any(|sorter| sorter.field == field) {
            return Err(Rule::Paging(format!("sorter '{name}' is given twice")));
        }
        sorters.push(Sorter { field, descending });
    }
    Ok(sorters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(pairs: &[(&str, &'a str)]) -> ListParams<'a> {
        let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        ListParams {
            filters: get("filters"),
            sorters: get("sorters"),
            limit: get("limit"),
            offset: get("offset"),
            count: get("count"),
        }
    }

    #[test]
    fn defaults() {
        let request = ListRequest::parse(&params(&[])).unwrap();
        assert_eq!(request.limit, 250);
        assert_eq!(request.offset, 0);
        assert!(!request.count);
        assert_eq!(
            request.sorters,
            [Sorter {
                field: SortField::Created,
                descending: false
            }]
        );
    }

    #[test]
    fn paging_rules() {
        let check = |pairs: &[(&str, &str)], ok: bool| {
            assert_eq!(ListRequest::parse(&params(pairs)).is_ok(), ok, "{pairs:?}")
        };
        check(&[("limit", "0")], true);
        check(&[("limit", "250")], true);
        check(&[("limit", "251")], false);
        check(&[("limit", "-1")], false);
        check(&[("limit", "ten")], false);
        check(&[("offset", "600")], true);
        check(&[("offset", "-5")], false);
        check(&[("count", "TRUE")], true);
        check(&[("count", "yes")], false);
        check(&[("sorters", "-lastUsed,name")], true);
        check(&[("sorters", "owner")], false);
        check(&[("sorters", "name,-name")], false);
        check(&[("filters", "bogus eq 1")], false);
    }
}

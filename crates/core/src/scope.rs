//! A PAT's scope: the list of strings a client asked for, and the rights it names.

use crate::rights::{Right, Rights};
use crate::Rule;

/// Every right the owner holds.
pub const SCOPE_ALL: &str = "sp:scopes:all";
/// **[patd]** The `my-…:read` right only.
pub const SCOPE_DEFAULT: &str = "sp:scopes:default";
/// Lets access tokens of a PAT rotate that PAT only (EXTENSIONS E2); never implied by `sp:scopes:all`.
pub const SCOPE_SELF_ROTATE: &str = "patd:self-rotate";

const MAX_ENTRIES: usize = Scope::MAX_ENTRIES;
const MAX_ENTRY_CHARS: usize = 256;

/// A validated scope: 1 to 50 entries, each 1 to 256 characters of `[A-Za-z0-9:._*-]`.
/// Entries that name no right are kept (and returned) but grant nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(Vec<String>);

impl Scope {
    /// The most entries a scope may hold.
    pub const MAX_ENTRIES: usize = 50;

    /// `None` (omitted or null) means `["sp:scopes:all"]`.
    pub fn parse(raw: Option<Vec<String>>) -> Result<Scope, Rule> {
        let Some(entries) = raw else {
            return Ok(Scope::all());
        };
        if entries.is_empty() {
            return Err(Rule::ScopeEmpty);
        }
        if entries.len() > MAX_ENTRIES {
            return Err(Rule::ScopeTooMany { max: MAX_ENTRIES });
        }
        if let Some(bad) = entries.iter().find(|entry| !is_valid_entry(entry)) {
            return Err(Rule::ScopeEntryInvalid(bad.clone()));
        }
        // A secret is a well-formed entry (letters, digits and `_`), so it is looked for apart.
        if entries
            .iter()
            .any(|entry| crate::secret::holds_secret(entry))
        {
            return Err(Rule::ScopeEntryHoldsSecret);
        }
        Ok(Scope(entries))
    }

    pub fn all() -> Scope {
        Scope(vec![SCOPE_ALL.to_owned()])
    }

    pub fn entries(&self) -> &[String] {
        &self.0
    }

    /// Whether the scope names `patd:self-rotate` itself.
    pub fn allows_self_rotation(&self) -> bool {
        self.0.iter().any(|entry| entry == SCOPE_SELF_ROTATE)
    }

    /// The rights this scope lets an access token use, given the rights its owner holds.
    pub fn effective_rights(&self, owner: Rights) -> Rights {
        let named: Rights = self
            .0
            .iter()
            .fold(Rights::NONE, |acc, entry| match entry.as_str() {
                SCOPE_ALL => acc.union(owner),
                SCOPE_DEFAULT => acc.with(Right::MyRead),
                other => Right::parse(other).map_or(acc, |right| acc.with(right)),
            });
        named.intersection(owner)
    }
}

fn is_valid_entry(entry: &str) -> bool {
    !entry.is_empty()
        && entry.len() <= MAX_ENTRY_CHARS
        && entry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'*' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rights::Level;

    fn strings(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn scope_validation() {
        let check = |raw: Option<Vec<String>>, want: Result<Vec<&str>, Rule>| {
            let got = Scope::parse(raw).map(|scope| scope.entries().to_vec());
            let want = want.map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(got, want);
        };
        check(None, Ok(vec!["sp:scopes:all"]));
        check(strings(&[]), Err(Rule::ScopeEmpty));
        check(
            strings(&["sp:scopes:default"]),
            Ok(vec!["sp:scopes:default"]),
        );
        check(strings(&["demo:x.y_z*-1"]), Ok(vec!["demo:x.y_z*-1"]));
        check(
            strings(&["has space"]),
            Err(Rule::ScopeEntryInvalid("has space".into())),
        );
        check(strings(&[""]), Err(Rule::ScopeEntryInvalid(String::new())));
        let long = "a".repeat(257);
        check(Some(vec![long.clone()]), Err(Rule::ScopeEntryInvalid(long)));
        check(Some(vec!["a".repeat(256)]), Ok(vec![&"a".repeat(256)]));
        check(
            Some(vec!["a".to_owned(); 51]),
            Err(Rule::ScopeTooMany { max: 50 }),
        );
        check(Some(vec!["a".to_owned(); 50]), Ok(vec!["a"; 50]));
    }

    #[test]
    fn effective_rights_are_the_intersection_with_the_owner() {
        let user = Level::User.rights();
        let admin = Level::OrgAdmin.rights();
        let check = |entries: &[&str], owner: Rights, want: &[Right]| {
            let scope = Scope::parse(strings(entries)).unwrap();
            assert_eq!(
                scope.effective_rights(owner),
                want.iter().copied().collect::<Rights>(),
                "{entries:?}"
            );
        };
        check(&["sp:scopes:all"], user, &[Right::MyRead, Right::MyManage]);
        check(&["sp:scopes:all"], admin, &Right::ALL);
        check(&["sp:scopes:default"], admin, &[Right::MyRead]);
        check(&["sp:all-personal-access-tokens:read"], user, &[]);
        check(
            &["idn:all-personal-access-tokens:read"],
            admin,
            &[Right::AllRead],
        );
        check(&["demo:unknown"], admin, &[]);
        check(
            &[
                "sp:my-personal-access-tokens:manage",
                "idn:my-personal-access-tokens:read",
            ],
            user,
            &[Right::MyRead, Right::MyManage],
        );
    }
}

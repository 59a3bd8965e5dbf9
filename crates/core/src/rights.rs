//! Rights (CONTRACT §3) and the user levels that bundle them.

use crate::Rule;

const IDN_PREFIX: &str = "idn:";
const PATD_PREFIX: &str = "patd:";

/// One right over PATs. Each has an `idn:` and an `sp:` spelling; both are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Right {
    MyRead,
    MyManage,
    AllRead,
    AllManage,
    AllUpdate,
    ManagedRead,
    /// `idn:audit-events:read` (EXTENSIONS E2): every audit event, not only one's own.
    AuditRead,
    /// `patd:webhooks:manage` (EXTENSIONS E2): the webhooks and their deliveries.
    WebhooksManage,
    /// `patd:token-introspection` (EXTENSIONS E2, E10): asking whether an access token is live.
    TokenIntrospection,
    /// SailPoint's `idn:ssf-transmitter-streams:manage` (EXTENSIONS E2, E11): the SSF streams.
    SsfStreamsManage,
}

impl Right {
    pub const ALL: [Right; 10] = [
        Right::MyRead,
        Right::MyManage,
        Right::AllRead,
        Right::AllManage,
        Right::AllUpdate,
        Right::ManagedRead,
        Right::AuditRead,
        Right::WebhooksManage,
        Right::TokenIntrospection,
        Right::SsfStreamsManage,
    ];

    /// The name without its `idn:`/`sp:` prefix.
    pub fn name(self) -> &'static str {
        let idn = self.idn();
        idn.strip_prefix(IDN_PREFIX).unwrap_or(idn)
    }

    /// The `idn:` spelling, used in JWT claims and in `patd identity create` output.
    pub fn idn(self) -> &'static str {
        match self {
            Right::MyRead => "idn:my-personal-access-tokens:read",
            Right::MyManage => "idn:my-personal-access-tokens:manage",
            Right::AllRead => "idn:all-personal-access-tokens:read",
            Right::AllManage => "idn:all-personal-access-tokens:manage",
            Right::AllUpdate => "idn:all-personal-access-tokens:update",
            Right::ManagedRead => "idn:managed-personal-access-tokens:read",
            Right::AuditRead => "idn:audit-events:read",
            Right::SsfStreamsManage => "idn:ssf-transmitter-streams:manage",
            // patd's own rights have one spelling, their own.
            Right::WebhooksManage => "patd:webhooks:manage",
            Right::TokenIntrospection => "patd:token-introspection",
        }
    }

    /// Reads either spelling; anything else names no right.
    pub fn parse(raw: &str) -> Option<Right> {
        if raw.starts_with(PATD_PREFIX) {
            return Right::ALL.into_iter().find(|right| right.idn() == raw);
        }
        let bare = raw
            .strip_prefix(IDN_PREFIX)
            .or_else(|| raw.strip_prefix("sp:"))?;
        Right::ALL
            .into_iter()
            .find(|right| right.idn().starts_with(IDN_PREFIX) && right.name() == bare)
    }

    /// Like [`Right::parse`], but an unknown name is an error (for administrators' input).
    pub fn parse_known(raw: &str) -> Result<Right, Rule> {
        Right::parse(raw).ok_or_else(|| Rule::UnknownRight(raw.to_owned()))
    }

    fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

/// A set of rights, small and `Copy` so that checking one costs nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rights(u16);

impl Rights {
    pub const NONE: Rights = Rights(0);

    pub fn all() -> Rights {
        Right::ALL.into_iter().collect()
    }

    pub fn contains(self, right: Right) -> bool {
        self.0 & right.bit() != 0
    }

    /// Whether the set holds at least one of `rights`.
    pub fn any_of(self, rights: &[Right]) -> bool {
        rights.iter().any(|right| self.contains(*right))
    }

    pub fn with(self, right: Right) -> Rights {
        Rights(self.0 | right.bit())
    }

    pub fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    pub fn intersection(self, other: Rights) -> Rights {
        Rights(self.0 & other.0)
    }

    /// The rights of `self` that `other` lacks.
    pub fn without(self, other: Rights) -> Rights {
        Rights(self.0 & !other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Right> {
        Right::ALL
            .into_iter()
            .filter(move |right| self.contains(*right))
    }

    /// The `idn:` names, in a fixed order.
    pub fn idn_names(self) -> Vec<String> {
        self.iter().map(|right| right.idn().to_owned()).collect()
    }

    /// Reads names as found in a verified JWT; names of no known right are skipped.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Rights {
        names.into_iter().filter_map(Right::parse).collect()
    }
}

impl FromIterator<Right> for Rights {
    fn from_iter<I: IntoIterator<Item = Right>>(iter: I) -> Rights {
        iter.into_iter().fold(Rights::NONE, Rights::with)
    }
}

/// A user level **[patd]**: a named bundle of rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    User,
    OrgAdmin,
}

impl Level {
    pub fn parse(raw: &str) -> Result<Level, Rule> {
        match raw {
            "USER" => Ok(Level::User),
            "ORG_ADMIN" => Ok(Level::OrgAdmin),
            other => Err(Rule::UnknownLevel(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::User => "USER",
            Level::OrgAdmin => "ORG_ADMIN",
        }
    }

    pub fn rights(self) -> Rights {
        match self {
            Level::User => [Right::MyRead, Right::MyManage].into_iter().collect(),
            Level::OrgAdmin => Rights::all(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_name_the_same_right() {
        let check = |raw: &str, want: Option<Right>| assert_eq!(Right::parse(raw), want, "{raw}");
        check("idn:my-personal-access-tokens:read", Some(Right::MyRead));
        check("sp:my-personal-access-tokens:read", Some(Right::MyRead));
        check(
            "sp:all-personal-access-tokens:update",
            Some(Right::AllUpdate),
        );
        check(
            "idn:managed-personal-access-tokens:read",
            Some(Right::ManagedRead),
        );
        check("my-personal-access-tokens:read", None);
        check("sp:scopes:all", None);
        check("idn:all-personal-access-tokens:delete", None);
    }

    #[test]
    fn the_idn_spelling_is_the_name_with_its_prefix() {
        for right in Right::ALL {
            if right.idn().starts_with("patd:") {
                // patd's own rights have one spelling.
                assert_eq!(right.idn(), right.name());
                assert_eq!(Right::parse(&format!("sp:{}", right.idn())), None);
            } else {
                assert_eq!(right.idn(), format!("idn:{}", right.name()));
                assert_eq!(Right::parse(&format!("sp:{}", right.name())), Some(right));
            }
            assert_eq!(Right::parse(right.idn()), Some(right));
        }
        assert_eq!(Right::parse("sp:webhooks:manage"), None);
        assert_eq!(Right::parse("patd:unknown"), None);
    }

    #[test]
    fn levels_expand_to_rights() {
        assert_eq!(
            Level::User.rights().idn_names(),
            [
                "idn:my-personal-access-tokens:read",
                "idn:my-personal-access-tokens:manage"
            ]
        );
        assert_eq!(Level::OrgAdmin.rights(), Rights::all());
        assert_eq!(Rights::all().iter().count(), 10);
    }
}

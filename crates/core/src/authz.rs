//! Who may do what to which PAT (CONTRACT §3). A PAT the caller may not see is `NotFound`,
//! never `Forbidden`, so that ids do not leak.

use crate::ids::{IdentityId, PatId};
use crate::pat::PatRecord;
use crate::rights::{Right, Rights};
use crate::scope::{Scope, SCOPE_ALL};
use crate::Rule;

/// The authenticated caller: whose access token it is and the rights fixed in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub identity_id: IdentityId,
    /// The PAT the calling token was minted from; `None` for a person signed in to the web
    /// page (EXTENSIONS E12), who acts with the identity's own rights and no token.
    pub pat_id: Option<PatId>,
    /// Whether that PAT's scope holds `patd:self-rotate` now.
    pub self_rotate: bool,
    pub rights: Rights,
    /// Whether the token's scope holds `sp:scopes:all`: it was minted with every right its
    /// owner held, and nothing a PAT's scope can name is beyond it.
    pub whole_scope: bool,
}

/// Why an operation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The caller holds none of the rights the operation accepts; any one of these would allow
    /// it (the 403's cause names them).
    Forbidden(&'static [Right]),
    /// The caller may not see the PAT.
    NotFound,
    /// The scope asked for would let a PAT do more than the calling token may.
    Wider(Widening),
    /// The operation needs this entry in the scope of the calling token's PAT.
    NotInScope(&'static str),
}

/// How a scope would reach past the calling token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Widening {
    /// It would grant these rights, which the token does not hold.
    Rights(Rights),
    /// It holds `sp:scopes:all`, which follows the owner's rights wherever they go, while the
    /// token's own scope is narrower.
    WholeScope,
}

/// The `owner-id` query parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerParam {
    Me,
    Id(IdentityId),
    /// Absent: the whole tenant.
    Everyone,
}

impl OwnerParam {
    pub fn parse(raw: Option<&str>) -> Result<OwnerParam, Rule> {
        match raw {
            None => Ok(OwnerParam::Everyone),
            Some("me") => Ok(OwnerParam::Me),
            Some(other) => IdentityId::parse(other)
                .map(OwnerParam::Id)
                .ok_or(Rule::OwnerIdInvalid),
        }
    }
}

/// What a list may return: one owner's PATs or everyone's, with or without managed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListAccess {
    pub owner: Option<IdentityId>,
    pub include_managed: bool,
}

const READ_OWN: &[Right] = &[
    Right::MyRead,
    Right::MyManage,
    Right::AllRead,
    Right::AllManage,
];
const READ_ALL: &[Right] = &[Right::AllRead, Right::AllManage];
const MANAGE_ANY: &[Right] = &[Right::MyManage, Right::AllManage];
const MANAGE_OTHERS: &[Right] = &[Right::AllManage];
const BULK_UPDATE: &[Right] = &[Right::AllUpdate];

impl Caller {
    pub fn may_list(&self, owner: OwnerParam) -> Result<ListAccess, Denied> {
        let owner = match owner {
            OwnerParam::Me => Some(self.identity_id.clone()),
            OwnerParam::Id(id) => Some(id),
            OwnerParam::Everyone => None,
        };
        let own = owner.as_ref() == Some(&self.identity_id);
        let accepted = if own { READ_OWN } else { READ_ALL };
        if !self.rights.any_of(accepted) {
            return Err(Denied::Forbidden(accepted));
        }
        Ok(ListAccess {
            owner,
            include_managed: self.rights.contains(Right::ManagedRead),
        })
    }

    /// Creating a PAT for oneself.
    /// `self/rotate`: only for a token whose PAT's scope names `patd:self-rotate`, which
    /// `sp:scopes:all` does not imply.
    pub fn may_self_rotate(&self) -> Result<(), Denied> {
        if self.self_rotate {
            Ok(())
        } else {
            Err(Denied::NotInScope(crate::scope::SCOPE_SELF_ROTATE))
        }
    }

    pub fn may_create(&self) -> Result<(), Denied> {
        self.may_manage()
    }

    /// Holding any right that creates, patches or deletes PATs; checked before a PAT is looked
    /// up, so that a caller without one gets 403 whatever the id.
    pub fn may_manage(&self) -> Result<(), Denied> {
        if self.rights.any_of(MANAGE_ANY) {
            Ok(())
        } else {
            Err(Denied::Forbidden(MANAGE_ANY))
        }
    }

    /// The bulk update (`all:update` only).
    pub fn may_bulk_update(&self) -> Result<(), Denied> {
        if self.rights.any_of(BULK_UPDATE) {
            Ok(())
        } else {
            Err(Denied::Forbidden(BULK_UPDATE))
        }
    }

    /// Patching or deleting `pat`.
    pub fn may_modify(&self, pat: &PatRecord) -> Result<(), Denied> {
        self.may_manage()?;
        if !self.may_see(pat) {
            return Err(Denied::NotFound);
        }
        let own = pat.owner_id == self.identity_id;
        // `all:manage` covers the caller's own PATs as well as everyone else's.
        if own || self.rights.any_of(MANAGE_OTHERS) {
            Ok(())
        } else {
            Err(Denied::Forbidden(MANAGE_OTHERS))
        }
    }

    /// Revoking an access token (EXTENSIONS E10) minted by `client_id` for `owner_id`: the PAT
    /// that minted it may, and so may a caller that may patch or delete that PAT. When the PAT
    /// is gone (`pat` is `None`) the owner the token names decides, so that the answer does not
    /// tell an outsider whether the PAT still exists.
    pub fn may_revoke_token(
        &self,
        client_id: &PatId,
        owner_id: &IdentityId,
        pat: Option<&PatRecord>,
    ) -> bool {
        if self.pat_id.as_ref() == Some(client_id) {
            return true;
        }
        match pat {
            Some(pat) => self.may_modify(pat).is_ok(),
            None => {
                self.may_manage().is_ok()
                    && (self.identity_id == *owner_id || self.rights.any_of(MANAGE_OTHERS))
            }
        }
    }

    /// Giving a PAT `scope`, for an owner who holds `owner_rights`: a token may give no more than
    /// it holds itself, so a narrowed token cannot mint its way back to its owner's rights. A
    /// token whose scope is `sp:scopes:all` already holds everything a scope can name.
    pub fn may_grant(&self, scope: &Scope, owner_rights: Rights) -> Result<(), Denied> {
        if self.whole_scope {
            return Ok(());
        }
        let missing = scope.effective_rights(owner_rights).without(self.rights);
        if !missing.is_empty() {
            return Err(Denied::Wider(Widening::Rights(missing)));
        }
        if scope.entries().iter().any(|entry| entry == SCOPE_ALL) {
            return Err(Denied::Wider(Widening::WholeScope));
        }
        Ok(())
    }

    fn may_see(&self, pat: &PatRecord) -> bool {
        if pat.managed && !self.rights.contains(Right::ManagedRead) {
            return false;
        }
        pat.owner_id == self.identity_id || self.rights.any_of(READ_ALL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::Expiry;
    use crate::name::PatName;
    use crate::pat::Validity;
    use crate::rights::Level;
    use crate::scope::Scope;
    use time::macros::datetime;

    fn pat_of(owner: &IdentityId, managed: bool) -> PatRecord {
        PatRecord {
            id: crate::ids::PatId::generate(&mut rand::rng()),
            owner_id: owner.clone(),
            name: PatName::parse("x").unwrap(),
            scope: Scope::all(),
            validity: Validity::parse(None).unwrap(),
            expiry: Expiry::Never,
            never_expires_acknowledged: true,
            managed,
            created: datetime!(2026-01-01 00:00 UTC),
            last_used: None,
        }
    }

    #[test]
    fn modify_matrix() {
        let me = IdentityId::generate(&mut rand::rng());
        let other = IdentityId::generate(&mut rand::rng());
        let caller = |rights: Rights| Caller {
            pat_id: Some(PatId::generate(&mut rand::rng())),
            self_rotate: false,
            identity_id: me.clone(),
            rights,
            whole_scope: true,
        };
        let read_only: Rights = [Right::MyRead].into_iter().collect();
        let all_read_my_manage: Rights = [Right::AllRead, Right::MyManage].into_iter().collect();
        let cases = [
            (Level::User.rights(), &me, false, Ok(())),
            (Level::User.rights(), &other, false, Err(Denied::NotFound)),
            (Level::User.rights(), &me, true, Err(Denied::NotFound)),
            (Level::OrgAdmin.rights(), &other, false, Ok(())),
            (Level::OrgAdmin.rights(), &other, true, Ok(())),
            (read_only, &me, false, Err(Denied::Forbidden(MANAGE_ANY))),
            (read_only, &other, false, Err(Denied::Forbidden(MANAGE_ANY))),
            (
                all_read_my_manage,
                &other,
                false,
                Err(Denied::Forbidden(&[Right::AllManage])),
            ),
            (Rights::NONE, &me, false, Err(Denied::Forbidden(MANAGE_ANY))),
        ];
        for (rights, owner, managed, want) in cases {
            assert_eq!(
                caller(rights).may_modify(&pat_of(owner, managed)),
                want,
                "{rights:?} {managed}"
            );
        }
    }

    #[test]
    fn list_matrix() {
        let me = IdentityId::generate(&mut rand::rng());
        let other = IdentityId::generate(&mut rand::rng());
        let caller = |rights: Rights| Caller {
            pat_id: Some(PatId::generate(&mut rand::rng())),
            self_rotate: false,
            identity_id: me.clone(),
            rights,
            whole_scope: true,
        };
        let user = caller(Level::User.rights());
        assert_eq!(
            user.may_list(OwnerParam::Me).map(|a| a.owner),
            Ok(Some(me.clone()))
        );
        assert_eq!(
            user.may_list(OwnerParam::Id(me.clone())).map(|a| a.owner),
            Ok(Some(me.clone()))
        );
        assert_eq!(
            user.may_list(OwnerParam::Id(other.clone())),
            Err(Denied::Forbidden(&[Right::AllRead, Right::AllManage]))
        );
        assert_eq!(
            user.may_list(OwnerParam::Everyone),
            Err(Denied::Forbidden(READ_ALL))
        );
        assert_eq!(
            user.may_bulk_update(),
            Err(Denied::Forbidden(&[Right::AllUpdate]))
        );
        let admin = caller(Level::OrgAdmin.rights());
        assert_eq!(
            admin.may_list(OwnerParam::Everyone),
            Ok(ListAccess {
                owner: None,
                include_managed: true
            })
        );
        assert_eq!(OwnerParam::parse(Some("bogus")), Err(Rule::OwnerIdInvalid));
    }

    #[test]
    fn a_token_gives_no_more_than_it_holds() {
        let scope = |entries: &[&str]| {
            Scope::parse(Some(entries.iter().map(|e| (*e).to_owned()).collect())).unwrap()
        };
        let admin = Level::OrgAdmin.rights();
        let narrowed = |rights: &[Right]| Caller {
            pat_id: Some(PatId::generate(&mut rand::rng())),
            self_rotate: false,
            identity_id: IdentityId::generate(&mut rand::rng()),
            rights: rights.iter().copied().collect(),
            whole_scope: false,
        };
        let manage_only = narrowed(&[Right::MyManage]);
        let all = Scope::all();
        // The escalation of issue 17: a manage-only token asking for everything.
        assert_eq!(
            manage_only.may_grant(&all, admin),
            Err(Denied::Wider(Widening::Rights(
                admin.without([Right::MyManage].into_iter().collect())
            )))
        );
        assert_eq!(
            manage_only.may_grant(&scope(&["idn:all-personal-access-tokens:manage"]), admin),
            Err(Denied::Wider(Widening::Rights(
                [Right::AllManage].into_iter().collect()
            )))
        );
        assert_eq!(
            manage_only.may_grant(&scope(&["sp:scopes:default"]), admin),
            Err(Denied::Wider(Widening::Rights(
                [Right::MyRead].into_iter().collect()
            )))
        );
        // As wide as itself, or narrower, or naming rights the owner lacks: allowed.
        assert_eq!(
            manage_only.may_grant(&scope(&["sp:my-personal-access-tokens:manage"]), admin),
            Ok(())
        );
        assert_eq!(manage_only.may_grant(&scope(&["demo:x"]), admin), Ok(()));
        assert_eq!(
            manage_only.may_grant(
                &scope(&["idn:all-personal-access-tokens:manage"]),
                Level::User.rights()
            ),
            Ok(())
        );
        // Holding every right today is not enough for sp:scopes:all, which follows the owner.
        let user_rights: Vec<Right> = Level::User.rights().iter().collect();
        assert_eq!(
            narrowed(&user_rights).may_grant(&all, Level::User.rights()),
            Err(Denied::Wider(Widening::WholeScope))
        );
        // A token of sp:scopes:all is not limited.
        let whole = Caller {
            whole_scope: true,
            ..narrowed(&user_rights)
        };
        assert_eq!(whole.may_grant(&all, admin), Ok(()));
    }
}

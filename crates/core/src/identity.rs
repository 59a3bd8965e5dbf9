//! Identities: the owners of PATs, with their user levels and extra rights.

use crate::ids::IdentityId;
use crate::name::IdentityName;
use crate::rights::{Level, Rights};

/// An identity. Its rights are its levels' rights plus any extra ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: IdentityId,
    pub name: IdentityName,
    pub levels: Vec<Level>,
    pub extra_rights: Rights,
}

impl Identity {
    /// Every right the identity holds, levels expanded.
    pub fn rights(&self) -> Rights {
        self.levels
            .iter()
            .fold(self.extra_rights, |acc, level| acc.union(level.rights()))
    }

    pub fn level_names(&self) -> Vec<String> {
        self.levels
            .iter()
            .map(|level| level.as_str().to_owned())
            .collect()
    }
}

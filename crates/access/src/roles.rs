//! Roles and what each may do: the one table every route is checked against.
//!
//! `docs/security.md` holds the same table as prose; a test reads the document and
//! compares it with [`ROLES`], so the two cannot drift apart.

use std::fmt;
use std::str::FromStr;

/// What a request needs. A route names one permission; a principal holds those its
/// roles grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Counts, states, queue depths, configuration summaries: no PHI.
    ReadMetadata,
    /// Message bodies, patient names and identifiers, FHIR resources.
    ReadPhi,
    /// Reprocess, resend, edit and discard quarantined messages.
    Operate,
    /// Patient index decisions: link, unlink, merge, unmerge, reviews.
    Steward,
    /// Users, tokens, configuration reload, audit export.
    Admin,
}

impl Permission {
    /// Every permission, in the order of the roles table's columns.
    pub const ALL: [Permission; 5] = [
        Permission::ReadMetadata,
        Permission::ReadPhi,
        Permission::Operate,
        Permission::Steward,
        Permission::Admin,
    ];

    /// The column heading used in `docs/security.md`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ReadMetadata => "read metadata",
            Permission::ReadPhi => "read PHI",
            Permission::Operate => "operate",
            Permission::Steward => "steward",
            Permission::Admin => "admin",
        }
    }
}

/// A role given to a user, a token or an OIDC identity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Counts, states and metadata; no PHI.
    Viewer,
    /// Reads PHI.
    Analyst,
    /// Reads PHI; reprocesses, resends, edits and discards.
    Operator,
    /// Reads PHI; decides on the patient index.
    Steward,
    /// Everything, including users, tokens, reloads and audit export.
    Admin,
}

/// The roles table: each role and the permissions it grants.
pub const ROLES: &[(Role, &[Permission])] = &[
    (Role::Viewer, &[Permission::ReadMetadata]),
    (
        Role::Analyst,
        &[Permission::ReadMetadata, Permission::ReadPhi],
    ),
    (
        Role::Operator,
        &[
            Permission::ReadMetadata,
            Permission::ReadPhi,
            Permission::Operate,
        ],
    ),
    (
        Role::Steward,
        &[
            Permission::ReadMetadata,
            Permission::ReadPhi,
            Permission::Steward,
        ],
    ),
    (Role::Admin, &Permission::ALL),
];

impl Role {
    /// Every role, least to most trusted.
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Analyst,
        Role::Operator,
        Role::Steward,
        Role::Admin,
    ];

    /// The permissions this role grants.
    pub fn permissions(self) -> &'static [Permission] {
        ROLES
            .iter()
            .find(|(role, _)| *role == self)
            .map_or(&[], |(_, permissions)| *permissions)
    }

    /// Whether this role grants `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }

    /// Whether every permission of `other` is also one of this role's: a token may only
    /// narrow its owner's role, never widen it.
    pub fn includes(self, other: Role) -> bool {
        other.permissions().iter().all(|p| self.allows(*p))
    }

    /// The name used in configuration, on the command line and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Operator => "operator",
            Role::Steward => "steward",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected viewer, analyst, operator, steward or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_is_in_the_table_once() {
        for role in Role::ALL {
            assert_eq!(ROLES.iter().filter(|(r, _)| *r == role).count(), 1);
        }
    }

    #[test]
    fn viewer_never_reads_phi_and_only_admin_administers() {
        assert!(!Role::Viewer.allows(Permission::ReadPhi));
        for role in Role::ALL {
            assert_eq!(role.allows(Permission::Admin), role == Role::Admin);
        }
    }

    #[test]
    fn includes_orders_roles_by_permissions() {
        assert!(Role::Admin.includes(Role::Steward));
        assert!(Role::Operator.includes(Role::Analyst));
        assert!(!Role::Operator.includes(Role::Steward));
        assert!(!Role::Viewer.includes(Role::Analyst));
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}

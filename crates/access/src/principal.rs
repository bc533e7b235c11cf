//! [`Principal`]: who is making a request, as every route and the audit trail see it.

use std::net::SocketAddr;

use crate::{Permission, Role, Scopes};

/// How the principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A password, now a browser session.
    Session,
    /// A Corridor API token.
    Token,
    /// An OpenID Connect bearer JWT.
    Oidc,
    /// Nobody: `[http] auth = "off"` on a loopback address.
    Unauthenticated,
}

impl AuthMethod {
    /// The name stored in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Session => "session",
            AuthMethod::Token => "token",
            AuthMethod::Oidc => "oidc",
            AuthMethod::Unauthenticated => "none",
        }
    }
}

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// A local user (signed in with a password).
    User {
        /// The user name.
        name: String,
    },
    /// A Corridor API token.
    Token {
        /// The token's id.
        id: i64,
        /// The user who owns it.
        owner: String,
    },
    /// An identity from the OpenID Connect issuer.
    Oidc {
        /// The `iss` claim.
        issuer: String,
        /// The `sub` claim.
        subject: String,
        /// A display name (`preferred_username`, else `sub`).
        name: String,
    },
    /// No authentication (`auth = "off"`).
    Anonymous,
}

impl Actor {
    /// The audit trail's "who": `user:alice`, `token:12`, `oidc:jdoe`, `anonymous`.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::User { name } => format!("user:{name}"),
            Actor::Token { id, .. } => format!("token:{id}"),
            Actor::Oidc { name, .. } => format!("oidc:{name}"),
            Actor::Anonymous => "anonymous".to_owned(),
        }
    }

    /// For a token, the user who owns it.
    pub fn owner(&self) -> Option<&str> {
        match self {
            Actor::Token { owner, .. } => Some(owner),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who.
    pub actor: Actor,
    /// The roles it acts with.
    pub roles: Vec<Role>,
    /// SMART scopes, for OIDC JWTs and API tokens that carry them (with the patient
    /// context of `patient/` scopes): they further limit FHIR routes. None means no
    /// scope limit beyond the roles.
    pub scopes: Option<Scopes>,
    /// How it authenticated.
    pub method: AuthMethod,
    /// The peer address of the connection.
    pub address: Option<SocketAddr>,
    /// The TLS client certificate's identity (subject or SAN), under mutual TLS.
    pub tls_identity: Option<String>,
}

impl Principal {
    /// The principal of a request carrying a valid Corridor API token.
    pub fn from_token(
        token: crate::TokenIdentity,
        address: Option<SocketAddr>,
        tls_identity: Option<String>,
    ) -> Principal {
        Principal {
            actor: Actor::Token {
                id: token.id,
                owner: token.user,
            },
            roles: vec![token.role],
            scopes: token.scopes,
            method: AuthMethod::Token,
            address,
            tls_identity,
        }
    }

    /// The principal of a request carrying a live session cookie.
    pub fn from_session(
        session: &crate::SessionInfo,
        address: Option<SocketAddr>,
        tls_identity: Option<String>,
    ) -> Principal {
        Principal {
            actor: Actor::User {
                name: session.user.clone(),
            },
            roles: vec![session.role],
            scopes: None,
            method: AuthMethod::Session,
            address,
            tls_identity,
        }
    }

    /// Whether any of its roles grants `permission`.
    pub fn allows(&self, permission: Permission) -> bool {
        self.roles.iter().any(|role| role.allows(permission))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_holds_the_union_of_its_roles() {
        let principal = Principal {
            actor: Actor::Token {
                id: 3,
                owner: "alice".into(),
            },
            roles: vec![Role::Operator, Role::Steward],
            scopes: None,
            method: AuthMethod::Token,
            address: None,
            tls_identity: None,
        };
        assert!(principal.allows(Permission::Operate));
        assert!(principal.allows(Permission::Steward));
        assert!(!principal.allows(Permission::Admin));
        assert_eq!(principal.actor.audit_name(), "token:3");
        assert_eq!(principal.actor.owner(), Some("alice"));
    }
}

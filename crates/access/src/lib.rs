//! Access control for Corridor: who may call it, with what role, and the audit trail of
//! what they did.
//!
//! No HTTP framework here: the API layer turns a request's credentials into a
//! [`Principal`] with these functions, checks the route's [`Permission`] against it,
//! and appends an [`audit::AuditRecord`] before it answers.
//!
//! - [`Role`] and [`Permission`]: the roles table ([`ROLES`]), the same as
//!   `docs/security.md`'s.
//! - [`Access`]: local users (Argon2id passwords) and API tokens (`crd_` and 256 random
//!   bits, stored as SHA-256), in the data directory's database; the first-start admin
//!   token ([`Access::ensure_first_admin`]). Verified tokens are cached by SHA-256 for
//!   [`TOKEN_CACHE_LIFETIME`] at most; changes through [`Access`] empty the cache.
//! - [`LoginThrottle`]: failed logins per name and per address.
//! - [`Sessions`]: browser sessions with idle and absolute timeouts and a CSRF token;
//!   [`SessionCookie`] builds the cookie.
//! - [`oidc`]: OpenID Connect bearer JWTs checked against the issuer's JWKS; [`Scopes`]:
//!   SMART scopes.
//! - [`audit`]: the hash-chained audit trail.
//!
//! ```
//! use access::{Access, Permission, Role};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let access = Access::open_blocking(store::Store::open(dir.path())?)?;
//! access.add_user("alice", Role::Analyst, None, None).wait()?;
//! let token = access.create_token("alice", Some(30), Some(Role::Viewer), None).wait()?;
//! let identity = access.verify_token(&token.secret)?;
//! assert_eq!(identity.role, Role::Viewer);
//! assert!(!identity.role.allows(Permission::ReadPhi));
//! # Ok(())
//! # }
//! ```

mod access;
pub mod audit;
mod audit_file;
mod cache;
mod error;
pub mod oidc;
mod principal;
mod roles;
pub mod schema;
mod scopes;
mod secret;
mod session;
mod throttle;
mod tokens;
mod users;

pub use access::{Access, Pending};
pub use cache::{TOKEN_CACHE_CAPACITY, TOKEN_CACHE_LIFETIME};
pub use error::Error;
pub use principal::{Actor, AuthMethod, Principal};
pub use roles::{Permission, ROLES, Role, UnknownRole};
pub use scopes::{FhirAccess, Scope, ScopeContext, Scopes};
pub use session::{
    CSRF_HEADER, NewSession, SessionCookie, SessionInfo, SessionPolicy, SessionRejected, Sessions,
    verify_csrf,
};
pub use throttle::{LoginThrottle, ThrottlePolicy, Throttled};
pub use tokens::{
    FIRST_ADMIN, FIRST_ADMIN_TOKEN_FILE, FirstAdmin, NewToken, TOKEN_PREFIX, TokenIdentity,
    TokenInfo, TokenRejected, VerifyTokenError,
};
pub use users::{BadCredentials, LoginError, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, User};

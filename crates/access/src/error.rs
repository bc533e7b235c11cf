//! What can go wrong managing identities.

/// An error of user, token or session management.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused or failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A user of that name exists already.
    #[error("a user named {0:?} exists already")]
    UserExists(String),
    /// No user of that name.
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    /// No token with that id.
    #[error("no token with id {0}")]
    NoSuchToken(i64),
    /// A user name Corridor does not accept.
    #[error("invalid user name {0:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@'")]
    InvalidName(String),
    /// A password too short or too long.
    #[error("the password must be between {min} and {max} characters")]
    PasswordLength {
        /// The shortest accepted.
        min: usize,
        /// The longest accepted.
        max: usize,
    },
    /// A token asked for a role its owner does not have.
    #[error("a token cannot have role {asked}: its owner {user:?} is only {owner}")]
    RoleWiderThanOwner {
        /// The owner.
        user: String,
        /// The owner's role.
        owner: crate::Role,
        /// The role asked for.
        asked: crate::Role,
    },
    /// Scopes given to a token that are not SMART resource scopes.
    #[error(
        "invalid token scopes {0:?}: give SMART resource scopes such as system/*.read or user/Observation.read"
    )]
    InvalidScopes(String),
    /// A token's lifetime out of range.
    #[error("a token's expiry must be between 1 and 3650 days")]
    InvalidExpiry,
    /// A [`crate::Pending`] was polled again after it had answered.
    #[error("the answer of this write was already taken")]
    PolledAgain,
    /// The operating system's random source failed.
    #[error("the operating system's random number source failed")]
    Random,
    /// Hashing a password failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// Writing a file (the first-start token) failed.
    #[error("cannot write {path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

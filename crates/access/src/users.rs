//! Local users: names, roles and Argon2id password hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use store::UnixMicros;
use store::rusqlite::{Connection, OptionalExtension, params};

use crate::access::Pending;
use crate::audit::AuditRecord;
use crate::{Access, Error, Role};

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest password accepted, in characters (hashing has a cost per byte).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// A user as listed: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    /// The database id.
    pub id: i64,
    /// The login name.
    pub name: String,
    /// The user's role.
    pub role: Role,
    /// When the user was added (microseconds since the Unix epoch).
    pub created_at: i64,
    /// Whether a password is set (a user without one signs in only with tokens).
    pub has_password: bool,
    /// Whether the user is disabled: no login, and its tokens are refused.
    pub disabled: bool,
}

/// Why a password did not sign a user in. Deliberately one answer for "no such user",
/// "disabled" and "wrong password", so a caller cannot tell names apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown user or wrong password")]
pub struct BadCredentials;

/// Argon2id with the parameters OWASP recommends (19 MiB, 2 passes, 1 lane).
fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// The Argon2id PHC string of `password` with a fresh random salt.
pub(crate) fn hash_password(password: &str) -> Result<String, Error> {
    let salt = crate::secret::random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hash(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}

fn password_matches(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => argon2().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_owned()))
    }
}

fn check_password(password: &str) -> Result<(), Error> {
    let chars = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        Ok(())
    } else {
        Err(Error::PasswordLength {
            min: MIN_PASSWORD_CHARS,
            max: MAX_PASSWORD_CHARS,
        })
    }
}

pub(crate) fn user_from_row(row: &store::rusqlite::Row<'_>) -> store::rusqlite::Result<User> {
    let role: String = row.get("role")?;
    Ok(User {
        id: row.get("id")?,
        name: row.get("name")?,
        // A role this build does not know reads as the least one, never a wider one.
        role: role.parse().unwrap_or(Role::Viewer),
        created_at: row.get("created_at")?,
        has_password: row.get::<_, Option<String>>("password_hash")?.is_some(),
        disabled: row.get::<_, Option<i64>>("disabled_at")?.is_some(),
    })
}

pub(crate) fn user_named(conn: &Connection, name: &str) -> store::Result<Option<User>> {
    Ok(conn
        .prepare_cached("SELECT * FROM access_users WHERE name = ?1")?
        .query_row([name], user_from_row)
        .optional()?)
}

pub(crate) fn insert_user(
    conn: &Connection,
    name: &str,
    role: Role,
    hash: Option<&str>,
) -> store::Result<Result<User, Error>> {
    if user_named(conn, name)?.is_some() {
        return Ok(Err(Error::UserExists(name.to_owned())));
    }
    let now = UnixMicros::now().0;
    conn.execute(
        "INSERT INTO access_users (name, role, password_hash, created_at, password_changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![name, role.as_str(), hash, now, hash.map(|_| now)],
    )?;
    Ok(user_named(conn, name)?.ok_or_else(|| Error::NoSuchUser(name.to_owned())))
}

impl Access {
    /// Adds a user. With a password (checked for length, hashed with Argon2id on the
    /// calling thread: tens of milliseconds, so async callers use a blocking task), the
    /// user can sign in; without one, only tokens made for it work.
    /// `audit`, when given, is appended in the same transaction (see
    /// [`Access::create_token`]).
    pub fn add_user(
        &self,
        name: &str,
        role: Role,
        password: Option<&str>,
        audit: Option<AuditRecord>,
    ) -> Pending<User> {
        let hash = match prepare(name, password) {
            Ok(hash) => hash,
            Err(error) => return Pending::ready(Err(error)),
        };
        let name = name.to_owned();
        self.write_audited(audit, move |conn| {
            insert_user(conn, &name, role, hash.as_deref())
        })
    }

    /// Every user, by name.
    pub fn list_users(&self) -> Result<Vec<User>, Error> {
        Ok(self.store.read(|conn| {
            let mut statement = conn.prepare("SELECT * FROM access_users ORDER BY name")?;
            let users = statement
                .query_map([], user_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(users)
        })?)
    }

    /// The user named `name`, if any.
    pub fn user(&self, name: &str) -> Result<Option<User>, Error> {
        Ok(self.store.read(|conn| user_named(conn, name))?)
    }

    /// Whether any user exists (the first start creates one when none does).
    pub fn has_users(&self) -> Result<bool, Error> {
        Ok(self.store.read(|conn| {
            Ok(
                conn.query_row("SELECT EXISTS (SELECT 1 FROM access_users)", [], |row| {
                    row.get(0)
                })?,
            )
        })?)
    }

    /// Disables a user: its logins, tokens and sessions are refused from now on (every
    /// request made with a session checks its user, [`Access::session_holder_current`]).
    /// The row is kept for the audit trail.
    pub fn disable_user(&self, name: &str, audit: Option<AuditRecord>) -> Pending<User> {
        let name = name.to_owned();
        self.write_audited_revoking(audit, move |conn| {
            let changed = conn.execute(
                "UPDATE access_users SET disabled_at = coalesce(disabled_at, ?2) WHERE name = ?1",
                params![name, UnixMicros::now().0],
            )?;
            if changed == 0 {
                return Ok(Err(Error::NoSuchUser(name)));
            }
            Ok(user_named(conn, &name)?.ok_or(Error::NoSuchUser(name)))
        })
    }

    /// Sets a user's password (hashed on the calling thread, as in [`Access::add_user`]).
    pub fn set_password(
        &self,
        name: &str,
        password: &str,
        audit: Option<AuditRecord>,
    ) -> Pending<User> {
        let hash = match prepare(name, Some(password)) {
            Ok(hash) => hash,
            Err(error) => return Pending::ready(Err(error)),
        };
        let name = name.to_owned();
        self.write_audited_revoking(audit, move |conn| {
            let changed = conn.execute(
                "UPDATE access_users SET password_hash = ?2, password_changed_at = ?3
                 WHERE name = ?1",
                params![name, hash, UnixMicros::now().0],
            )?;
            if changed == 0 {
                return Ok(Err(Error::NoSuchUser(name)));
            }
            Ok(user_named(conn, &name)?.ok_or(Error::NoSuchUser(name)))
        })
    }

    /// Whether the user a session was opened for may still use it: not disabled, the
    /// role it logged in with still within the user's role, and no password set since
    /// the login. One indexed read of the user's row (microseconds), done on every
    /// request made with a session, so a user disabled or given a new password, by this
    /// process or by the command line, loses every session at once.
    pub fn session_holder_current(&self, session: &crate::SessionInfo) -> Result<bool, Error> {
        let row: Option<(String, Option<i64>, Option<i64>)> = self.store.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT role, disabled_at, password_changed_at FROM access_users
                     WHERE name = ?1",
                )?
                .query_row([&session.user], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?)
        })?;
        Ok(match row {
            None | Some((_, Some(_), _)) => false,
            Some((role, None, changed)) => {
                role.parse::<Role>()
                    .is_ok_and(|role| role.includes(session.role))
                    && changed.is_none_or(|at| at <= session.logged_in_at)
            }
        })
    }

    /// Checks a password. An unknown name, a disabled user, a user without a password
    /// and a wrong password all cost one Argon2id verification (unknown names verify
    /// against a dummy hash) and give the same [`BadCredentials`], so neither the answer
    /// nor its time tells whether a name exists. Runs on the calling thread (tens of
    /// milliseconds): async callers use a blocking task, and throttle first
    /// ([`crate::LoginThrottle`]).
    pub fn verify_password(&self, name: &str, password: &str) -> Result<User, LoginError> {
        let found = self
            .store
            .read(|conn| {
                let hash: Option<(User, Option<String>)> = conn
                    .prepare_cached("SELECT * FROM access_users WHERE name = ?1")?
                    .query_row([name], |row| {
                        Ok((user_from_row(row)?, row.get("password_hash")?))
                    })
                    .optional()?;
                Ok(hash)
            })
            .map_err(|e| LoginError::Store(e.into()))?;
        let (user, hash) = match found {
            Some((user, Some(hash))) if !user.disabled => (Some(user), hash),
            _ => (None, self.dummy_hash()?.to_owned()),
        };
        let matches =
            password.chars().count() <= MAX_PASSWORD_CHARS && password_matches(password, &hash);
        match user {
            Some(user) if matches => Ok(user),
            _ => Err(LoginError::BadCredentials(BadCredentials)),
        }
    }

    fn dummy_hash(&self) -> Result<&str, LoginError> {
        if let Some(hash) = self.dummy_hash.get() {
            return Ok(hash);
        }
        // A hash of a random password nobody knows, with the same parameters as real ones.
        let password = crate::secret::random_token().map_err(LoginError::Store)?;
        let hash = hash_password(&password).map_err(LoginError::Store)?;
        Ok(self.dummy_hash.get_or_init(|| hash))
    }
}

fn prepare(name: &str, password: Option<&str>) -> Result<Option<String>, Error> {
    check_name(name)?;
    password
        .map(|password| {
            check_password(password)?;
            hash_password(password)
        })
        .transpose()
}

/// Why [`Access::verify_password`] refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The name or password is wrong (which of them is not said).
    #[error(transparent)]
    BadCredentials(#[from] BadCredentials),
    /// The database failed; the login is refused.
    #[error(transparent)]
    Store(Error),
}

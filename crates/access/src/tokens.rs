//! API tokens: `crd_` and 256 random bits, shown once, stored as their SHA-256.

use std::path::{Path, PathBuf};

use store::UnixMicros;
use store::rusqlite::{Connection, OptionalExtension, params};

use crate::access::Pending;
use crate::audit::{ActionKind, AuditRecord};
use crate::secret::{constant_time_eq, random_token, sha256};
use crate::users::{insert_user, user_named};
use crate::{Access, Error, Role, User};

/// Every token starts with this, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "crd_";

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

/// A token just created: the only time its secret is known.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The token's id (for `token revoke`).
    pub id: i64,
    /// The secret, to give to its user once. Never stored.
    pub secret: String,
    /// The owner.
    pub user: String,
    /// The role it acts with.
    pub role: Role,
    /// When it stops working (microseconds since the Unix epoch), if ever.
    pub expires_at: Option<i64>,
    /// The SMART scopes limiting its FHIR reads, if any.
    pub scopes: Option<String>,
}

/// A token as listed: never its secret or hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    /// The token's id.
    pub id: i64,
    /// The owner's name.
    pub user: String,
    /// The first characters of the secret, to recognise it.
    pub hint: String,
    /// The narrower role it was given, if any (else it acts with its owner's role).
    pub role: Option<Role>,
    /// When it was created (microseconds since the Unix epoch).
    pub created_at: i64,
    /// When it expires, if ever.
    pub expires_at: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// The SMART scopes limiting its FHIR reads, if any.
    pub scopes: Option<String>,
}

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    /// The token's id.
    pub id: i64,
    /// The owner.
    pub user: String,
    /// The role it acts with: its own narrower role, or its owner's.
    pub role: Role,
    /// The SMART scopes that further limit its FHIR reads; None for none.
    pub scopes: Option<crate::Scopes>,
}

/// Why a bearer token was refused. The API answers 401 for all of them alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejected {
    /// Not a Corridor token at all.
    #[error("not a Corridor API token")]
    Malformed,
    /// No token has that secret.
    #[error("unknown token")]
    Unknown,
    /// Revoked.
    #[error("the token was revoked")]
    Revoked,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
    /// Its owner is disabled, or no longer has the role the token was made with.
    #[error("the token's owner is disabled or no longer holds its role")]
    OwnerRefused,
}

/// Whether `secret` has a Corridor token's shape (`crd_` and 43 characters).
fn well_formed(secret: &str) -> bool {
    secret.starts_with(TOKEN_PREFIX) && secret.len() == TOKEN_PREFIX.len() + 43
}

fn token_hint(secret: &str) -> String {
    secret.chars().take(TOKEN_PREFIX.len() + 6).collect()
}

fn create_in(
    conn: &Connection,
    user: &User,
    role: Option<Role>,
    expires_at: Option<i64>,
    scopes: Option<&str>,
    secret: &str,
) -> store::Result<i64> {
    conn.execute(
        "INSERT INTO access_tokens (user_id, hint, hash, role, created_at, expires_at, scopes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            user.id,
            token_hint(secret),
            sha256(secret.as_bytes()).as_slice(),
            role.map(Role::as_str),
            UnixMicros::now().0,
            expires_at,
            scopes
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

fn new_secret() -> Result<String, Error> {
    Ok(format!("{TOKEN_PREFIX}{}", random_token()?))
}

impl Access {
    /// Creates a token for `user`, acting with `role` (which its owner's role must
    /// include) or else with the owner's role, and expiring after `expires_days` days
    /// (1 to 3650) or never.
    ///
    /// Like every change of users and tokens, it takes the change's audit record:
    /// when given, it is appended in the same transaction, so the change and its
    /// record are written together or not at all.
    pub fn create_token(
        &self,
        user: &str,
        expires_days: Option<u32>,
        role: Option<Role>,
        audit: Option<AuditRecord>,
    ) -> Pending<NewToken> {
        self.create_scoped_token(user, expires_days, role, None, audit)
    }

    /// [`Access::create_token`], the token's FHIR reads further limited to SMART
    /// `scopes` (space-separated resource scopes such as `system/Observation.read`;
    /// `patient/` scopes grant nothing to a Corridor token, which has no patient
    /// context). Scopes that are not SMART resource scopes are refused.
    pub fn create_scoped_token(
        &self,
        user: &str,
        expires_days: Option<u32>,
        role: Option<Role>,
        scopes: Option<&str>,
        audit: Option<AuditRecord>,
    ) -> Pending<NewToken> {
        let scopes = match scopes.map(str::trim) {
            None => None,
            Some(claim) => {
                let parsed = crate::Scopes::parse(claim);
                if claim.split_ascii_whitespace().count() != parsed.iter().count() {
                    return Pending::ready(Err(Error::InvalidScopes(claim.to_owned())));
                }
                Some(parsed.to_claim())
            }
        };
        if expires_days.is_some_and(|days| !(1..=3650).contains(&days)) {
            return Pending::ready(Err(Error::InvalidExpiry));
        }
        let secret = match new_secret() {
            Ok(secret) => secret,
            Err(error) => return Pending::ready(Err(error)),
        };
        let name = user.to_owned();
        self.write_audited(audit, move |conn| {
            let Some(owner) = user_named(conn, &name)? else {
                return Ok(Err(Error::NoSuchUser(name)));
            };
            if let Some(asked) = role.filter(|asked| !owner.role.includes(*asked)) {
                return Ok(Err(Error::RoleWiderThanOwner {
                    user: name,
                    owner: owner.role,
                    asked,
                }));
            }
            let expires_at = expires_days.map(|days| {
                UnixMicros::now()
                    .0
                    .saturating_add(i64::from(days) * MICROS_PER_DAY)
            });
            let id = create_in(conn, &owner, role, expires_at, scopes.as_deref(), &secret)?;
            Ok(Ok(NewToken {
                id,
                secret,
                user: owner.name,
                role: role.unwrap_or(owner.role),
                expires_at,
                scopes,
            }))
        })
    }

    /// Every token, newest first.
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>, Error> {
        Ok(self.store.read(|conn| {
            let mut statement = conn.prepare(
                "SELECT t.id, u.name, t.hint, t.role, t.created_at, t.expires_at, t.revoked_at,
                        t.scopes
                 FROM access_tokens t JOIN access_users u ON u.id = t.user_id
                 ORDER BY t.id DESC",
            )?;
            let tokens = statement
                .query_map([], |row| {
                    let role: Option<String> = row.get(3)?;
                    Ok(TokenInfo {
                        id: row.get(0)?,
                        user: row.get(1)?,
                        hint: row.get(2)?,
                        role: role.and_then(|r| r.parse().ok()),
                        created_at: row.get(4)?,
                        expires_at: row.get(5)?,
                        revoked_at: row.get(6)?,
                        scopes: row.get(7)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(tokens)
        })?)
    }

    /// Revokes a token: this process refuses it from the next request on (its cached
    /// verification is dropped); another process that cached it, within
    /// [`crate::TOKEN_CACHE_LIFETIME`].
    pub fn revoke_token(&self, id: i64, audit: Option<AuditRecord>) -> Pending<()> {
        self.write_audited_revoking(audit, move |conn| {
            let changed = conn.execute(
                "UPDATE access_tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                params![id, UnixMicros::now().0],
            )?;
            Ok(if changed == 0 {
                Err(Error::NoSuchToken(id))
            } else {
                Ok(())
            })
        })
    }

    /// A token verified lately and still trusted ([`crate::TOKEN_CACHE_LIFETIME`],
    /// never past its expiry), without reading the database: None means "ask
    /// [`Access::verify_token`]", not "refused". Cheap enough for an async worker.
    pub fn verify_cached_token(&self, secret: &str) -> Option<TokenIdentity> {
        if !well_formed(secret) {
            return None;
        }
        let hash = sha256(secret.as_bytes());
        self.tokens
            .get(&hash, std::time::Instant::now(), UnixMicros::now().0)
    }

    /// Checks a bearer token: a token verified lately is answered from the cache of
    /// verified tokens (keyed by SHA-256; see [`crate::TOKEN_CACHE_LIFETIME`]); else it
    /// is found by its SHA-256 (an index lookup on a hash reveals nothing of the secret
    /// through timing), compared again in constant time, then its revocation, expiry and
    /// owner are checked, and a good one is cached.
    pub fn verify_token(&self, secret: &str) -> Result<TokenIdentity, VerifyTokenError> {
        if !well_formed(secret) {
            return Err(TokenRejected::Malformed.into());
        }
        let hash = sha256(secret.as_bytes());
        if let Some(identity) =
            self.tokens
                .get(&hash, std::time::Instant::now(), UnixMicros::now().0)
        {
            return Ok(identity);
        }
        let generation = self.tokens.generation();
        let identity = self.verify_token_stored(&hash)?;
        self.tokens.insert(
            hash,
            identity.0.clone(),
            identity.1,
            generation,
            std::time::Instant::now(),
        );
        Ok(identity.0)
    }

    /// The database's answer for a token's hash, with the token's expiry.
    fn verify_token_stored(
        &self,
        hash: &[u8; 32],
    ) -> Result<(TokenIdentity, Option<i64>), VerifyTokenError> {
        let row = self.store.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT t.id, t.hash, t.role, t.expires_at, t.revoked_at,
                            u.name, u.role, u.disabled_at, t.scopes
                     FROM access_tokens t JOIN access_users u ON u.id = t.user_id
                     WHERE t.hash = ?1",
                )?
                .query_row([hash.as_slice()], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, Option<i64>>(3)?,
                        row.get::<_, Option<i64>>(4)?,
                        row.get::<_, String>(5)?,
                        row.get::<_, String>(6)?,
                        row.get::<_, Option<i64>>(7)?,
                        row.get::<_, Option<String>>(8)?,
                    ))
                })
                .optional()?)
        });
        let row = row.map_err(|e| VerifyTokenError::Store(e.into()))?;
        let Some((id, stored, role, expires_at, revoked_at, user, owner_role, disabled, scopes)) =
            row
        else {
            return Err(TokenRejected::Unknown.into());
        };
        if !constant_time_eq(&stored, hash) {
            return Err(TokenRejected::Unknown.into());
        }
        if revoked_at.is_some() {
            return Err(TokenRejected::Revoked.into());
        }
        if expires_at.is_some_and(|at| at <= UnixMicros::now().0) {
            return Err(TokenRejected::Expired.into());
        }
        let Ok(owner_role) = owner_role.parse::<Role>() else {
            return Err(TokenRejected::OwnerRefused.into());
        };
        let role = match role.map(|r| r.parse::<Role>()) {
            None => owner_role,
            Some(Ok(role)) if owner_role.includes(role) => role,
            Some(_) => return Err(TokenRejected::OwnerRefused.into()),
        };
        if disabled.is_some() {
            return Err(TokenRejected::OwnerRefused.into());
        }
        Ok((
            TokenIdentity {
                id,
                user,
                role,
                scopes: scopes.as_deref().map(crate::Scopes::parse),
            },
            expires_at,
        ))
    }

    /// The first-start rule: when no user exists, creates the user `admin` (role admin,
    /// no password) and a token for it, writes the token to `dir/admin-token` readable
    /// only by its owner (mode 0600), and returns it for `corridor run` to print once.
    /// Returns None when users exist (nothing is created or written).
    pub async fn ensure_first_admin(&self, dir: &Path) -> Result<Option<FirstAdmin>, Error> {
        let secret = new_secret()?;
        let created = self.store.write(move |conn| {
            let any: bool =
                conn.query_row("SELECT EXISTS (SELECT 1 FROM access_users)", [], |row| {
                    row.get(0)
                })?;
            if any {
                return Ok(Ok(None));
            }
            let user = match insert_user(conn, FIRST_ADMIN, Role::Admin, None)? {
                Ok(user) => user,
                Err(error) => return Ok(Err(error)),
            };
            let id = create_in(conn, &user, None, None, None, &secret)?;
            let record = AuditRecord::system("first-start.admin-token", ActionKind::Create)
                .resource(format!("token/{id}"))
                .detail(format!(
                    "no user existed: created user {FIRST_ADMIN} and its token"
                ));
            crate::audit::append_in(conn, &record)?;
            Ok(Ok(Some((id, secret))))
        });
        let Some((id, secret)) = created.await?? else {
            return Ok(None);
        };
        let path = dir.join(FIRST_ADMIN_TOKEN_FILE);
        write_owner_only(&path, &format!("{secret}\n"))?;
        Ok(Some(FirstAdmin {
            token_id: id,
            secret,
            path,
        }))
    }
}

/// The user the first start creates.
pub const FIRST_ADMIN: &str = "admin";
/// The file in the data directory holding the first start's admin token.
pub const FIRST_ADMIN_TOKEN_FILE: &str = "admin-token";

/// What the first start created.
#[derive(Debug, Clone)]
pub struct FirstAdmin {
    /// The token's id.
    pub token_id: i64,
    /// The token, to print once.
    pub secret: String,
    /// The file it was also written to (mode 0600).
    pub path: PathBuf,
}

/// Writes `text` to a new file only its owner can read or write. An older file of that
/// name is replaced: it held a token of a database that has no users any more.
fn write_owner_only(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write as _;
    let fail = |source| Error::File {
        path: path.to_owned(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Created with the mode, so the token is never readable by others, not even
        // between creating the file and changing its mode.
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// Why [`Access::verify_token`] refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyTokenError {
    /// The token is not good.
    #[error(transparent)]
    Rejected(#[from] TokenRejected),
    /// The database failed; the request is refused.
    #[error(transparent)]
    Store(Error),
}

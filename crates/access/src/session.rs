//! Browser sessions for the console: a random id in an HttpOnly cookie, kept server-side
//! (in memory, by the id's SHA-256), with idle and absolute timeouts and a CSRF token.
//!
//! Sessions live in memory: a restart signs everyone out, which costs a login and
//! keeps session ids out of the database and its backups. CSRF protection is the
//! synchronizer pattern: each session has its own random token, given to the console
//! at login and sent back in the `X-CSRF-Token` header of every state-changing request;
//! a forged cross-site request has the cookie but cannot read the token.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::secret::{constant_time_eq, random_token, sha256};
use crate::{Error, Role};

/// The request header that carries the CSRF token.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// Timeouts and limits of [`Sessions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not.
    pub absolute_timeout: Duration,
    /// The most sessions kept at once; the oldest is dropped past it.
    pub max_sessions: usize,
}

impl Default for SessionPolicy {
    fn default() -> SessionPolicy {
        SessionPolicy {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            max_sessions: 10_000,
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    user: String,
    role: Role,
    csrf: String,
    address: Option<IpAddr>,
    created: Instant,
    logged_in_at: i64,
    last_seen: Instant,
}

/// A session just created: the cookie value and the CSRF token to hand the browser.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session id, the cookie's value. Never stored as is.
    pub id: String,
    /// The session's CSRF token.
    pub csrf: String,
}

/// A live session, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The user signed in.
    pub user: String,
    /// The user's role at login.
    pub role: Role,
    /// The session's CSRF token, to check a state-changing request with
    /// [`verify_csrf`].
    pub csrf: String,
    /// The address the login came from.
    pub address: Option<IpAddr>,
    /// When the user logged in (microseconds since the Unix epoch): a password changed
    /// after it ends the session ([`crate::Access::session_holder_current`]).
    pub logged_in_at: i64,
}

/// Why a session cookie was refused (the API answers 401 alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionRejected {
    /// No such session (forged, logged out, or the server restarted).
    #[error("no such session")]
    Unknown,
    /// Unused for longer than the idle timeout.
    #[error("the session was idle too long")]
    Idle,
    /// Older than the absolute timeout.
    #[error("the session has expired")]
    Expired,
}

/// The server's sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    policy: SessionPolicy,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// An empty table with `policy`.
    pub fn new(policy: SessionPolicy) -> Sessions {
        Sessions {
            policy,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session for a user who just proved who they are.
    pub fn create(
        &self,
        user: &str,
        role: Role,
        address: Option<IpAddr>,
    ) -> Result<NewSession, Error> {
        self.create_at(user, role, address, Instant::now())
    }

    fn create_at(
        &self,
        user: &str,
        role: Role,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<NewSession, Error> {
        let id = random_token()?;
        let csrf = random_token()?;
        let mut sessions = self.lock();
        if sessions.len() >= self.policy.max_sessions {
            let policy = self.policy;
            sessions.retain(|_, s| live(&policy, s, now).is_ok());
            if sessions.len() >= self.policy.max_sessions {
                let oldest = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.created)
                    .map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    sessions.remove(&oldest);
                }
            }
        }
        sessions.insert(
            sha256(id.as_bytes()),
            Session {
                user: user.to_owned(),
                role,
                csrf: csrf.clone(),
                address,
                created: now,
                logged_in_at: store::UnixMicros::now().0,
                last_seen: now,
            },
        );
        Ok(NewSession { id, csrf })
    }

    /// The session of a cookie value, refreshing its idle time; an ended one is removed.
    pub fn get(&self, id: &str) -> Result<SessionInfo, SessionRejected> {
        self.get_at(id, Instant::now())
    }

    fn get_at(&self, id: &str, now: Instant) -> Result<SessionInfo, SessionRejected> {
        let key = sha256(id.as_bytes());
        let mut sessions = self.lock();
        let session = sessions.get_mut(&key).ok_or(SessionRejected::Unknown)?;
        if let Err(ended) = live(&self.policy, session, now) {
            sessions.remove(&key);
            return Err(ended);
        }
        session.last_seen = now;
        Ok(SessionInfo {
            user: session.user.clone(),
            role: session.role,
            csrf: session.csrf.clone(),
            address: session.address,
            logged_in_at: session.logged_in_at,
        })
    }

    /// Ends a session (logout). True when there was one.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(&sha256(id.as_bytes())).is_some()
    }

    /// Ends every session of `user` (disabled, or its password changed).
    pub fn remove_user(&self, user: &str) {
        self.lock().retain(|_, s| s.user != user);
    }

    /// The timeouts and limits sessions are kept with.
    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }
}

fn live(policy: &SessionPolicy, session: &Session, now: Instant) -> Result<(), SessionRejected> {
    if now.saturating_duration_since(session.created) >= policy.absolute_timeout {
        Err(SessionRejected::Expired)
    } else if now.saturating_duration_since(session.last_seen) >= policy.idle_timeout {
        Err(SessionRejected::Idle)
    } else {
        Ok(())
    }
}

/// Whether a state-changing request's CSRF token (from [`CSRF_HEADER`]) is its session's.
/// A missing token fails.
pub fn verify_csrf(session: &SessionInfo, presented: Option<&str>) -> bool {
    presented.is_some_and(|token| constant_time_eq(token.as_bytes(), session.csrf.as_bytes()))
}

/// Builds the session cookie's `Set-Cookie` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCookie {
    /// Whether the console is served over HTTPS: the cookie is then `Secure` and named
    /// with the `__Host-` prefix, which browsers accept only from a secure origin, for
    /// the whole host and no other domain.
    pub secure: bool,
    /// How long the browser keeps the cookie (the session's absolute timeout).
    pub max_age: Duration,
}

impl SessionCookie {
    /// The cookie's name.
    pub fn name(&self) -> &'static str {
        if self.secure {
            "__Host-corridor-session"
        } else {
            "corridor-session"
        }
    }

    /// The `Set-Cookie` value that stores the session id: HttpOnly (no script reads it),
    /// SameSite=Strict (no cross-site request carries it), Path=/, Secure under HTTPS.
    pub fn set(&self, id: &str) -> String {
        self.build(id, self.max_age.as_secs())
    }

    /// The `Set-Cookie` value that removes the cookie (logout).
    pub fn clear(&self) -> String {
        self.build("", 0)
    }

    fn build(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}",
            self.name()
        )
    }

    /// The session id in a request's `Cookie` header, if the session cookie is there.
    pub fn find<'a>(&self, cookie_header: &'a str) -> Option<&'a str> {
        cookie_header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name())
            .map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(SessionPolicy {
            idle_timeout: Duration::from_secs(60),
            absolute_timeout: Duration::from_secs(600),
            max_sessions: 3,
        })
    }

    #[test]
    fn a_session_is_found_by_its_id_and_ends_at_logout() {
        let table = sessions();
        let new = table.create("alice", Role::Analyst, None).unwrap();
        let info = table.get(&new.id).unwrap();
        assert_eq!((info.user.as_str(), info.role), ("alice", Role::Analyst));
        assert!(table.get("forged").is_err());
        assert!(table.remove(&new.id));
        assert_eq!(table.get(&new.id), Err(SessionRejected::Unknown));
    }

    #[test]
    fn idle_and_absolute_timeouts_end_sessions() {
        let table = sessions();
        let t0 = Instant::now();
        let new = table.create_at("alice", Role::Viewer, None, t0).unwrap();
        // Used every 50 s: never idle, but ended at ten minutes.
        for step in 1..12 {
            assert!(
                table
                    .get_at(&new.id, t0 + Duration::from_secs(50 * step))
                    .is_ok()
            );
        }
        assert_eq!(
            table.get_at(&new.id, t0 + Duration::from_secs(600)),
            Err(SessionRejected::Expired)
        );
        let other = table.create_at("bob", Role::Viewer, None, t0).unwrap();
        assert_eq!(
            table.get_at(&other.id, t0 + Duration::from_secs(61)),
            Err(SessionRejected::Idle)
        );
        assert_eq!(
            table.get_at(&other.id, t0 + Duration::from_secs(62)),
            Err(SessionRejected::Unknown)
        );
    }

    #[test]
    fn csrf_token_must_be_the_sessions_own() {
        let table = sessions();
        let a = table.create("alice", Role::Operator, None).unwrap();
        let b = table.create("bob", Role::Operator, None).unwrap();
        let info = table.get(&a.id).unwrap();
        assert!(verify_csrf(&info, Some(&a.csrf)));
        assert!(!verify_csrf(&info, Some(&b.csrf)));
        assert!(!verify_csrf(&info, None));
        assert!(!verify_csrf(&info, Some("")));
    }

    #[test]
    fn the_table_keeps_at_most_its_cap() {
        let table = sessions();
        let first = table.create("u0", Role::Viewer, None).unwrap();
        for i in 1..5 {
            table.create(&format!("u{i}"), Role::Viewer, None).unwrap();
        }
        assert_eq!(table.lock().len(), 3);
        assert!(table.get(&first.id).is_err());
    }

    #[test]
    fn cookie_attributes_follow_https() {
        let plain = SessionCookie {
            secure: false,
            max_age: Duration::from_secs(3600),
        };
        assert_eq!(
            plain.set("abc"),
            "corridor-session=abc; Path=/; Max-Age=3600; HttpOnly; SameSite=Strict"
        );
        let secure = SessionCookie {
            secure: true,
            ..plain
        };
        let set = secure.set("abc");
        assert!(set.starts_with("__Host-corridor-session=abc;"));
        assert!(set.ends_with("; HttpOnly; SameSite=Strict; Secure"));
        assert!(secure.clear().contains("Max-Age=0"));
        assert_eq!(
            secure.find("theme=dark; __Host-corridor-session=xyz; other=1"),
            Some("xyz")
        );
        assert_eq!(secure.find("corridor-session=xyz"), None);
    }
}

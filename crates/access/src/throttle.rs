//! Login throttling: failed logins per user name and per address, in memory.
//!
//! Policy: within a window of [`ThrottlePolicy::window`], a name may fail
//! [`ThrottlePolicy::per_user`] times and an address [`ThrottlePolicy::per_address`]
//! times; past that, logins for that name or from that address are refused without
//! checking the password until the window that began with the first failure ends. A
//! successful login clears its name's count (not its address's: one good password
//! must not reset an address guessing at others). The table holds at most
//! [`ThrottlePolicy::max_entries`] keys; when full, the entry whose window began
//! first is dropped, so a flood of names cannot grow memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The limits of a [`LoginThrottle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed for one user name within the window.
    pub per_user: u32,
    /// Failures allowed from one address within the window.
    pub per_address: u32,
    /// How long failures count.
    pub window: Duration,
    /// The most names and addresses remembered at once.
    pub max_entries: usize,
}

impl Default for ThrottlePolicy {
    fn default() -> ThrottlePolicy {
        ThrottlePolicy {
            per_user: 5,
            per_address: 20,
            window: Duration::from_secs(15 * 60),
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    first: Instant,
    count: u32,
}

/// Throttled: try again after the given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins; try again in {} seconds", retry_after.as_secs().max(1))]
pub struct Throttled {
    /// When the window ends.
    pub retry_after: Duration,
}

/// Counts failed logins; see the module documentation for the policy.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    failures: Mutex<HashMap<Key, Failures>>,
}

impl LoginThrottle {
    /// A throttle with `policy`.
    pub fn new(policy: ThrottlePolicy) -> LoginThrottle {
        LoginThrottle {
            policy,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a login for `user` from `address` may be tried now.
    pub fn check(&self, user: &str, address: Option<IpAddr>) -> Result<(), Throttled> {
        self.check_at(user, address, Instant::now())
    }

    /// Counts a failed login.
    pub fn record_failure(&self, user: &str, address: Option<IpAddr>) {
        self.record_failure_at(user, address, Instant::now());
    }

    /// Clears the user's count after a successful login.
    pub fn record_success(&self, user: &str) {
        self.lock().remove(&Key::User(user.to_owned()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Failures>> {
        // A panic while holding the lock leaves counts that are still counts.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn keys(user: &str, address: Option<IpAddr>) -> impl Iterator<Item = Key> {
        std::iter::once(Key::User(user.to_owned())).chain(address.map(Key::Address))
    }

    fn limit(&self, key: &Key) -> u32 {
        match key {
            Key::User(_) => self.policy.per_user,
            Key::Address(_) => self.policy.per_address,
        }
    }

    fn check_at(&self, user: &str, address: Option<IpAddr>, now: Instant) -> Result<(), Throttled> {
        let failures = self.lock();
        let mut wait = Duration::ZERO;
        for key in LoginThrottle::keys(user, address) {
            if let Some(entry) = failures.get(&key) {
                let elapsed = now.saturating_duration_since(entry.first);
                if elapsed < self.policy.window && entry.count >= self.limit(&key) {
                    wait = wait.max(self.policy.window - elapsed);
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Throttled { retry_after: wait })
        }
    }

    fn record_failure_at(&self, user: &str, address: Option<IpAddr>, now: Instant) {
        let mut failures = self.lock();
        for key in LoginThrottle::keys(user, address) {
            if !failures.contains_key(&key) && failures.len() >= self.policy.max_entries {
                failures.retain(|_, f| now.saturating_duration_since(f.first) < self.policy.window);
                if failures.len() >= self.policy.max_entries {
                    let oldest = failures
                        .iter()
                        .min_by_key(|(_, f)| f.first)
                        .map(|(k, _)| k.clone());
                    if let Some(oldest) = oldest {
                        failures.remove(&oldest);
                    }
                }
            }
            let entry = failures.entry(key).or_insert(Failures {
                first: now,
                count: 0,
            });
            if now.saturating_duration_since(entry.first) >= self.policy.window {
                *entry = Failures {
                    first: now,
                    count: 0,
                };
            }
            entry.count = entry.count.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            per_user: 3,
            per_address: 5,
            window: Duration::from_secs(60),
            max_entries: 4,
        }
    }

    #[test]
    fn a_name_is_throttled_after_its_failures_until_the_window_ends() {
        let throttle = LoginThrottle::new(policy());
        let start = Instant::now();
        for _ in 0..3 {
            assert!(throttle.check_at("alice", None, start).is_ok());
            throttle.record_failure_at("alice", None, start);
        }
        let refused = throttle.check_at("alice", None, start + Duration::from_secs(10));
        assert_eq!(
            refused.map_err(|t| t.retry_after),
            Err(Duration::from_secs(50))
        );
        assert!(throttle.check_at("bob", None, start).is_ok());
        assert!(
            throttle
                .check_at("alice", None, start + Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn an_address_is_throttled_across_names_and_success_does_not_clear_it() {
        let throttle = LoginThrottle::new(ThrottlePolicy {
            max_entries: 100,
            ..policy()
        });
        let address: IpAddr = [10, 0, 0, 7].into();
        let now = Instant::now();
        for name in ["a", "b", "c", "d", "e"] {
            throttle.record_failure_at(name, Some(address), now);
        }
        throttle.record_success("a");
        assert!(throttle.check_at("f", Some(address), now).is_err());
        assert!(
            throttle
                .check_at("f", Some([10, 0, 0, 8].into()), now)
                .is_ok()
        );
    }

    #[test]
    fn success_clears_the_names_count() {
        let throttle = LoginThrottle::new(policy());
        let now = Instant::now();
        for _ in 0..3 {
            throttle.record_failure_at("alice", None, now);
        }
        throttle.record_success("alice");
        assert!(throttle.check_at("alice", None, now).is_ok());
    }

    #[test]
    fn the_table_never_grows_past_its_cap() {
        let throttle = LoginThrottle::new(policy());
        let now = Instant::now();
        for i in 0..50 {
            throttle.record_failure_at(&format!("user{i}"), None, now + Duration::from_millis(i));
        }
        assert!(throttle.lock().len() <= 4);
    }
}

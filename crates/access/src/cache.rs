//! The cache of verified API tokens, so a request with a token known good does not read
//! the database (and hop to the blocking pool) each time.
//!
//! Keyed by the token's SHA-256, never the secret: a memory dump shows what the
//! database holds already. Looking a hash up in a hash map reveals nothing of the secret
//! through timing, for the same reason the database's index does not: an attacker
//! cannot choose a secret whose SHA-256 starts with chosen bytes.
//!
//! An entry lives [`TOKEN_CACHE_LIFETIME`] at most, and past its token's own expiry
//! never. Every change of users or tokens made through this process's [`crate::Access`]
//! (revoking a token, disabling a user, changing a password) empties the cache at once,
//! and again when the change is committed, and a check that read the database before
//! such a change does not put its answer in the cache after it (a generation counter).
//! A change made by another process (the command line's `corridor token revoke` or
//! `user disable`) reaches this one within [`TOKEN_CACHE_LIFETIME`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::TokenIdentity;

/// How long a verified token is trusted without reading the database again: the longest
/// a token revoked (or a user disabled) from another process keeps working here.
pub const TOKEN_CACHE_LIFETIME: Duration = Duration::from_secs(5);

/// The most tokens kept; past it, expired entries go, then everything.
pub const TOKEN_CACHE_CAPACITY: usize = 4096;

#[derive(Debug)]
struct Entry {
    identity: TokenIdentity,
    /// The token's own expiry (microseconds since the Unix epoch), if any.
    expires_at: Option<i64>,
    /// When the entry stops being trusted.
    until: Instant,
}

/// Verified tokens by SHA-256, bounded in size and lifetime.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    generation: AtomicU64,
}

impl TokenCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation a check starts in: pass it to [`TokenCache::insert`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The identity of a token verified lately, if it is still trusted.
    pub(crate) fn get(
        &self,
        hash: &[u8; 32],
        now: Instant,
        now_micros: i64,
    ) -> Option<TokenIdentity> {
        let mut entries = self.lock();
        let entry = entries.get(hash)?;
        if now >= entry.until || entry.expires_at.is_some_and(|at| at <= now_micros) {
            entries.remove(hash);
            return None;
        }
        Some(entry.identity.clone())
    }

    /// Remembers a token just verified against the database, unless users or tokens
    /// changed since the check began (`generation`).
    pub(crate) fn insert(
        &self,
        hash: [u8; 32],
        identity: TokenIdentity,
        expires_at: Option<i64>,
        generation: u64,
        now: Instant,
    ) {
        let mut entries = self.lock();
        // Checked under the lock: an invalidation takes it too, after bumping.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= TOKEN_CACHE_CAPACITY {
            entries.retain(|_, entry| now < entry.until);
            if entries.len() >= TOKEN_CACHE_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            hash,
            Entry {
                identity,
                expires_at,
                until: now + TOKEN_CACHE_LIFETIME,
            },
        );
    }

    /// Forgets every token: users or tokens changed.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.lock().clear();
    }

    /// How many tokens are cached.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn identity(id: i64) -> TokenIdentity {
        TokenIdentity {
            id,
            user: "alice".into(),
            role: Role::Analyst,
            scopes: None,
        }
    }

    #[test]
    fn an_entry_is_trusted_for_its_lifetime_and_never_past_its_tokens_expiry() {
        let cache = TokenCache::default();
        let now = Instant::now();
        cache.insert([1; 32], identity(1), None, cache.generation(), now);
        cache.insert([2; 32], identity(2), Some(1_000), cache.generation(), now);
        assert_eq!(cache.get(&[1; 32], now, 0).map(|i| i.id), Some(1));
        assert!(cache.get(&[1; 32], now + TOKEN_CACHE_LIFETIME, 0).is_none());
        assert_eq!(cache.get(&[2; 32], now, 999).map(|i| i.id), Some(2));
        assert!(cache.get(&[2; 32], now, 1_000).is_none());
        assert!(cache.get(&[3; 32], now, 0).is_none());
    }

    #[test]
    fn a_check_begun_before_an_invalidation_is_not_cached_after_it() {
        let cache = TokenCache::default();
        let now = Instant::now();
        let began = cache.generation();
        cache.invalidate();
        cache.insert([1; 32], identity(1), None, began, now);
        assert!(cache.get(&[1; 32], now, 0).is_none());
        cache.insert([1; 32], identity(1), None, cache.generation(), now);
        assert!(cache.get(&[1; 32], now, 0).is_some());
        cache.invalidate();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = TokenCache::default();
        let now = Instant::now();
        for i in 0..(TOKEN_CACHE_CAPACITY as u32 + 10) {
            let mut hash = [0u8; 32];
            hash[..4].copy_from_slice(&i.to_le_bytes());
            cache.insert(hash, identity(i64::from(i)), None, cache.generation(), now);
        }
        assert!(cache.len() <= TOKEN_CACHE_CAPACITY);
        assert!(cache.len() > 0);
    }
}

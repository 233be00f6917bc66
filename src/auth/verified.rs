//! Recently verified JWTs, so that a browser's many requests with one cookie are
//! checked once every [`VERIFIED_TTL`] instead of each time (signature, base64 and
//! JSON work is most of the gateway's own CPU on a small proxied response).
//!
//! Only successes are kept, as keyed hashes of the token (the token itself is never
//! stored), each until the earlier of `VERIFIED_TTL` from now and the token's `exp`,
//! and only for the key set it was verified with: a JWK Set refresh (a new
//! generation) makes every kept verification void, so a retired key stops working as
//! soon as the gateway knows. At most [`MAX_ENTRIES`] are kept; when full, expired
//! entries are dropped, and a new token is not kept if none had expired.

use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;

use super::cache::{CacheKey, CacheKeyHash, KeyHasher, KeyKind};
use super::Identity;

/// How long a verification is reused.
pub const VERIFIED_TTL: Duration = Duration::from_secs(30);

/// Tokens kept at most.
pub const MAX_ENTRIES: usize = 10_000;

/// The cache of verified tokens.
#[derive(Default)]
pub struct Verified {
    hasher: KeyHasher,
    /// Identity, valid until, key-set generation.
    entries: DashMap<CacheKey, (Identity, Instant, u64), CacheKeyHash>,
}

impl Verified {
    /// The identity `token` was verified as with the keys of `generation`, if that
    /// was recently and is still within its `exp`.
    pub fn get(&self, token: &str, generation: u64) -> Option<Identity> {
        let key = self.hasher.key(KeyKind::Jwt, token, None);
        let usable = |(_, until, of): &(Identity, Instant, u64)| {
            Instant::now() < *until && *of == generation
        };
        let hit = self
            .entries
            .get(&key)
            .filter(|entry| usable(entry.value()))
            .map(|entry| entry.value().0.clone());
        if hit.is_none() {
            self.entries.remove_if(&key, |_, entry| !usable(entry));
        }
        hit
    }

    /// Keeps `identity` as the verification of `token` with the keys of
    /// `generation`.
    pub fn insert(&self, token: &str, identity: &Identity, generation: u64) {
        let now = Instant::now();
        let mut until = now + VERIFIED_TTL;
        if let Some(exp) = identity.expires_at {
            let left = exp
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            until = until.min(now + left);
        }
        if until <= now {
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries
                .retain(|_, (_, kept_until, _)| *kept_until > now);
            if self.entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        let key = self.hasher.key(KeyKind::Jwt, token, None);
        self.entries
            .insert(key, (identity.clone(), until, generation));
    }

    /// Entries kept now (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Verifier;

    fn identity(user: &str, lifetime: Duration) -> Identity {
        Identity {
            user: user.into(),
            expires_at: Some(SystemTime::now() + lifetime),
            verifier: Verifier::Jwt,
        }
    }

    #[test]
    fn a_verified_token_is_reused_and_others_are_not() {
        let v = Verified::default();
        let alice = identity("alice", Duration::from_secs(600));
        v.insert("token-a", &alice, 1);
        assert_eq!(v.get("token-a", 1), Some(alice));
        assert_eq!(v.get("token-a", 2), None, "another key set");
        assert_eq!(v.get("token-a", 1), None, "dropped once void");
        assert_eq!(v.get("token-b", 1), None);
        assert_eq!(v.get("token-a ", 1), None);
    }

    #[test]
    fn nothing_outlives_the_tokens_exp() {
        let v = Verified::default();
        v.insert("expired", &identity("bob", Duration::ZERO), 0);
        assert_eq!(v.get("expired", 0), None);
        assert!(v.is_empty());
        v.insert("short", &identity("carol", Duration::from_millis(50)), 0);
        assert!(v.get("short", 0).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(v.get("short", 0), None);
        assert!(v.is_empty(), "the expired entry is dropped when looked up");
    }

    #[test]
    fn the_cache_stays_bounded() {
        let v = Verified::default();
        let who = identity("dave", Duration::from_secs(600));
        for i in 0..MAX_ENTRIES + 50 {
            v.insert(&format!("token-{i}"), &who, 0);
        }
        assert_eq!(v.len(), MAX_ENTRIES);
        assert!(
            v.get("token-0", 0).is_some(),
            "kept entries are not evicted"
        );
        assert_eq!(v.get(&format!("token-{}", MAX_ENTRIES + 1), 0), None);
    }
}

//! The decision cache in front of reana-server (moka): answers kept for `cache_ttl`
//! (positive) or `negative_ttl` (refusals), concurrent misses for one key collapsed
//! into one call, memory bounded, and credentials kept only as keyed hashes.
//!
//! Bounding: positive answers and refusals live in two caches that share
//! `cache_max_entries` half and half, so a flood of bad credentials (refusals)
//! evicts other refusals, never the identities of real users.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use siphasher::sip128::{Hasher128, SipHasher13};

/// What a cache key stands for; part of the hashed input, so one secret used as a
/// token and as a session cookie gives two keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `/api/you` with an access token.
    TokenIdentity,
    /// `/api/you` with a `session` cookie.
    SessionIdentity,
    /// `/api/workflows/<id>/status` with an access token.
    TokenWorkflow,
    /// `/api/workflows/<id>/status` with a `session` cookie.
    SessionWorkflow,
    /// A JWT verified locally.
    Jwt,
}

/// A keyed 128-bit hash of a credential (and workflow): the only form in which a
/// credential is stored. `Debug` shows a short prefix only.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(u128);

impl CacheKey {
    /// The first 8 hex digits: enough to correlate log lines, useless to an attacker
    /// (the hash is keyed with a secret chosen at start-up).
    pub fn fingerprint(&self) -> String {
        format!("{:08x}", (self.0 >> 96) as u32)
    }
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CacheKey({}…)", self.fingerprint())
    }
}

/// Builds [`CacheKey`]s: one 128-bit SipHash-1-3 with a per-process random key.
pub struct KeyHasher {
    keys: (u64, u64),
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher {
            keys: (rand::random(), rand::random()),
        }
    }
}

impl KeyHasher {
    /// The key for `secret` used as `kind`, optionally for one `workflow`.
    pub fn key(&self, kind: KeyKind, secret: &str, workflow: Option<&str>) -> CacheKey {
        let mut h = SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        h.write_u8(kind as u8);
        h.write_usize(secret.len());
        h.write(secret.as_bytes());
        if let Some(workflow) = workflow {
            h.write_usize(workflow.len());
            h.write(workflow.as_bytes());
        }
        CacheKey(h.finish128().as_u128())
    }
}

/// Hashes a [`CacheKey`] for a map: its low 64 bits as they are (it is a keyed hash
/// already; hashing it again would buy nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheKeyHash;

impl BuildHasher for CacheKeyHash {
    type Hasher = CacheKeyHasher;

    fn build_hasher(&self) -> CacheKeyHasher {
        CacheKeyHasher(0)
    }
}

/// The hasher of [`CacheKeyHash`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheKeyHasher(u64);

impl Hasher for CacheKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `CacheKey`s are hashed here, through `write_u128`; anything else still
        // gets a usable (if weak) hash.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 ^= n as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Why reana-server refused a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// `401`: no usable credential (e.g. an expired web-UI session).
    Unauthenticated,
    /// `403 "Token not valid."` (or another 403).
    NotValid,
    /// `403 "User access token revoked."`.
    Revoked,
}

/// One answer of reana-server, as cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The credential belongs to this user (`id_`).
    User(Arc<str>),
    /// The credential was refused.
    Rejected(Rejection),
    /// The workflow is visible with the credential (owner or shared).
    Visible,
    /// The workflow is not visible with the credential.
    NotVisible,
}

impl Decision {
    fn is_positive(&self) -> bool {
        matches!(self, Decision::User(_) | Decision::Visible)
    }
}

/// reana-server could not give an answer (timeout, 5xx, refused, malformed): never
/// cached, never a reason to allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// Why a flight ended without a positive answer; handed to every caller of that
/// flight, kept by none.
#[derive(Debug)]
enum NotPositive {
    /// A refusal, also stored among the refusals.
    Refused(Decision),
    /// reana-server gave no answer.
    Unavailable,
}

/// Time-limited, size-bounded, single-flight cache of reana-server answers.
pub struct DecisionCache {
    /// Positive answers, for `positive_ttl`; its `try_get_with` is the single flight.
    positive: Cache<CacheKey, Decision>,
    /// Refusals, for `negative_ttl`.
    refusals: Cache<CacheKey, Decision>,
    hasher: KeyHasher,
}

impl DecisionCache {
    /// A cache of at most `max_entries` answers (half for each kind), keeping
    /// positive answers `positive_ttl` and refusals `negative_ttl`.
    pub fn new(max_entries: usize, positive_ttl: Duration, negative_ttl: Duration) -> Self {
        let negative = (max_entries / 2).max(1);
        let positive = max_entries.saturating_sub(negative).max(1);
        let region = |capacity: usize, ttl: Duration| {
            Cache::builder()
                .max_capacity(u64::try_from(capacity).unwrap_or(u64::MAX))
                .time_to_live(ttl)
                .build()
        };
        DecisionCache {
            positive: region(positive, positive_ttl),
            refusals: region(negative, negative_ttl),
            hasher: KeyHasher::default(),
        }
    }

    /// The key for `secret` used as `kind` (see [`KeyHasher::key`]).
    pub fn key(&self, kind: KeyKind, secret: &str, workflow: Option<&str>) -> CacheKey {
        self.hasher.key(kind, secret, workflow)
    }

    /// Number of cached answers, as moka last counted them (it counts an insertion
    /// or an eviction when it applies its pending work).
    pub fn len(&self) -> usize {
        let n = self.positive.entry_count() + self.refusals.entry_count();
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// True when nothing is cached (see [`DecisionCache::len`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cached answer, or the one `fetch` gives. Concurrent callers for one key
    /// share a single `fetch`; if that caller goes away, a waiting one takes over.
    /// `Unavailable` is handed to the callers waiting at that moment only.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: CacheKey,
        fetch: F,
    ) -> Result<Decision, Unavailable>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Decision, Unavailable>>,
    {
        let flight = async {
            if let Some(refusal) = self.refusals.get(&key).await {
                return Err(NotPositive::Refused(refusal));
            }
            match fetch().await {
                Ok(decision) if decision.is_positive() => Ok(decision),
                Ok(refusal) => {
                    self.refusals.insert(key, refusal.clone()).await;
                    Err(NotPositive::Refused(refusal))
                }
                Err(Unavailable) => Err(NotPositive::Unavailable),
            }
        };
        match self.positive.try_get_with(key, flight).await {
            Ok(decision) => Ok(decision),
            Err(not_positive) => match &*not_positive {
                NotPositive::Refused(refusal) => Ok(refusal.clone()),
                NotPositive::Unavailable => Err(Unavailable),
            },
        }
    }

    /// Stores an answer among the positive ones or the refusals.
    pub async fn insert(&self, key: CacheKey, decision: Decision) {
        if decision.is_positive() {
            self.positive.insert(key, decision).await;
        } else {
            self.refusals.insert(key, decision).await;
        }
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;

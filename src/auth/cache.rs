//! The decision cache in front of reana-server: answers kept for `cache_ttl`
//! (positive) or `negative_ttl` (refusals), concurrent misses for one key collapsed
//! into one call, memory bounded, and credentials kept only as keyed hashes.
//!
//! Bounding: positive and negative answers live in two FIFO regions that share
//! `cache_max_entries` half and half, so a flood of bad credentials (negative
//! answers) evicts other negative answers, never the identities of real users.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::OnceCell;

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

/// Builds [`CacheKey`]s: two SipHash computations with per-process random keys and
/// independent random salts, concatenated into 128 bits.
pub struct KeyHasher {
    state: RandomState,
    salts: [u128; 2],
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher {
            state: RandomState::new(),
            salts: [rand::random(), rand::random()],
        }
    }
}

impl KeyHasher {
    /// The key for `secret` used as `kind`, optionally for one `workflow`.
    pub fn key(&self, kind: KeyKind, secret: &str, workflow: Option<&str>) -> CacheKey {
        let half = |salt: u128| {
            let mut h = self.state.build_hasher();
            h.write_u128(salt);
            h.write_u8(kind as u8);
            h.write_usize(secret.len());
            h.write(secret.as_bytes());
            if let Some(workflow) = workflow {
                h.write_usize(workflow.len());
                h.write(workflow.as_bytes());
            }
            h.finish()
        };
        CacheKey((u128::from(half(self.salts[0])) << 64) | u128::from(half(self.salts[1])))
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

type Flight = Arc<OnceCell<Result<Decision, Unavailable>>>;

struct Entry {
    decision: Decision,
    expires: Instant,
    seq: u64,
}

/// Insertion order of one region plus its live entry count.
#[derive(Default)]
struct Region {
    order: VecDeque<(CacheKey, u64)>,
    live: usize,
}

/// Time-limited, size-bounded, single-flight cache of reana-server answers.
pub struct DecisionCache {
    entries: DashMap<CacheKey, Entry>,
    inflight: DashMap<CacheKey, Flight>,
    /// `[positive, negative]`; every change of `entries` happens under this lock.
    regions: Mutex<[Region; 2]>,
    caps: [usize; 2],
    ttls: [Duration; 2],
    seq: AtomicU64,
    hasher: KeyHasher,
}

impl DecisionCache {
    /// A cache of at most `max_entries` answers (half for each kind), keeping
    /// positive answers `positive_ttl` and refusals `negative_ttl`.
    pub fn new(max_entries: usize, positive_ttl: Duration, negative_ttl: Duration) -> Self {
        let negative = (max_entries / 2).max(1);
        DecisionCache {
            entries: DashMap::new(),
            inflight: DashMap::new(),
            regions: Mutex::new(Default::default()),
            caps: [max_entries.saturating_sub(negative).max(1), negative],
            ttls: [positive_ttl, negative_ttl],
            seq: AtomicU64::new(0),
            hasher: KeyHasher::default(),
        }
    }

    /// The key for `secret` used as `kind` (see [`KeyHasher::key`]).
    pub fn key(&self, kind: KeyKind, secret: &str, workflow: Option<&str>) -> CacheKey {
        self.hasher.key(kind, secret, workflow)
    }

    /// Number of cached answers (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached answer for `key` while it is fresh.
    pub fn get(&self, key: CacheKey) -> Option<Decision> {
        self.get_at(key, Instant::now())
    }

    fn get_at(&self, key: CacheKey, now: Instant) -> Option<Decision> {
        let seq = {
            let entry = self.entries.get(&key)?;
            if entry.expires > now {
                return Some(entry.decision.clone());
            }
            entry.seq
        };
        self.remove(key, seq);
        None
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
        if let Some(decision) = self.get(key) {
            return Ok(decision);
        }
        let flight = Arc::clone(self.inflight.entry(key).or_default().value());
        let guard = FlightGuard {
            cache: self,
            key,
            flight,
        };
        let result = guard
            .flight
            .get_or_init(|| async {
                // A flight that ended between our miss and joining left its answer.
                if let Some(decision) = self.get(key) {
                    return Ok(decision);
                }
                let result = fetch().await;
                if let Ok(decision) = &result {
                    self.insert(key, decision.clone());
                }
                result
            })
            .await;
        result.clone()
    }

    /// Stores an answer, evicting the oldest of its region when the region is full.
    pub fn insert(&self, key: CacheKey, decision: Decision) {
        self.insert_at(key, decision, Instant::now());
    }

    fn insert_at(&self, key: CacheKey, decision: Decision, now: Instant) {
        let region = usize::from(!decision.is_positive());
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let expires = now + self.ttls[region];
        let mut regions = self.lock();
        let entry = Entry {
            decision,
            expires,
            seq,
        };
        if let Some(old) = self.entries.insert(key, entry) {
            let old_region = usize::from(!old.decision.is_positive());
            regions[old_region].live = regions[old_region].live.saturating_sub(1);
        }
        let cap = self.caps[region];
        let r = &mut regions[region];
        r.order.push_back((key, seq));
        r.live += 1;
        while r.live > cap {
            let Some((old_key, old_seq)) = r.order.pop_front() else {
                break;
            };
            if self
                .entries
                .remove_if(&old_key, |_, e| e.seq == old_seq)
                .is_some()
            {
                r.live -= 1;
            }
        }
        if r.order.len() > 2 * cap + 16 {
            // Replaced and removed entries leave stale positions behind.
            let entries = &self.entries;
            r.order
                .retain(|(k, s)| entries.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    fn remove(&self, key: CacheKey, seq: u64) {
        let mut regions = self.lock();
        if let Some((_, old)) = self.entries.remove_if(&key, |_, e| e.seq == seq) {
            let region = usize::from(!old.decision.is_positive());
            regions[region].live = regions[region].live.saturating_sub(1);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [Region; 2]> {
        // The lock guards counters only: a panic elsewhere leaves them usable.
        self.regions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Leaves a flight: the last participant (or anyone once it has an answer) removes
/// it, so an abandoned flight never stays behind.
struct FlightGuard<'a> {
    cache: &'a DecisionCache,
    key: CacheKey,
    flight: Flight,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        // `remove_if` holds the shard's write lock: nobody can join meanwhile, so the
        // count is the map's reference, ours, and those of the other participants.
        self.cache.inflight.remove_if(&self.key, |_, f| {
            Arc::ptr_eq(f, &self.flight) && (f.initialized() || Arc::strong_count(f) <= 2)
        });
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;

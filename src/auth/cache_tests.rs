//! Tests of `cache.rs`. moka keeps time with its own clock (a paused tokio clock does
//! not move it), so TTLs are short real ones, with margins far above scheduling noise.
use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

const POS: Duration = Duration::from_secs(30);
const NEG: Duration = Duration::from_secs(5);
const STEP: Duration = Duration::from_secs(10);

fn user(u: &str) -> Decision {
    Decision::User(u.into())
}

/// The cached answer for `key`, if any, without fetching.
async fn cached(cache: &DecisionCache, key: CacheKey) -> Option<Decision> {
    match cache.positive.get(&key).await {
        Some(decision) => Some(decision),
        None => cache.refusals.get(&key).await,
    }
}

/// `get_or_fetch` whose fetch counts its calls and answers `answer` after `delay`.
async fn lookup(
    cache: &DecisionCache,
    key: CacheKey,
    calls: &AtomicUsize,
    delay: Duration,
    answer: Result<Decision, Unavailable>,
) -> Result<Decision, Unavailable> {
    let fetch = || async {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
        answer
    };
    tokio::time::timeout(STEP, cache.get_or_fetch(key, fetch))
        .await
        .expect("lookup in time")
}

#[test]
fn keys_depend_on_kind_secret_and_workflow() {
    let h = KeyHasher::default();
    let k = h.key(KeyKind::TokenIdentity, "abc", None);
    assert_eq!(k, h.key(KeyKind::TokenIdentity, "abc", None));
    assert_ne!(k, h.key(KeyKind::SessionIdentity, "abc", None));
    assert_ne!(k, h.key(KeyKind::TokenIdentity, "abd", None));
    let w = h.key(KeyKind::TokenWorkflow, "ab", Some("c"));
    assert_ne!(w, h.key(KeyKind::TokenWorkflow, "a", Some("bc")));
    assert_ne!(w, h.key(KeyKind::TokenWorkflow, "ab", None));
    // Another process (another hasher) gives other keys.
    assert_ne!(
        k,
        KeyHasher::default().key(KeyKind::TokenIdentity, "abc", None)
    );
    let debug = format!("{k:?}");
    assert!(
        debug.starts_with("CacheKey(") && debug.chars().count() == 19,
        "{debug}"
    );
}

#[tokio::test]
async fn positive_and_negative_ttls() {
    let (pos, neg) = (Duration::from_secs(2), Duration::from_millis(200));
    let cache = DecisionCache::new(100, pos, neg);
    let (a, b) = (
        cache.key(KeyKind::TokenIdentity, "good", None),
        cache.key(KeyKind::TokenIdentity, "bad", None),
    );
    let t0 = tokio::time::Instant::now();
    cache.insert(a, user("u1")).await;
    cache
        .insert(b, Decision::Rejected(Rejection::NotValid))
        .await;
    assert_eq!(
        cached(&cache, b).await,
        Some(Decision::Rejected(Rejection::NotValid))
    );
    tokio::time::sleep_until(t0 + 2 * neg).await;
    assert_eq!(cached(&cache, b).await, None, "the refusal expired");
    assert!(t0.elapsed() < pos, "the machine stalled: no conclusion");
    assert_eq!(cached(&cache, a).await, Some(user("u1")));
    tokio::time::sleep_until(t0 + pos + neg).await;
    assert_eq!(cached(&cache, a).await, None, "the positive answer expired");
    cache.positive.run_pending_tasks().await;
    cache.refusals.run_pending_tasks().await;
    assert!(cache.is_empty());
}

#[tokio::test]
async fn a_refusal_is_served_from_the_cache_until_it_expires() {
    let cache = DecisionCache::new(100, POS, Duration::from_millis(200));
    let key = cache.key(KeyKind::TokenIdentity, "bad", None);
    let calls = AtomicUsize::new(0);
    let refused = Decision::Rejected(Rejection::Revoked);
    for _ in 0..3 {
        let got = lookup(&cache, key, &calls, Duration::ZERO, Ok(refused.clone())).await;
        assert_eq!(got, Ok(refused.clone()));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got = lookup(&cache, key, &calls, Duration::ZERO, Ok(user("u"))).await;
    assert_eq!(got, Ok(user("u")));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn concurrent_misses_make_one_call_and_unavailable_is_not_cached() {
    let cache = Arc::new(DecisionCache::new(100, POS, NEG));
    let key = cache.key(KeyKind::SessionIdentity, "s", None);
    let calls = Arc::new(AtomicUsize::new(0));
    let spawn = |key: CacheKey, answer: Result<Decision, Unavailable>| {
        let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
        let delay = Duration::from_millis(200);
        tokio::spawn(async move { lookup(&cache, key, &calls, delay, answer).await })
    };
    let tasks: Vec<_> = (0..50).map(|_| spawn(key, Err(Unavailable))).collect();
    for task in tasks {
        assert_eq!(task.await.ok(), Some(Err(Unavailable)));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cached(&cache, key).await, None);

    let refused = Decision::Rejected(Rejection::NotValid);
    let tasks: Vec<_> = (0..50).map(|_| spawn(key, Ok(refused.clone()))).collect();
    for task in tasks {
        assert_eq!(task.await.ok(), Some(Ok(refused.clone())));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(cached(&cache, key).await, Some(refused));

    let other = cache.key(KeyKind::TokenIdentity, "t", None);
    let tasks: Vec<_> = (0..50).map(|_| spawn(other, Ok(user("u")))).collect();
    for task in tasks {
        assert_eq!(task.await.ok(), Some(Ok(user("u"))));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(cached(&cache, other).await, Some(user("u")));
}

#[tokio::test]
async fn an_abandoned_flight_is_taken_over_or_forgotten() {
    let cache = Arc::new(DecisionCache::new(100, POS, NEG));
    let key = cache.key(KeyKind::TokenIdentity, "t", None);
    let pending = || {
        let cache = Arc::clone(&cache);
        move |key| {
            tokio::spawn(async move {
                cache
                    .get_or_fetch(key, std::future::pending::<Result<Decision, Unavailable>>)
                    .await
            })
        }
    };
    let slow = pending()(key);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let waiter = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move { cache.get_or_fetch(key, || async { Ok(user("w")) }).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    slow.abort();
    let taken_over = tokio::time::timeout(STEP, waiter).await;
    assert_eq!(taken_over.ok().and_then(Result::ok), Some(Ok(user("w"))));

    // A flight whose only caller went away leaves nothing behind: the next lookup
    // makes its own call.
    let other = cache.key(KeyKind::TokenIdentity, "o", None);
    let lone = pending()(other);
    tokio::time::sleep(Duration::from_millis(10)).await;
    lone.abort();
    let _ = lone.await;
    let calls = AtomicUsize::new(0);
    let got = lookup(&cache, other, &calls, Duration::ZERO, Ok(user("o"))).await;
    assert_eq!(got, Ok(user("o")));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_flood_of_refusals_stays_bounded_and_keeps_real_users() {
    let cache = DecisionCache::new(64, POS, NEG);
    let real = cache.key(KeyKind::TokenIdentity, "real", None);
    cache.insert(real, user("alice")).await;
    for i in 0..10_000 {
        let key = cache.key(KeyKind::TokenIdentity, &format!("bad-{i}"), None);
        cache
            .insert(key, Decision::Rejected(Rejection::NotValid))
            .await;
    }
    cache.refusals.run_pending_tasks().await;
    assert!(cache.refusals.entry_count() <= 32);
    assert_eq!(cached(&cache, real).await, Some(user("alice")));
    // Replacing one key many times does not grow anything either.
    for _ in 0..1_000 {
        cache.insert(real, user("alice")).await;
    }
    cache.positive.run_pending_tasks().await;
    assert_eq!(cache.positive.entry_count(), 1);
    assert!(cache.len() <= 33);
}

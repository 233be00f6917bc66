//! Tests of `cache.rs`.
use super::*;
use std::sync::atomic::AtomicUsize;

const POS: Duration = Duration::from_secs(30);
const NEG: Duration = Duration::from_secs(5);

fn user(u: &str) -> Decision {
    Decision::User(u.into())
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

#[test]
fn positive_and_negative_ttls() {
    let cache = DecisionCache::new(100, POS, NEG);
    let (a, b) = (
        cache.key(KeyKind::TokenIdentity, "good", None),
        cache.key(KeyKind::TokenIdentity, "bad", None),
    );
    let t0 = Instant::now();
    cache.insert_at(a, user("u1"), t0);
    cache.insert_at(b, Decision::Rejected(Rejection::NotValid), t0);
    let t1 = t0 + NEG - Duration::from_millis(1);
    assert_eq!(
        cache.get_at(b, t1),
        Some(Decision::Rejected(Rejection::NotValid))
    );
    let t2 = t0 + NEG + Duration::from_millis(1);
    assert_eq!(cache.get_at(b, t2), None);
    assert_eq!(cache.get_at(a, t2), Some(user("u1")));
    assert_eq!(cache.get_at(a, t0 + POS + Duration::from_millis(1)), None);
    assert!(cache.is_empty());
    assert!(cache.lock().iter().all(|r| r.live == 0));
}

#[tokio::test]
async fn concurrent_misses_make_one_call_and_unavailable_is_not_cached() {
    let cache = Arc::new(DecisionCache::new(100, POS, NEG));
    let key = cache.key(KeyKind::SessionIdentity, "s", None);
    let calls = Arc::new(AtomicUsize::new(0));
    let lookup = |answer: Result<Decision, Unavailable>| {
        let (cache, calls) = (Arc::clone(&cache), Arc::clone(&calls));
        tokio::spawn(async move {
            cache
                .get_or_fetch(key, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    answer
                })
                .await
        })
    };
    let tasks: Vec<_> = (0..50).map(|_| lookup(Err(Unavailable))).collect();
    for task in tasks {
        assert_eq!(task.await.ok(), Some(Err(Unavailable)));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(cache.is_empty() && cache.inflight.is_empty());

    let tasks: Vec<_> = (0..50).map(|_| lookup(Ok(user("u")))).collect();
    for task in tasks {
        assert_eq!(task.await.ok(), Some(Ok(user("u"))));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(cache.get(key), Some(user("u")));
    assert!(cache.inflight.is_empty());
}

#[tokio::test]
async fn an_abandoned_flight_is_taken_over_or_removed() {
    let cache = Arc::new(DecisionCache::new(100, POS, NEG));
    let key = cache.key(KeyKind::TokenIdentity, "t", None);
    let slow = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move {
            cache
                .get_or_fetch(key, std::future::pending::<Result<Decision, Unavailable>>)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let waiter = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move { cache.get_or_fetch(key, || async { Ok(user("w")) }).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    slow.abort();
    assert_eq!(waiter.await.ok(), Some(Ok(user("w"))));
    assert!(cache.inflight.is_empty());

    let other = cache.key(KeyKind::TokenIdentity, "o", None);
    let lone = {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move {
            cache
                .get_or_fetch(other, std::future::pending::<Result<Decision, Unavailable>>)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    lone.abort();
    let _ = lone.await;
    assert!(cache.inflight.is_empty());
}

#[test]
fn a_flood_of_refusals_stays_bounded_and_keeps_real_users() {
    let cache = DecisionCache::new(64, POS, NEG);
    let real = cache.key(KeyKind::TokenIdentity, "real", None);
    cache.insert(real, user("alice"));
    for i in 0..10_000 {
        let key = cache.key(KeyKind::TokenIdentity, &format!("bad-{i}"), None);
        cache.insert(key, Decision::Rejected(Rejection::NotValid));
        assert!(cache.len() <= 64);
    }
    assert_eq!(cache.get(real), Some(user("alice")));
    let regions = cache.lock();
    assert_eq!(regions[1].live, 32);
    assert!(regions[1].order.len() <= 2 * 32 + 16);
    drop(regions);
    // Replacing one key many times does not grow anything either.
    for _ in 0..1_000 {
        cache.insert(real, user("alice"));
    }
    assert_eq!(cache.len(), 33);
    assert!(cache.lock()[0].order.len() <= 2 * 32 + 16);
}

//! Discovery across broken watches: 410 Expired relists, an API server that is down,
//! bookmarks, and readiness held back by a slow first list.

use super::*;

/// A fake API server with ready schedulers for [`WF`] and [`WF2`] (one upstream
/// behind both), and a ready gateway discovering through it.
async fn two_routes() -> (FakeKube, HttpUpstream, TestGateway) {
    let fake = FakeKube::start().await;
    let upstream = HttpUpstream::ok().await;
    add_scheduler(&fake, SVC, WF, &upstream);
    add_scheduler(&fake, "reana-run-dask-0e2e0000-scheduler", WF2, &upstream);
    let gw = gateway(&fake).await;
    wait_ready(&gw).await;
    (fake, upstream, gw)
}

#[tokio::test]
async fn deletion_missed_while_the_watch_was_broken_is_applied_after_relist() {
    let (fake, _upstream, gw) = two_routes().await;
    assert_eq!(status(&gw, WF, "alice").await, 200);
    let lists = fake.lists();

    // The connections break; while they are down the Service is deleted and the
    // history compacted, so resuming from the old resourceVersion gets 410 Expired.
    assert_eq!(fake.drop_watches(), 2);
    fake.delete(Kind::Service, NS, SVC);
    fake.compact();
    let took = within(
        "missed deletion applied",
        Duration::from_secs(15),
        || async { status(&gw, WF, "alice").await == 404 },
    )
    .await;
    eprintln!("deletion applied {took:?} after the watches were dropped");
    assert!(fake.lists() > lists, "the watcher relisted");
    assert_eq!(status(&gw, WF2, "alice").await, 200);
    assert_eq!(routes(&gw).await.len(), 1);
}

#[tokio::test]
async fn routes_are_kept_while_the_api_server_is_down() {
    let (fake, _upstream, gw) = two_routes().await;

    fake.set_down(true);
    fake.delete(Kind::Service, NS, SVC);
    fake.compact();
    // The watchers retry (and fail) while the last known routes keep serving.
    within("a failed reconnect", Duration::from_secs(10), || async {
        fake.refused() > 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&gw, WF, "alice").await, 200);
    assert_eq!(status(&gw, WF2, "alice").await, 200);
    let ready = http::get(&gw.admin_url("/readyz"), &[]).await;
    assert_eq!(ready.status, 200, "stays ready on the last known routes");

    fake.set_down(false);
    within(
        "resync after the outage",
        Duration::from_secs(40),
        || async { status(&gw, WF, "alice").await == 404 },
    )
    .await;
    assert_eq!(status(&gw, WF2, "alice").await, 200);
}

#[tokio::test]
async fn a_bookmark_lets_the_watch_resume_without_a_relist() {
    let (fake, upstream, gw) = empty_cluster().await;
    // Changes the watches do not select move the resourceVersion on; only a
    // bookmark tells the watchers, so that resuming after compaction needs no relist.
    for i in 0..5 {
        let mut worker = objects::scheduler(NS, &format!("worker-{i}"), WF, "x", "10.0.0.1", 8787);
        let labels = worker.metadata.labels.as_mut().unwrap();
        labels.insert("dask.org/component".into(), "worker".into());
        fake.apply(&worker);
    }
    fake.bookmark();
    tokio::time::sleep(Duration::from_millis(100)).await;
    fake.compact();
    let lists = fake.lists();
    fake.drop_watches();
    within("watch resumed", Duration::from_secs(10), || async {
        fake.open_watches() == 2
    })
    .await;
    add_scheduler(&fake, SVC, WF, &upstream);
    within("event after resume", Duration::from_secs(2), || async {
        status(&gw, WF, "alice").await == 200
    })
    .await;
    assert_eq!(fake.lists(), lists, "resumed from the bookmark, no relist");
}

#[tokio::test]
async fn readyz_is_503_until_the_first_list_completes() {
    let fake = FakeKube::start().await;
    let upstream = HttpUpstream::ok().await;
    add_scheduler(&fake, SVC, WF, &upstream);
    fake.slow_next_list(Duration::from_millis(1500));
    let started = Instant::now();
    let gw = gateway(&fake).await;
    let ready = http::get(&gw.admin_url("/readyz"), &[]).await;
    assert_eq!(ready.status, 503, "{}", ready.describe());
    assert!(routes(&gw).await.is_empty());
    wait_ready(&gw).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "ready after {waited:?}"
    );
    assert_eq!(status(&gw, WF, "alice").await, 200);
}

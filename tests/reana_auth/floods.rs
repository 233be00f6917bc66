//! Request floods: concurrent misses collapse into one call to reana-server, the
//! rate limiter (per client, behind trusted proxies) stops token floods before
//! reana-server, and the decision cache stays bounded.

use super::*;

#[tokio::test]
async fn one_credential_200_requests_at_most_two_calls_and_concurrent_misses_collapse() {
    let w = world(|r| r).await;
    w.reana.set_delay(Duration::from_millis(500));
    let url = w.gw.url(&dash(WF, "/status"));
    let first: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                http::get(&url, &[("authorization", &bearer(SHARED_TOKEN))])
                    .await
                    .status
            })
        })
        .collect();
    for task in first {
        assert_eq!(
            timeout(STEP, task).await.expect("in time").expect("task"),
            200
        );
    }
    assert_eq!(
        (w.reana.you_calls(), w.reana.status_calls()),
        (1, 1),
        "20 concurrent first requests"
    );
    w.reana.set_delay(Duration::ZERO);
    let mut conn = KeepAlive::connect(w.gw.public).await;
    let auth = bearer(OWNER_TOKEN);
    for _ in 0..200 {
        assert_eq!(
            conn.get(&dash(WF, "/status"), &[("authorization", &auth)])
                .await,
            200
        );
    }
    assert!(
        w.reana.you_calls() <= 1 + 2,
        "{} /api/you calls",
        w.reana.you_calls()
    );
}

#[tokio::test]
async fn token_flood_from_one_address_is_limited_before_reana() {
    let w = world(|r| r).await;
    let start = Instant::now();
    let (mut limited, mut unauthorized) = (0, 0);
    let mut conn = KeepAlive::connect(w.gw.public).await;
    for i in 0..10_000 {
        match conn
            .get(
                &dash(WF, "/status"),
                &[("authorization", &format!("Bearer flood{i:017}"))],
            )
            .await
        {
            429 => limited += 1,
            401 => unauthorized += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // Burst 20, then 1 per second: every other token was refused unverified.
    let secs = start.elapsed().as_secs_f64();
    assert!(
        limited >= 9_900,
        "{limited} of 10000 got 429 ({unauthorized} got 401)"
    );
    assert_eq!(w.reana.you_calls(), unauthorized);
    assert!(
        unauthorized as f64 <= 20.0 + secs.ceil() + 1.0,
        "{unauthorized} calls in {secs:.1} s"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let w = world_with(
        |r| r,
        |c| {
            c.server("trusted_proxies", vec!["127.0.0.1/32"])
                .rate_limit(3, 0.01)
        },
    )
    .await;
    let bad = [
        ("authorization", "Bearer Xx0_notARealTokenAtAll"),
        ("x-forwarded-for", "203.0.113.7"),
    ];
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(get_as(&w, &dash(WF, "/status"), &bad).await.status);
        }
        v
    };
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    let r = get_as(&w, &dash(WF, "/status"), &bad).await;
    // One failure refills in 1 / 0.01 = 100 s: that is the wait announced.
    let wait: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After seconds: {}", r.describe()));
    assert!((95..=100).contains(&wait), "{wait}: {}", r.describe());
    // The limited address is refused before its credential is looked at, good or not.
    let owner = bearer(OWNER_TOKEN);
    let same = [
        ("authorization", owner.as_str()),
        ("x-forwarded-for", "203.0.113.7"),
    ];
    assert_eq!(get_as(&w, &dash(WF, "/status"), &same).await.status, 429);
    // One call: the bad token's refusal was cached, the owner's token never looked at.
    assert_eq!(w.reana.you_calls(), 1);
    let other = [
        ("authorization", owner.as_str()),
        ("x-forwarded-for", "198.51.100.4, 203.0.113.8"),
    ];
    assert_eq!(get_as(&w, &dash(WF, "/status"), &other).await.status, 200);
    let seen = w.up.requests();
    let xff = seen
        .last()
        .and_then(|r| r.header("x-forwarded-for").map(str::to_owned));
    assert_eq!(xff.as_deref(), Some("198.51.100.4, 203.0.113.8, 127.0.0.1"));
}

#[tokio::test]
async fn ten_thousand_bad_tokens_leave_the_cache_bounded() {
    let reana = FakeReana::start().await;
    reana.add_user(OWNER, OWNER_TOKEN);
    let auth = GatewayConfig::new()
        .no_jwt()
        .reana(Reana::new(&reana.url()).cache_max_entries(1000))
        .config()
        .auth;
    let a = Authenticator::new(&auth).expect("authenticator");
    let owner = Credential::new(CredentialSource::Bearer, OWNER_TOKEN);
    let id = timeout(STEP, a.authenticate(&owner))
        .await
        .expect("in time")
        .expect("owner");
    assert_eq!(&*id.user, OWNER);
    let flood = futures_util::stream::iter(0..10_000)
        .map(|i| {
            let a = &a;
            async move {
                let cred =
                    Credential::new(CredentialSource::QueryAccessToken, format!("bad{i:019}"));
                a.authenticate(&cred).await
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>();
    let results = timeout(WHOLE, flood)
        .await
        .expect("the flood finished in time");
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(dask_dashboard_gateway::auth::AuthError::Invalid(_)))));
    assert_eq!(reana.you_calls(), 10_001);
    assert!(
        a.cached_decisions() <= 1000,
        "{} cached decisions",
        a.cached_decisions()
    );
    // The owner's identity survived the flood: no new call.
    timeout(STEP, a.authenticate(&owner))
        .await
        .expect("in time")
        .expect("owner");
    assert_eq!(reana.you_calls(), 10_001);
}

#[tokio::test]
async fn generous_limiter_lets_a_flood_reach_reana_and_real_users_stay_cached() {
    let w = world_with(
        |r| r.cache_max_entries(1000),
        |c| c.rate_limit(1_000_000, 1_000_000.0),
    )
    .await;
    let owner = bearer(OWNER_TOKEN);
    assert_eq!(
        get_as(&w, &dash(WF, "/status"), &[("authorization", &owner)])
            .await
            .status,
        200
    );
    let addr = w.gw.public;
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            tokio::spawn(async move {
                let mut conn = KeepAlive::connect(addr).await;
                for i in (worker..10_000).step_by(8) {
                    let auth = format!("Bearer bad{i:019}");
                    let status = conn
                        .get(&dash(WF, "/status"), &[("authorization", &auth)])
                        .await;
                    assert_eq!(status, 401);
                }
            })
        })
        .collect();
    for worker in workers {
        timeout(WHOLE, worker)
            .await
            .expect("the flood finished in time")
            .expect("worker");
    }
    assert_eq!(w.reana.you_calls(), 10_001);
    assert_eq!(
        get_as(&w, &dash(WF, "/status"), &[("authorization", &owner)])
            .await
            .status,
        200
    );
    assert_eq!(
        w.reana.you_calls(),
        10_001,
        "the owner's cached identity was not evicted"
    );
}

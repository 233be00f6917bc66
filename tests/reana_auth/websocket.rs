//! Open WebSockets follow the credential: closed at the JWT's `exp`, at revocation
//! and at the end of sharing, kept through a reana-server outage.

use super::*;

#[tokio::test]
async fn websocket_closes_with_1008_at_jwt_exp() {
    let w = world(|r| r).await;
    let auth = bearer(&jwt::with_exp(OWNER, 2));
    let mut ws = open_ws(&w, &[("authorization", &auth)]).await;
    echo(&mut ws, "before expiry").await;
    let started = Instant::now();
    assert_eq!(close_code(&expect_close(&mut ws).await), Some(1008));
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn websocket_follows_revocation_and_end_of_sharing_but_survives_an_outage() {
    let w = world(|r| r.cache_ttl("400ms").negative_ttl("100ms").timeout("300ms")).await;
    let mut owner = open_ws(&w, &[("authorization", &bearer(OWNER_TOKEN))]).await;
    let mut shared = open_ws(&w, &[("authorization", &bearer(SHARED_TOKEN))]).await;
    // reana-server away for several re-check periods: the sockets stay open. (Wall
    // clock: the re-checks run with the relay on a serving thread.)
    w.reana.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    echo(&mut owner, "still here").await;
    echo(&mut shared, "me too").await;
    w.reana.restart().await;

    w.reana.unshare(WF_WS, SHARED);
    assert_closed_with_1008_within_3s(&mut shared).await;
    echo(&mut owner, "owner unaffected").await;

    w.reana.revoke(OWNER_TOKEN);
    assert_closed_with_1008_within_3s(&mut owner).await;
}

/// The gateway closes `ws` with 1008 within 3 s.
async fn assert_closed_with_1008_within_3s(ws: &mut Ws) {
    let started = Instant::now();
    assert_eq!(close_code(&expect_close(ws).await), Some(1008));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

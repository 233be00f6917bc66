//! Streaming bodies both ways, and upstream failures (SPEC §6).

use super::*;

const BIG: usize = 20 << 20;

#[tokio::test]
async fn upload_of_20_mib_streams_to_the_upstream_intact() {
    let up = HttpUpstream::start(|req| {
        Reply::ok(format!("{} {:016x}", req.body.len(), fnv1a(&req.body)))
    })
    .await;
    let gw = one_route(&up.url()).await;
    let data = Bytes::from(pattern(BIG, 1));
    let (tx, body) = ChannelBody::new(8);
    let req = Request::post(dash("/upload"))
        .header("host", gw.public.to_string())
        .header("authorization", bearer(&gw))
        .body(body)
        .expect("request");
    let head = tokio::spawn(send_streaming(gw.public, req));

    // The first MiB must reach the upstream while the client still holds the rest.
    let first = 1 << 20;
    timeout(STEP, tx.send(data.slice(..first)))
        .await
        .expect("the gateway did not take the first MiB")
        .expect("send the first MiB");
    until(
        "the first MiB at the upstream before the upload finished (the gateway buffers uploads)",
        || up.body_bytes() >= first,
    )
    .await;
    for piece in data[first..].chunks(64 * 1024) {
        timeout(STEP, tx.send(data.slice_ref(piece)))
            .await
            .expect("the gateway stopped reading the upload")
            .expect("send");
    }
    drop(tx);

    let mut resp = timeout(STEP, head)
        .await
        .expect("response head")
        .expect("task");
    assert_eq!(resp.status(), 200);
    let mut answer = Vec::new();
    while let Some(chunk) = next_chunk(resp.body_mut()).await {
        answer.extend_from_slice(&chunk);
    }
    let want = format!("{} {:016x}", BIG, fnv1a(&data));
    assert_eq!(String::from_utf8_lossy(&answer), want);
    assert_eq!(up.only_request().body.len(), BIG);
}

#[tokio::test]
async fn download_of_20_mib_streams_to_the_client_before_the_upstream_finishes() {
    let data = Bytes::from(pattern(BIG, 2));
    let gate = Arc::new(Notify::new());
    let first_len = 64 * 1024;
    let reply = {
        let (data, gate) = (data.clone(), Arc::clone(&gate));
        move |_: &Recorded| Reply::gated(data.slice(..first_len), data.slice(first_len..), &gate)
    };
    let up = HttpUpstream::start(reply).await;
    let gw = one_route(&up.url()).await;
    let mut resp = owner_get_streaming(&gw, "/download").await;
    assert_eq!(resp.status(), 200);

    // The upstream holds everything after the first 64 KiB until the client has it.
    let mut got = Vec::with_capacity(BIG);
    while got.len() < first_len {
        let chunk = next_chunk(resp.body_mut())
            .await
            .expect("the body ended early");
        got.extend_from_slice(&chunk);
    }
    gate.notify_one();
    while let Some(chunk) = next_chunk(resp.body_mut()).await {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got.len(), BIG);
    assert_eq!(fnv1a(&got), fnv1a(&data), "the downloaded body differs");
}

#[tokio::test]
async fn connect_refused_is_502() {
    let addr = refused_addr().await;
    let gw = one_route(&format!("http://{addr}")).await;
    let r = owner_get(&gw, &dash("/status"), &[]).await;
    assert_eq!(r.status, 502, "{}", r.describe());
    // A gateway page: not stored, not sniffed, not framed, no scripts.
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.starts_with("default-src 'none';"), "{}", r.describe());
}

#[tokio::test]
async fn upstream_slower_than_response_timeout_is_504() {
    let hole = blackhole().await;
    let slow = HttpUpstream::start(|_| Reply::ok("late").delay(Duration::from_secs(3))).await;
    let gw = start(
        routed(&hole.url())
            .route(OTHER_WF, &slow.url(), OWNER)
            .upstream("response_timeout", "300ms"),
    )
    .await;
    for path in [dash("/status"), format!("/dashboard/{OTHER_WF}/status")] {
        let started = Instant::now();
        let r = owner_get(&gw, &path, &[]).await;
        let elapsed = started.elapsed();
        assert_eq!(r.status, 504, "{path}: {}", r.describe());
        assert!(
            elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2),
            "{path}: answered after {elapsed:?}"
        );
    }
    assert!(hole.connections() >= 1, "the blackhole was never contacted");
}

#[tokio::test]
async fn response_timeout_covers_only_the_response_head() {
    let gate = Arc::new(Notify::new());
    let reply = {
        let gate = Arc::clone(&gate);
        move |_: &Recorded| Reply::gated("head-and-first-bytes;", "the rest, much later", &gate)
    };
    let up = HttpUpstream::start(reply).await;
    let gw = start(routed(&up.url()).upstream("response_timeout", "300ms")).await;
    let mut resp = owner_get_streaming(&gw, "/slow-body").await;
    assert_eq!(resp.status(), 200);
    let first = next_chunk(resp.body_mut()).await.expect("first bytes");
    // The body continues well after the response timeout.
    tokio::time::sleep(Duration::from_millis(800)).await;
    gate.notify_one();
    let mut got = first.to_vec();
    while let Some(chunk) = next_chunk(resp.body_mut()).await {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        "head-and-first-bytes;the rest, much later"
    );
}

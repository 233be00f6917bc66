//! The fake API server's HTTP layer: discovery documents, list, get and watch.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::store::{self, Filter, Kind, Msg, Selector};
use super::Shared;

type Body = BoxBody<Bytes, std::io::Error>;

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let body = Full::new(Bytes::from(value.to_string()))
        .map_err(|never| match never {})
        .boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let value = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16()
    });
    json_response(code, &value)
}

/// The query parameters the fake understands.
#[derive(Default)]
struct Query {
    label_selector: String,
    watch: bool,
    resource_version: Option<u64>,
    bookmarks: bool,
    timeout_seconds: Option<u64>,
    limit: Option<usize>,
    continue_: Option<String>,
}

fn query(req: &Request<Incoming>) -> Query {
    let mut q = Query::default();
    let text = req.uri().query().unwrap_or("");
    for (k, v) in form_urlencoded::parse(text.as_bytes()) {
        match k.as_ref() {
            "labelSelector" => q.label_selector = v.into_owned(),
            "watch" => q.watch = v == "true" || v == "1",
            "resourceVersion" => q.resource_version = v.parse().ok(),
            "allowWatchBookmarks" => q.bookmarks = v == "true",
            "timeoutSeconds" => q.timeout_seconds = v.parse().ok(),
            "limit" => q.limit = v.parse().ok().filter(|l| *l > 0),
            "continue" => q.continue_ = Some(v.into_owned()).filter(|c| !c.is_empty()),
            _ => {}
        }
    }
    q
}

/// A resource path: the kind, the namespace (`None`: all) and an object name.
fn resource(path: &str) -> Option<(Kind, Option<String>, Option<String>)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (kind, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => (Kind::Service, rest),
        ["apis", "discovery.k8s.io", "v1", rest @ ..] => (Kind::EndpointSlice, rest),
        _ => return None,
    };
    let plural = match kind {
        Kind::Service => "services",
        Kind::EndpointSlice => "endpointslices",
    };
    match rest {
        [p] if *p == plural => Some((kind, None, None)),
        ["namespaces", ns, p] if *p == plural => Some((kind, Some((*ns).to_owned()), None)),
        ["namespaces", ns, p, name] if *p == plural => {
            Some((kind, Some((*ns).to_owned()), Some((*name).to_owned())))
        }
        _ => None,
    }
}

/// Answers one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if let Some(doc) = super::objects::discovery_document(&path) {
        return Ok(json_response(StatusCode::OK, &doc));
    }
    let Some((kind, namespace, name)) = resource(&path) else {
        return Ok(status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    if req.method() != http::Method::GET {
        return Ok(status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the fake is read-only over HTTP",
        ));
    }
    if shared.down.load(Ordering::SeqCst) {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        return Ok(status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "the fake API server is down",
        ));
    }
    let q = query(&req);
    let filter = Filter {
        kind,
        namespace: namespace.clone(),
        selector: Selector::parse(&q.label_selector),
    };
    Ok(match (name, q.watch) {
        (Some(name), _) => get(&shared, kind, namespace.as_deref().unwrap_or(""), &name),
        (None, true) => watch(&shared, filter, &q),
        (None, false) => list(&shared, filter, &q).await,
    })
}

fn get(shared: &Shared, kind: Kind, namespace: &str, name: &str) -> Response<Body> {
    let filter = Filter {
        kind,
        namespace: Some(namespace.to_owned()),
        selector: Selector::default(),
    };
    let (items, _) = shared.store().list(&filter, None, None);
    let found = items
        .into_iter()
        .find(|o| o["metadata"]["name"].as_str() == Some(name));
    match found {
        Some(mut object) => {
            object["kind"] = json!(kind.kind());
            object["apiVersion"] = json!(kind.api_version());
            json_response(StatusCode::OK, &object)
        }
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("\"{name}\" not found"),
        ),
    }
}

async fn list(shared: &Shared, filter: Filter, q: &Query) -> Response<Body> {
    let delay = shared
        .slow_next_list
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    shared.lists.fetch_add(1, Ordering::SeqCst);
    let kind = filter.kind;
    let (items, next, rv) = {
        let store = shared.store();
        let after = q.continue_.as_deref().and_then(|c| c.split_once(':'));
        let first_rv = after.and_then(|(rv, _)| rv.parse::<u64>().ok());
        if let Some(rv) = first_rv.filter(|rv| *rv < store.compacted_to()) {
            // An expired continue token: 410 with the Status, as the API server does.
            let expired = store::expired(rv, store.compacted_to());
            return json_response(StatusCode::GONE, &expired);
        }
        let (items, next) = store.list(&filter, after.map(|(_, key)| key), q.limit);
        // A continued list reports the resourceVersion its first page had.
        let rv = after.map_or_else(|| store.rv().to_string(), |(rv, _)| rv.to_owned());
        let next = next.map(|key| format!("{rv}:{key}"));
        (items, next, rv)
    };
    let mut metadata = json!({ "resourceVersion": rv });
    if let Some(next) = next {
        metadata["continue"] = json!(next);
    }
    let list = json!({
        "kind": format!("{}List", kind.kind()),
        "apiVersion": kind.api_version(),
        "metadata": metadata,
        "items": items,
    });
    json_response(StatusCode::OK, &list)
}

fn watch(shared: &Shared, filter: Filter, q: &Query) -> Response<Body> {
    shared.watches.fetch_add(1, Ordering::SeqCst);
    let opened = shared
        .store()
        .watch(filter, q.resource_version, q.bookmarks);
    let (backlog, rx) = match opened {
        Ok(opened) => opened,
        Err(expired) => {
            // The real API server answers 200 and sends the 410 as an ERROR event.
            let body = StreamBody::new(stream::iter([Ok(Frame::data(store::line(
                "ERROR", &expired,
            )))]));
            return streaming(BodyExt::boxed(body));
        }
    };
    let deadline = Instant::now() + store::watch_timeout(q.timeout_seconds);
    let live = stream::unfold(rx, move |mut rx| async move {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Msg::Line(line))) => Some((Ok(Frame::data(line)), rx)),
            Ok(Some(Msg::Abort)) => Some((Err(std::io::Error::other("watch dropped")), rx)),
            Ok(None) | Err(_) => None,
        }
    });
    let live = live.scan(false, |aborted, item| {
        // End the stream right after an abort error.
        let out = if *aborted { None } else { Some(item) };
        *aborted = out.as_ref().is_some_and(|i| i.is_err());
        std::future::ready(out)
    });
    let backlog = stream::iter(backlog.into_iter().map(|l| Ok(Frame::data(l))));
    streaming(BodyExt::boxed(StreamBody::new(backlog.chain(live))))
}

fn streaming(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

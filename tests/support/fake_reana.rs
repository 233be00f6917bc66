//! A fake reana-server on 127.0.0.1:0 with the routes and JSON shapes of SPEC §2:
//! `GET /api/you` and `GET /api/workflows/<id>/status`, each taking `?access_token=`
//! or the web UI's `session` cookie. The test controls it: users, tokens, sessions,
//! revocation, sharing, slow answers, 500s, malformed JSON, and stopping (connection
//! refused) and restarting on the same port. It counts calls per route and records
//! each request.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

/// How the fake answers every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Like reana-server.
    Normal,
    /// `500 {"message": "Internal server error."}`.
    Fail500,
    /// `200` with a body that is not JSON.
    Malformed,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Path without the query.
    pub path: String,
    /// Raw query, if any.
    pub query: Option<String>,
    /// Every header.
    pub headers: HeaderMap,
}

impl Seen {
    /// The first value of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Workflow {
    name: String,
    owner: String,
    shared_with: HashSet<String>,
}

struct Inner {
    users: HashMap<String, String>,
    tokens: HashMap<String, String>,
    revoked: HashSet<String>,
    sessions: HashMap<String, String>,
    workflows: HashMap<String, Workflow>,
    delay: Duration,
    mode: Mode,
    seen: Vec<Seen>,
}

struct Shared {
    inner: Mutex<Inner>,
    you_calls: AtomicUsize,
    status_calls: AtomicUsize,
}

/// The fake server. Dropping it stops it.
pub struct FakeReana {
    /// Where it listens (kept across [`FakeReana::stop`] and [`FakeReana::restart`]).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl FakeReana {
    /// Starts an empty fake on 127.0.0.1:0.
    pub async fn start() -> FakeReana {
        let (listener, addr) = crate::support::upstream::bind("the fake reana-server").await;
        let fake = FakeReana {
            addr,
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    users: HashMap::new(),
                    tokens: HashMap::new(),
                    revoked: HashSet::new(),
                    sessions: HashMap::new(),
                    workflows: HashMap::new(),
                    delay: Duration::ZERO,
                    mode: Mode::Normal,
                    seen: Vec::new(),
                }),
                you_calls: AtomicUsize::new(0),
                status_calls: AtomicUsize::new(0),
            }),
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        fake.serve(listener);
        fake
    }

    fn serve(&self, listener: TcpListener) {
        let (shared, tasks) = (Arc::clone(&self.shared), Arc::clone(&self.tasks));
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = Arc::clone(&shared);
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, Infallible>(answer(&shared, req).await) }
                });
                let conn = tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                tasks.lock().expect("tasks").push(conn.abort_handle());
            }
        });
        self.tasks
            .lock()
            .expect("tasks")
            .push(accept.abort_handle());
    }

    /// `http://<addr>`: the gateway's `auth.reana.server_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.shared.inner.lock().expect("fake reana state"))
    }

    /// Adds a user with an access token.
    pub fn add_user(&self, uuid: &str, token: &str) {
        self.with(|i| {
            i.users
                .insert(uuid.into(), format!("{}@example.org", &uuid[..8]));
            i.tokens.insert(token.into(), uuid.into());
        });
    }

    /// Adds a web-UI `session` cookie value for a user.
    pub fn add_session(&self, session: &str, uuid: &str) {
        self.with(|i| i.sessions.insert(session.into(), uuid.into()));
    }

    /// Adds a running workflow owned by `owner`.
    pub fn add_workflow(&self, id: &str, owner: &str) {
        self.with(|i| {
            i.workflows.insert(
                id.into(),
                Workflow {
                    name: format!("dask-analysis.{}", i.workflows.len() + 1),
                    owner: owner.into(),
                    shared_with: HashSet::new(),
                },
            )
        });
    }

    /// Shares workflow `id` with `user`.
    pub fn share(&self, id: &str, user: &str) {
        self.with(|i| {
            if let Some(w) = i.workflows.get_mut(id) {
                w.shared_with.insert(user.into());
            }
        });
    }

    /// Ends the sharing of workflow `id` with `user`.
    pub fn unshare(&self, id: &str, user: &str) {
        self.with(|i| {
            if let Some(w) = i.workflows.get_mut(id) {
                w.shared_with.remove(user);
            }
        });
    }

    /// Revokes an access token (`403 "User access token revoked."` from now on).
    pub fn revoke(&self, token: &str) {
        self.with(|i| i.revoked.insert(token.into()));
    }

    /// Waits this long before every answer.
    pub fn set_delay(&self, delay: Duration) {
        self.with(|i| i.delay = delay);
    }

    /// Switches how it answers.
    pub fn set_mode(&self, mode: Mode) {
        self.with(|i| i.mode = mode);
    }

    /// Stops listening and drops every open connection: connecting is refused.
    pub fn stop(&self) {
        for task in self.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same address after [`FakeReana::stop`].
    pub async fn restart(&self) {
        let mut last = None;
        for _ in 0..50 {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => return self.serve(listener),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot listen on {} again: {last:?}", self.addr);
    }

    /// `GET /api/you` calls so far.
    pub fn you_calls(&self) -> usize {
        self.shared.you_calls.load(Ordering::SeqCst)
    }

    /// `GET /api/workflows/<id>/status` calls so far.
    pub fn status_calls(&self) -> usize {
        self.shared.status_calls.load(Ordering::SeqCst)
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.with(|i| i.seen.clone())
    }
}

impl Drop for FakeReana {
    fn drop(&mut self) {
        self.stop();
    }
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn message(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    reply(status, json!({ "message": text }))
}

/// The credential of a request, as reana-server reads it: `?access_token=` first,
/// else the `session` cookie.
enum Cred {
    Token(String),
    Session(String),
    None,
}

fn credential(req: &Request<Incoming>) -> Cred {
    let token = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(token) = token {
        return Cred::Token(token);
    }
    let session = req
        .headers()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "session")
        .map(|(_, value)| value.to_owned());
    session.map_or(Cred::None, Cred::Session)
}

async fn answer(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let (delay, mode) = {
        let mut inner = shared.inner.lock().expect("fake reana state");
        inner.seen.push(Seen {
            path: path.clone(),
            query: req.uri().query().map(str::to_owned),
            headers: req.headers().clone(),
        });
        (inner.delay, inner.mode)
    };
    let workflow = path
        .strip_prefix("/api/workflows/")
        .and_then(|rest| rest.strip_suffix("/status"))
        .map(str::to_owned);
    match (path.as_str(), &workflow) {
        ("/api/you", _) => shared.you_calls.fetch_add(1, Ordering::SeqCst),
        (_, Some(_)) => shared.status_calls.fetch_add(1, Ordering::SeqCst),
        _ => 0,
    };
    tokio::time::sleep(delay).await;
    match mode {
        Mode::Normal => {}
        Mode::Fail500 => {
            return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error.")
        }
        Mode::Malformed => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"<html>oops</html>")));
            *r.status_mut() = StatusCode::OK;
            return r;
        }
    }
    let inner = shared.inner.lock().expect("fake reana state");
    let (user, token) = match authenticate(&inner, credential(&req)) {
        Ok(found) => found,
        Err((status, text)) => return message(status, text),
    };
    match (path.as_str(), workflow) {
        ("/api/you", _) => reply(
            StatusCode::OK,
            json!({
                "id_": user,
                "email": inner.users.get(&user).cloned().unwrap_or_default(),
                "full_name": "Test User",
                "username": inner.users.get(&user).cloned().unwrap_or_default(),
                "reana_token": {"status": "active", "value": token, "requested_at": null},
            }),
        ),
        (_, Some(id)) => workflow_status(&inner, &id, &user),
        _ => message(StatusCode::NOT_FOUND, "Not found."),
    }
}

/// The user (and their token) behind a credential, or reana-server's refusal.
fn authenticate(inner: &Inner, cred: Cred) -> Result<(String, String), (StatusCode, &'static str)> {
    let token_of = |user: &str| {
        inner
            .tokens
            .iter()
            .find(|(_, u)| *u == user)
            .map(|(t, _)| t.clone())
            .unwrap_or_default()
    };
    match cred {
        Cred::None => Err((StatusCode::UNAUTHORIZED, "User not signed in.")),
        Cred::Token(token) => match inner.tokens.get(&token) {
            None => Err((StatusCode::FORBIDDEN, "Token not valid.")),
            Some(_) if inner.revoked.contains(&token) => {
                Err((StatusCode::FORBIDDEN, "User access token revoked."))
            }
            Some(user) => Ok((user.clone(), token)),
        },
        Cred::Session(session) => match inner.sessions.get(&session) {
            None => Err((StatusCode::UNAUTHORIZED, "User not signed in.")),
            Some(user) => Ok((user.clone(), token_of(user))),
        },
    }
}

fn workflow_status(inner: &Inner, id: &str, user: &str) -> Response<Full<Bytes>> {
    let Some(w) = inner.workflows.get(id) else {
        return message(
            StatusCode::NOT_FOUND,
            &format!("REANA_WORKON is set to {id}, but that workflow does not exist."),
        );
    };
    if w.owner != user && !w.shared_with.contains(user) {
        return message(
            StatusCode::FORBIDDEN,
            &format!("User {user} is not allowed to access workflow {id}"),
        );
    }
    reply(
        StatusCode::OK,
        json!({
            "id": id,
            "name": w.name,
            "created": "2025-05-12T09:30:00",
            "status": "running",
            "user": w.owner,
            "progress": {"run_started_at": "2025-05-12T09:30:05", "total": {"total": 1}},
            "logs": "",
        }),
    )
}

//! A fake Kubernetes API server for the tests, written with hyper on 127.0.0.1:0. It
//! speaks the real list/watch protocol for core/v1 `services` and discovery.k8s.io/v1
//! `endpointslices` (one namespace or all): lists with `labelSelector`, `limit` and
//! `continue`, answering with `metadata.resourceVersion`; `?watch=true&resourceVersion=N`
//! streaming newline-delimited `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK` events after N,
//! or an `ERROR` event carrying a 410 `Expired` Status when N was compacted away (as
//! the real API server's watch cache does). `/version`, `/api`, `/apis` and the group
//! resource lists answer enough discovery for `kubectl`. The test controls it: objects
//! are added, changed and deleted (bumping one global resourceVersion), watches
//! dropped, history compacted, the next list slowed, the whole server taken down.

pub mod objects;
mod routes;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use store::Kind;

/// State shared by the server task and the test.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) store: Mutex<store::Store>,
    pub(crate) slow_next_list: Mutex<Option<Duration>>,
    pub(crate) down: AtomicBool,
    pub(crate) lists: AtomicUsize,
    pub(crate) watches: AtomicUsize,
    pub(crate) refused: AtomicUsize,
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, store::Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running fake API server. Dropping it stops the server.
pub struct FakeKube {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    dir: tempfile::TempDir,
    task: JoinHandle<()>,
}

impl FakeKube {
    /// Starts a fake with no objects.
    pub async fn start() -> FakeKube {
        let (listener, addr) = crate::support::upstream::bind("the fake API server").await;
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
        let dir = tempfile::Builder::new()
            .prefix("ddg-fake-kube-")
            .tempdir()
            .expect("temporary directory for the kubeconfig");
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig(addr)).expect("kubeconfig");
        FakeKube {
            addr,
            shared,
            dir,
            task,
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig file pointing at this fake.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// A scratch directory (e.g. for kubectl's cache) removed with the fake.
    pub fn scratch(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Creates or replaces an object (a k8s-openapi Service or EndpointSlice);
    /// returns its new resourceVersion.
    pub fn apply(&self, object: &impl Serialize) -> u64 {
        let value = serde_json::to_value(object).expect("object serialises");
        self.shared.store().apply(value, &now())
    }

    /// Creates or replaces many objects at once.
    pub fn apply_all<T: Serialize>(&self, objects: impl IntoIterator<Item = T>) -> u64 {
        let now = now();
        let mut store = self.shared.store();
        for object in objects {
            store.apply(
                serde_json::to_value(&object).expect("object serialises"),
                &now,
            );
        }
        store.rv()
    }

    /// Deletes an object; false when there was none.
    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        self.shared.store().delete(kind, namespace, name)
    }

    /// Breaks every open watch connection; returns how many there were.
    pub fn drop_watches(&self) -> usize {
        self.shared.store().drop_watches()
    }

    /// Forgets the change history: watches resuming from before now get 410.
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    /// Sends a BOOKMARK with the current resourceVersion to every open watch.
    pub fn bookmark(&self) {
        self.shared.store().bookmark();
    }

    /// The next list request waits `delay` before answering.
    pub fn slow_next_list(&self, delay: Duration) {
        *self
            .shared
            .slow_next_list
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(delay);
    }

    /// Down: every resource request answers 500 and open watches break. Up again:
    /// normal service.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
        if down {
            self.drop_watches();
        }
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv()
    }

    /// List requests answered so far.
    pub fn lists(&self) -> usize {
        self.shared.lists.load(Ordering::SeqCst)
    }

    /// Watch requests received so far.
    pub fn watch_requests(&self) -> usize {
        self.shared.watches.load(Ordering::SeqCst)
    }

    /// Resource requests refused (500) while down.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Watches open now.
    pub fn open_watches(&self) -> usize {
        self.shared.store().watch_count()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.store().drop_watches();
    }
}

/// Now, in the API server's `metav1.Time` format (RFC 3339, whole seconds).
fn now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn kubeconfig(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: http://{addr}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: default
current-context: fake
users:
- name: fake
  user:
    token: fake-token
"
    )
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((stream, _)) = listener.accept().await {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| routes::handle(Arc::clone(&shared), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

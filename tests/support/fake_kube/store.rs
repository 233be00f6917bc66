//! The fake API server's state: objects, a global resourceVersion, the change history
//! watches replay from, label selectors, and the open watches events are pushed to.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The resources the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// core/v1 `services`.
    Service,
    /// discovery.k8s.io/v1 `endpointslices`.
    EndpointSlice,
}

impl Kind {
    /// `apiVersion` of the objects.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Service => "v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
        }
    }

    /// `kind` of the objects.
    pub fn kind(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
        }
    }

    /// From an object's `kind`.
    pub fn of(kind: &str) -> Option<Kind> {
        match kind {
            "Service" => Some(Kind::Service),
            "EndpointSlice" => Some(Kind::EndpointSlice),
            _ => None,
        }
    }
}

/// What an open watch receives.
#[derive(Debug)]
pub enum Msg {
    /// One newline-terminated JSON event.
    Line(Bytes),
    /// Break the connection (no terminating chunk).
    Abort,
}

/// An equality/existence label selector (`a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-joined).
#[derive(Debug, Clone, Default)]
pub struct Selector(Vec<Term>);

#[derive(Debug, Clone)]
enum Term {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    Absent(String),
}

impl Selector {
    /// Parses `labelSelector`; set-based terms (`in`, `notin`) are not supported.
    pub fn parse(text: &str) -> Selector {
        let terms = text.split(',').map(str::trim).filter(|t| !t.is_empty());
        Selector(
            terms
                .map(|t| {
                    if let Some((k, v)) = t.split_once("!=") {
                        Term::Ne(k.trim().into(), v.trim().into())
                    } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                        Term::Eq(k.trim().into(), v.trim().into())
                    } else if let Some(k) = t.strip_prefix('!') {
                        Term::Absent(k.trim().into())
                    } else {
                        Term::Exists(t.into())
                    }
                })
                .collect(),
        )
    }

    /// Whether `object`'s labels match.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|term| match term {
            Term::Eq(k, v) => get(k) == Some(v.as_str()),
            Term::Ne(k, v) => get(k) != Some(v.as_str()),
            Term::Exists(k) => get(k).is_some(),
            Term::Absent(k) => get(k).is_none(),
        })
    }
}

/// One change, kept for watches that resume from an older resourceVersion.
#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    kind: Kind,
    namespace: String,
    old: Option<Value>,
    new: Option<Value>,
}

/// What a watch is filtered by.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The resource.
    pub kind: Kind,
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    /// The label selector.
    pub selector: Selector,
}

impl Filter {
    fn matches(&self, kind: Kind, namespace: &str, object: Option<&Value>) -> bool {
        kind == self.kind
            && self.namespace.as_deref().is_none_or(|n| n == namespace)
            && object.is_some_and(|o| self.selector.matches(o))
    }

    /// The watch event (type, object) a change makes for this filter, if any: an
    /// object that starts matching is ADDED, one that stops is DELETED.
    fn event(&self, change: &Change) -> Option<(&'static str, Value)> {
        let was = self.matches(change.kind, &change.namespace, change.old.as_ref());
        let is = self.matches(change.kind, &change.namespace, change.new.as_ref());
        match (was, is, &change.new) {
            (false, true, Some(new)) => Some(("ADDED", new.clone())),
            (true, true, Some(new)) => Some(("MODIFIED", new.clone())),
            (true, false, Some(new)) => Some(("DELETED", new.clone())),
            (true, false, None) => change.old.clone().map(|old| ("DELETED", old)),
            _ => None,
        }
    }
}

struct Watch {
    filter: Filter,
    bookmarks: bool,
    tx: mpsc::UnboundedSender<Msg>,
}

/// All objects and open watches.
#[derive(Default)]
pub struct Store {
    rv: u64,
    objects: BTreeMap<(Kind, String, String), Value>,
    history: VecDeque<Change>,
    /// Watches may resume from resourceVersions >= this one.
    compacted_to: u64,
    watches: Vec<Watch>,
}

/// A watch event line.
pub fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({ "type": kind, "object": object }).to_string();
    text.push('\n');
    Bytes::from(text)
}

/// The `Status` of a request for a compacted resourceVersion.
pub fn expired(requested: u64, oldest: u64) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("too old resource version: {requested} ({oldest})"),
        "reason": "Expired", "code": 410
    })
}

impl Store {
    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch (or a continued list) may start from.
    pub fn compacted_to(&self) -> u64 {
        self.compacted_to
    }

    /// Creates or replaces an object (ADDED or MODIFIED); returns its resourceVersion.
    pub fn apply(&mut self, mut object: Value, now: &str) -> u64 {
        let kind = object["kind"]
            .as_str()
            .and_then(Kind::of)
            .expect("a Service or EndpointSlice");
        let meta = &object["metadata"];
        let namespace = meta["namespace"].as_str().unwrap_or("default").to_owned();
        let name = meta["name"].as_str().expect("metadata.name").to_owned();
        let key = (kind, namespace.clone(), name);
        let old = self.objects.get(&key).cloned();
        self.rv += 1;
        let meta = &mut object["metadata"];
        meta["namespace"] = json!(namespace);
        meta["resourceVersion"] = json!(self.rv.to_string());
        let kept = |field: &str| old.as_ref().map(|o| o["metadata"][field].clone());
        meta["uid"] = kept("uid").unwrap_or_else(|| json!(format!("fake-uid-{}", self.rv)));
        if meta["creationTimestamp"].is_null() {
            meta["creationTimestamp"] = kept("creationTimestamp").unwrap_or_else(|| json!(now));
        }
        self.objects.insert(key, object.clone());
        self.record(kind, namespace, old, Some(object));
        self.rv
    }

    /// Deletes an object (DELETED with the deletion's resourceVersion).
    pub fn delete(&mut self, kind: Kind, namespace: &str, name: &str) -> bool {
        let key = (kind, namespace.to_owned(), name.to_owned());
        let Some(mut old) = self.objects.remove(&key) else {
            return false;
        };
        self.rv += 1;
        old["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(kind, namespace.to_owned(), Some(old), None);
        true
    }

    fn record(&mut self, kind: Kind, namespace: String, old: Option<Value>, new: Option<Value>) {
        let change = Change {
            rv: self.rv,
            kind,
            namespace,
            old,
            new,
        };
        self.watches.retain(|w| match w.filter.event(&change) {
            Some((t, object)) => w.tx.send(Msg::Line(line(t, &object))).is_ok(),
            None => !w.tx.is_closed(),
        });
        self.history.push_back(change);
    }

    /// Forgets the history: watches from an older resourceVersion get 410 Expired.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_to = self.rv;
    }

    /// Breaks every open watch connection.
    pub fn drop_watches(&mut self) -> usize {
        let n = self.watches.len();
        for w in self.watches.drain(..) {
            let _ = w.tx.send(Msg::Abort);
        }
        n
    }

    /// Sends a BOOKMARK at the current resourceVersion to watches that asked for them.
    pub fn bookmark(&mut self) {
        let rv = self.rv.to_string();
        self.watches.retain(|w| {
            let k = w.filter.kind;
            let object = json!({ "kind": k.kind(), "apiVersion": k.api_version(),
                "metadata": { "resourceVersion": rv } });
            !w.bookmarks || w.tx.send(Msg::Line(line("BOOKMARK", &object))).is_ok()
        });
    }

    /// Open watches.
    pub fn watch_count(&self) -> usize {
        self.watches.iter().filter(|w| !w.tx.is_closed()).count()
    }

    /// A page of matching objects after `after` (`namespace/name`), at most `limit`:
    /// `(items, continue token)`. Items carry no kind/apiVersion, as in a real list.
    pub fn list(
        &self,
        filter: &Filter,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> (Vec<Value>, Option<String>) {
        let mut items = Vec::new();
        let mut last = None;
        for ((kind, ns, name), object) in &self.objects {
            let key = format!("{ns}/{name}");
            if after.is_some_and(|a| key.as_str() <= a) || !filter.matches(*kind, ns, Some(object))
            {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                return (items, last);
            }
            let mut item = object.clone();
            if let Some(map) = item.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            items.push(item);
            last = Some(key);
        }
        (items, None)
    }

    /// Opens a watch from `from` (`None` or 0: synthetic ADDED events for every
    /// matching object first). `Err(status)` when `from` was compacted away.
    pub fn watch(
        &mut self,
        filter: Filter,
        from: Option<u64>,
        bookmarks: bool,
    ) -> Result<(Vec<Bytes>, mpsc::UnboundedReceiver<Msg>), Value> {
        let backlog = match from.filter(|rv| *rv != 0) {
            None => self
                .objects
                .iter()
                .filter(|((k, ns, _), o)| filter.matches(*k, ns, Some(o)))
                .map(|(_, o)| line("ADDED", o))
                .collect(),
            Some(rv) if rv < self.compacted_to => return Err(expired(rv, self.compacted_to)),
            Some(rv) => self
                .history
                .iter()
                .filter(|c| c.rv > rv)
                .filter_map(|c| filter.event(c))
                .map(|(t, o)| line(t, &o))
                .collect(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.watches.push(Watch {
            filter,
            bookmarks,
            tx,
        });
        Ok((backlog, rx))
    }
}

/// How long a watch may stay open (`timeoutSeconds`, else 30 minutes).
pub fn watch_timeout(seconds: Option<u64>) -> Duration {
    Duration::from_secs(seconds.unwrap_or(1800))
}

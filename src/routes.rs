//! `RouteTable`: workflow id → scheduler dashboard. Pure state; discovery is its only
//! writer, the request path only reads owned snapshots of single routes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

/// Where one workflow's dashboard is served, and who owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The workflow id (REANA workflow UUID).
    pub workflow: String,
    /// `host:port` of the scheduler's dashboard.
    pub upstream: String,
    /// The owner's user id.
    pub owner: String,
    /// Whether the scheduler has a ready endpoint (a starting cluster answers 503).
    pub ready: bool,
}

/// One table entry: the current route and when its workflow first appeared.
#[derive(Debug)]
struct Slot {
    route: Arc<Route>,
    since: Instant,
}

impl Slot {
    fn new(route: Route) -> Self {
        Slot {
            route: Arc::new(route),
            since: Instant::now(),
        }
    }
}

/// The live routing table.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: DashMap<String, Slot>,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The route for `workflow`, if any. The guard is released before returning.
    pub fn lookup(&self, workflow: &str) -> Option<Arc<Route>> {
        self.routes
            .get(workflow)
            .map(|r| Arc::clone(&r.value().route))
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every route with its age (time since its workflow was first inserted; a
    /// changed route keeps its age), sorted by workflow id.
    pub fn snapshot(&self) -> Vec<(Arc<Route>, Duration)> {
        let now = Instant::now();
        let mut all: Vec<(Arc<Route>, Duration)> = self
            .routes
            .iter()
            .map(|e| {
                let slot = e.value();
                (
                    Arc::clone(&slot.route),
                    now.saturating_duration_since(slot.since),
                )
            })
            .collect();
        all.sort_by(|a, b| a.0.workflow.cmp(&b.0.workflow));
        all
    }

    /// Adds or replaces one route. A replaced route keeps its age.
    pub(crate) fn upsert(&self, route: Route) {
        match self.routes.entry(route.workflow.clone()) {
            Entry::Occupied(mut slot) => {
                if *slot.get().route != route {
                    slot.get_mut().route = Arc::new(route);
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(Slot::new(route));
            }
        }
    }

    /// Removes one route.
    pub(crate) fn remove(&self, workflow: &str) {
        self.routes.remove(workflow);
    }

    /// Replaces the whole table with `routes` (a full resync). Routes present before
    /// and after keep their age.
    pub(crate) fn replace_all(&self, routes: impl IntoIterator<Item = Route>) {
        let fresh: HashMap<String, Route> = routes
            .into_iter()
            .map(|r| (r.workflow.clone(), r))
            .collect();
        self.routes.retain(|k, _| fresh.contains_key(k));
        for (_, route) in fresh {
            self.upsert(route);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: &str, up: &str) -> Route {
        Route {
            workflow: id.into(),
            upstream: up.into(),
            owner: "alice".into(),
            ready: true,
        }
    }

    #[test]
    fn upsert_lookup_remove() {
        let t = RouteTable::new();
        assert!(t.lookup("a").is_none());
        t.upsert(route("a", "10.0.0.1:8787"));
        assert_eq!(
            t.lookup("a").map(|r| r.upstream.clone()).as_deref(),
            Some("10.0.0.1:8787")
        );
        t.upsert(route("a", "10.0.0.2:8787"));
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.lookup("a").map(|r| r.upstream.clone()).as_deref(),
            Some("10.0.0.2:8787")
        );
        t.remove("a");
        assert!(t.is_empty());
    }

    #[test]
    fn replace_all_drops_missing_routes() {
        let t = RouteTable::new();
        t.upsert(route("a", "1:1"));
        t.upsert(route("b", "2:2"));
        t.replace_all([route("b", "2:3"), route("c", "3:3")]);
        assert!(t.lookup("a").is_none());
        assert_eq!(
            t.lookup("b").map(|r| r.upstream.clone()).as_deref(),
            Some("2:3")
        );
        assert!(t.lookup("c").is_some());
    }

    #[test]
    fn snapshot_is_sorted_and_ages_survive_changes() {
        let t = RouteTable::new();
        t.upsert(route("b", "1:1"));
        std::thread::sleep(Duration::from_millis(20));
        t.upsert(route("a", "2:2"));
        t.upsert(route("b", "1:2"));
        t.replace_all([route("a", "2:2"), route("b", "1:3")]);
        let snap = t.snapshot();
        let ids: Vec<&str> = snap.iter().map(|(r, _)| r.workflow.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(snap[1].0.upstream, "1:3");
        assert!(snap[1].1 >= Duration::from_millis(20), "{:?}", snap[1].1);
        assert!(snap[0].1 < snap[1].1);
    }
}

//! `RouteTable`: workflow id → scheduler dashboard. Pure state; discovery is its only
//! writer. Readers load the current snapshot without a lock (one atomic load); each
//! write builds the next snapshot and publishes it with one atomic swap, so a full
//! relist replaces the whole table at once and a request never sees half of one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

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
#[derive(Debug, Clone)]
struct Slot {
    route: Arc<Route>,
    since: Instant,
}

/// One snapshot of the table.
type Routes = HashMap<String, Slot>;

/// The live routing table.
#[derive(Debug, Default)]
pub struct RouteTable {
    current: ArcSwap<Routes>,
    /// Serialises writers (discovery is the only one; this keeps two updates from
    /// building on the same snapshot).
    writing: Mutex<()>,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The route for `workflow`, if any.
    pub fn lookup(&self, workflow: &str) -> Option<Arc<Route>> {
        self.current
            .load()
            .get(workflow)
            .map(|slot| Arc::clone(&slot.route))
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.current.load().len()
    }

    /// True when there are no routes.
    pub fn is_empty(&self) -> bool {
        self.current.load().is_empty()
    }

    /// Every route with its age (time since its workflow was first inserted; a
    /// changed route keeps its age), sorted by workflow id.
    pub fn snapshot(&self) -> Vec<(Arc<Route>, Duration)> {
        let now = Instant::now();
        let mut all: Vec<(Arc<Route>, Duration)> = self
            .current
            .load()
            .values()
            .map(|slot| {
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
    #[cfg(test)]
    pub(crate) fn upsert(&self, route: Route) {
        self.apply([(route.workflow.clone(), Some(route))]);
    }

    /// Removes one route.
    #[cfg(test)]
    pub(crate) fn remove(&self, workflow: &str) {
        self.apply([(workflow.to_owned(), None)]);
    }

    /// Applies several changes (a route to set, or `None` to remove the workflow's)
    /// as one new snapshot.
    pub(crate) fn apply(&self, changes: impl IntoIterator<Item = (String, Option<Route>)>) {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next: Routes = Routes::clone(&self.current.load());
        for (workflow, route) in changes {
            match route {
                Some(route) => set(&mut next, route),
                None => {
                    next.remove(&workflow);
                }
            }
        }
        self.current.store(Arc::new(next));
    }

    /// Replaces the whole table with `routes` (a full resync). Routes present before
    /// and after keep their age.
    pub(crate) fn replace_all(&self, routes: impl IntoIterator<Item = Route>) {
        let _writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let before = self.current.load();
        let mut next = Routes::new();
        for route in routes {
            let kept = before.get(&route.workflow).cloned();
            if let Some(slot) = kept {
                next.insert(route.workflow.clone(), slot);
            }
            set(&mut next, route);
        }
        self.current.store(Arc::new(next));
    }
}

/// Sets `route` in `routes`; an unchanged route keeps its value, a changed one its
/// age.
fn set(routes: &mut Routes, route: Route) {
    match routes.get_mut(&route.workflow) {
        Some(slot) => {
            if *slot.route != route {
                slot.route = Arc::new(route);
            }
        }
        None => {
            routes.insert(
                route.workflow.clone(),
                Slot {
                    route: Arc::new(route),
                    since: Instant::now(),
                },
            );
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
    fn several_changes_are_one_snapshot() {
        let t = RouteTable::new();
        t.upsert(route("a", "1:1"));
        let before = t.current.load_full();
        t.apply([
            ("a".to_owned(), None),
            ("b".to_owned(), Some(route("b", "2:2"))),
            ("c".to_owned(), Some(route("c", "3:3"))),
        ]);
        // A reader holding the old snapshot still sees it whole.
        assert_eq!(before.len(), 1);
        assert!(before.contains_key("a"));
        assert!(t.lookup("a").is_none());
        assert_eq!(t.len(), 2);
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

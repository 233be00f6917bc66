//! `RouteTable`: workflow id → scheduler dashboard. Pure state; discovery is its only
//! writer, the request path only reads owned snapshots of single routes.

use std::sync::Arc;

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

/// The live routing table.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: DashMap<String, Arc<Route>>,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The route for `workflow`, if any. The guard is released before returning.
    pub fn lookup(&self, workflow: &str) -> Option<Arc<Route>> {
        self.routes.get(workflow).map(|r| Arc::clone(r.value()))
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True when there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Adds or replaces one route.
    pub(crate) fn upsert(&self, route: Route) {
        self.routes.insert(route.workflow.clone(), Arc::new(route));
    }

    /// Removes one route.
    #[allow(dead_code)]
    pub(crate) fn remove(&self, workflow: &str) {
        self.routes.remove(workflow);
    }

    /// Replaces the whole table with `routes` (a full resync).
    pub(crate) fn replace_all(&self, routes: impl IntoIterator<Item = Route>) {
        let fresh: std::collections::HashMap<String, Route> = routes
            .into_iter()
            .map(|r| (r.workflow.clone(), r))
            .collect();
        self.routes.retain(|k, _| fresh.contains_key(k));
        for (_, route) in fresh {
            let unchanged = self
                .routes
                .get(&route.workflow)
                .is_some_and(|r| **r == route);
            if !unchanged {
                self.upsert(route);
            }
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
}

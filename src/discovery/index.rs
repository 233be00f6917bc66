//! The Kubernetes discovery index: pure state fed synchronously with watcher events
//! for scheduler Services and their EndpointSlices, writing the derived routes to the
//! [`RouteTable`] (its only writer in kubernetes mode). No I/O here.
//!
//! Watch semantics follow kube-rs' `reflector::store::Writer`: `InitApply` objects are
//! buffered between `Init` and `InitDone` and swapped in whole on `InitDone`, so
//! objects deleted while the watch was down disappear on the relist. Nothing is
//! written to the table before both watches have completed their first list.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;

use super::parse::{self, Key, Scheduler, SliceInfo};
use crate::config::KubernetesConfig;
use crate::routes::{Route, RouteTable};

/// What the index knows: valid scheduler Services and EndpointSlices, with the
/// reverse maps needed to recompute only the routes an event touches.
#[derive(Debug, Default)]
struct Store {
    services: HashMap<Key, Scheduler>,
    by_workflow: HashMap<String, BTreeSet<Key>>,
    slices: HashMap<Key, SliceInfo>,
    slices_by_service: HashMap<Key, BTreeSet<Key>>,
}

/// Warnings already given, so that each is logged once per object version.
#[derive(Debug, Default)]
struct Warned {
    /// Service key → resourceVersion last warned about.
    objects: HashMap<Key, String>,
    /// Workflow id → the colliding Services (keys and versions) last warned about.
    collisions: HashMap<String, String>,
}

/// Services and EndpointSlices → routes.
#[derive(Debug)]
pub(crate) struct Index {
    labels: parse::Labels,
    table: Arc<RouteTable>,
    store: Store,
    warned: Warned,
    /// `Some` between a Services `Init` and its `InitDone` (`None` = malformed).
    service_buffer: Option<HashMap<Key, Option<Scheduler>>>,
    /// `Some` between an EndpointSlices `Init` and its `InitDone`.
    slice_buffer: Option<HashMap<Key, SliceInfo>>,
    services_synced: bool,
    slices_synced: bool,
}

impl Index {
    /// An empty index writing to `table`.
    pub(crate) fn new(config: &KubernetesConfig, table: Arc<RouteTable>) -> Self {
        Index {
            labels: parse::Labels::from(config),
            table,
            store: Store::default(),
            warned: Warned::default(),
            service_buffer: None,
            slice_buffer: None,
            services_synced: false,
            slices_synced: false,
        }
    }

    /// True once both watches have completed a full list: the table is complete.
    pub(crate) fn is_synced(&self) -> bool {
        self.services_synced && self.slices_synced
    }

    /// Applies one Services watcher event.
    pub(crate) fn apply_service(&mut self, event: &Event<Service>) {
        match event {
            Event::Init => self.service_buffer = Some(HashMap::new()),
            Event::InitApply(svc) if self.service_buffer.is_some() => {
                if let Some((key, parsed)) = self.parse_service(svc) {
                    if let Some(buffer) = self.service_buffer.as_mut() {
                        buffer.insert(key, parsed);
                    }
                }
            }
            Event::InitApply(svc) | Event::Apply(svc) => {
                if let Some((key, parsed)) = self.parse_service(svc) {
                    let mut touched = self.remove_service(&key);
                    if let Some(scheduler) = parsed {
                        touched.insert(scheduler.workflow.clone());
                        self.insert_service(key, scheduler);
                    }
                    self.publish(touched);
                }
            }
            Event::Delete(svc) => {
                if let Some(key) = parse::key(&svc.metadata) {
                    self.warned.objects.remove(&key);
                    let touched = self.remove_service(&key);
                    self.publish(touched);
                }
            }
            Event::InitDone => {
                if let Some(buffer) = self.service_buffer.take() {
                    self.warned.objects.retain(|k, _| buffer.contains_key(k));
                    self.store.services.clear();
                    self.store.by_workflow.clear();
                    for (key, scheduler) in buffer {
                        if let Some(scheduler) = scheduler {
                            self.insert_service(key, scheduler);
                        }
                    }
                }
                self.services_synced = true;
                self.publish_all();
            }
        }
    }

    /// Applies one EndpointSlices watcher event.
    pub(crate) fn apply_slice(&mut self, event: &Event<EndpointSlice>) {
        match event {
            Event::Init => self.slice_buffer = Some(HashMap::new()),
            Event::InitApply(slice) if self.slice_buffer.is_some() => {
                if let Some((key, info)) = parse::slice(slice) {
                    if let Some(buffer) = self.slice_buffer.as_mut() {
                        buffer.insert(key, info);
                    }
                }
            }
            Event::InitApply(slice) | Event::Apply(slice) => {
                if let Some((key, info)) = parse::slice(slice) {
                    let mut services = self.remove_slice(&key);
                    services.insert(info.service.clone());
                    self.insert_slice(key, info);
                    let touched = self.workflows_of(&services);
                    self.publish(touched);
                }
            }
            Event::Delete(slice) => {
                if let Some(key) = parse::key(&slice.metadata) {
                    let services = self.remove_slice(&key);
                    let touched = self.workflows_of(&services);
                    self.publish(touched);
                }
            }
            Event::InitDone => {
                if let Some(buffer) = self.slice_buffer.take() {
                    self.store.slices.clear();
                    self.store.slices_by_service.clear();
                    for (key, info) in buffer {
                        self.insert_slice(key, info);
                    }
                }
                self.slices_synced = true;
                self.publish_all();
            }
        }
    }

    /// Parses a Service, warning once per version when it is malformed. `None` when it
    /// has no name; `Some((key, None))` when it is malformed.
    fn parse_service(&mut self, svc: &Service) -> Option<(Key, Option<Scheduler>)> {
        let key = parse::key(&svc.metadata)?;
        match parse::service(svc, &self.labels) {
            Ok(scheduler) => Some((key, Some(scheduler))),
            Err(problem) => {
                let version = svc.metadata.resource_version.clone().unwrap_or_default();
                if warn_once(&mut self.warned.objects, &key, &version) {
                    tracing::warn!(service = %key, resource_version = %version, %problem,
                        "scheduler service skipped");
                }
                Some((key, None))
            }
        }
    }

    fn insert_service(&mut self, key: Key, scheduler: Scheduler) {
        let keys = self.store.by_workflow.entry(scheduler.workflow.clone());
        keys.or_default().insert(key.clone());
        self.store.services.insert(key, scheduler);
    }

    /// Forgets a Service; returns the workflow it claimed (if any).
    fn remove_service(&mut self, key: &Key) -> BTreeSet<String> {
        let Some(old) = self.store.services.remove(key) else {
            return BTreeSet::new();
        };
        if let Some(keys) = self.store.by_workflow.get_mut(&old.workflow) {
            keys.remove(key);
            if keys.is_empty() {
                self.store.by_workflow.remove(&old.workflow);
            }
        }
        BTreeSet::from([old.workflow])
    }

    fn insert_slice(&mut self, key: Key, info: SliceInfo) {
        let slices = self.store.slices_by_service.entry(info.service.clone());
        slices.or_default().insert(key.clone());
        self.store.slices.insert(key, info);
    }

    /// Forgets an EndpointSlice; returns the Service it belonged to (if any).
    fn remove_slice(&mut self, key: &Key) -> BTreeSet<Key> {
        let Some(old) = self.store.slices.remove(key) else {
            return BTreeSet::new();
        };
        if let Some(slices) = self.store.slices_by_service.get_mut(&old.service) {
            slices.remove(key);
            if slices.is_empty() {
                self.store.slices_by_service.remove(&old.service);
            }
        }
        BTreeSet::from([old.service])
    }

    fn workflows_of(&self, services: &BTreeSet<Key>) -> BTreeSet<String> {
        services
            .iter()
            .filter_map(|k| self.store.services.get(k))
            .map(|s| s.workflow.clone())
            .collect()
    }

    /// Recomputes the routes of `workflows` and writes the differences.
    fn publish(&mut self, workflows: BTreeSet<String>) {
        if !self.is_synced() {
            return;
        }
        let mut changes = Vec::new();
        for workflow in workflows {
            match derive(&self.store, &mut self.warned, &workflow) {
                Some(route) => {
                    if self.table.lookup(&workflow).as_deref() != Some(&route) {
                        changes.push((workflow, Some(route)));
                    }
                }
                None => {
                    if self.table.lookup(&workflow).is_some() {
                        changes.push((workflow, None));
                    }
                }
            }
        }
        // One new snapshot for the whole event, and none when nothing changed.
        if !changes.is_empty() {
            self.table.apply(changes);
        }
    }

    /// Recomputes every route and replaces the table (after a full list).
    fn publish_all(&mut self) {
        if !self.is_synced() {
            return;
        }
        let workflows: Vec<String> = self.store.by_workflow.keys().cloned().collect();
        self.warned
            .collisions
            .retain(|w, _| self.store.by_workflow.get(w).is_some_and(|k| k.len() > 1));
        let routes: Vec<Route> = workflows
            .iter()
            .filter_map(|w| derive(&self.store, &mut self.warned, w))
            .collect();
        self.table.replace_all(routes);
    }
}

/// True (and remembered) when `version` of `key` has not been warned about yet.
fn warn_once(warned: &mut HashMap<String, String>, key: &str, version: &str) -> bool {
    if warned.get(key).map(String::as_str) == Some(version) {
        return false;
    }
    warned.insert(key.to_owned(), version.to_owned());
    true
}

/// The route of `workflow`: of the Services claiming it, the oldest (then the first
/// by namespace/name) that has an address. A collision is warned about once.
fn derive(store: &Store, warned: &mut Warned, workflow: &str) -> Option<Route> {
    let keys = store.by_workflow.get(workflow)?;
    let mut claims: Vec<(&Key, &Scheduler)> = keys
        .iter()
        .filter_map(|k| store.services.get(k).map(|s| (k, s)))
        .collect();
    claims.sort_by(|a, b| parse::claim_order(a.1, b.1).then_with(|| a.0.cmp(b.0)));
    if claims.len() > 1 {
        let who: Vec<String> = claims
            .iter()
            .map(|(k, s)| format!("{k}@{}", s.resource_version))
            .collect();
        if warn_once(&mut warned.collisions, workflow, &who.join(",")) {
            tracing::warn!(workflow, services = %who.join(", "), chosen = %claims[0].0,
                "several services claim one workflow; the oldest wins");
        }
    } else {
        warned.collisions.remove(workflow);
    }
    for (key, scheduler) in claims {
        let empty = BTreeSet::new();
        let slice_keys = store.slices_by_service.get(key).unwrap_or(&empty);
        let slices = slice_keys.iter().filter_map(|k| store.slices.get(k));
        match parse::route(scheduler, slices) {
            Some(route) => return Some(route),
            None => {
                if warn_once(&mut warned.objects, key, &scheduler.resource_version) {
                    tracing::warn!(service = %key, workflow,
                        "headless scheduler service has no endpoint address yet; skipped");
                }
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;

//! Reading scheduler Services and EndpointSlices (SPEC §5): the workflow, owner and
//! dashboard port of a Service, the endpoints of a slice, and the route they make.
//! Pure functions over k8s-openapi types.

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use crate::config::KubernetesConfig;
use crate::proxy::path::valid_workflow_id;
use crate::routes::Route;

/// The dashboard port used when no port carries the configured name.
pub(crate) const DEFAULT_PORT: u16 = 8787;

/// The label linking an EndpointSlice to its Service.
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `namespace/name` of an object.
pub(crate) type Key = String;

/// Which labels and port name identify a scheduler.
#[derive(Debug, Clone)]
pub(crate) struct Labels {
    workflow: String,
    owners: Vec<String>,
    port_name: String,
}

impl From<&KubernetesConfig> for Labels {
    fn from(config: &KubernetesConfig) -> Self {
        Labels {
            workflow: config.workflow_label.clone(),
            owners: config.owner_labels.clone(),
            port_name: config.port_name.clone(),
        }
    }
}

/// A valid scheduler Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scheduler {
    pub(crate) workflow: String,
    pub(crate) owner: String,
    /// `None` for a headless Service (`clusterIP: None`) or one without an IP.
    pub(crate) cluster_ip: Option<String>,
    /// The Service's dashboard port.
    pub(crate) port: u16,
    /// The name of that port (`""` when unnamed), to find it in EndpointSlices.
    pub(crate) port_name: String,
    pub(crate) created: Option<Timestamp>,
    pub(crate) resource_version: String,
}

/// What a Service lacks to be a scheduler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Problem {
    #[error("no `{0}` label")]
    NoWorkflowLabel(String),
    #[error("`{0}` is not a valid workflow id")]
    InvalidWorkflow(String),
    #[error("none of the owner labels {0:?}")]
    NoOwner(Vec<String>),
    #[error("no port named `{0}` and no port {DEFAULT_PORT}")]
    NoPort(String),
}

/// The endpoints of one EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SliceInfo {
    /// `namespace/name` of the Service it belongs to.
    pub(crate) service: Key,
    /// Port name (`""` when unnamed) → port number.
    pub(crate) ports: Vec<(String, u16)>,
    /// Addresses of endpoints whose `ready` condition is not `false`.
    pub(crate) ready: Vec<String>,
    /// Addresses of the other endpoints.
    pub(crate) not_ready: Vec<String>,
}

/// `namespace/name`, when the object has a name.
pub(crate) fn key(meta: &ObjectMeta) -> Option<Key> {
    let name = meta.name.as_deref()?;
    Some(format!(
        "{}/{name}",
        meta.namespace.as_deref().unwrap_or("")
    ))
}

/// Reads a scheduler Service (SPEC §5).
pub(crate) fn service(svc: &Service, labels: &Labels) -> Result<Scheduler, Problem> {
    let meta = &svc.metadata;
    let get = |label: &str| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(label))
            .filter(|v| !v.is_empty())
    };
    let workflow =
        get(&labels.workflow).ok_or_else(|| Problem::NoWorkflowLabel(labels.workflow.clone()))?;
    if !valid_workflow_id(workflow) {
        return Err(Problem::InvalidWorkflow(
            workflow.chars().take(80).collect(),
        ));
    }
    let owner = labels
        .owners
        .iter()
        .find_map(|l| get(l))
        .ok_or_else(|| Problem::NoOwner(labels.owners.clone()))?;
    let spec = svc.spec.as_ref();
    let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
    let (port, port_name) = dashboard_port(ports, &labels.port_name)
        .ok_or_else(|| Problem::NoPort(labels.port_name.clone()))?;
    let cluster_ip = spec
        .and_then(|s| s.cluster_ip.as_deref())
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .map(str::to_owned);
    Ok(Scheduler {
        workflow: workflow.clone(),
        owner: owner.clone(),
        cluster_ip,
        port,
        port_name,
        created: meta.creation_timestamp.as_ref().map(|t| t.0),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
    })
}

/// The port named `name`, else the port numbered 8787: `(number, its name)`.
fn dashboard_port(ports: &[ServicePort], name: &str) -> Option<(u16, String)> {
    let named = ports.iter().find(|p| p.name.as_deref() == Some(name));
    let chosen = named.or_else(|| ports.iter().find(|p| p.port == i32::from(DEFAULT_PORT)))?;
    let number = u16::try_from(chosen.port).ok().filter(|p| *p != 0)?;
    Some((number, chosen.name.clone().unwrap_or_default()))
}

/// Reads an EndpointSlice; `None` when it names no Service.
pub(crate) fn slice(slice: &EndpointSlice) -> Option<(Key, SliceInfo)> {
    let key = key(&slice.metadata)?;
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    let namespace = slice.metadata.namespace.as_deref().unwrap_or("");
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let number = u16::try_from(p.port?).ok()?;
            Some((p.name.clone().unwrap_or_default(), number))
        })
        .collect();
    let (mut ready, mut not_ready) = (Vec::new(), Vec::new());
    for endpoint in &slice.endpoints {
        let is_ready = endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false);
        let list = if is_ready { &mut ready } else { &mut not_ready };
        list.extend(endpoint.addresses.iter().cloned());
    }
    let info = SliceInfo {
        service: format!("{namespace}/{service}"),
        ports,
        ready,
        not_ready,
    };
    Some((key, info))
}

/// Which of two Services claiming one workflow wins: the older one (a Service
/// without a creation time loses). Ties are broken by the caller (by key).
pub(crate) fn claim_order(a: &Scheduler, b: &Scheduler) -> Ordering {
    match (&a.created, &b.created) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The route of a scheduler given its Service's EndpointSlices: `clusterIP:port`, or
/// for a headless Service a ready endpoint address (the smallest, for a stable
/// choice) with the slice's port of the same name. `None` when a headless Service
/// has no endpoint address at all.
pub(crate) fn route<'a>(
    scheduler: &Scheduler,
    slices: impl Iterator<Item = &'a SliceInfo>,
) -> Option<Route> {
    let mut best_ready: Option<(&str, u16)> = None;
    let mut best_other: Option<(&str, u16)> = None;
    for slice in slices {
        let port = slice
            .ports
            .iter()
            .find(|(name, _)| *name == scheduler.port_name)
            .map_or(scheduler.port, |(_, number)| *number);
        for (list, best) in [
            (&slice.ready, &mut best_ready),
            (&slice.not_ready, &mut best_other),
        ] {
            if let Some(addr) = list.iter().map(String::as_str).min() {
                if best.is_none_or(|(b, _)| addr < b) {
                    *best = Some((addr, port));
                }
            }
        }
    }
    let ready = best_ready.is_some();
    let upstream = match &scheduler.cluster_ip {
        Some(ip) => authority(ip, scheduler.port),
        None => {
            let (addr, port) = best_ready.or(best_other)?;
            authority(addr, port)
        }
    };
    Some(Route {
        workflow: scheduler.workflow.clone(),
        upstream,
        owner: scheduler.owner.clone(),
        ready,
    })
}

/// `host:port`, with brackets around an IPv6 address.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

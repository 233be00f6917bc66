//! `[discovery]` as written (static routes or Kubernetes) and its validation.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::raw::resolve;
use super::{ConfigError, DiscoveryConfig, KubernetesConfig, StaticRoute};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiscovery {
    kind: DiscoveryKind,
    #[serde(default, rename = "static")]
    static_: Option<RawStatic>,
    namespace: Option<String>,
    #[serde(default = "default_selector")]
    selector: String,
    #[serde(default = "default_workflow_label")]
    workflow_label: String,
    #[serde(default = "default_owner_labels")]
    owner_labels: Vec<String>,
    #[serde(default = "default_port_name")]
    port_name: String,
    kubeconfig: Option<PathBuf>,
}

fn default_selector() -> String {
    "dask.org/component=scheduler".into()
}

fn default_workflow_label() -> String {
    "reana-run-dask-workflow-uuid".into()
}

fn default_owner_labels() -> Vec<String> {
    vec!["user-uuid".into(), "reana-run-dask-owner-uuid".into()]
}

fn default_port_name() -> String {
    "http-dashboard".into()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DiscoveryKind {
    Static,
    Kubernetes,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatic {
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    workflow: String,
    upstream: String,
    owner: String,
}

impl RawDiscovery {
    pub(super) fn validate(self, base: Option<&Path>) -> Result<DiscoveryConfig, ConfigError> {
        match self.kind {
            DiscoveryKind::Static => {
                if self.kubeconfig.is_some() || self.namespace.is_some() {
                    return Err(ConfigError::key(
                        "discovery",
                        "namespace and kubeconfig are only used with kind = \"kubernetes\"",
                    ));
                }
                let routes = self.static_.map(|s| s.routes).unwrap_or_default();
                let mut seen = std::collections::HashSet::new();
                let routes = routes
                    .into_iter()
                    .map(|r| {
                        if !crate::proxy::path::valid_workflow_id(&r.workflow) {
                            return Err(ConfigError::key(
                                "discovery.static.routes.workflow",
                                format!("`{}` is not a valid workflow id", r.workflow),
                            ));
                        }
                        if !seen.insert(r.workflow.clone()) {
                            return Err(ConfigError::key(
                                "discovery.static.routes.workflow",
                                format!("`{}` is listed twice", r.workflow),
                            ));
                        }
                        if r.owner.is_empty() {
                            return Err(ConfigError::key(
                                "discovery.static.routes.owner",
                                "must not be empty",
                            ));
                        }
                        let upstream = upstream_authority(&r.upstream)?;
                        Ok(StaticRoute {
                            workflow: r.workflow,
                            upstream,
                            owner: r.owner,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(DiscoveryConfig::Static(routes))
            }
            DiscoveryKind::Kubernetes => {
                if self.static_.is_some() {
                    return Err(ConfigError::key(
                        "discovery.static",
                        "only used with kind = \"static\"",
                    ));
                }
                let nonempty = |key: &str, v: String| {
                    if v.trim().is_empty() {
                        Err(ConfigError::key(key, "must not be empty"))
                    } else {
                        Ok(v)
                    }
                };
                if self.owner_labels.is_empty() {
                    return Err(ConfigError::key(
                        "discovery.owner_labels",
                        "list at least one label",
                    ));
                }
                Ok(DiscoveryConfig::Kubernetes(KubernetesConfig {
                    namespace: self.namespace.filter(|n| !n.is_empty()),
                    selector: self.selector,
                    workflow_label: nonempty("discovery.workflow_label", self.workflow_label)?,
                    owner_labels: self.owner_labels,
                    port_name: nonempty("discovery.port_name", self.port_name)?,
                    kubeconfig: self.kubeconfig.map(|k| resolve(base, &k)),
                }))
            }
        }
    }
}

/// `http://host:port` → `host:port`.
fn upstream_authority(url: &str) -> Result<String, ConfigError> {
    let err = || {
        ConfigError::key(
            "discovery.static.routes.upstream",
            format!("`{url}` is not a URL like http://127.0.0.1:8787"),
        )
    };
    let rest = url.strip_prefix("http://").ok_or_else(err)?;
    let authority = rest.trim_end_matches('/');
    let parsed: http::uri::Authority = authority.parse().map_err(|_| err())?;
    if authority.contains('/') || authority.contains('@') || parsed.port_u16().is_none() {
        return Err(err());
    }
    Ok(authority.to_string())
}

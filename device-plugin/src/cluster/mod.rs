//! The API server as the cluster's shared store (DESIGN §2): the pod table ConfigMap, the
//! cluster-wide IP leases and the Events operators read with `kubectl`.
//!
//! - [`connect`]: one [`kube::Client`] from `--kubeconfig` or the pod's service account.
//! - [`events`]: Events on ConfigMaps and pods, never failing the caller.
//! - [`podtable`]: the ConfigMap watch that feeds the agent's [`crate::podtable::PodTableSource`].

pub mod events;
pub mod leases;
pub mod podtable;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{Config, KubeConfigOptions, Kubeconfig};

pub use events::Events;

/// The key of the pod table in its ConfigMap (the same JSON as the file mode's file).
pub const PODTABLE_KEY: &str = "podtable.json";

/// Where the service-account token lives in a pod; its presence selects the in-cluster config.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// A request to the API server that has not answered in this time is a failure: leases are
/// renewed on a deadline, and a hung connection must not look like a slow success.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the API server could not be reached or configured.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The `--kubeconfig` file could not be read or parsed.
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The kubeconfig path.
        path: PathBuf,
        /// What kube said about it.
        source: kube::config::KubeconfigError,
    },
    /// The pod's service-account config could not be loaded.
    #[error("in-cluster config: {0}")]
    InCluster(#[from] kube::config::InClusterError),
    #[error(
        "no API server configured: pass --kubeconfig, or run in a pod with a service account token at {SERVICE_ACCOUNT_TOKEN}"
    )]
    /// Neither `--kubeconfig` nor a service-account token.
    NotConfigured,
    /// The client could not be built from the config (TLS, URL…).
    #[error("building the API client: {0}")]
    Client(#[source] kube::Error),
    /// A flag's value is not `NAMESPACE/NAME`.
    #[error("{what} must be NAMESPACE/NAME, got {got:?}")]
    BadRef {
        /// The flag, e.g. `--pod-table-configmap`.
        what: &'static str,
        /// The value given.
        got: String,
    },
}

/// A namespaced object named on the command line (`NAMESPACE/NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName {
    /// The object's namespace.
    pub namespace: String,
    /// The object's name within it.
    pub name: String,
}

impl ObjectName {
    /// Parses `NAMESPACE/NAME`; `what` names the flag in the error.
    pub fn parse(what: &'static str, s: &str) -> Result<Self, ClusterError> {
        match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(ObjectName {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                })
            }
            _ => Err(ClusterError::BadRef {
                what,
                got: s.to_string(),
            }),
        }
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The client config: `kubeconfig` when given, else the in-cluster config when the service
/// account token exists, else [`ClusterError::NotConfigured`]. Connects time out after 2 s.
pub async fn config(kubeconfig: Option<&Path>) -> Result<Config, ClusterError> {
    let mut cfg = match kubeconfig {
        Some(path) => {
            let err = |source| ClusterError::Kubeconfig {
                path: path.to_path_buf(),
                source,
            };
            let kc = Kubeconfig::read_from(path).map_err(err)?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(err)?
        }
        None if Path::new(SERVICE_ACCOUNT_TOKEN).exists() => Config::incluster()?,
        None => return Err(ClusterError::NotConfigured),
    };
    cfg.connect_timeout = Some(Duration::from_secs(2));
    Ok(cfg)
}

/// A client for `config` (see [`config`]).
pub async fn connect(kubeconfig: Option<&Path>) -> Result<kube::Client, ClusterError> {
    kube::Client::try_from(config(kubeconfig).await?).map_err(ClusterError::Client)
}

/// This node's name: the flag, else `NODE_NAME` (clap reads it), else the hostname.
pub fn node_name(flag: Option<&str>) -> String {
    if let Some(n) = flag.filter(|n| !n.is_empty()) {
        return n.to_string();
    }
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_parse_and_refuse_clearly() {
        let o = ObjectName::parse("--pod-table-configmap", "kube-system/sriov-pod-table").unwrap();
        assert_eq!(
            (o.namespace.as_str(), o.name.as_str()),
            ("kube-system", "sriov-pod-table")
        );
        assert_eq!(o.to_string(), "kube-system/sriov-pod-table");
        for bad in ["", "x", "/x", "x/", "a/b/c"] {
            let e = ObjectName::parse("--pod-table-configmap", bad).unwrap_err();
            assert!(
                e.to_string()
                    .contains("--pod-table-configmap must be NAMESPACE/NAME"),
                "{e}"
            );
        }
    }

    #[test]
    fn the_flag_wins_over_the_hostname() {
        assert_eq!(node_name(Some("node-a")), "node-a");
        assert!(!node_name(None).is_empty());
        assert_eq!(node_name(Some("")), node_name(None));
    }
}

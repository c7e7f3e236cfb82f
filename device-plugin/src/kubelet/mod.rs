//! The kubelet side of the agent: one device plugin (API v1beta1) per resource pool.
//!
//! The [`DevicePluginManager`] follows the pool [`Snapshot`](crate::pools::Snapshot) channel the
//! inventory/health watcher publishes: every pool gets a gRPC server on its own Unix socket in
//! kubelet's device plugin directory and is registered with kubelet; pools that appear or vanish
//! on a config reload start or stop their servers; a kubelet restart (new `kubelet.sock`, or our
//! socket removed) re-creates the servers and re-registers within one poll interval.
//!
//! The module tree follows the protocol:
//! - `manager`: the pool set, socket watching, re-registration (one task);
//! - `connection`: one pool's server on its socket (bind, serve, stop);
//! - `registration`: dialing `kubelet.sock` and `Register`, with retry;
//! - `plugin`: the `DevicePlugin` gRPC service of one pool;
//! - `view`: a pool as kubelet sees it (ListAndWatch devices, lookup by ID);
//! - `allocate`: what a container gets (env, device-info files, device specs, CDI names);
//! - `preferred`: the GetPreferredAllocation policy (NUMA, spread or pack);
//! - `watch`: identity of socket files, to notice re-creation.
//!
//! This layer holds no allocation state of its own: the ledger owns that, so a restart of either
//! side loses nothing.

mod allocate;
mod connection;
mod manager;
mod plugin;
mod preferred;
mod registration;
mod view;
mod watch;

pub use allocate::{
    AllocateError, DEFAULT_DEVINFO_DIR, DEVINFO_SPEC_VERSION, env_name, info_env_name,
};
pub use manager::{DevicePluginManager, ManagerConfig, ManagerHandle, ManagerStats};
pub use preferred::preferred_allocation;

use std::path::PathBuf;

/// Default directory of kubelet's device plugin sockets (`kubelet.sock` and ours).
pub const DEFAULT_KUBELET_DIR: &str = "/var/lib/kubelet/device-plugins";

/// Why the kubelet side could not serve or register a pool. Logged and retried by the manager;
/// never fatal to the agent, because kubelet may simply not be up yet.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The pool's socket could not be (re)created in the device plugin directory.
    #[error("cannot listen on device plugin socket {path}: {source}")]
    Listen {
        /// The pool's socket path in the device plugin directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `kubelet.sock` is missing or not answering (kubelet down or restarting).
    #[error("cannot connect to kubelet at {path}: {source}")]
    Connect {
        /// Kubelet's registration socket (`kubelet.sock`).
        path: PathBuf,
        /// The connection error.
        source: tonic::transport::Error,
    },
    /// Kubelet answered `Register` with an error.
    #[error("kubelet refused registration of {resource}: {status}")]
    Register {
        /// The resource name being registered (`<prefix>/<name>`).
        resource: String,
        /// Kubelet's answer (boxed: `Status` is large).
        status: Box<tonic::Status>,
    },
}

/// The file name of a pool's socket: `<socket_prefix>_<prefix>_<name>.sock` with every character
/// other than ASCII alphanumerics, `-` and `_` replaced by `_` (kubelet takes the endpoint as a
/// plain file name inside its directory).
pub fn socket_file_name(socket_prefix: &str, prefix: &str, name: &str) -> String {
    let raw = if socket_prefix.is_empty() {
        format!("{prefix}_{name}")
    } else {
        format!("{socket_prefix}_{prefix}_{name}")
    };
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}.sock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_names_are_plain_file_names() {
        assert_eq!(
            socket_file_name("sriov", "intel.com", "sriov_net"),
            "sriov_intel_com_sriov_net.sock"
        );
        assert_eq!(socket_file_name("", "a/b", "c d"), "a_b_c_d.sock");
    }
}

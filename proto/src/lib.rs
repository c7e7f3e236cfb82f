//! Generated gRPC code for the kubelet APIs this project speaks, plus the protocol constants
//! and the Unix-socket client recipe every part shares.
//!
//! - [`deviceplugin::v1beta1`]: the device plugin API. Kubelet serves `Registration`; the agent
//!   serves `DevicePlugin` per resource pool.
//! - [`podresources::v1`]: the PodResources API kubelet serves; the agent asks it which devices
//!   kubelet gave a pod.
//! - [`kubelet`]: socket paths, API version and health strings (protocol facts, kept here only).
//!
//! The code is generated at build time by `build.rs` (`protox` + `tonic-prost-build`, no
//! `protoc`). Field and message names follow prost's conventions: kubelet's `ID` field is `id`,
//! `available_deviceIDs` is `available_device_i_ds`, and so on.
//!
//! # Serving and dialing over a Unix socket
//!
//! Server: remove a stale socket file, `tokio::net::UnixListener::bind`, then
//! `tonic::transport::Server::builder().add_service(..).serve_with_incoming(
//! sriov_proto::uds::incoming(listener))`, so clients that send the socket path as
//! `:authority` (kubelets before 1.26, grpcurl) are served too ([`uds`]).
//!
//! Client: [`connect_uds`] (or [`uds_endpoint`] to set timeouts first), then wrap the channel in
//! the generated client, e.g. `RegistrationClient::new(channel)`.

use std::path::Path;

use tonic::transport::{Channel, Endpoint, Error};

/// Kubelet's device plugin API, version v1beta1 (proto package `v1beta1`).
pub mod deviceplugin {
    /// Messages, `registration_client`/`registration_server` and
    /// `device_plugin_client`/`device_plugin_server`.
    pub mod v1beta1 {
        #![allow(missing_docs)]
        tonic::include_proto!("v1beta1");
    }
}

/// Kubelet's PodResources API, version v1 (proto package `v1`).
pub mod podresources {
    /// Messages, `pod_resources_lister_client` and `pod_resources_lister_server`.
    pub mod v1 {
        #![allow(missing_docs)]
        tonic::include_proto!("v1");
    }
}

pub mod uds;

pub mod convert;

/// Our node API between the `sriov` CNI plugin and the agent (package `sriov.node.v1`).
pub mod node {
    #![allow(missing_docs)]
    tonic::include_proto!("sriov.node.v1");

    /// Default path of the agent's node API socket.
    pub const DEFAULT_SOCKET: &str = "/run/sriov/agent.sock";
}

/// Protocol facts of the kubelet APIs: versions, socket locations, health values.
pub mod kubelet {
    /// Device plugin API version sent in `RegisterRequest.version`.
    pub const DEVICE_PLUGIN_API_VERSION: &str = "v1beta1";

    /// Directory where kubelet listens for registrations and where plugins put their sockets
    /// (`RegisterRequest.endpoint` is a file name relative to it).
    pub const DEVICE_PLUGIN_DIR: &str = "/var/lib/kubelet/device-plugins/";

    /// File name of kubelet's `Registration` socket inside [`DEVICE_PLUGIN_DIR`]. When kubelet
    /// restarts it recreates this socket and removes plugin sockets; plugins must re-register.
    pub const KUBELET_SOCKET_NAME: &str = "kubelet.sock";

    /// Default path of kubelet's PodResources socket.
    pub const POD_RESOURCES_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

    /// `Device.health` of a usable device.
    pub const HEALTHY: &str = "Healthy";

    /// `Device.health` of a device kubelet must not allocate.
    pub const UNHEALTHY: &str = "Unhealthy";
}

/// Builds an endpoint for the gRPC server listening on the Unix socket at `path`, so callers
/// can set `timeout`/`connect_timeout` before connecting.
///
/// HTTP/2 `:authority` is a fixed placeholder; neither kubelet nor our servers look at it.
/// Fails only if `path` is not valid UTF-8.
pub fn uds_endpoint(path: impl AsRef<Path>) -> Result<Endpoint, Error> {
    let mut uri = b"unix://".to_vec();
    uri.extend_from_slice(path.as_ref().as_os_str().as_encoded_bytes());
    Endpoint::from_shared(uri)
}

/// Connects to the gRPC server listening on the Unix socket at `path` (e.g. kubelet's
/// `kubelet.sock`, or the agent's socket from the CNI).
///
/// Dials immediately: a missing socket or a server that is not listening fails here, not at
/// the first call. The channel does not bound call duration; use [`uds_endpoint`] with
/// `Endpoint::timeout` where a hung server must not hang the caller.
pub async fn connect_uds(path: impl AsRef<Path>) -> Result<Channel, Error> {
    uds_endpoint(path)?.connect().await
}

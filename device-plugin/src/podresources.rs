//! Client of kubelet's PodResources API v1: which devices of a resource kubelet gave a pod.
//!
//! When a netconf has no `deviceID` (no Multus injection), the agent asks kubelet which VFs of the
//! netconf's `resourceName` the pod holds and picks one that is not attached yet (DESIGN.md §2).
//! We call `List` (GA since Kubernetes 1.20) rather than `Get` (behind a feature gate until 1.30).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sriov_proto::podresources::v1::pod_resources_lister_client::PodResourcesListerClient;
use sriov_proto::podresources::v1::{ListPodResourcesRequest, ListPodResourcesResponse};

/// How long one `List` may take, connection included. Kubelet answers from memory; a kubelet
/// that takes longer is stuck, and the CNI call waiting on us must fail rather than hang.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest `List` answer accepted. Kubelet's own limit is 16 MiB; a node with hundreds of
/// pods and per-CPU/memory assignments exceeds tonic's 4 MiB default.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Why kubelet could not be asked. "The pod holds no such device" is not an error (an empty
/// list).
#[derive(Debug, thiserror::Error)]
pub enum PodResourcesError {
    /// No socket at the path: kubelet not running, the PodResources socket not mounted into the
    /// agent's container, or the path misconfigured.
    #[error("kubelet PodResources socket {} does not exist (kubelet down, or the pod-resources directory not mounted?)", path.display())]
    SocketMissing {
        /// The PodResources socket path, as configured.
        path: PathBuf,
    },
    /// The path exists but nothing accepted the connection.
    #[error("cannot connect to kubelet PodResources socket {}: {message}", path.display())]
    Connect {
        /// The PodResources socket path.
        path: PathBuf,
        /// The connection error, in words.
        message: String,
    },
    /// Kubelet answered `List` with an error.
    #[error("kubelet PodResources List on {} failed: {status}", path.display())]
    Call {
        /// The PodResources socket path.
        path: PathBuf,
        /// Kubelet's answer (boxed: `Status` is large).
        status: Box<tonic::Status>,
    },
    /// No answer within [`LIST_TIMEOUT`].
    #[error("kubelet PodResources List on {} timed out after {timeout:?}", path.display())]
    Timeout {
        /// The PodResources socket path.
        path: PathBuf,
        /// How long the call was given.
        timeout: Duration,
    },
}

/// The device IDs of `resource` (e.g. `intel.com/sriov_netdevice`) that kubelet assigned to pod
/// `namespace/pod`, over all its containers (init containers included, as kubelet lists them), in
/// kubelet's order, without duplicates. An unknown pod, or one without such devices, gives an
/// empty list. Asks kubelet at `socket` (normally
/// [`POD_RESOURCES_SOCKET`](sriov_proto::kubelet::POD_RESOURCES_SOCKET)), bounded by
/// [`LIST_TIMEOUT`].
pub async fn devices_of_pod(
    socket: &Path,
    namespace: &str,
    pod: &str,
    resource: &str,
) -> Result<Vec<String>, PodResourcesError> {
    let resp = list(socket, LIST_TIMEOUT).await?;
    Ok(devices_in(&resp, namespace, pod, resource))
}

/// Calls kubelet's `List` at `socket`, all of it (connect and call) within `timeout`.
pub async fn list(
    socket: &Path,
    timeout: Duration,
) -> Result<ListPodResourcesResponse, PodResourcesError> {
    let path = socket.to_path_buf();
    if !socket.exists() {
        return Err(PodResourcesError::SocketMissing { path });
    }
    // One deadline for connect and call together (not tonic's per-request timeout, which would
    // surface as a `Status` and hide that kubelet is hung).
    let call = async {
        let endpoint = sriov_proto::uds_endpoint(socket)
            .map_err(|e| PodResourcesError::Connect {
                path: path.clone(),
                message: e.to_string(),
            })?
            .connect_timeout(timeout);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| PodResourcesError::Connect {
                path: path.clone(),
                message: error_chain(&e),
            })?;
        let mut client =
            PodResourcesListerClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES);
        client
            .list(ListPodResourcesRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| PodResourcesError::Call {
                path: path.clone(),
                status: Box::new(status),
            })
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| PodResourcesError::Timeout {
            path: path.clone(),
            timeout,
        })?
}

/// The pure part of [`devices_of_pod`]: picks `resource`'s device IDs of `namespace/pod` out of
/// a `List` answer.
pub fn devices_in(
    resp: &ListPodResourcesResponse,
    namespace: &str,
    pod: &str,
    resource: &str,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let devices = resp
        .pod_resources
        .iter()
        .filter(|p| p.namespace == namespace && p.name == pod)
        .flat_map(|p| &p.containers)
        .flat_map(|c| &c.devices)
        .filter(|d| d.resource_name == resource)
        .flat_map(|d| &d.device_ids);
    for id in devices {
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

/// An error and its sources on one line (tonic's transport errors hide the cause in `source`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use sriov_proto::podresources::v1::{ContainerDevices, ContainerResources, PodResources};

    fn devs(resource: &str, ids: &[&str]) -> ContainerDevices {
        ContainerDevices {
            resource_name: resource.into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
            topology: None,
        }
    }

    fn pod(ns: &str, name: &str, containers: Vec<Vec<ContainerDevices>>) -> PodResources {
        PodResources {
            name: name.into(),
            namespace: ns.into(),
            containers: containers
                .into_iter()
                .enumerate()
                .map(|(i, devices)| ContainerResources {
                    name: format!("c{i}"),
                    devices,
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn picks_the_resource_of_the_pod_over_all_containers_without_duplicates() {
        let r = "intel.com/sriov";
        let resp = ListPodResourcesResponse {
            pod_resources: vec![
                pod("db", "mysql-1", vec![vec![devs(r, &["0000:3b:01.7"])]]),
                pod(
                    "db",
                    "mysql-0",
                    vec![
                        vec![
                            devs(r, &["0000:3b:01.2"]),
                            devs("nvidia.com/gpu", &["GPU-1"]),
                        ],
                        vec![devs(r, &["0000:3b:01.5", "0000:3b:01.2"])],
                    ],
                ),
                pod("other", "mysql-0", vec![vec![devs(r, &["0000:3b:01.9"])]]),
            ],
        };
        assert_eq!(
            devices_in(&resp, "db", "mysql-0", r),
            ["0000:3b:01.2", "0000:3b:01.5"]
        );
        assert!(devices_in(&resp, "db", "mysql-0", "intel.com/other").is_empty());
        assert!(devices_in(&resp, "db", "mysql-9", r).is_empty());
    }
}

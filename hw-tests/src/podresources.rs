//! A kubelet PodResources API v1 stand-in (kubelet's own proto) on a real Unix socket, for tests
//! of the agent's CNI path without `deviceID`: the agent asks `List` which devices of a resource
//! a pod holds, as it asks kubelet on a node.
//!
//! The table of pods is set by the test ([`PodResourcesStandIn::hold`], [`PodResourcesStandIn::clear`])
//! and may change while the server runs. `List` answers it; `Get` and `GetAllocatableResources`
//! are not used by the agent and answer `Unimplemented`. Every `List` call is counted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sriov_proto::podresources::v1::pod_resources_lister_server::{
    PodResourcesLister, PodResourcesListerServer,
};
use sriov_proto::podresources::v1::{
    AllocatableResourcesRequest, AllocatableResourcesResponse, ContainerDevices,
    ContainerResources, GetPodResourcesRequest, GetPodResourcesResponse, ListPodResourcesRequest,
    ListPodResourcesResponse, PodResources,
};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

#[derive(Default)]
struct Table {
    pods: Mutex<Vec<PodResources>>,
    lists: AtomicU64,
}

#[derive(Clone)]
struct Service(Arc<Table>);

#[tonic::async_trait]
impl PodResourcesLister for Service {
    async fn list(
        &self,
        _: Request<ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        self.0.lists.fetch_add(1, Ordering::Relaxed);
        let pods = self.0.pods.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Response::new(ListPodResourcesResponse {
            pod_resources: pods.clone(),
        }))
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<AllocatableResourcesRequest>,
    ) -> Result<Response<AllocatableResourcesResponse>, Status> {
        Err(Status::unimplemented("not served by the stand-in"))
    }

    async fn get(
        &self,
        _: Request<GetPodResourcesRequest>,
    ) -> Result<Response<GetPodResourcesResponse>, Status> {
        Err(Status::unimplemented("not served by the stand-in"))
    }
}

/// The stand-in server. Dropping it stops the server and removes the socket.
pub struct PodResourcesStandIn {
    path: PathBuf,
    table: Arc<Table>,
    server: JoinHandle<()>,
}

impl PodResourcesStandIn {
    /// Serves `List` on `path` (a stale socket is replaced); must be called within a tokio
    /// runtime.
    pub fn start(path: &Path) -> std::io::Result<Self> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        let table = Arc::new(Table::default());
        let svc = PodResourcesListerServer::new(Service(table.clone()));
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(UnixListenerStream::new(listener))
                .await;
        });
        Ok(Self {
            path: path.to_path_buf(),
            table,
            server,
        })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.path
    }

    /// Records that container `container` of pod `namespace/pod` holds `ids` of `resource`
    /// (added to what the pod already holds).
    pub fn hold(&self, namespace: &str, pod: &str, container: &str, resource: &str, ids: &[&str]) {
        let mut pods = self.table.pods.lock().unwrap_or_else(|p| p.into_inner());
        let idx = match pods
            .iter()
            .position(|p| p.namespace == namespace && p.name == pod)
        {
            Some(i) => i,
            None => {
                pods.push(PodResources {
                    name: pod.into(),
                    namespace: namespace.into(),
                    containers: vec![],
                });
                pods.len() - 1
            }
        };
        let p = &mut pods[idx];
        let c = match p.containers.iter().position(|c| c.name == container) {
            Some(i) => &mut p.containers[i],
            None => {
                p.containers.push(ContainerResources {
                    name: container.into(),
                    ..Default::default()
                });
                p.containers.last_mut().expect("just pushed")
            }
        };
        c.devices.push(ContainerDevices {
            resource_name: resource.into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
            topology: None,
        });
    }

    /// Forgets every pod.
    pub fn clear(&self) {
        self.table
            .pods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// How many `List` calls were answered.
    pub fn list_calls(&self) -> u64 {
        self.table.lists.load(Ordering::Relaxed)
    }
}

impl Drop for PodResourcesStandIn {
    fn drop(&mut self) {
        self.server.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

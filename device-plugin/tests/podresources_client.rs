//! `devices_of_pod` against a stand-in kubelet PodResources server on a real Unix socket, speaking
//! kubelet's own v1 proto.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::path::Path;
use std::time::{Duration, Instant};

use device_plugin::podresources::{PodResourcesError, devices_of_pod};
use sriov_proto::podresources::v1::pod_resources_lister_server::{
    PodResourcesLister, PodResourcesListerServer,
};
use sriov_proto::podresources::v1::{
    AllocatableResourcesRequest, AllocatableResourcesResponse, ContainerDevices,
    ContainerResources, GetPodResourcesRequest, GetPodResourcesResponse, ListPodResourcesRequest,
    ListPodResourcesResponse, PodResources,
};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

const SRIOV: &str = "example.com/sriov_a";
const OTHER: &str = "example.com/sriov_b";

/// Kubelet stand-in: one pod `db/mysql-0` with two containers holding devices of two
/// resources, plus another pod; `delay` makes it hang, `fail` makes it answer an error.
#[derive(Clone, Default)]
struct Kubelet {
    delay: Option<Duration>,
    fail: bool,
}

fn devices(resource: &str, ids: &[&str]) -> ContainerDevices {
    ContainerDevices {
        resource_name: resource.into(),
        device_ids: ids.iter().map(|s| s.to_string()).collect(),
        topology: None,
    }
}

#[tonic::async_trait]
impl PodResourcesLister for Kubelet {
    async fn list(
        &self,
        _: Request<ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        if self.fail {
            return Err(Status::unavailable("kubelet is shutting down"));
        }
        Ok(Response::new(ListPodResourcesResponse {
            pod_resources: vec![
                PodResources {
                    name: "mysql-0".into(),
                    namespace: "db".into(),
                    containers: vec![
                        ContainerResources {
                            name: "mysql".into(),
                            devices: vec![
                                devices(SRIOV, &["0000:3b:01.4", "0000:3b:01.1"]),
                                devices(OTHER, &["0000:af:00.2"]),
                            ],
                            ..Default::default()
                        },
                        ContainerResources {
                            name: "sidecar".into(),
                            devices: vec![devices(SRIOV, &["0000:3b:01.7"])],
                            ..Default::default()
                        },
                    ],
                },
                PodResources {
                    name: "mysql-1".into(),
                    namespace: "db".into(),
                    containers: vec![ContainerResources {
                        name: "mysql".into(),
                        devices: vec![devices(SRIOV, &["0000:3b:01.2"])],
                        ..Default::default()
                    }],
                },
            ],
        }))
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<AllocatableResourcesRequest>,
    ) -> Result<Response<AllocatableResourcesResponse>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn get(
        &self,
        _: Request<GetPodResourcesRequest>,
    ) -> Result<Response<GetPodResourcesResponse>, Status> {
        Err(Status::unimplemented("the client must use List"))
    }
}

fn serve(path: &Path, kubelet: Kubelet) -> tokio::task::JoinHandle<()> {
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(PodResourcesListerServer::new(kubelet))
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await;
    })
}

#[tokio::test]
async fn returns_exactly_the_pods_devices_of_the_resource() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("kubelet.sock");
    let server = serve(&sock, Kubelet::default());

    let t = Instant::now();
    let got = devices_of_pod(&sock, "db", "mysql-0", SRIOV).await.unwrap();
    eprintln!("PodResources List round trip: {:?}", t.elapsed());
    assert_eq!(got, ["0000:3b:01.4", "0000:3b:01.1", "0000:3b:01.7"]);
    assert_eq!(
        devices_of_pod(&sock, "db", "mysql-0", OTHER).await.unwrap(),
        ["0000:af:00.2"]
    );
    assert_eq!(
        devices_of_pod(&sock, "db", "mysql-1", SRIOV).await.unwrap(),
        ["0000:3b:01.2"]
    );
    // Unknown pod, wrong namespace, resource not held: empty, not an error.
    assert!(
        devices_of_pod(&sock, "db", "mysql-9", SRIOV)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        devices_of_pod(&sock, "web", "mysql-0", SRIOV)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        devices_of_pod(&sock, "db", "mysql-1", OTHER)
            .await
            .unwrap()
            .is_empty()
    );
    server.abort();
}

#[tokio::test]
async fn missing_socket_hung_kubelet_and_errors_are_reported_clearly() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("nothing.sock");
    let e = devices_of_pod(&missing, "db", "mysql-0", SRIOV)
        .await
        .unwrap_err();
    assert!(matches!(e, PodResourcesError::SocketMissing { .. }), "{e}");
    assert!(e.to_string().contains("nothing.sock"), "{e}");

    // A socket file nobody listens on.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let e = devices_of_pod(&stale, "db", "mysql-0", SRIOV)
        .await
        .unwrap_err();
    assert!(matches!(e, PodResourcesError::Connect { .. }), "{e}");

    let failing = dir.path().join("failing.sock");
    let s1 = serve(
        &failing,
        Kubelet {
            fail: true,
            ..Default::default()
        },
    );
    let e = devices_of_pod(&failing, "db", "mysql-0", SRIOV)
        .await
        .unwrap_err();
    assert!(matches!(e, PodResourcesError::Call { .. }), "{e}");
    assert!(e.to_string().contains("shutting down"), "{e}");

    let hung = dir.path().join("hung.sock");
    let s2 = serve(
        &hung,
        Kubelet {
            delay: Some(Duration::from_secs(30)),
            ..Default::default()
        },
    );
    let t = Instant::now();
    let e = devices_of_pod(&hung, "db", "mysql-0", SRIOV)
        .await
        .unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, PodResourcesError::Timeout { .. }), "{e}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    eprintln!("hung kubelet: gave up after {took:?}: {e}");
    s1.abort();
    s2.abort();
}

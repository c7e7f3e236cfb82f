//! A tonic server and client talk over a Unix socket, the way the agent talks to kubelet and
//! the CNI talks to the agent: server on `UnixListenerStream`, client via `connect_uds`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use sriov_proto::connect_uds;
use sriov_proto::deviceplugin::v1beta1::registration_client::RegistrationClient;
use sriov_proto::deviceplugin::v1beta1::registration_server::{Registration, RegistrationServer};
use sriov_proto::deviceplugin::v1beta1::{Empty, RegisterRequest};
use sriov_proto::kubelet;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

/// A stand-in for kubelet's registration service that records what it was sent.
#[derive(Default, Clone)]
struct MockKubelet {
    registered: Arc<Mutex<Vec<RegisterRequest>>>,
}

#[tonic::async_trait]
impl Registration for MockKubelet {
    async fn register(&self, req: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        if req.version != kubelet::DEVICE_PLUGIN_API_VERSION {
            return Err(Status::invalid_argument("unsupported version"));
        }
        self.registered.lock().unwrap().push(req);
        Ok(Response::new(Empty {}))
    }
}

fn serve(path: &Path, svc: MockKubelet) -> tokio::task::JoinHandle<()> {
    let listener = UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(RegistrationServer::new(svc))
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await
            .unwrap();
    })
}

#[tokio::test]
async fn register_over_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join(kubelet::KUBELET_SOCKET_NAME);
    let kubelet = MockKubelet::default();
    let server = serve(&sock, kubelet.clone());

    let mut client = RegistrationClient::new(connect_uds(&sock).await.unwrap());
    client
        .register(RegisterRequest {
            version: kubelet::DEVICE_PLUGIN_API_VERSION.into(),
            endpoint: "sriov-pool.sock".into(),
            resource_name: "example.com/sriov".into(),
            options: None,
        })
        .await
        .unwrap();
    let err = client
        .register(RegisterRequest {
            version: "v1alpha".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let seen = kubelet.registered.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].endpoint, "sriov-pool.sock");
    assert_eq!(seen[0].resource_name, "example.com/sriov");
    server.abort();
}

#[tokio::test]
async fn connect_fails_fast_without_server() {
    let dir = tempfile::tempdir().unwrap();
    assert!(connect_uds(dir.path().join("absent.sock")).await.is_err());
}

//! A tonic server and client talk over a Unix socket, the way the agent talks to kubelet and
//! the CNI talks to the agent: server on `UnixListenerStream`, client via `connect_uds`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

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

/// A client that puts the socket path in `:authority`, as kubelets before 1.26 (grpc-go) do,
/// speaking raw HTTP/2 so the authority is exactly what such a client sends. Returns the
/// response's `grpc-status`, or `Err(code)` if the stream was reset.
async fn call_with_path_authority(sock: &Path) -> Result<String, u32> {
    use prost::Message;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        [&len[1..], &[kind, flags], &stream.to_be_bytes(), payload].concat()
    }
    let fields: [(&[u8], &[u8]); 6] = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/v1beta1.Registration/Register"),
        (b":authority", sock.as_os_str().as_encoded_bytes()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ];
    let block = loona_hpack::Encoder::new().encode(fields);
    let msg = RegisterRequest {
        version: kubelet::DEVICE_PLUGIN_API_VERSION.into(),
        endpoint: "raw.sock".into(),
        resource_name: "example.com/raw".into(),
        options: None,
    }
    .encode_to_vec();
    let mut grpc = vec![0];
    grpc.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
    grpc.extend_from_slice(&msg);
    let mut conn = tokio::net::UnixStream::connect(sock).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out.extend(frame(0x1, 0x4, 1, &block));
    out.extend(frame(0x0, 0x1, 1, &grpc));
    conn.write_all(&out).await.unwrap();
    let mut dec = loona_hpack::Decoder::new();
    loop {
        let mut head = [0u8; 9];
        conn.read_exact(&mut head).await.unwrap();
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0; len];
        conn.read_exact(&mut payload).await.unwrap();
        match head[3] {
            0x3 => return Err(u32::from_be_bytes(payload[..4].try_into().unwrap())),
            0x1 => {
                let fields = dec.decode(&payload).unwrap();
                if let Some((_, v)) = fields.iter().find(|(n, _)| n == b"grpc-status") {
                    return Ok(String::from_utf8_lossy(v).into_owned());
                }
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_client_sending_the_socket_path_as_authority_is_served() {
    let dir = tempfile::tempdir().unwrap();
    // Plain tonic on a Unix socket: h2 resets the stream (PROTOCOL_ERROR = 1) before the
    // service sees it. This is what kubelet 1.20 gets from a server that does not adapt.
    let strict = dir.path().join("strict.sock");
    let kubelet = MockKubelet::default();
    let server = serve(&strict, kubelet.clone());
    assert_eq!(call_with_path_authority(&strict).await, Err(1));
    assert!(kubelet.registered.lock().unwrap().is_empty());
    server.abort();

    let lenient = dir.path().join("lenient.sock");
    let listener = UnixListener::bind(&lenient).unwrap();
    let svc = MockKubelet::default();
    let registered = Arc::clone(&svc.registered);
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(RegistrationServer::new(svc))
            .serve_with_incoming(sriov_proto::uds::incoming(listener))
            .await
            .unwrap();
    });
    assert_eq!(
        call_with_path_authority(&lenient).await,
        Ok("0".to_string())
    );
    assert_eq!(
        call_with_path_authority(&lenient).await,
        Ok("0".to_string())
    );
    let seen = registered.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].resource_name, "example.com/raw");
    // Our own tonic client (authority "localhost"-like placeholder) still works.
    let mut client = RegistrationClient::new(connect_uds(&lenient).await.unwrap());
    client
        .register(RegisterRequest {
            version: kubelet::DEVICE_PLUGIN_API_VERSION.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    server.abort();
}

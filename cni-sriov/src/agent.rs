//! The node agent as the CNI sees it: a gRPC client on the agent's Unix socket, with timeouts,
//! and the one mapping from the agent's gRPC status to CNI error codes.

use std::path::Path;
use std::time::Duration;

use sriov_proto::node::node_client::NodeClient;
use tonic::transport::Channel;

use crate::error::{CniError, code};

/// How long to wait for the agent's socket to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Per call: Plan may reclaim a stale holder (a VF restore), so it gets some room.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected client.
pub type Agent = NodeClient<Channel>;

/// Connects to the agent. An agent that is not there is error 11 (try again later): the runtime
/// retries, and nothing has been changed.
pub async fn connect(socket: &Path) -> Result<Agent, CniError> {
    let unreachable = |e: &dyn std::fmt::Display| {
        CniError::new(
            code::TRY_AGAIN,
            format!("the sriov agent is not reachable at {}", socket.display()),
        )
        .with_details(e.to_string())
    };
    let ep = sriov_proto::uds_endpoint(socket)
        .map_err(|e| unreachable(&e))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    let ch = ep.connect().await.map_err(|e| {
        // The transport error hides why; a socket this caller may not open says so plainly.
        match std::os::unix::net::UnixStream::connect(socket) {
            Err(io) if io.kind() == std::io::ErrorKind::PermissionDenied => CniError::new(
                code::TRY_AGAIN,
                format!(
                    "permission denied on the sriov agent's socket {} (the CNI runs as root)",
                    socket.display()
                ),
            ),
            _ => unreachable(&e),
        }
    })?;
    Ok(NodeClient::new(ch))
}

/// Maps an agent error to the CNI code the runtime should see: bad requests are configuration
/// errors (7); contention and unavailability are "try again" (11).
pub fn to_cni(what: &str, s: tonic::Status) -> CniError {
    use tonic::Code;
    let c = match s.code() {
        Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition => code::INVALID_CONFIG,
        Code::Unavailable
        | Code::ResourceExhausted
        | Code::AlreadyExists
        | Code::Aborted
        | Code::DeadlineExceeded
        | Code::Cancelled
        // The agent never answers Unknown: it is the transport failing (the agent died or
        // restarted mid-call). Whatever it recorded, DEL undoes; the runtime retries.
        | Code::Unknown => code::TRY_AGAIN,
        _ => code::INTERNAL,
    };
    CniError::new(c, format!("{what}: {}", s.message()))
}

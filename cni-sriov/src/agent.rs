//! The node agent as the CNI sees it: a gRPC client on the agent's Unix socket, with timeouts.
//! The agent's error statuses become CNI errors through `From<tonic::Status> for CniError`.

use std::path::Path;
use std::time::Duration;

use sriov_proto::node::node_client::NodeClient;
use tonic::transport::Channel;

use crate::error::{CniError, Failure};

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
        CniError::from(Failure::AgentUnreachable {
            socket: socket.to_path_buf(),
            cause: e.to_string(),
        })
    };
    let ep = sriov_proto::uds_endpoint(socket)
        .map_err(|e| unreachable(&e))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    let ch = ep.connect().await.map_err(|e| {
        // The transport error hides why; a socket this caller may not open says so plainly.
        match std::os::unix::net::UnixStream::connect(socket) {
            Err(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                Failure::AgentSocketDenied {
                    socket: socket.to_path_buf(),
                }
                .into()
            }
            _ => unreachable(&e),
        }
    })?;
    Ok(NodeClient::new(ch))
}

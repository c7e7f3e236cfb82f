//! The CNI verbs. Each runs its async part on a `current_thread` runtime built only for it, so
//! VERSION and argument errors never pay for a runtime.

mod add;
mod check;
mod del;
mod gc;
mod status;

use std::path::Path;

use sriov_hw::netns::NetnsHandle;
use sriov_proto::node::{Attachment, AttachmentKey};

use crate::error::{CniError, Failure};
use crate::request::Request;

pub use add::add;
pub use check::check;
pub use del::del;
pub use gc::gc;
pub use status::status;

/// Runs `f` to completion on a fresh single-threaded runtime.
fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, CniError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::Runtime)?;
    Ok(rt.block_on(f))
}

/// The ledger key of this call.
fn key(req: &Request) -> AttachmentKey {
    AttachmentKey {
        container_id: req.container_id.clone(),
        ifname: req.ifname.clone(),
    }
}

/// The agent's record of this call's attachment, if it has one (with the connected client, for
/// the Release that follows a DEL).
async fn fetch(
    req: &Request,
    socket: &Path,
) -> Result<(crate::agent::Agent, Option<Attachment>), CniError> {
    let mut agent = crate::agent::connect(socket).await?;
    let fetched = agent
        .fetch(key(req))
        .await
        .map_err(|s| CniError::from(s).context("fetching the attachment failed"))?
        .into_inner();
    Ok((agent, fetched.attachment.filter(|_| fetched.found)))
}

/// The pod's namespace if it still exists and is the one recorded at ADD (paths like
/// `/proc/<pid>/ns/net` are reused, so the identity is compared, not the path).
fn live_netns(req_netns: Option<&Path>, rec: &Attachment) -> Option<NetnsHandle> {
    let same = |h: &NetnsHandle| h.id().dev == rec.netns_dev && h.id().ino == rec.netns_ino;
    req_netns
        .into_iter()
        .chain(Some(Path::new(&rec.netns_path)).filter(|p| !p.as_os_str().is_empty()))
        .filter_map(|p| NetnsHandle::open(p).ok())
        .find(same)
}

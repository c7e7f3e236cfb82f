//! The one typed route-netlink wrapper. Callers never build a `LinkMessage`: they call methods
//! named for what they do, and errors carry the operation and the object it was aimed at.
//!
//! A [`Netlink`] is bound to one network namespace: [`Netlink::host`] to the caller's, and
//! [`Netlink::in_netns`] to another one, whose socket is opened on a short-lived thread that
//! `setns`es (never on a runtime worker) and then driven from the caller's runtime.
//!
//! Layout: `link` (get/move/rename/MAC/MTU/up/down/delete), `addr` (addresses and routes), `vf`
//! (IFLA_VF_* on a PF) with its pure decoder in `vf_parse`, `raw` (a byte-exact side channel the
//! VF decoder needs), `topology` (creating bridges, veths…), `bridge_port` (port locking and static FDB entries), `tc`
//! (tbf and ingress redirection), `monitor` (link change events).

mod addr;
mod bridge_port;
mod error;
mod link;
mod monitor;
mod raw;
mod tc;
mod topology;
mod vf;
mod vf_parse;

pub use addr::RouteInfo;
pub use error::NetlinkError;
pub use link::LinkInfo;
pub use monitor::{LinkEvent, LinkEvents, link_events, link_events_in};
pub use tc::TokenBucket;
pub use topology::TopologyLink;
pub use vf::op as vf_op;

use futures::StreamExt;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;

use crate::netns::NetnsHandle;

/// A route-netlink connection bound to one network namespace. Cloning is cheap and shares the
/// connection.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    /// The namespace the socket lives in, when it is not the one the process started in; kept so
    /// side channels (see `raw`) open their sockets in the same place.
    ns: Option<NetnsHandle>,
}

impl Netlink {
    /// Opens a connection in the calling thread's namespace and spawns its driver on the current
    /// tokio runtime. Must be called from within a runtime.
    pub fn host() -> Result<Self, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| NetlinkError::Io {
            op: "open netlink socket",
            message: e.to_string(),
        })?;
        tokio::spawn(conn);
        Ok(Netlink { handle, ns: None })
    }

    /// Opens a connection inside `ns` and drives it on the current tokio runtime (must be called
    /// from within one). The socket is created on a short-lived helper thread that `setns`es into
    /// `ns` and exits; the socket keeps its namespace, and no runtime thread ever changes namespace.
    /// Blocks the caller for the duration of a thread spawn and a socket creation.
    pub fn in_netns(ns: &NetnsHandle) -> Result<Self, NetlinkError> {
        let op = "open netlink socket in netns";
        let rt = tokio::runtime::Handle::try_current().map_err(|e| NetlinkError::Io {
            op,
            message: e.to_string(),
        })?;
        let opened = ns
            .run_in(|| {
                // The socket registers with the runtime's reactor as it is created.
                let _guard = rt.enter();
                rtnetlink::new_connection()
            })
            .map_err(|e| NetlinkError::Io {
                op,
                message: e.to_string(),
            })?;
        let (conn, handle, _) = opened.map_err(|e| NetlinkError::Io {
            op,
            message: format!("{}: {e}", ns.path().display()),
        })?;
        rt.spawn(conn);
        Ok(Netlink {
            handle,
            ns: Some(ns.clone()),
        })
    }

    /// The namespace this connection was opened in by [`Netlink::in_netns`]; `None` for
    /// [`Netlink::host`].
    pub fn netns(&self) -> Option<&NetnsHandle> {
        self.ns.as_ref()
    }

    /// The raw rtnetlink handle, for the wrapper's own submodules only.
    fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// Sends one request with `flags` and collects the kernel's answer: the messages it returned
    /// (none for a plain ACK). A NACK becomes [`NetlinkError::Kernel`] naming `op` and `target`.
    async fn exchange(
        &self,
        op: &'static str,
        target: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = flags;
        let mut handle = self.handle.clone();
        let mut replies = handle.request(req).map_err(|e| NetlinkError::Io {
            op,
            message: e.to_string(),
        })?;
        let mut out = Vec::new();
        while let Some(reply) = replies.next().await {
            match reply.payload {
                NetlinkPayload::InnerMessage(m) => out.push(m),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(NetlinkError::from_nack(op, target, &e));
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// A change request that expects only an ACK.
    async fn ack(
        &self,
        op: &'static str,
        target: &str,
        msg: RouteNetlinkMessage,
        extra_flags: u16,
    ) -> Result<(), NetlinkError> {
        use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST};
        self.exchange(op, target, msg, NLM_F_REQUEST | NLM_F_ACK | extra_flags)
            .await
            .map(drop)
    }

    /// A removal that expects only an ACK: `Ok(true)` when something was removed, `Ok(false)`
    /// (not an error) when the kernel says there was nothing (ENOENT), so cleanup can be repeated.
    async fn remove(
        &self,
        op: &'static str,
        target: &str,
        msg: RouteNetlinkMessage,
    ) -> Result<bool, NetlinkError> {
        match self.ack(op, target, msg, 0).await {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A dump request (all objects of a kind; filtering is the caller's job).
    async fn dump(
        &self,
        op: &'static str,
        target: &str,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST};
        self.exchange(op, target, msg, NLM_F_REQUEST | NLM_F_DUMP)
            .await
    }
}

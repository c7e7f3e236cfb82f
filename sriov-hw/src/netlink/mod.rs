//! The one typed route-netlink wrapper. Callers never build a `LinkMessage`: they call methods
//! named for what they do, and errors carry the operation and the object it was aimed at.
//!
//! A [`Netlink`] is bound to one network namespace: [`Netlink::host`] to the caller's, and
//! [`Netlink::in_netns`] to another one, whose socket is opened on a short-lived thread that
//! `setns`es (never on a runtime worker) and then driven from the caller's runtime.

mod addr;
mod error;
mod link;
mod topology;
mod vf;

pub use error::NetlinkError;
pub use link::LinkInfo;

/// A route-netlink connection bound to one network namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Opens a connection in the calling thread's namespace and spawns its driver on the current
    /// tokio runtime.
    pub fn host() -> Result<Self, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| NetlinkError::Io {
            op: "open netlink socket",
            message: e.to_string(),
        })?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// Opens a connection inside `ns` (socket created on a helper thread that setns'es), driven on
    /// the current tokio runtime.
    pub fn in_netns(ns: &crate::netns::NetnsHandle) -> Result<Self, NetlinkError> {
        let _ = ns;
        todo!("H2")
    }

    /// The raw rtnetlink handle, for the wrapper's own submodules only.
    fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }
}

//! Link change notifications: the kernel's RTNLGRP_LINK multicast group, as a typed stream.
//!
//! The agent's health watcher follows PF carrier and admin state through these events instead of
//! polling, so a PF going down is seen within milliseconds. Netlink multicast is lossy: when the
//! socket's receive buffer overflows the kernel drops messages and the stream yields
//! [`LinkEvent::Overrun`]; the subscriber must then re-read the links it cares about.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::channel::mpsc::UnboundedReceiver;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{AsyncSocket, SocketAddr};
use rtnetlink::MulticastGroup;

use super::{LinkInfo, NetlinkError};
use crate::netns::NetnsHandle;

/// Receive buffer asked for on the event socket: room for a burst of a few thousand link
/// messages (a PF with 256 VFs changing state at once) before the kernel drops any.
const EVENT_RCVBUF: usize = 4 << 20;

/// One change to a link in the namespace the subscription was opened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// RTM_NEWLINK: a link appeared or changed (flags, carrier, name, master…). The kernel
    /// sends the link's full state, not a diff.
    Changed(LinkInfo),
    /// RTM_DELLINK: a link was deleted or moved to another namespace. Its last state.
    Removed(LinkInfo),
    /// The kernel dropped events (receive buffer full): re-read every link of interest.
    Overrun,
}

/// The stream [`link_events`] returns. Ends when the socket fails (the subscriber should
/// subscribe again and re-read its links). Dropping it closes the socket.
pub struct LinkEvents {
    rx: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for LinkEvents {
    fn drop(&mut self) {
        // The connection task would otherwise linger until the next event arrives.
        self.conn.abort();
    }
}

impl Stream for LinkEvents {
    type Item = LinkEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LinkEvent>> {
        loop {
            let Some((msg, _)) = futures::ready!(Pin::new(&mut self.rx).poll_next(cx)) else {
                return Poll::Ready(None);
            };
            if let Some(ev) = decode(msg) {
                return Poll::Ready(Some(ev));
            }
        }
    }
}

/// Maps one multicast message to an event; other message kinds are skipped.
fn decode(msg: NetlinkMessage<RouteNetlinkMessage>) -> Option<LinkEvent> {
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
            Some(LinkEvent::Changed(LinkInfo::from_message(&l)))
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
            Some(LinkEvent::Removed(LinkInfo::from_message(&l)))
        }
        NetlinkPayload::Overrun(_) => Some(LinkEvent::Overrun),
        _ => None,
    }
}

/// Subscribes to link changes (RTNLGRP_LINK) in the calling thread's network namespace. Must be
/// called from within a tokio runtime: the socket's driver is spawned on it. Events that happen
/// before this returns are not reported; read the current state after subscribing, not before.
pub fn link_events() -> Result<LinkEvents, NetlinkError> {
    let op = "subscribe to link events";
    let io = |e: std::io::Error| NetlinkError::Io {
        op,
        message: e.to_string(),
    };
    let rt = tokio::runtime::Handle::try_current().map_err(|e| NetlinkError::Io {
        op,
        message: e.to_string(),
    })?;
    let (mut conn, _handle, rx) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Link]).map_err(io)?;
    // Best effort: without it the kernel default (~200 KiB) applies and Overrun comes sooner.
    if let Err(e) = conn.socket_mut().socket_mut().set_rx_buf_sz(EVENT_RCVBUF) {
        tracing::debug!(error = %e, "cannot enlarge the link event socket buffer");
    }
    let conn = rt.spawn(conn);
    Ok(LinkEvents { rx, conn })
}

/// As [`link_events`], for the links of `ns`: the socket is opened on a short-lived helper thread
/// that has entered `ns` (no runtime thread changes namespace) and is driven from the caller's
/// runtime. Used to wait for a VF's carrier inside a pod's namespace.
pub fn link_events_in(ns: &NetnsHandle) -> Result<LinkEvents, NetlinkError> {
    let rt = tokio::runtime::Handle::try_current().map_err(|e| NetlinkError::Io {
        op: "subscribe to link events in netns",
        message: e.to_string(),
    })?;
    ns.run_in(|| {
        // The socket registers with the runtime's reactor as it is created.
        let _guard = rt.enter();
        link_events()
    })
    .map_err(|e| NetlinkError::Io {
        op: "subscribe to link events in netns",
        message: e.to_string(),
    })?
}

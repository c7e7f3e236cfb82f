//! A byte-exact side channel for requests whose answer the typed decoder loses information from.
//!
//! netlink-packet-route decodes IFLA_VF_SPOOFCHK and IFLA_VF_TRUST into a `bool`, folding the
//! kernel's "not reported by this driver" (`u32::MAX`) into `false`. Restoring a VF's original
//! configuration must not invent a setting the driver never had, so [`Netlink::vf_info`] reads the
//! PF through this channel and decodes the attributes itself (`vf_parse`). The channel is a
//! one-shot netlink-proto connection in the same namespace as the main one; it lives for one
//! request.

use std::convert::Infallible;

use futures::StreamExt;
use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::proto as netlink_proto;
use rtnetlink::sys::{SocketAddr, protocols::NETLINK_ROUTE};

use super::{Netlink, NetlinkError};

/// A route-netlink message kept as bytes: its type and its payload after the netlink header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawRoute {
    pub message_type: u16,
    pub payload: Vec<u8>,
}

impl RawRoute {
    /// Serializes a typed request.
    fn from_route(msg: &RouteNetlinkMessage) -> Self {
        let mut payload = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut payload);
        RawRoute {
            message_type: msg.message_type(),
            payload,
        }
    }
}

impl NetlinkSerializable for RawRoute {
    fn message_type(&self) -> u16 {
        self.message_type
    }
    fn buffer_len(&self) -> usize {
        self.payload.len()
    }
    fn serialize(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.payload);
    }
}

impl NetlinkDeserializable for RawRoute {
    type Error = Infallible;
    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        Ok(RawRoute {
            message_type: header.message_type,
            payload: payload.to_vec(),
        })
    }
}

impl Netlink {
    /// Sends `msg` on a fresh socket in this connection's namespace and returns the raw replies.
    pub(super) async fn exchange_raw(
        &self,
        op: &'static str,
        target: &str,
        msg: &RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RawRoute>, NetlinkError> {
        let io = |message: String| NetlinkError::Io { op, message };
        let open = || netlink_proto::new_connection::<RawRoute>(NETLINK_ROUTE);
        let opened = match &self.ns {
            None => open(),
            Some(ns) => {
                let rt = tokio::runtime::Handle::try_current().map_err(|e| io(e.to_string()))?;
                ns.run_in(|| {
                    let _guard = rt.enter();
                    open()
                })
                .map_err(|e| io(e.to_string()))?
            }
        };
        let (conn, handle, _) = opened.map_err(|e| io(e.to_string()))?;
        let driver = tokio::spawn(conn);

        let mut req = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(RawRoute::from_route(msg)),
        );
        req.header.flags = flags;
        req.finalize();
        let result = async {
            let mut replies = handle
                .request(req, SocketAddr::new(0, 0))
                .map_err(|e| io(e.to_string()))?;
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
        .await;
        driver.abort();
        result
    }
}

//! Bridge port security: a *locked* port only forwards frames whose source MAC has a static FDB
//! entry pointing at that port (kernel ≥ 5.18, `IFLA_BRPORT_LOCKED`). Together with static FDB
//! entries this is the emulated NIC's spoof check, applied in one netlink request per step
//! instead of a firewall ruleset.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage, link::InfoBridgePort};
use rtnetlink::LinkBridgePort;

use super::{Netlink, NetlinkError};
use crate::mac::MacAddr;

/// An FDB request on bridge port `port` for `mac` as `bridge fdb … dev <port> master static`
/// builds it: AF_BRIDGE, addressed to the port's controller, state NOARP ("static": a user
/// entry that is not the port's own address, which a locked port would refuse).
fn fdb_message(port: u32, mac: MacAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = port;
    msg.header.state = NeighbourState::Noarp;
    msg.header.flags = NeighbourFlags::Controller;
    msg.header.kind = RouteType::Unspec;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    msg
}

impl Netlink {
    /// Locks (or unlocks) bridge port `port` (an ifindex). A locked port also stops learning, so
    /// only the static entries of [`Netlink::fdb_add_static`] admit its senders; unlocking
    /// turns learning back on.
    pub async fn set_bridge_port_locked(
        &self,
        port: u32,
        locked: bool,
    ) -> Result<(), NetlinkError> {
        let msg = LinkBridgePort::new(port)
            .append_info_data(InfoBridgePort::Locked(locked))
            .append_info_data(InfoBridgePort::Learning(!locked))
            .build();
        // RTM_NEWLINK on an existing link: the bridge applies IFLA_INFO_SLAVE_DATA.
        self.ack(
            "set bridge port lock",
            &format!("ifindex {port}"),
            RouteNetlinkMessage::NewLink(msg),
            0,
        )
        .await
    }

    /// Adds (or replaces) a static FDB entry for `mac` on bridge port `port`.
    pub async fn fdb_add_static(&self, port: u32, mac: MacAddr) -> Result<(), NetlinkError> {
        self.ack(
            "add FDB entry",
            &format!("{mac} on ifindex {port}"),
            RouteNetlinkMessage::NewNeighbour(fdb_message(port, mac)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .await
    }

    /// Removes the FDB entry for `mac` on bridge port `port`. Returns `false` (not an error) when
    /// there is none, so cleanup can be repeated.
    pub async fn fdb_del(&self, port: u32, mac: MacAddr) -> Result<bool, NetlinkError> {
        self.remove(
            "delete FDB entry",
            &format!("{mac} on ifindex {port}"),
            RouteNetlinkMessage::DelNeighbour(fdb_message(port, mac)),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdb_entries_are_static_controller_entries_of_the_bridge_family() {
        let m = fdb_message(7, "02:00:00:00:00:01".parse().unwrap());
        assert_eq!(m.header.family, AddressFamily::Bridge);
        assert_eq!(m.header.ifindex, 7);
        assert_eq!(m.header.state, NeighbourState::Noarp);
        assert_eq!(m.header.flags, NeighbourFlags::Controller);
        assert_eq!(
            m.attributes,
            vec![NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 1])]
        );
    }
}

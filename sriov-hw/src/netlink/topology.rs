//! Link topology operations the emulated NIC needs: bridges, veth pairs, ifb devices, bridge
//! ports, and by-name up/down/MAC/delete. Everything here addresses links by name, because the
//! emulator's links have stable names (`<pf>`, `<pf>v<i>`, `<pf>r<i>`, `<pf>q<i>`) and are often
//! looked at from a process that did not create them.

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkInfo};
use rtnetlink::{LinkBridge, LinkIfb, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::{Netlink, NetlinkError};
use crate::mac::MacAddr;

/// A link as the emulator sees it in a dump: enough to tell which links belong to an emulated PF
/// and in what state they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyLink {
    /// Interface index in this namespace.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `IFLA_INFO_KIND` (`bridge`, `veth`, `ifb`…), `None` for physical devices.
    pub kind: Option<String>,
    /// Index of the bridge (or other controller) the link is a port of.
    pub master: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// The link group (`IFLA_GROUP`, 0 = default); the emulator tags its links with one group per
    /// PF so teardown can delete them all in one batched request.
    pub group: u32,
}

/// Maps an rtnetlink error to ours, naming the operation and its target.
fn map_err(op: &'static str, target: &str, e: rtnetlink::Error) -> NetlinkError {
    match e {
        rtnetlink::Error::NetlinkError(msg) => {
            let errno = msg.raw_code().abs();
            if errno == libc::ENODEV {
                NetlinkError::NotFound {
                    op,
                    target: target.to_string(),
                }
            } else {
                NetlinkError::Kernel {
                    op,
                    target: target.to_string(),
                    errno,
                    message: msg.to_io().to_string(),
                }
            }
        }
        other => NetlinkError::Io {
            op,
            message: format!("{target}: {other}"),
        },
    }
}

fn topology_link(msg: &netlink_packet_route::link::LinkMessage) -> TopologyLink {
    let mut out = TopologyLink {
        index: msg.header.index,
        name: String::new(),
        kind: None,
        master: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        group: 0,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => out.name = n.clone(),
            LinkAttribute::Controller(m) => out.master = Some(*m),
            LinkAttribute::Group(g) => out.group = *g,
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(k) = info {
                        out.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

impl Netlink {
    /// Every link in this namespace, for the emulator's scans (one dump, however many links).
    pub async fn topology_links(&self) -> Result<Vec<TopologyLink>, NetlinkError> {
        let mut stream = self.handle().link().get().execute();
        let mut out = Vec::new();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| map_err("dump links", "*", e))?
        {
            out.push(topology_link(&msg));
        }
        Ok(out)
    }

    /// The link named `name`, or `None` if this namespace has none.
    pub async fn topology_link(&self, name: &str) -> Result<Option<TopologyLink>, NetlinkError> {
        let mut stream = self.handle().link().get().match_name(name).execute();
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(Some(topology_link(&msg))),
            Ok(None) => Ok(None),
            Err(e) => match map_err("get link", name, e) {
                NetlinkError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Creates an (administratively up) Linux bridge in link group `group`, with a fixed MAC so
    /// the bridge's address does not change as ports come and go.
    pub async fn create_bridge(
        &self,
        name: &str,
        mac: MacAddr,
        group: u32,
    ) -> Result<(), NetlinkError> {
        let msg = LinkBridge::new(name)
            .address(mac.0.to_vec())
            .link_group(group)
            .up()
            .build();
        self.handle()
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| map_err("create bridge", name, e))
    }

    /// Creates the veth pair `port` <-> `peer` in one request: `port` becomes a port of the bridge
    /// with index `master` and is brought up (unless `port_up` is false); `peer` stays down.
    /// Both ends get fixed MACs and join link group `group`.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_veth_port(
        &self,
        port: &str,
        port_mac: MacAddr,
        port_up: bool,
        master: u32,
        peer: &str,
        peer_mac: MacAddr,
        group: u32,
    ) -> Result<(), NetlinkError> {
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .address(peer_mac.0.to_vec())
            .link_group(group)
            .build();
        let mut builder = LinkVeth::new(port, peer)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .address(port_mac.0.to_vec())
            .link_group(group)
            .controller(master);
        builder = if port_up {
            builder.up()
        } else {
            builder.down()
        };
        self.handle()
            .link()
            .add(builder.build())
            .execute()
            .await
            .map_err(|e| map_err("create veth pair", port, e))
    }

    /// Creates an (administratively up) ifb device in link group `group`, the target of ingress
    /// redirection for shaping traffic that arrives on a port.
    pub async fn create_ifb(&self, name: &str, group: u32) -> Result<(), NetlinkError> {
        let msg = LinkIfb::new(name).link_group(group).up().build();
        self.handle()
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| map_err("create ifb", name, e))
    }

    /// Makes `name` a port of the bridge with index `master`.
    pub async fn set_master_by_name(&self, name: &str, master: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_name(name).controller(master).build();
        self.handle()
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| map_err("set master", name, e))
    }

    /// Sets `name` administratively up or down.
    pub async fn set_up_by_name(&self, name: &str, up: bool) -> Result<(), NetlinkError> {
        let b = LinkUnspec::new_with_name(name);
        let msg = if up { b.up() } else { b.down() }.build();
        self.handle()
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| map_err(if up { "set link up" } else { "set link down" }, name, e))
    }

    /// Sets the MAC address of `name`.
    pub async fn set_mac_by_name(&self, name: &str, mac: MacAddr) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_name(name)
            .address(mac.0.to_vec())
            .build();
        self.handle()
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| map_err("set MAC address", name, e))
    }

    /// Deletes the link named `name`. Returns `false` (not an error) when no such link exists,
    /// so teardown can be repeated.
    pub async fn delete_link_by_name(&self, name: &str) -> Result<bool, NetlinkError> {
        let msg = LinkUnspec::new_with_name(name).build();
        match self
            .handle()
            .link()
            .del_with_message(msg)
            .execute()
            .await
            .map_err(|e| map_err("delete link", name, e))
        {
            Ok(()) => Ok(true),
            Err(NetlinkError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Puts `name` into link group `group`.
    pub async fn set_group_by_name(&self, name: &str, group: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_name(name).link_group(group).build();
        self.handle()
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| map_err("set link group", name, e))
    }

    /// Deletes every link of group `group` in one request, which the kernel unregisters as one
    /// batch (one RCU grace period instead of one per link: 256 veth pairs go in well under a
    /// second instead of ~10 s). Physical devices in the group make the kernel refuse the whole
    /// request. Group 0 (everything by default) is refused here.
    pub async fn delete_link_group(&self, group: u32) -> Result<(), NetlinkError> {
        let target = format!("group {group}");
        if group == 0 {
            return Err(NetlinkError::Io {
                op: "delete link group",
                message: "refusing to delete the default group 0".to_string(),
            });
        }
        let mut msg = LinkUnspec::new_with_index(0).build();
        msg.attributes.push(LinkAttribute::Group(group));
        self.handle()
            .link()
            .del_with_message(msg)
            .execute()
            .await
            .map_err(|e| map_err("delete link group", &target, e))
    }
}

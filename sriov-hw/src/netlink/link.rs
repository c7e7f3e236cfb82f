//! Link operations: look links up, move them between namespaces, rename them, set MAC/MTU/state,
//! delete them. Every method works in the namespace the [`Netlink`] is bound to, and every error
//! names the operation and the link.

use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_core::NLM_F_REQUEST;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage, State,
};

use super::{Netlink, NetlinkError};
use crate::mac::MacAddr;
use crate::netns::NetnsHandle;

/// What callers need to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index, unique within its namespace only.
    pub index: u32,
    /// The interface name (IFLA_IFNAME), at most 15 bytes.
    pub name: String,
    /// The current (effective) hardware address; `None` for links without one.
    pub mac: Option<MacAddr>,
    /// MTU in bytes (L3 payload).
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`).
    pub lower_up: bool,
    /// RFC 2863 operational state is "up".
    pub oper_up: bool,
    /// `IFF_RUNNING`: the kernel's link watcher has seen the link operational (RFC 2863 "up",
    /// or "unknown" for drivers that do not report carrier) and attached its qdisc. Until then
    /// a frame handed to the link is dropped, so senders that must not lose their first frame
    /// (the neighbour announcements) wait for this as well as for `lower_up`.
    pub running: bool,
    /// The link kind from IFLA_LINKINFO (`"veth"`, `"bridge"`…); `None` for physical NICs and VFs.
    pub kind: Option<String>,
    /// Index of the bridge/bond this link is enslaved to, if any.
    pub master: Option<u32>,
    /// IFLA_LINK: the peer (veth) or lower device index; may live in another namespace.
    pub link: Option<u32>,
    /// IFLA_PARENT_DEV_NAME: the device the netdev belongs to, e.g. a VF's PCI address
    /// (`0000:03:10.0`). Unlike the name or the MAC it cannot be changed from inside a pod, so
    /// it identifies a real VF in any namespace. `None` for virtual links and on kernels < 5.14.
    pub parent_dev: Option<String>,
    /// IFLA_PARENT_DEV_BUS_NAME: the bus of [`LinkInfo::parent_dev`] (`"pci"` for VFs).
    pub parent_bus: Option<String>,
}

impl LinkInfo {
    /// Decodes a kernel RTM_NEWLINK answer.
    pub(super) fn from_message(msg: &LinkMessage) -> Self {
        let flags = msg.header.flags;
        let mut info = LinkInfo {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            mtu: 0,
            up: flags.contains(LinkFlags::Up),
            lower_up: flags.contains(LinkFlags::LowerUp),
            oper_up: false,
            running: flags.contains(LinkFlags::Running),
            kind: None,
            master: None,
            link: None,
            parent_dev: None,
            parent_bus: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => info.name = n.clone(),
                LinkAttribute::Address(a) if a.len() == 6 => info.mac = MacAddr::from_slice(a),
                LinkAttribute::Mtu(m) => info.mtu = *m,
                LinkAttribute::OperState(s) => info.oper_up = *s == State::Up,
                LinkAttribute::Controller(m) => info.master = Some(*m),
                LinkAttribute::Link(l) => info.link = Some(*l),
                LinkAttribute::ParentDevName(d) => info.parent_dev = Some(d.clone()),
                LinkAttribute::ParentDevBusName(b) => info.parent_bus = Some(b.clone()),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let NlLinkInfo::Kind(k) = i {
                            info.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        info
    }
}

/// A link message addressed by name: with index 0 the kernel looks the link up by IFLA_IFNAME.
fn by_name(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg
}

/// A link message addressed by index.
fn by_index(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

/// Turns "no such device" into [`NetlinkError::NotFound`], which says so in words.
fn not_found_as_such(err: NetlinkError) -> NetlinkError {
    match err {
        NetlinkError::Kernel {
            op, target, errno, ..
        } if errno == libc::ENODEV => NetlinkError::NotFound { op, target },
        other => other,
    }
}

impl Netlink {
    /// Looks a link up by name. `Ok(None)` when no such link exists in this namespace.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
        self.get_link("get link", name, by_name(name)).await
    }

    /// Looks a link up by index. `Ok(None)` when no such link exists in this namespace.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<LinkInfo>, NetlinkError> {
        self.get_link("get link", &format!("index {index}"), by_index(index))
            .await
    }

    /// Every link in this namespace.
    pub async fn list_links(&self) -> Result<Vec<LinkInfo>, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let replies = self
            .dump("list links", "", RouteNetlinkMessage::GetLink(msg))
            .await?;
        Ok(replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(LinkInfo::from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// Like [`Netlink::link_by_name`], but a missing link is an error naming `op`.
    pub(super) async fn require_link(
        &self,
        op: &'static str,
        name: &str,
    ) -> Result<LinkInfo, NetlinkError> {
        self.link_by_name(name)
            .await?
            .ok_or_else(|| NetlinkError::NotFound {
                op,
                target: name.to_string(),
            })
    }

    async fn get_link(
        &self,
        op: &'static str,
        target: &str,
        mut msg: LinkMessage,
    ) -> Result<Option<LinkInfo>, NetlinkError> {
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let replies = match self
            .exchange(op, target, RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST)
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(replies.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(LinkInfo::from_message(l)),
            _ => None,
        }))
    }

    /// Moves `link` into `ns` and renames it to `new_name` there, in ONE RTM_SETLINK request
    /// (IFLA_NET_NS_FD + IFLA_IFNAME), so the link never appears in the target namespace under its
    /// host name (which could clash with, say, the pod's `eth0`).
    ///
    /// If `new_name` is taken in `ns`, the kernel (checked on 6.18) still moves the link, under its
    /// *old* name, and then fails the rename: the call returns `EEXIST` and the link is in `ns`
    /// as `link`. Callers rolling back must look for it there. If the old name is taken in `ns`
    /// too, nothing moves.
    pub async fn move_to_netns(
        &self,
        link: &str,
        ns: &NetnsHandle,
        new_name: &str,
    ) -> Result<(), NetlinkError> {
        let op = "move link to netns";
        let target = format!("{link} -> {} as {new_name}", ns.path().display());
        let index = self.require_link(op, link).await?.index;
        let mut msg = by_index(index);
        msg.attributes
            .push(LinkAttribute::NetNsFd(ns.as_fd().as_raw_fd()));
        msg.attributes
            .push(LinkAttribute::IfName(new_name.to_string()));
        // `ns` stays borrowed (its fd open) until the kernel has answered.
        self.ack(op, &target, RouteNetlinkMessage::SetLink(msg), 0)
            .await
            .map_err(not_found_as_such)
    }

    /// Renames `link` (which must be down on most kernels, else `EBUSY`).
    pub async fn set_name(&self, link: &str, new_name: &str) -> Result<(), NetlinkError> {
        let op = "rename link";
        let index = self.require_link(op, link).await?.index;
        let mut msg = by_index(index);
        msg.attributes
            .push(LinkAttribute::IfName(new_name.to_string()));
        self.ack(
            op,
            &format!("{link} -> {new_name}"),
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
        .await
        .map_err(not_found_as_such)
    }

    /// Sets the link's effective hardware address.
    pub async fn set_mac(&self, link: &str, mac: MacAddr) -> Result<(), NetlinkError> {
        let mut msg = by_name(link);
        msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        self.set_link("set MAC", &format!("{link} to {mac}"), msg)
            .await
    }

    /// Sets the link's MTU (bytes, L3 payload).
    pub async fn set_mtu(&self, link: &str, mtu: u32) -> Result<(), NetlinkError> {
        let mut msg = by_name(link);
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.set_link("set MTU", &format!("{link} to {mtu}"), msg)
            .await
    }

    /// Brings the link administratively up.
    pub async fn set_up(&self, link: &str) -> Result<(), NetlinkError> {
        self.set_admin(link, true).await
    }

    /// Brings the link administratively down.
    pub async fn set_down(&self, link: &str) -> Result<(), NetlinkError> {
        self.set_admin(link, false).await
    }

    async fn set_admin(&self, link: &str, up: bool) -> Result<(), NetlinkError> {
        let mut msg = by_name(link);
        msg.header.change_mask = LinkFlags::Up;
        if up {
            msg.header.flags = LinkFlags::Up;
        }
        let op = if up { "set link up" } else { "set link down" };
        self.set_link(op, link, msg).await
    }

    async fn set_link(
        &self,
        op: &'static str,
        target: &str,
        msg: LinkMessage,
    ) -> Result<(), NetlinkError> {
        self.ack(op, target, RouteNetlinkMessage::SetLink(msg), 0)
            .await
            .map_err(not_found_as_such)
    }

    /// Deletes the link (for a veth, both ends). A missing link is [`NetlinkError::NotFound`], so
    /// idempotent callers can match on [`NetlinkError::is_not_found`].
    pub async fn delete_link(&self, link: &str) -> Result<(), NetlinkError> {
        self.ack(
            "delete link",
            link,
            RouteNetlinkMessage::DelLink(by_name(link)),
            0,
        )
        .await
        .map_err(not_found_as_such)
    }
}

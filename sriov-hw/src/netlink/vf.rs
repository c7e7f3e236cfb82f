//! VF operations on a PF: IFLA_VFINFO_LIST reads and one-attribute IFLA_VF_* writes.
//!
//! Every setter sends exactly one IFLA_VF_* attribute (inside IFLA_VFINFO_LIST / IFLA_VF_INFO) in
//! one RTM_SETLINK to the PF, addressed by name. One attribute per request means the kernel's
//! answer is about exactly that setting, so the error names it and rollback can undo precisely
//! what was applied. Errors are [`VfError`]s naming the PF, the VF index and the operation.

use netlink_packet_core::NLM_F_REQUEST;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkMessage, LinkVfInfo, VfInfo, VfInfoLinkState, VfInfoMac,
    VfInfoRate, VfInfoSpoofCheck, VfInfoTrust, VfLinkState as NlVfLinkState, VfVlan as NlVfVlan,
    VfVlanInfo, VlanProtocol,
};

use super::{Netlink, NetlinkError};
use crate::mac::MacAddr;
use crate::vf::{VfChange, VfError, VfErrorKind, VfLinkState, VfState, VfVlan, VlanProto};

/// RTM_NEWLINK, the kernel's answer to RTM_GETLINK.
const RTM_NEWLINK: u16 = 16;

/// Operation names, as they appear in [`VfError::op`] and therefore in CNI error messages.
pub mod op {
    /// [`super::Netlink::vf_info`].
    pub const READ: &str = "read VF config";
    /// [`super::Netlink::set_vf_mac`].
    pub const MAC: &str = "set VF MAC";
    /// [`super::Netlink::set_vf_vlan`].
    pub const VLAN: &str = "set VF VLAN";
    /// [`super::Netlink::set_vf_rate`].
    pub const RATE: &str = "set VF rate";
    /// [`super::Netlink::set_vf_spoofchk`].
    pub const SPOOFCHK: &str = "set VF spoofchk";
    /// [`super::Netlink::set_vf_trust`].
    pub const TRUST: &str = "set VF trust";
    /// [`super::Netlink::set_vf_link_state`].
    pub const LINK_STATE: &str = "set VF link state";
    /// [`super::Netlink::set_vf_many`].
    pub const MANY: &str = "configure VF";
}

impl Netlink {
    /// Reads every VF's configuration from the PF: RTM_GETLINK with RTEXT_FILTER_VF (and
    /// RTEXT_FILTER_SKIP_STATS), decoded from IFLA_VFINFO_LIST. A link without VFs (or without
    /// SR-IOV at all, e.g. a veth) yields an empty list. Errors carry VF index 0, meaning "the PF".
    pub async fn vf_info(&self, pf: &str) -> Result<Vec<VfState>, VfError> {
        let err = |e: NetlinkError| VfError::new(pf, 0, op::READ, e);
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(pf.to_string()));
        msg.attributes.push(LinkAttribute::ExtMask(vec![
            LinkExtentMask::Vf,
            LinkExtentMask::SkipStats,
        ]));
        let replies = self
            .exchange_raw(
                "RTM_GETLINK",
                "RTEXT_FILTER_VF",
                &RouteNetlinkMessage::GetLink(msg),
                NLM_F_REQUEST,
            )
            .await
            .map_err(err)?;
        let reply = replies
            .iter()
            .find(|m| m.message_type == RTM_NEWLINK)
            .ok_or_else(|| {
                err(NetlinkError::Protocol {
                    op: "RTM_GETLINK",
                    target: "RTEXT_FILTER_VF".into(),
                    message: "no RTM_NEWLINK in the answer".into(),
                })
            })?;
        super::vf_parse::parse_vf_states(&reply.payload).map_err(|e| {
            err(NetlinkError::Protocol {
                op: "RTM_GETLINK",
                target: "IFLA_VFINFO_LIST".into(),
                message: e.to_string(),
            })
        })
    }

    /// Sets the VF's administrative MAC (IFLA_VF_MAC). The VF netdev may only pick it up after
    /// its driver is re-bound, so callers set the effective MAC on the VF netdev as well.
    pub async fn set_vf_mac(&self, pf: &str, vf: u32, mac: MacAddr) -> Result<(), VfError> {
        self.set_vf(pf, vf, op::MAC, VfInfo::Mac(VfInfoMac::new(vf, &mac.0)))
            .await
    }

    /// Sets the VF's port VLAN, QoS and tag protocol: IFLA_VF_VLAN_LIST with one
    /// IFLA_VF_VLAN_INFO, as iproute2 sends it. VLAN 0 with QoS 0 clears the port VLAN.
    pub async fn set_vf_vlan(&self, pf: &str, vf: u32, vlan: VfVlan) -> Result<(), VfError> {
        self.set_vf(pf, vf, op::VLAN, vlan_attr(vf, vlan)).await
    }

    /// Sets the VF's minimum and maximum TX rate in Mbit/s, 0 = no limit (IFLA_VF_RATE).
    pub async fn set_vf_rate(
        &self,
        pf: &str,
        vf: u32,
        min_mbps: u32,
        max_mbps: u32,
    ) -> Result<(), VfError> {
        let rate = VfInfoRate::new(vf, min_mbps, max_mbps);
        self.set_vf(pf, vf, op::RATE, VfInfo::Rate(rate)).await
    }

    /// Turns the PF's source-MAC spoof check for the VF on or off (IFLA_VF_SPOOFCHK).
    pub async fn set_vf_spoofchk(&self, pf: &str, vf: u32, on: bool) -> Result<(), VfError> {
        let v = VfInfoSpoofCheck::new(vf, on);
        self.set_vf(pf, vf, op::SPOOFCHK, VfInfo::SpoofCheck(v))
            .await
    }

    /// Marks the VF trusted or not (IFLA_VF_TRUST): trusted VFs may change their own MAC and
    /// enter promiscuous mode.
    pub async fn set_vf_trust(&self, pf: &str, vf: u32, on: bool) -> Result<(), VfError> {
        let v = VfInfoTrust::new(vf, on);
        self.set_vf(pf, vf, op::TRUST, VfInfo::Trust(v)).await
    }

    /// Sets the VF's administrative link state (IFLA_VF_LINK_STATE): follow the PF, or force it
    /// up or down.
    pub async fn set_vf_link_state(
        &self,
        pf: &str,
        vf: u32,
        state: VfLinkState,
    ) -> Result<(), VfError> {
        let v = VfInfoLinkState::new(vf, nl_link_state(state));
        self.set_vf(pf, vf, op::LINK_STATE, VfInfo::LinkState(v))
            .await
    }

    /// Sets every attribute `c` names in one RTM_SETLINK (one IFLA_VF_INFO holding them all; the
    /// kernel applies them in its own order: MAC, VLAN, rate, spoof check, link state, trust).
    pub async fn set_vf_many(&self, pf: &str, vf: u32, c: &VfChange) -> Result<(), VfError> {
        let mut attrs = Vec::new();
        if let Some(mac) = c.mac {
            attrs.push(VfInfo::Mac(VfInfoMac::new(vf, &mac.0)));
        }
        if let Some(vlan) = c.vlan {
            attrs.push(vlan_attr(vf, vlan));
        }
        if let Some((min, max)) = c.rate {
            attrs.push(VfInfo::Rate(VfInfoRate::new(vf, min, max)));
        }
        if let Some(on) = c.spoofchk {
            attrs.push(VfInfo::SpoofCheck(VfInfoSpoofCheck::new(vf, on)));
        }
        if let Some(state) = c.link_state {
            attrs.push(VfInfo::LinkState(VfInfoLinkState::new(
                vf,
                nl_link_state(state),
            )));
        }
        if let Some(on) = c.trust {
            attrs.push(VfInfo::Trust(VfInfoTrust::new(vf, on)));
        }
        if attrs.is_empty() {
            return Ok(());
        }
        self.send_vf(pf, vf, op::MANY, "IFLA_VF_INFO", attrs).await
    }

    /// Sends one IFLA_VF_* attribute for `vf` to `pf` and waits for the ACK.
    ///
    /// The inner [`NetlinkError`] names the request and attribute (`RTM_SETLINK IFLA_VF_MAC`); the
    /// [`VfError`] around it names the PF, the VF and the operation in words.
    async fn set_vf(
        &self,
        pf: &str,
        vf: u32,
        op: &'static str,
        attr: VfInfo,
    ) -> Result<(), VfError> {
        let attr_name = match &attr {
            VfInfo::Mac(_) => "IFLA_VF_MAC",
            VfInfo::VlanList(_) => "IFLA_VF_VLAN_LIST",
            VfInfo::Rate(_) => "IFLA_VF_RATE",
            VfInfo::SpoofCheck(_) => "IFLA_VF_SPOOFCHK",
            VfInfo::Trust(_) => "IFLA_VF_TRUST",
            VfInfo::LinkState(_) => "IFLA_VF_LINK_STATE",
            _ => "IFLA_VF_INFO",
        };
        self.send_vf(pf, vf, op, attr_name, vec![attr]).await
    }

    /// One RTM_SETLINK to `pf` with `attrs` in one IFLA_VF_INFO, waiting for the ACK.
    async fn send_vf(
        &self,
        pf: &str,
        vf: u32,
        op: &'static str,
        attr_name: &'static str,
        attrs: Vec<VfInfo>,
    ) -> Result<(), VfError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(pf.to_string()));
        msg.attributes
            .push(LinkAttribute::VfInfoList(vec![LinkVfInfo(attrs)]));
        self.ack(
            "RTM_SETLINK",
            attr_name,
            RouteNetlinkMessage::SetLink(msg),
            0,
        )
        .await
        .map_err(|e| VfError {
            pf: pf.to_string(),
            vf,
            op,
            source: VfErrorKind::Netlink(e),
        })
    }
}

/// IFLA_VF_VLAN_LIST with one IFLA_VF_VLAN_INFO, as iproute2 sends a port VLAN.
fn vlan_attr(vf: u32, vlan: VfVlan) -> VfInfo {
    let proto = match vlan.proto {
        VlanProto::Dot1Q => VlanProtocol::Ieee8021Q,
        VlanProto::Dot1Ad => VlanProtocol::Ieee8021Ad,
    };
    let info = VfVlanInfo::new(vf, u32::from(vlan.vlan), u32::from(vlan.qos), proto);
    VfInfo::VlanList(vec![NlVfVlan::Info(info)])
}

/// The kernel's IFLA_VF_LINK_STATE value for `state`.
fn nl_link_state(state: VfLinkState) -> NlVfLinkState {
    match state {
        VfLinkState::Auto => NlVfLinkState::Auto,
        VfLinkState::Enable => NlVfLinkState::Enable,
        VfLinkState::Disable => NlVfLinkState::Disable,
    }
}

//! What a VF's configuration through its PF is: the values the PF reports, the ledger stores as
//! the "original configuration" and DEL restores. Plain data, shared by every backend.

use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;

/// VLAN tag protocol for a VF's port VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VlanProto {
    /// 802.1Q (0x8100), the default.
    #[default]
    #[serde(rename = "802.1Q")]
    Dot1Q,
    /// 802.1ad (0x88a8), QinQ outer tag.
    #[serde(rename = "802.1ad")]
    Dot1Ad,
}

impl VlanProto {
    /// The ethertype the kernel expects in IFLA_VF_VLAN_INFO.
    pub fn ethertype(self) -> u16 {
        match self {
            VlanProto::Dot1Q => 0x8100,
            VlanProto::Dot1Ad => 0x88a8,
        }
    }
}

/// Administrative link state of a VF as the PF driver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VfLinkState {
    /// Follow the PF's link.
    Auto,
    /// Always up.
    Enable,
    /// Always down.
    Disable,
}

/// The VLAN settings of a VF (VLAN 0 = untagged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VfVlan {
    /// 802.1Q VLAN ID, 1–4094; 0 = no port VLAN.
    pub vlan: u16,
    /// 802.1p priority (0–7) of the inserted tag.
    pub qos: u8,
    /// Tag protocol of the port VLAN.
    pub proto: VlanProto,
}

/// What the PF reports for one VF: also the "original configuration" the ledger stores and DEL
/// restores. Fields the driver does not report are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VfState {
    /// The VF's index on its PF (IFLA_VF_INFO numbering).
    pub index: u32,
    /// The admin MAC the PF enforces for the VF; `None` when the driver reports none or all zeros.
    pub mac: Option<MacAddr>,
    /// The VF's port VLAN (`vlan: 0` = none).
    pub vlan: VfVlan,
    /// Mbit/s, 0 = unlimited.
    pub min_tx_rate: u32,
    /// Mbit/s, 0 = unlimited.
    pub max_tx_rate: u32,
    /// Spoof checking (the PF drops frames from other source MACs); `None` if not reported.
    pub spoofchk: Option<bool>,
    /// Whether the VF may change its own MAC and use promiscuous modes; `None` if not reported.
    pub trust: Option<bool>,
    /// Link state override on the PF; `None` if not reported.
    pub link_state: Option<VfLinkState>,
}

/// One VF attribute set through the PF: which part of a [`VfChange`] the device refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VfAttr {
    /// The admin MAC.
    Mac,
    /// The port VLAN (tag, QoS, protocol).
    Vlan,
    /// The min/max TX rate.
    Rate,
    /// Source-MAC spoof checking.
    Spoofchk,
    /// Trust.
    Trust,
    /// The link state override.
    LinkState,
}

/// Several VF attributes to set in one go (`None` leaves one as it is): what ADD applies and
/// DEL puts back, handed to the backend whole so a device with a transaction pays for it once
/// (one RTM_SETLINK to a real PF, one register write on the emulated NIC) instead of once per
/// attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VfChange {
    /// The admin MAC (all-zero clears it).
    pub mac: Option<MacAddr>,
    /// The port VLAN (VLAN 0 clears it).
    pub vlan: Option<VfVlan>,
    /// `(min, max)` TX rate in Mbit/s, 0 = unlimited.
    pub rate: Option<(u32, u32)>,
    /// Spoof checking on or off.
    pub spoofchk: Option<bool>,
    /// Trusted or not.
    pub trust: Option<bool>,
    /// The link state override.
    pub link_state: Option<VfLinkState>,
}

impl VfChange {
    /// Whether nothing would be set.
    pub fn is_empty(&self) -> bool {
        *self == VfChange::default()
    }
}

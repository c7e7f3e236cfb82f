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
    pub vlan: u16,
    pub qos: u8,
    pub proto: VlanProto,
}

/// What the PF reports for one VF: also the "original configuration" the ledger stores and DEL
/// restores. Fields the driver does not report are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VfState {
    pub index: u32,
    pub mac: Option<MacAddr>,
    pub vlan: VfVlan,
    /// Mbit/s, 0 = unlimited.
    pub min_tx_rate: u32,
    /// Mbit/s, 0 = unlimited.
    pub max_tx_rate: u32,
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    pub link_state: Option<VfLinkState>,
}

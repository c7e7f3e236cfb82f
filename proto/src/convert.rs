//! Conversions between the node API's wire messages and the hardware model of `sriov-hw`, in one
//! place so the CNI and the agent read a ledger record the same way.

use sriov_hw::attach::{Original, VfSettings as HwSettings, VfTarget};
use sriov_hw::vfctl::{VfLinkState, VfState, VfVlan, VlanProto};
use sriov_hw::{MacAddr, PciAddr};

use crate::node::{Attachment, VfConfig, VfSettings};

/// A record that cannot be turned back into the hardware model (corrupt or from a newer agent).
#[derive(Debug, thiserror::Error)]
#[error("attachment record field {field}: {msg}")]
pub struct ConvertError {
    /// The record field that does not convert, as a proto path (`orig_vf.vlan`).
    pub field: &'static str,
    /// What is wrong with its value.
    pub msg: String,
}

fn err(field: &'static str, msg: impl ToString) -> ConvertError {
    ConvertError {
        field,
        msg: msg.to_string(),
    }
}

fn opt_mac(field: &'static str, s: &str) -> Result<Option<MacAddr>, ConvertError> {
    if s.is_empty() {
        Ok(None)
    } else {
        s.parse().map(Some).map_err(|e| err(field, e))
    }
}

/// Wire name of a VLAN protocol.
pub fn proto_name(p: VlanProto) -> &'static str {
    match p {
        VlanProto::Dot1Q => "802.1Q",
        VlanProto::Dot1Ad => "802.1ad",
    }
}

fn parse_proto(field: &'static str, s: &str) -> Result<VlanProto, ConvertError> {
    match s.to_ascii_lowercase().as_str() {
        "" | "802.1q" => Ok(VlanProto::Dot1Q),
        "802.1ad" => Ok(VlanProto::Dot1Ad),
        other => Err(err(field, format!("unknown VLAN protocol {other:?}"))),
    }
}

/// Wire name of a VF link state.
pub fn link_state_name(s: VfLinkState) -> &'static str {
    match s {
        VfLinkState::Auto => "auto",
        VfLinkState::Enable => "enable",
        VfLinkState::Disable => "disable",
    }
}

fn parse_link_state(field: &'static str, s: &str) -> Result<Option<VfLinkState>, ConvertError> {
    Ok(match s {
        "" => None,
        "auto" => Some(VfLinkState::Auto),
        "enable" => Some(VfLinkState::Enable),
        "disable" => Some(VfLinkState::Disable),
        other => return Err(err(field, format!("unknown link state {other:?}"))),
    })
}

impl From<&VfState> for VfConfig {
    fn from(s: &VfState) -> Self {
        VfConfig {
            mac: s.mac.map(|m| m.to_string()).unwrap_or_default(),
            vlan: s.vlan.vlan.into(),
            qos: s.vlan.qos.into(),
            vlan_proto: proto_name(s.vlan.proto).into(),
            min_tx_rate: s.min_tx_rate,
            max_tx_rate: s.max_tx_rate,
            spoofchk: s.spoofchk,
            trust: s.trust,
            link_state: s.link_state.map(link_state_name).unwrap_or_default().into(),
        }
    }
}

impl VfConfig {
    /// The VF state this message records, for VF `index`.
    pub fn to_state(&self, index: u32) -> Result<VfState, ConvertError> {
        Ok(VfState {
            index,
            mac: opt_mac("orig_vf.mac", &self.mac)?,
            vlan: VfVlan {
                vlan: u16::try_from(self.vlan).map_err(|e| err("orig_vf.vlan", e))?,
                qos: u8::try_from(self.qos).map_err(|e| err("orig_vf.qos", e))?,
                proto: parse_proto("orig_vf.vlan_proto", &self.vlan_proto)?,
            },
            min_tx_rate: self.min_tx_rate,
            max_tx_rate: self.max_tx_rate,
            spoofchk: self.spoofchk,
            trust: self.trust,
            link_state: parse_link_state("orig_vf.link_state", &self.link_state)?,
        })
    }
}

impl From<&HwSettings> for VfSettings {
    fn from(s: &HwSettings) -> Self {
        VfSettings {
            mac: s.mac.map(|m| m.to_string()).unwrap_or_default(),
            vlan: s.vlan.map(|v| v.vlan.into()),
            qos: s.vlan.map(|v| v.qos.into()),
            vlan_proto: s
                .vlan
                .map(|v| proto_name(v.proto))
                .unwrap_or_default()
                .into(),
            min_tx_rate: s.min_tx_rate,
            max_tx_rate: s.max_tx_rate,
            spoofchk: s.spoofchk,
            trust: s.trust,
            link_state: s.link_state.map(link_state_name).unwrap_or_default().into(),
        }
    }
}

impl VfSettings {
    /// The hardware-model settings this message carries.
    pub fn to_hw(&self) -> Result<HwSettings, ConvertError> {
        let vlan = match self.vlan {
            None => None,
            Some(v) => Some(VfVlan {
                vlan: u16::try_from(v).map_err(|e| err("settings.vlan", e))?,
                qos: u8::try_from(self.qos.unwrap_or(0)).map_err(|e| err("settings.qos", e))?,
                proto: parse_proto("settings.vlan_proto", &self.vlan_proto)?,
            }),
        };
        Ok(HwSettings {
            mac: opt_mac("settings.mac", &self.mac)?,
            vlan,
            min_tx_rate: self.min_tx_rate,
            max_tx_rate: self.max_tx_rate,
            spoofchk: self.spoofchk,
            trust: self.trust,
            link_state: parse_link_state("settings.link_state", &self.link_state)?,
        })
    }
}

/// The pieces of a record that `sriov_hw::attach::{apply, restore}` take.
pub struct HwRecord {
    /// Which VF, found by PCI address, and its PF.
    pub target: VfTarget,
    /// The VF's configuration before ADD, to restore on DEL.
    pub original: Original,
    /// What ADD set through the PF (and DEL therefore restores).
    pub settings: HwSettings,
}

impl Attachment {
    /// Reads the VF target, its original state and the final settings out of a record.
    pub fn to_hw(&self) -> Result<HwRecord, ConvertError> {
        let pci: PciAddr = self.vf_pci.parse().map_err(|e| err("vf_pci", e))?;
        let vf = self
            .orig_vf
            .clone()
            .unwrap_or_default()
            .to_state(self.vf_index)?;
        Ok(HwRecord {
            target: VfTarget {
                pci,
                pf: self.pf_name.clone(),
                index: self.vf_index,
                vfio: self.vfio,
            },
            original: Original {
                netdev: self.orig_netdev.clone(),
                mac: opt_mac("orig_mac", &self.orig_mac)?,
                mtu: self.orig_mtu,
                vf,
            },
            settings: self.settings.clone().unwrap_or_default().to_hw()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vf_state_round_trips() {
        let s = VfState {
            index: 4,
            mac: Some("02:00:00:00:00:10".parse().unwrap()),
            vlan: VfVlan {
                vlan: 100,
                qos: 3,
                proto: VlanProto::Dot1Ad,
            },
            min_tx_rate: 0,
            max_tx_rate: 200,
            spoofchk: Some(true),
            trust: None,
            link_state: Some(VfLinkState::Disable),
        };
        assert_eq!(VfConfig::from(&s).to_state(4).unwrap(), s);
    }

    #[test]
    fn settings_round_trip_and_unset_stays_unset() {
        let s = HwSettings {
            vlan: Some(VfVlan {
                vlan: 7,
                qos: 0,
                proto: VlanProto::Dot1Q,
            }),
            trust: Some(false),
            ..Default::default()
        };
        let back = VfSettings::from(&s).to_hw().unwrap();
        assert_eq!(back, s);
        assert_eq!(
            VfSettings::default().to_hw().unwrap(),
            HwSettings::default()
        );
    }

    #[test]
    fn corrupt_fields_are_named() {
        let a = Attachment {
            vf_pci: "nope".into(),
            ..Default::default()
        };
        assert!(a.to_hw().err().unwrap().to_string().contains("vf_pci"));
    }
}

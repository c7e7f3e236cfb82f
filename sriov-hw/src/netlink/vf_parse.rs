//! Decoding a PF's IFLA_VFINFO_LIST into [`VfState`]s, as a pure function over the bytes of an
//! RTM_NEWLINK payload, so every field is tested without hardware.
//!
//! Most IFLA_VF_* attributes go through netlink-packet-route's decoder. IFLA_VF_SPOOFCHK and
//! IFLA_VF_TRUST are read here directly: the kernel pre-fills them with `-1` (`u32::MAX`) and a
//! driver that does not implement them leaves that in place, which must become `None` ("not
//! reported"), not `false`.

use netlink_packet_core::{DecodeError, NlaBuffer, NlasIterator, Parseable};
use netlink_packet_route::link::VlanProtocol;
use netlink_packet_route::link::{VfInfo, VfLinkState as NlVfLinkState, VfVlan as NlVfVlan};

use crate::mac::MacAddr;
use crate::vf::{VfLinkState, VfState, VfVlan, VlanProto};

/// `struct ifinfomsg`, in front of the attributes of every link message.
const IFINFOMSG_LEN: usize = 16;
/// IFLA_VFINFO_LIST (linux/if_link.h).
const IFLA_VFINFO_LIST: u16 = 22;
/// IFLA_VF_INFO, one per VF inside IFLA_VFINFO_LIST.
const IFLA_VF_INFO: u16 = 1;
/// IFLA_VF_SPOOFCHK / IFLA_VF_TRUST: `{ u32 vf; u32 setting; }`.
const IFLA_VF_SPOOFCHK: u16 = 4;
const IFLA_VF_TRUST: u16 = 9;

/// Decodes the VF table of one RTM_NEWLINK payload (ifinfomsg + attributes). A link without
/// IFLA_VFINFO_LIST (no SR-IOV, or no VFs enabled) yields an empty list. VFs come in the kernel's
/// order, which is VF index order.
pub fn parse_vf_states(link_payload: &[u8]) -> Result<Vec<VfState>, DecodeError> {
    let attrs = link_payload.get(IFINFOMSG_LEN..).ok_or_else(|| {
        DecodeError::from(format!(
            "link message of {} bytes is shorter than ifinfomsg",
            link_payload.len()
        ))
    })?;
    let mut states = Vec::new();
    for attr in NlasIterator::new(attrs) {
        let attr = attr?;
        if attr.kind() != IFLA_VFINFO_LIST {
            continue;
        }
        for vf in NlasIterator::new(attr.value()) {
            let vf = vf?;
            if vf.kind() == IFLA_VF_INFO {
                let position = u32::try_from(states.len()).unwrap_or(u32::MAX);
                states.push(parse_one_vf(vf.value(), position)?);
            }
        }
    }
    Ok(states)
}

/// Decodes one IFLA_VF_INFO. `position` is the fallback index if no attribute carries the VF id.
fn parse_one_vf(value: &[u8], position: u32) -> Result<VfState, DecodeError> {
    let mut st = VfState {
        index: position,
        ..VfState::default()
    };
    let mut index_seen = false;
    let mut vlan_from_list = false;
    let mut have_rate = false;
    let mut set_index = |st: &mut VfState, id: u32| {
        if !index_seen {
            st.index = id;
            index_seen = true;
        }
    };
    for nla in NlasIterator::new(value) {
        let nla = nla?;
        match nla.kind() {
            IFLA_VF_SPOOFCHK | IFLA_VF_TRUST => {
                let (id, setting) = vf_u32_pair(&nla)?;
                set_index(&mut st, id);
                let v = (setting != u32::MAX).then_some(setting != 0);
                if nla.kind() == IFLA_VF_SPOOFCHK {
                    st.spoofchk = v;
                } else {
                    st.trust = v;
                }
                continue;
            }
            _ => {}
        }
        match VfInfo::parse(&nla)? {
            VfInfo::Mac(m) => {
                set_index(&mut st, m.vf_id);
                st.mac = MacAddr::from_slice(&m.mac);
            }
            VfInfo::Vlan(v) if !vlan_from_list => {
                set_index(&mut st, v.vf_id);
                st.vlan = VfVlan {
                    vlan: u16::try_from(v.vlan_id).unwrap_or(u16::MAX),
                    qos: u8::try_from(v.qos).unwrap_or(u8::MAX),
                    proto: VlanProto::Dot1Q,
                };
            }
            VfInfo::VlanList(list) => {
                // The kernel reports exactly one entry (the port VLAN); it carries the protocol.
                if let Some(NlVfVlan::Info(v)) = list.first() {
                    set_index(&mut st, v.vf_id);
                    vlan_from_list = true;
                    st.vlan = VfVlan {
                        vlan: u16::try_from(v.vlan_id).unwrap_or(u16::MAX),
                        qos: u8::try_from(v.qos).unwrap_or(u8::MAX),
                        proto: match v.protocol {
                            VlanProtocol::Ieee8021Ad => VlanProto::Dot1Ad,
                            _ => VlanProto::Dot1Q,
                        },
                    };
                }
            }
            VfInfo::Rate(r) => {
                set_index(&mut st, r.vf_id);
                have_rate = true;
                st.min_tx_rate = r.min_tx_rate;
                st.max_tx_rate = r.max_tx_rate;
            }
            VfInfo::TxRate(r) if !have_rate => {
                set_index(&mut st, r.vf_id);
                st.max_tx_rate = r.rate;
            }
            VfInfo::LinkState(l) => {
                set_index(&mut st, l.vf_id);
                st.link_state = match l.state {
                    NlVfLinkState::Auto => Some(VfLinkState::Auto),
                    NlVfLinkState::Enable => Some(VfLinkState::Enable),
                    NlVfLinkState::Disable => Some(VfLinkState::Disable),
                    _ => None,
                };
            }
            _ => {}
        }
    }
    Ok(st)
}

/// Reads `{ u32 vf; u32 setting; }` in host byte order.
fn vf_u32_pair(nla: &NlaBuffer<&[u8]>) -> Result<(u32, u32), DecodeError> {
    let v = nla.value();
    let word = |i: usize| -> Option<u32> {
        let b: [u8; 4] = v.get(i..i + 4)?.try_into().ok()?;
        Some(u32::from_ne_bytes(b))
    };
    match (word(0), word(4)) {
        (Some(id), Some(setting)) => Ok((id, setting)),
        _ => Err(DecodeError::from(format!(
            "IFLA_VF attribute {} of {} bytes, expected 8",
            nla.kind(),
            v.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{DefaultNla, Emitable};
    use netlink_packet_route::link::{
        LinkAttribute, LinkMessage, LinkVfInfo, VfInfoLinkState, VfInfoMac, VfInfoRate,
        VfInfoSpoofCheck, VfInfoTrust, VfInfoTxRate, VfInfoVlan, VfVlanInfo,
    };

    fn payload(vfs: Vec<Vec<VfInfo>>) -> Vec<u8> {
        let mut msg = LinkMessage::default();
        msg.header.index = 3;
        msg.attributes.push(LinkAttribute::IfName("pf0".into()));
        msg.attributes.push(LinkAttribute::Mtu(1500));
        msg.attributes.push(LinkAttribute::VfInfoList(
            vfs.into_iter().map(LinkVfInfo).collect(),
        ));
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        buf
    }

    /// What rtnl_fill_vfinfo sends for a VF: every attribute, legacy and new.
    fn full_vf(id: u32, mac: [u8; 6]) -> Vec<VfInfo> {
        vec![
            VfInfo::Mac(VfInfoMac::new(id, &mac)),
            VfInfo::Vlan(VfInfoVlan::new(id, 100, 3)),
            VfInfo::VlanList(vec![NlVfVlan::Info(VfVlanInfo::new(
                id,
                100,
                3,
                VlanProtocol::Ieee8021Ad,
            ))]),
            VfInfo::TxRate(VfInfoTxRate::new(id, 999)),
            VfInfo::Rate(VfInfoRate::new(id, 10, 1000)),
            VfInfo::SpoofCheck(VfInfoSpoofCheck::new(id, true)),
            VfInfo::LinkState(VfInfoLinkState::new(id, NlVfLinkState::Disable)),
            VfInfo::Trust(VfInfoTrust::new(id, false)),
        ]
    }

    fn unsupported(kind: u16, id: u32) -> VfInfo {
        let mut v = id.to_ne_bytes().to_vec();
        v.extend_from_slice(&u32::MAX.to_ne_bytes());
        VfInfo::Other(DefaultNla::new(kind, v))
    }

    #[test]
    fn a_link_without_vfs_has_an_empty_table() {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName("veth0".into()));
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        assert_eq!(parse_vf_states(&buf).unwrap(), vec![]);
    }

    #[test]
    fn decodes_every_field_of_a_vf() {
        let mac = [0x02, 0, 0, 0, 0, 0x11];
        let vfs = parse_vf_states(&payload(vec![full_vf(0, mac)])).unwrap();
        assert_eq!(
            vfs,
            vec![VfState {
                index: 0,
                mac: Some(MacAddr(mac)),
                vlan: VfVlan {
                    vlan: 100,
                    qos: 3,
                    proto: VlanProto::Dot1Ad
                },
                min_tx_rate: 10,
                max_tx_rate: 1000,
                spoofchk: Some(true),
                trust: Some(false),
                link_state: Some(VfLinkState::Disable),
            }]
        );
    }

    #[test]
    fn several_vfs_keep_their_own_index() {
        let vfs = parse_vf_states(&payload(vec![
            full_vf(0, [2, 0, 0, 0, 0, 1]),
            full_vf(1, [2, 0, 0, 0, 0, 2]),
            full_vf(5, [2, 0, 0, 0, 0, 3]),
        ]))
        .unwrap();
        let idx: Vec<_> = vfs.iter().map(|v| v.index).collect();
        assert_eq!(idx, [0, 1, 5]);
        assert_eq!(vfs[2].mac, Some(MacAddr([2, 0, 0, 0, 0, 3])));
    }

    #[test]
    fn unreported_spoofchk_and_trust_are_none_not_false() {
        let vf = vec![
            VfInfo::Mac(VfInfoMac::new(2, &[0; 6])),
            unsupported(IFLA_VF_SPOOFCHK, 2),
            unsupported(IFLA_VF_TRUST, 2),
        ];
        let vfs = parse_vf_states(&payload(vec![vf])).unwrap();
        assert_eq!(vfs[0].index, 2);
        assert_eq!(vfs[0].spoofchk, None);
        assert_eq!(vfs[0].trust, None);
        // An all-zero MAC is reported as such: "no admin MAC set".
        assert!(vfs[0].mac.is_some_and(|m| m.is_zero()));
    }

    #[test]
    fn legacy_attributes_are_the_fallback() {
        // Old kernels: no IFLA_VF_VLAN_LIST, no IFLA_VF_RATE.
        let vf = vec![
            VfInfo::Mac(VfInfoMac::new(0, &[2, 0, 0, 0, 0, 9])),
            VfInfo::Vlan(VfInfoVlan::new(0, 42, 5)),
            VfInfo::TxRate(VfInfoTxRate::new(0, 300)),
        ];
        let st = &parse_vf_states(&payload(vec![vf])).unwrap()[0];
        assert_eq!(
            st.vlan,
            VfVlan {
                vlan: 42,
                qos: 5,
                proto: VlanProto::Dot1Q
            }
        );
        assert_eq!((st.min_tx_rate, st.max_tx_rate), (0, 300));
        assert_eq!((st.spoofchk, st.trust, st.link_state), (None, None, None));
    }

    #[test]
    fn vlan_list_wins_over_legacy_vlan_in_any_order() {
        let vf = vec![
            VfInfo::VlanList(vec![NlVfVlan::Info(VfVlanInfo::new(
                0,
                7,
                1,
                VlanProtocol::Ieee8021Q,
            ))]),
            VfInfo::Vlan(VfInfoVlan::new(0, 8, 2)),
            VfInfo::Rate(VfInfoRate::new(0, 0, 50)),
            VfInfo::TxRate(VfInfoTxRate::new(0, 60)),
        ];
        let st = &parse_vf_states(&payload(vec![vf])).unwrap()[0];
        assert_eq!((st.vlan.vlan, st.vlan.qos), (7, 1));
        assert_eq!(st.max_tx_rate, 50);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        assert!(parse_vf_states(&[0u8; 3]).is_err());
        let mut p = payload(vec![full_vf(0, [2, 0, 0, 0, 0, 1])]);
        // Cut into the middle of the VF list: the list's length now overruns the buffer.
        p.truncate(p.len() - 10);
        assert!(parse_vf_states(&p).is_err());
    }
}

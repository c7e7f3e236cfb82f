//! The emulated embedded switch: a VF's port VLAN and spoof check, built from bridge features
//! and applied per VF with a handful of netlink requests (this kernel has neither 802.1Q devices
//! nor bridge VLAN filtering, and forking a firewall tool per VF attribute cost tens of ms).
//!
//! - **VLAN groups are bridges.** VLAN 0 (untagged) is the PF bridge `<pf>` itself; 802.1Q VLAN
//!   `v` is the bridge `<pf>b<vvv>` and 802.1ad VLAN `v` the bridge `<pf>s<vvv>` (`vvv` = three
//!   hex digits, so every name fits in 15 bytes), created on first use in the PF's link group.
//!   Setting a VF's VLAN moves its representor to that bridge, so frames only ever meet the
//!   representors of the same VLAN (and protocol: an S-tag and a C-tag with the same ID never
//!   meet). QoS is recorded only. Emptied VLAN bridges stay until the NIC is torn down, like a
//!   real eswitch's VLAN table.
//! - **Spoof check is a locked port.** While the VF has an admin MAC, the representor carries a
//!   static FDB entry for it; with spoofchk on the port is also locked (and stops learning), so
//!   the bridge drops every frame the VF sends from any other source MAC.

use super::{EmulateError, EmulatedVf, link_group, pf_mac};
use crate::mac::MacAddr;
use crate::netlink::{Netlink, NetlinkError};
use crate::vf::{VfState, VfVlan, VlanProto};

/// The bridge holding the representors of VLAN group `vlan` of PF `pf`.
pub fn vlan_bridge_name(pf: &str, vlan: VfVlan) -> String {
    match (vlan.vlan, vlan.proto) {
        (0, _) => pf.to_string(),
        (v, VlanProto::Dot1Q) => format!("{pf}b{v:03x}"),
        (v, VlanProto::Dot1Ad) => format!("{pf}s{v:03x}"),
    }
}

/// A VLAN bridge's stable MAC: the PF's with the low 13 bits replaced by protocol and VLAN
/// (`…:2v:vv` for 802.1Q, `…:3v:vv` for 802.1ad), distinct from the VFs' and representors'.
fn vlan_bridge_mac(pf: &str, vlan: VfVlan) -> MacAddr {
    let mut m = pf_mac(pf);
    let ad = u8::from(vlan.proto == VlanProto::Dot1Ad);
    m.0[4] = 0x20 | (ad << 4) | ((vlan.vlan >> 8) as u8 & 0x0f);
    m.0[5] = (vlan.vlan & 0xff) as u8;
    m
}

/// The admin MAC a state pins on the port, if any (all-zero means none).
fn admin_mac(state: &VfState) -> Option<MacAddr> {
    state.mac.filter(|m| !m.is_zero())
}

/// The index of the bridge for `vlan`, creating a VLAN bridge on first use. The PF bridge must
/// exist.
async fn group_bridge(nl: &Netlink, pf: &str, vlan: VfVlan) -> Result<u32, EmulateError> {
    let name = vlan_bridge_name(pf, vlan);
    if let Some(l) = nl.topology_link(&name).await? {
        return Ok(l.index);
    }
    if vlan.vlan == 0 {
        return Err(EmulateError::Netlink(NetlinkError::NotFound {
            op: "find PF bridge",
            target: name,
        }));
    }
    match nl
        .create_bridge(&name, vlan_bridge_mac(pf, vlan), link_group(pf))
        .await
    {
        // Another process created it between our lookup and our request.
        Err(e) if e.errno() == Some(libc::EEXIST) => {}
        r => r?,
    }
    match nl.topology_link(&name).await? {
        Some(l) => Ok(l.index),
        None => Err(EmulateError::Netlink(NetlinkError::NotFound {
            op: "find VLAN bridge",
            target: name,
        })),
    }
}

/// Puts VF `vf`'s representor where `new` says: on its VLAN group's bridge, with a static FDB
/// entry for the admin MAC and locked while spoofchk is on. `old` is what was applied before
/// (its admin MAC's entry is dropped when the MAC changes). A VF whose representor is gone is
/// skipped: [`super::revive_vf`] applies its state when it comes back.
pub(crate) async fn apply_port(
    nl: &Netlink,
    pf: &str,
    vf: &EmulatedVf,
    old: &VfState,
    new: &VfState,
) -> Result<(), EmulateError> {
    let Some(rep) = nl.topology_link(&vf.representor).await? else {
        return Ok(());
    };
    let bridge = group_bridge(nl, pf, new.vlan).await?;
    // Leaving a bridge flushes the port's FDB entries and resets its flags.
    let moved = rep.master != Some(bridge);
    if moved {
        nl.set_master_by_name(&vf.representor, bridge).await?;
    }
    let mac = admin_mac(new);
    if let Some(stale) = admin_mac(old)
        && !moved
        && Some(stale) != mac
    {
        nl.fdb_del(rep.index, stale).await?;
    }
    if let Some(mac) = mac {
        nl.fdb_add_static(rep.index, mac).await?;
    }
    let locked = mac.is_some() && new.spoofchk.unwrap_or(true);
    // A port that just joined a bridge starts unlocked (the kernel gives it fresh flags), so
    // unlocking it again would be one more RTNL round trip for nothing on every VLAN change.
    if locked || !moved {
        nl.set_bridge_port_locked(rep.index, locked).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vlan(vlan: u16, proto: VlanProto) -> VfVlan {
        VfVlan {
            vlan,
            qos: 0,
            proto,
        }
    }

    #[test]
    fn vlan_bridges_are_named_per_protocol_and_fit_ifnamsiz() {
        assert_eq!(vlan_bridge_name("e0", vlan(0, VlanProto::Dot1Ad)), "e0");
        assert_eq!(
            vlan_bridge_name("e0", vlan(100, VlanProto::Dot1Q)),
            "e0b064"
        );
        assert_eq!(
            vlan_bridge_name("e0", vlan(100, VlanProto::Dot1Ad)),
            "e0s064"
        );
        assert_eq!(
            vlan_bridge_name("abcdefghijk", vlan(4095, VlanProto::Dot1Q)).len(),
            15
        );
    }

    #[test]
    fn vlan_bridge_macs_are_distinct_per_group() {
        let q = vlan_bridge_mac("e0", vlan(0x123, VlanProto::Dot1Q));
        let ad = vlan_bridge_mac("e0", vlan(0x123, VlanProto::Dot1Ad));
        assert_eq!((q.0[4], q.0[5]), (0x21, 0x23));
        assert_eq!((ad.0[4], ad.0[5]), (0x31, 0x23));
        assert_eq!(q.0[..4], pf_mac("e0").0[..4]);
    }
}

//! The traits a VF-control backend implements: configuring a VF through its PF, and finding the
//! VF's netdev. Upper layers hold a backend through these and never ask which NIC it drives.

use std::future::Future;

use super::{VfError, VfErrorKind, VfLinkState, VfState, VfVlan};
use crate::mac::MacAddr;
use crate::netlink::{LinkInfo, Netlink, NetlinkError};
use crate::pci::PciAddr;

/// Configures VFs through their PF. One attribute per call, so an error names exactly what the
/// device refused and rollback can undo exactly what was done.
///
/// `pf` is the PF's netdev name in the host network namespace.
pub trait VfControl {
    /// Reads every VF's current configuration from the PF.
    fn vf_states(&self, pf: &str) -> impl Future<Output = Result<Vec<VfState>, VfError>>;
    /// Reads VF `vf`'s current configuration. The default picks it out of
    /// [`VfControl::vf_states`] (a PF reports its whole VF table at once); a backend that can read
    /// one VF alone overrides it, so planning an attachment costs the same for 8 VFs as for 256.
    fn vf_state(&self, pf: &str, vf: u32) -> impl Future<Output = Result<VfState, VfError>> {
        async move {
            self.vf_states(pf)
                .await?
                .into_iter()
                .find(|s| s.index == vf)
                .ok_or_else(|| VfError::new(pf, vf, "read VF state", VfErrorKind::NotReported))
        }
    }
    /// Sets the admin MAC the PF assigns to VF `vf` (IFLA_VF_MAC).
    fn set_mac(&self, pf: &str, vf: u32, mac: MacAddr)
    -> impl Future<Output = Result<(), VfError>>;
    /// Sets VF `vf`'s port VLAN: tag, priority and protocol (VLAN 0 clears it).
    fn set_vlan(
        &self,
        pf: &str,
        vf: u32,
        vlan: VfVlan,
    ) -> impl Future<Output = Result<(), VfError>>;
    /// Rates in Mbit/s; 0 = unlimited.
    fn set_rate(
        &self,
        pf: &str,
        vf: u32,
        min_mbps: u32,
        max_mbps: u32,
    ) -> impl Future<Output = Result<(), VfError>>;
    /// Turns spoof checking of VF `vf`'s source MACs on or off.
    fn set_spoofchk(
        &self,
        pf: &str,
        vf: u32,
        on: bool,
    ) -> impl Future<Output = Result<(), VfError>>;
    /// Marks VF `vf` trusted (may change its MAC, go promiscuous) or not.
    fn set_trust(&self, pf: &str, vf: u32, on: bool) -> impl Future<Output = Result<(), VfError>>;
    /// Forces VF `vf`'s link up or down, or lets it follow the PF (`auto`).
    fn set_link_state(
        &self,
        pf: &str,
        vf: u32,
        state: VfLinkState,
    ) -> impl Future<Output = Result<(), VfError>>;
}

/// Where VF `vf` (PCI function `pci`) of PF `pf` has its netdev, and how to get it back. The
/// answers differ per NIC: a real VF's netdev names its PCI function (in sysfs, and as its parent
/// device in any namespace) and returns to the host when its namespace is deleted; an emulated
/// VF is a veth known by its name and its representor, destroyed with its namespace.
pub trait VfNetdevs {
    /// The VF's netdev in the host namespace, under whatever name it has there; `Ok(None)` when
    /// it is not in the host namespace (in a pod, or gone).
    fn host_netdev(
        &self,
        pf: &str,
        vf: u32,
        pci: PciAddr,
    ) -> impl Future<Output = Result<Option<LinkInfo>, VfError>>;
    /// Brings back a VF netdev that died with a deleted namespace: re-creates an emulated VF (a
    /// no-op while it is alive anywhere). A real VF comes back by itself, so this does nothing.
    /// Look the VF up again afterwards.
    fn revive(&self, pf: &str, vf: u32) -> impl Future<Output = Result<(), VfError>>;
    /// The name the VF's netdev must have in the host namespace, when the backend knows its
    /// VFs by name (the emulated NIC); `None` when any name will do (a real VF is known by its
    /// PCI function).
    fn home_name(&self, pf: &str, vf: u32) -> Option<String>;
    /// The name of the link in `inside`'s namespace that is provably this VF, by an identity a
    /// pod cannot change (not its name or MAC, which a pod may share with its own interfaces).
    /// `Ok(None)` when no link there can be proven to be the VF.
    fn netdev_in(
        &self,
        inside: &Netlink,
        pf: &str,
        vf: u32,
        pci: PciAddr,
    ) -> impl Future<Output = Result<Option<String>, NetlinkError>>;
}

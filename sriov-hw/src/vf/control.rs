//! The traits a VF-control backend implements: configuring a VF through its PF, and finding the
//! VF's netdev. Upper layers hold a backend through these and never ask which NIC it drives.

use std::future::Future;

use super::{VfAttr, VfChange, VfError, VfErrorKind, VfLinkState, VfState, VfVlan};
use crate::mac::MacAddr;
use crate::netlink::{LinkInfo, Netlink, NetlinkError};
use crate::pci::PciAddr;

/// Configures VFs through their PF. The setters take one attribute each, so an error names
/// exactly what the device refused; [`VfControl::configure`] takes several at once and still
/// names the attribute that failed.
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
    /// Sets every attribute `c` names, stopping at the first the device refuses, which the error
    /// names. The default is [`configure_each`]; a backend with a transaction overrides it to pay
    /// for one (and falls back to [`configure_each`] to tell which attribute a failed one was
    /// about). Attributes before the refused one may have been set.
    fn configure(
        &self,
        pf: &str,
        vf: u32,
        c: &VfChange,
    ) -> impl Future<Output = Result<(), (VfAttr, VfError)>> {
        configure_each(self, pf, vf, c)
    }
}

/// Sets the attributes of `c` one by one, in the order the kernel applies an IFLA_VF_INFO (MAC,
/// VLAN, rate, spoof check, link state, trust), stopping at the first refused.
pub async fn configure_each<V: VfControl + ?Sized>(
    vfs: &V,
    pf: &str,
    vf: u32,
    c: &VfChange,
) -> Result<(), (VfAttr, VfError)> {
    if let Some(mac) = c.mac {
        vfs.set_mac(pf, vf, mac)
            .await
            .map_err(|e| (VfAttr::Mac, e))?;
    }
    if let Some(vlan) = c.vlan {
        vfs.set_vlan(pf, vf, vlan)
            .await
            .map_err(|e| (VfAttr::Vlan, e))?;
    }
    if let Some((min, max)) = c.rate {
        vfs.set_rate(pf, vf, min, max)
            .await
            .map_err(|e| (VfAttr::Rate, e))?;
    }
    if let Some(on) = c.spoofchk {
        vfs.set_spoofchk(pf, vf, on)
            .await
            .map_err(|e| (VfAttr::Spoofchk, e))?;
    }
    if let Some(state) = c.link_state {
        vfs.set_link_state(pf, vf, state)
            .await
            .map_err(|e| (VfAttr::LinkState, e))?;
    }
    if let Some(on) = c.trust {
        vfs.set_trust(pf, vf, on)
            .await
            .map_err(|e| (VfAttr::Trust, e))?;
    }
    Ok(())
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

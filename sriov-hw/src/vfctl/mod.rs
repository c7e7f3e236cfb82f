//! VF control: the backend for a PF, chosen by its driver.
//!
//! Real drivers (ice, i40e, mlx5_core, igb…) are driven through IFLA_VF_* attributes on the PF
//! ([`PfNetlink`]); the emulated NIC gets bridge and tc equivalents ([`Emulated`], which lives
//! with the emulated NIC). [`NicKind::for_driver`] is the one place that tells them apart by
//! driver name; callers hold a [`Backend`] (or ask a [`NicKind`]) and never ask which one it is.
//!
//! The VF model, the errors and the backend traits are in [`crate::vf`]; they are re-exported
//! here, where callers have always found them.

mod pf_netlink;

use std::path::Path;

use crate::mac::MacAddr;
use crate::netlink::{LinkInfo, Netlink, NetlinkError};
use crate::pci::PciAddr;

pub use crate::emulated::{EMULATED_DRIVER, Emulated};
pub use crate::vf::{
    VfAttr, VfChange, VfControl, VfError, VfErrorKind, VfLinkState, VfNetdevs, VfState, VfVlan,
    VlanProto,
};
pub use pf_netlink::PfNetlink;

/// Which kind of NIC a PF is, from its driver: what decides the VF backend and the answers that
/// differ between real hardware and the emulated NIC without needing a connection (PF health).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NicKind {
    /// A real SR-IOV NIC: VF control through the PF's netlink VF table.
    Hardware,
    /// The emulated NIC (PF driver [`EMULATED_DRIVER`]).
    Emulated,
}

impl NicKind {
    /// The kind of NIC whose PF is bound to `driver` (any name but [`EMULATED_DRIVER`],
    /// including none, is hardware).
    pub fn for_driver(driver: &str) -> Self {
        if driver == EMULATED_DRIVER {
            NicKind::Emulated
        } else {
            NicKind::Hardware
        }
    }

    /// Whether the VFs of a PF whose netdev is in state `link` can carry traffic (the rule of
    /// [`PfNetlink::pf_link_healthy`] or [`Emulated::pf_link_healthy`]).
    pub fn pf_link_healthy(self, link: &LinkInfo) -> bool {
        match self {
            NicKind::Hardware => PfNetlink::pf_link_healthy(link),
            NicKind::Emulated => Emulated::pf_link_healthy(link),
        }
    }
}

/// The backend for a PF, chosen by its driver. This is the type upper layers hold.
pub enum Backend {
    /// A real NIC, configured through the PF's netlink VF table.
    Netlink(PfNetlink),
    /// The emulated NIC, configured through its bridge and tc.
    Emulated(Emulated),
}

impl Backend {
    /// Picks the backend for a PF bound to `driver` (see [`NicKind::for_driver`]), using `nl`, a
    /// connection in the host namespace. `sysfs_root` is where a real VF's netdev is looked up
    /// and where the emulated NIC keeps its register files.
    pub fn for_driver(driver: &str, nl: Netlink, sysfs_root: &Path) -> Self {
        match NicKind::for_driver(driver) {
            NicKind::Emulated => Backend::Emulated(Emulated::new(nl, sysfs_root)),
            NicKind::Hardware => Backend::Netlink(PfNetlink::new(nl, sysfs_root)),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Backend::Netlink($b) => $e.await,
            Backend::Emulated($b) => $e.await,
        }
    };
}

impl VfControl for Backend {
    async fn vf_states(&self, pf: &str) -> Result<Vec<VfState>, VfError> {
        dispatch!(self, b => b.vf_states(pf))
    }
    async fn vf_state(&self, pf: &str, vf: u32) -> Result<VfState, VfError> {
        dispatch!(self, b => b.vf_state(pf, vf))
    }
    async fn set_mac(&self, pf: &str, vf: u32, mac: MacAddr) -> Result<(), VfError> {
        dispatch!(self, b => b.set_mac(pf, vf, mac))
    }
    async fn set_vlan(&self, pf: &str, vf: u32, vlan: VfVlan) -> Result<(), VfError> {
        dispatch!(self, b => b.set_vlan(pf, vf, vlan))
    }
    async fn set_rate(
        &self,
        pf: &str,
        vf: u32,
        min_mbps: u32,
        max_mbps: u32,
    ) -> Result<(), VfError> {
        dispatch!(self, b => b.set_rate(pf, vf, min_mbps, max_mbps))
    }
    async fn set_spoofchk(&self, pf: &str, vf: u32, on: bool) -> Result<(), VfError> {
        dispatch!(self, b => b.set_spoofchk(pf, vf, on))
    }
    async fn set_trust(&self, pf: &str, vf: u32, on: bool) -> Result<(), VfError> {
        dispatch!(self, b => b.set_trust(pf, vf, on))
    }
    async fn set_link_state(&self, pf: &str, vf: u32, state: VfLinkState) -> Result<(), VfError> {
        dispatch!(self, b => b.set_link_state(pf, vf, state))
    }
    async fn configure(&self, pf: &str, vf: u32, c: &VfChange) -> Result<(), (VfAttr, VfError)> {
        dispatch!(self, b => b.configure(pf, vf, c))
    }
}

impl VfNetdevs for Backend {
    async fn host_netdev(
        &self,
        pf: &str,
        vf: u32,
        pci: PciAddr,
    ) -> Result<Option<LinkInfo>, VfError> {
        dispatch!(self, b => b.host_netdev(pf, vf, pci))
    }
    async fn revive(&self, pf: &str, vf: u32) -> Result<(), VfError> {
        dispatch!(self, b => b.revive(pf, vf))
    }
    fn home_name(&self, pf: &str, vf: u32) -> Option<String> {
        match self {
            Backend::Netlink(b) => b.home_name(pf, vf),
            Backend::Emulated(b) => b.home_name(pf, vf),
        }
    }
    async fn netdev_in(
        &self,
        inside: &Netlink,
        pf: &str,
        vf: u32,
        pci: PciAddr,
    ) -> Result<Option<String>, NetlinkError> {
        dispatch!(self, b => b.netdev_in(inside, pf, vf, pci))
    }
}

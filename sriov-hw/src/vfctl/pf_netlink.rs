//! VF control for real PF drivers: IFLA_VF_* attributes on the PF, through the netlink wrapper.
//! A real VF's netdev is found by its PCI function: in sysfs in the host, as its parent device
//! in a pod's namespace.

use std::path::Path;

use crate::discovery;
use crate::mac::MacAddr;
use crate::netlink::{LinkInfo, Netlink, NetlinkError};
use crate::pci::PciAddr;
use crate::sysfs::Sysfs;
use crate::vf::{
    VfAttr, VfChange, VfControl, VfError, VfErrorKind, VfLinkState, VfNetdevs, VfState, VfVlan,
    configure_each,
};

/// Drives VFs through the PF's netlink VF table.
pub struct PfNetlink {
    nl: Netlink,
    sysfs: Sysfs,
}

impl PfNetlink {
    /// A backend using `nl` (a connection in the host namespace, where the PF is) that finds
    /// VF netdevs in the sysfs tree at `sysfs_root`.
    pub fn new(nl: Netlink, sysfs_root: &Path) -> Self {
        PfNetlink {
            nl,
            sysfs: Sysfs::new(sysfs_root),
        }
    }

    /// A real PF's VFs can carry traffic iff its netdev is administratively up (`IFF_UP`) *and*
    /// has carrier (`IFF_LOWER_UP`): a pulled cable or a switch port down stops every VF.
    pub fn pf_link_healthy(link: &LinkInfo) -> bool {
        link.up && link.lower_up
    }
}

impl VfControl for PfNetlink {
    async fn vf_states(&self, pf: &str) -> Result<Vec<VfState>, VfError> {
        self.nl.vf_info(pf).await
    }
    async fn set_mac(&self, pf: &str, vf: u32, mac: MacAddr) -> Result<(), VfError> {
        self.nl.set_vf_mac(pf, vf, mac).await
    }
    async fn set_vlan(&self, pf: &str, vf: u32, vlan: VfVlan) -> Result<(), VfError> {
        self.nl.set_vf_vlan(pf, vf, vlan).await
    }
    async fn set_rate(
        &self,
        pf: &str,
        vf: u32,
        min_mbps: u32,
        max_mbps: u32,
    ) -> Result<(), VfError> {
        self.nl.set_vf_rate(pf, vf, min_mbps, max_mbps).await
    }
    async fn set_spoofchk(&self, pf: &str, vf: u32, on: bool) -> Result<(), VfError> {
        self.nl.set_vf_spoofchk(pf, vf, on).await
    }
    async fn set_trust(&self, pf: &str, vf: u32, on: bool) -> Result<(), VfError> {
        self.nl.set_vf_trust(pf, vf, on).await
    }
    async fn set_link_state(&self, pf: &str, vf: u32, state: VfLinkState) -> Result<(), VfError> {
        self.nl.set_vf_link_state(pf, vf, state).await
    }
    /// One RTM_SETLINK carrying every attribute. The kernel stops at the first the driver
    /// refuses without saying which, so a refusal is retried one attribute at a time (re-setting
    /// the ones already applied is harmless) to name it.
    async fn configure(&self, pf: &str, vf: u32, c: &VfChange) -> Result<(), (VfAttr, VfError)> {
        match self.nl.set_vf_many(pf, vf, c).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "VF configuration refused as a whole; one attribute at a time");
                configure_each(self, pf, vf, c).await
            }
        }
    }
}

impl VfNetdevs for PfNetlink {
    /// The first of the function's netdev names in sysfs (sorted) that is a link in the host
    /// namespace: sysfs follows renames, so a VF back from a pod under its pod-side name is found.
    async fn host_netdev(
        &self,
        pf: &str,
        vf: u32,
        pci: PciAddr,
    ) -> Result<Option<LinkInfo>, VfError> {
        const OP: &str = "look up VF netdev";
        let names = discovery::vf_netdevs(&self.sysfs, pci)
            .map_err(|e| VfError::new(pf, vf, OP, VfErrorKind::Sysfs(e.to_string())))?;
        for n in names {
            let link = self
                .nl
                .link_by_name(&n)
                .await
                .map_err(|e| VfError::new(pf, vf, OP, e))?;
            if link.is_some() {
                return Ok(link);
            }
        }
        Ok(None)
    }

    /// Nothing to do: the kernel returns a VF to the host when its namespace is deleted.
    async fn revive(&self, _pf: &str, _vf: u32) -> Result<(), VfError> {
        Ok(())
    }

    fn home_name(&self, _pf: &str, _vf: u32) -> Option<String> {
        None
    }

    /// The link whose parent device is the VF's PCI function, in any namespace.
    async fn netdev_in(
        &self,
        inside: &Netlink,
        _pf: &str,
        _vf: u32,
        pci: PciAddr,
    ) -> Result<Option<String>, NetlinkError> {
        let pci = pci.to_string();
        Ok(inside
            .list_links()
            .await?
            .into_iter()
            .find(|l| {
                l.parent_bus.as_deref() == Some("pci") && l.parent_dev.as_deref() == Some(&pci)
            })
            .map(|l| l.name))
    }
}

//! VF control for the emulated NIC (placeholder, H3).

use std::path::{Path, PathBuf};

use super::{VfControl, VfError, VfLinkState, VfState, VfVlan};
use crate::mac::MacAddr;
use crate::netlink::Netlink;

/// Drives the emulated NIC's "VFs" with bridge, nftables and tc equivalents.
pub struct Emulated {
    #[allow(dead_code)]
    nl: Netlink,
    #[allow(dead_code)]
    sysfs_root: PathBuf,
}

impl Emulated {
    pub fn new(nl: Netlink, sysfs_root: &Path) -> Self {
        Emulated {
            nl,
            sysfs_root: sysfs_root.to_path_buf(),
        }
    }
}

impl VfControl for Emulated {
    async fn vf_states(&self, _pf: &str) -> Result<Vec<VfState>, VfError> {
        todo!("H3")
    }
    async fn set_mac(&self, _pf: &str, _vf: u32, _mac: MacAddr) -> Result<(), VfError> {
        todo!("H3")
    }
    async fn set_vlan(&self, _pf: &str, _vf: u32, _vlan: VfVlan) -> Result<(), VfError> {
        todo!("H3")
    }
    async fn set_rate(&self, _pf: &str, _vf: u32, _min: u32, _max: u32) -> Result<(), VfError> {
        todo!("H3")
    }
    async fn set_spoofchk(&self, _pf: &str, _vf: u32, _on: bool) -> Result<(), VfError> {
        todo!("H3")
    }
    async fn set_trust(&self, _pf: &str, _vf: u32, _on: bool) -> Result<(), VfError> {
        todo!("H3")
    }
    async fn set_link_state(&self, _pf: &str, _vf: u32, _s: VfLinkState) -> Result<(), VfError> {
        todo!("H3")
    }
}

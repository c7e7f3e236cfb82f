//! VF control for real PF drivers: IFLA_VF_* attributes on the PF, through the netlink wrapper.

use super::{VfControl, VfError, VfLinkState, VfState, VfVlan};
use crate::mac::MacAddr;
use crate::netlink::Netlink;

/// Drives VFs through the PF's netlink VF table.
pub struct PfNetlink {
    nl: Netlink,
}

impl PfNetlink {
    pub fn new(nl: Netlink) -> Self {
        PfNetlink { nl }
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
}

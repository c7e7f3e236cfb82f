//! VF operations on a PF: IFLA_VFINFO_LIST reads and one-attribute IFLA_VF_* writes (placeholder, H2).

use super::Netlink;
use crate::mac::MacAddr;
use crate::vfctl::{VfError, VfLinkState, VfState, VfVlan};

impl Netlink {
    /// Reads every VF's configuration from the PF (RTM_GETLINK with RTEXT_FILTER_VF).
    pub async fn vf_info(&self, pf: &str) -> Result<Vec<VfState>, VfError> {
        let _ = (self.handle(), pf);
        todo!("H2")
    }
    pub async fn set_vf_mac(&self, pf: &str, vf: u32, mac: MacAddr) -> Result<(), VfError> {
        let _ = (pf, vf, mac);
        todo!("H2")
    }
    pub async fn set_vf_vlan(&self, pf: &str, vf: u32, vlan: VfVlan) -> Result<(), VfError> {
        let _ = (pf, vf, vlan);
        todo!("H2")
    }
    pub async fn set_vf_rate(
        &self,
        pf: &str,
        vf: u32,
        min_mbps: u32,
        max_mbps: u32,
    ) -> Result<(), VfError> {
        let _ = (pf, vf, min_mbps, max_mbps);
        todo!("H2")
    }
    pub async fn set_vf_spoofchk(&self, pf: &str, vf: u32, on: bool) -> Result<(), VfError> {
        let _ = (pf, vf, on);
        todo!("H2")
    }
    pub async fn set_vf_trust(&self, pf: &str, vf: u32, on: bool) -> Result<(), VfError> {
        let _ = (pf, vf, on);
        todo!("H2")
    }
    pub async fn set_vf_link_state(
        &self,
        pf: &str,
        vf: u32,
        state: VfLinkState,
    ) -> Result<(), VfError> {
        let _ = (pf, vf, state);
        todo!("H2")
    }
}

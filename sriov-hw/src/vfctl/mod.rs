//! VF control: one interface over "configure VF n of PF p", whatever implements it.
//!
//! Real drivers (ice, i40e, mlx5_core, igb…) are driven through IFLA_VF_* attributes on the PF
//! ([`PfNetlink`]); the emulated NIC gets bridge and tc equivalents ([`Emulated`]). Callers pick
//! a backend with [`Backend::for_driver`] and never ask which one they hold.

mod emulated;
mod pf_netlink;

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;
use crate::netlink::NetlinkError;

pub use emulated::Emulated;
pub use pf_netlink::PfNetlink;

/// The PF driver name that marks an emulated NIC in our synthetic sysfs tree.
pub const EMULATED_DRIVER: &str = "sriov-emu";

/// VLAN tag protocol for a VF's port VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VlanProto {
    /// 802.1Q (0x8100), the default.
    #[default]
    #[serde(rename = "802.1Q")]
    Dot1Q,
    /// 802.1ad (0x88a8), QinQ outer tag.
    #[serde(rename = "802.1ad")]
    Dot1Ad,
}

impl VlanProto {
    /// The ethertype the kernel expects in IFLA_VF_VLAN_INFO.
    pub fn ethertype(self) -> u16 {
        match self {
            VlanProto::Dot1Q => 0x8100,
            VlanProto::Dot1Ad => 0x88a8,
        }
    }
}

/// Administrative link state of a VF as the PF driver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VfLinkState {
    /// Follow the PF's link.
    Auto,
    /// Always up.
    Enable,
    /// Always down.
    Disable,
}

/// The VLAN settings of a VF (VLAN 0 = untagged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VfVlan {
    pub vlan: u16,
    pub qos: u8,
    pub proto: VlanProto,
}

/// What the PF reports for one VF: also the "original configuration" the ledger stores and DEL
/// restores. Fields the driver does not report are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VfState {
    pub index: u32,
    pub mac: Option<MacAddr>,
    pub vlan: VfVlan,
    /// Mbit/s, 0 = unlimited.
    pub min_tx_rate: u32,
    /// Mbit/s, 0 = unlimited.
    pub max_tx_rate: u32,
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    pub link_state: Option<VfLinkState>,
}

/// Why a VF operation failed. Always names the PF, the VF and the operation, because an operator
/// reading a CNI error has nothing else to go on.
#[derive(Debug, thiserror::Error)]
#[error("PF {pf} VF {vf}: {op} failed: {source}")]
pub struct VfError {
    pub pf: String,
    pub vf: u32,
    pub op: &'static str,
    #[source]
    pub source: VfErrorKind,
}

/// The underlying cause of a [`VfError`].
#[derive(Debug, thiserror::Error)]
pub enum VfErrorKind {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("not supported by this device: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Emulation(String),
    /// The PF's VF table has no entry for the VF.
    #[error("the PF does not report this VF")]
    NotReported,
}

impl VfError {
    /// Builds an error for operation `op` on VF `vf` of `pf`.
    pub fn new(pf: &str, vf: u32, op: &'static str, source: impl Into<VfErrorKind>) -> Self {
        VfError {
            pf: pf.to_string(),
            vf,
            op,
            source: source.into(),
        }
    }

    /// The kernel's errno, when the kernel refused (EOPNOTSUPP, EINVAL…).
    pub fn errno(&self) -> Option<i32> {
        match &self.source {
            VfErrorKind::Netlink(e) => e.errno(),
            _ => None,
        }
    }
}

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
    fn set_mac(&self, pf: &str, vf: u32, mac: MacAddr)
    -> impl Future<Output = Result<(), VfError>>;
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
    fn set_spoofchk(
        &self,
        pf: &str,
        vf: u32,
        on: bool,
    ) -> impl Future<Output = Result<(), VfError>>;
    fn set_trust(&self, pf: &str, vf: u32, on: bool) -> impl Future<Output = Result<(), VfError>>;
    fn set_link_state(
        &self,
        pf: &str,
        vf: u32,
        state: VfLinkState,
    ) -> impl Future<Output = Result<(), VfError>>;
}

/// The backend for a PF, chosen by its driver. This is the type upper layers hold.
pub enum Backend {
    Netlink(PfNetlink),
    Emulated(Emulated),
}

impl Backend {
    /// Picks the backend for a PF bound to `driver`; `sysfs_root` locates the emulated NIC's
    /// register files when the driver is [`EMULATED_DRIVER`].
    pub fn for_driver(
        driver: &str,
        nl: crate::netlink::Netlink,
        sysfs_root: &std::path::Path,
    ) -> Self {
        if driver == EMULATED_DRIVER {
            Backend::Emulated(Emulated::new(nl, sysfs_root))
        } else {
            Backend::Netlink(PfNetlink::new(nl))
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
}

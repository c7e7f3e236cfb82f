//! Why a VF operation failed, whichever backend ran it.

use crate::netlink::NetlinkError;

/// Why a VF operation failed. Always names the PF, the VF and the operation, because an operator
/// reading a CNI error has nothing else to go on.
#[derive(Debug, thiserror::Error)]
#[error("PF {pf} VF {vf}: {op} failed: {source}")]
pub struct VfError {
    /// The PF's netdev name in the host namespace.
    pub pf: String,
    /// The VF's index on that PF.
    pub vf: u32,
    /// What was being done (`"set VF VLAN"`…), for the message.
    pub op: &'static str,
    /// What went wrong underneath.
    #[source]
    pub source: VfErrorKind,
}

/// The underlying cause of a [`VfError`].
#[derive(Debug, thiserror::Error)]
pub enum VfErrorKind {
    /// The kernel refused or the netlink socket failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// The device cannot do what was asked (e.g. a minimum rate on the emulated NIC); the text says
    /// what.
    #[error("not supported by this device: {0}")]
    Unsupported(String),
    /// The emulated NIC's bridge or tc equivalent of the operation failed (or got an invalid
    /// argument).
    #[error("{0}")]
    Emulation(String),
    /// The VF's sysfs entries could not be read (finding its netdev by PCI address).
    #[error("{0}")]
    Sysfs(String),
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

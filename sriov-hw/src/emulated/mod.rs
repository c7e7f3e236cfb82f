//! The emulated SR-IOV NIC (veth fallback mode, DESIGN.md §3).
//!
//! CI machines have no SR-IOV, so we build one NIC out of kernel parts and describe it in a
//! synthetic sysfs tree, so the *same* discovery, CNI and device plugin code runs on it:
//!
//! - the PF / embedded switch is a Linux bridge named `<pf>`;
//! - VF `i` is a veth pair: the VF netdev `<pf>v<i>` (what the CNI moves into pods) and its
//!   representor `<pf>r<i>`, a port of the bridge (the switchdev model);
//! - the VF "registers" (MAC, VLAN, rates, spoofchk, trust, link state set through the PF) are JSON
//!   files next to the PF's sysfs entry ([`registers`]), applied through netlink only: VLAN
//!   groups as bridges and the spoof check as locked bridge ports ([`eswitch`]), the max TX rate
//!   as an ingress redirect to an ifb `<pf>q<i>` with a tbf ([`shaping`]), and link state as the
//!   representor's admin state;
//! - the sysfs tree ([`tree`]) uses PCI domain `0xee00`, vendor [`EMU_VENDOR`], PF driver
//!   [`EMULATED_DRIVER`] and VF driver [`EMULATED_VF_DRIVER`].
//!
//! [`up`] and [`down`] are idempotent; [`revive_vf`] re-creates a VF whose veth was destroyed with
//! a pod's network namespace (a real VF would have returned to the host). VF configuration, and
//! finding a VF's netdev, go through [`Emulated`], the NIC's VF-control backend.

mod control;
pub mod eswitch;
pub(crate) mod nic;
pub mod registers;
pub mod shaping;
pub mod tree;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::mac::MacAddr;
use crate::netlink::NetlinkError;
use crate::pci::PciAddr;

pub use control::Emulated;
pub use nic::{down, revive_vf, up};

/// The PF driver name that marks an emulated NIC in our synthetic sysfs tree; the VF-control
/// selection ([`crate::vfctl::NicKind::for_driver`]) is the one place that compares against it.
pub const EMULATED_DRIVER: &str = "sriov-emu";

/// The driver name the VFs of an emulated NIC are bound to in the synthetic tree (the PF's is
/// [`EMULATED_DRIVER`]), like `igbvf` next to `igb`.
pub const EMULATED_VF_DRIVER: &str = "sriov-emu-vf";

/// The PCI domain of every emulated function; no real machine numbers a domain this high.
pub const EMU_PCI_DOMAIN: u32 = 0xee00;

/// PCI vendor ID of emulated functions. Made up on purpose (not Intel's 0x8086), so pool selectors
/// written for real NICs never pick emulated VFs by accident.
pub const EMU_VENDOR: u16 = 0xee00;

/// PCI device ID of an emulated PF.
pub const EMU_PF_DEVICE: u16 = 0x0100;

/// PCI device ID of an emulated VF.
pub const EMU_VF_DEVICE: u16 = 0x0101;

/// The most VFs one emulated PF can have (`sriov_totalvfs`).
pub const MAX_VFS: u32 = 256;

/// The longest PF name: `<pf>v255` must fit the kernel's 15-byte interface names.
pub const MAX_PF_NAME_LEN: usize = 11;

/// The sysfs root the CLI uses when none is given.
pub const DEFAULT_SYSFS_ROOT: &str = "/run/sriov-emu/sys";

/// What to emulate: one PF with `vfs` VFs, described under `sysfs_root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulateSpec {
    /// PF (bridge) name: 1..=11 chars of `[a-zA-Z0-9_-]`.
    pub pf: String,
    /// Number of VFs, 1..=[`MAX_VFS`].
    pub vfs: u32,
    /// Root of the synthetic sysfs tree (the discovery code's `/sys`).
    pub sysfs_root: PathBuf,
}

/// One emulated VF, as recorded in the PF's metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmulatedVf {
    /// VF index (the `N` in `virtfnN`).
    pub index: u32,
    /// The VF's PCI address.
    pub pci: PciAddr,
    /// The VF netdev name in the host namespace (`<pf>v<i>`); pods rename it.
    pub netdev: String,
    /// The representor, a port of the PF bridge (`<pf>r<i>`).
    pub representor: String,
    /// The ifb device used to shape what the VF sends (`<pf>q<i>`); created on the VF's first
    /// max TX rate, idle (no tbf, nothing redirected to it) while no rate is set.
    pub ifb: String,
    /// The VF netdev's MAC when no admin MAC is set (stable, locally administered).
    pub default_mac: MacAddr,
}

/// An emulated PF and its VFs: what [`up`] built, and the content of the PF's `sriov_emu.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmulatedNic {
    /// PF (bridge) name.
    pub pf: String,
    /// The PF's PCI address (`ee00:<bus>:00.0`).
    pub pci: PciAddr,
    /// The first of the two PCI buses this PF owns (VFs spill onto `bus + 1`).
    pub bus: u8,
    /// The bridge's MAC.
    pub mac: MacAddr,
    /// The VFs, by index.
    pub vfs: Vec<EmulatedVf>,
}

/// Why building, tearing down or reviving an emulated NIC failed.
#[derive(Debug, thiserror::Error)]
pub enum EmulateError {
    /// The PF name cannot name the bridge and its VF links.
    #[error("invalid emulated PF name {name:?}: {reason}")]
    InvalidPfName {
        /// The rejected PF name.
        name: String,
        /// Why it cannot be used (too long for the derived link names, bad characters…).
        reason: &'static str,
    },
    /// The VF count is outside 1..=256.
    #[error("invalid VF count {0}: must be 1..={MAX_VFS}")]
    InvalidVfCount(u32),
    /// No emulated PF of that name exists under the sysfs root.
    #[error("no emulated PF {pf} under {root}")]
    NoSuchPf {
        /// The PF name that was asked for.
        pf: String,
        /// The sysfs root searched.
        root: PathBuf,
    },
    /// The VF index is beyond the PF's VF count (the kernel answers EINVAL).
    #[error("PF {pf} has {count} VFs, no VF {vf}")]
    NoSuchVf {
        /// The emulated PF's netdev name.
        pf: String,
        /// The VF index asked for.
        vf: u32,
        /// How many VFs the PF has.
        count: u32,
    },
    /// All PCI buses of the emulated domain are taken.
    #[error("no free PCI bus in domain {EMU_PCI_DOMAIN:04x} under {0}")]
    NoFreeBus(PathBuf),
    /// A link name exists but is not what the emulator would have made (e.g. a `<pf>` that is
    /// not a bridge); we refuse to adopt or delete it.
    #[error("link {name} exists and is a {found}, not an emulated {expected}")]
    ForeignLink {
        /// The existing link's name.
        name: String,
        /// Its actual kind (`"veth"`, `"device"` for a link without one…).
        found: String,
        /// The kind the emulator would have created there.
        expected: &'static str,
    },
    /// A route-netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// A file in the synthetic tree could not be read or written.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`"read"`, `"write"`, `"create"`…).
        op: &'static str,
        /// The file or directory, absolute.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A metadata or register file holds something we cannot parse.
    #[error("corrupt {}: {message}", path.display())]
    Corrupt {
        /// The unparsable file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// Teardown kept going past failures; these are all of them.
    #[error("{} teardown steps failed: {}", .0.len(), join(.0))]
    Teardown(Vec<EmulateError>),
}

fn join(errs: &[EmulateError]) -> String {
    errs.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl EmulateError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EmulateError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether a link the request addressed no longer exists (the kernel's ENODEV): a VF's veth
    /// pair dies with the pod namespace it was in, at any moment.
    pub fn is_link_gone(&self) -> bool {
        matches!(self, EmulateError::Netlink(e) if e.is_not_found())
    }
}

/// Checks a PF name: 1..=11 chars of `[a-zA-Z0-9_-]`, so every derived link name fits in 15
/// bytes and the name is safe in paths.
pub fn validate_pf_name(name: &str) -> Result<(), EmulateError> {
    let err = |reason| {
        Err(EmulateError::InvalidPfName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return err("empty");
    }
    if name.len() > MAX_PF_NAME_LEN {
        return err("longer than 11 characters (<pf>v255 must fit in 15)");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return err("only [a-zA-Z0-9_-] allowed");
    }
    Ok(())
}

/// The VF netdev name of VF `i`: `<pf>v<i>`.
pub fn vf_netdev_name(pf: &str, i: u32) -> String {
    format!("{pf}v{i}")
}

/// The representor (bridge port) name of VF `i`: `<pf>r<i>`.
pub fn representor_name(pf: &str, i: u32) -> String {
    format!("{pf}r{i}")
}

/// The ifb device that shapes what VF `i` sends: `<pf>q<i>`.
pub fn ifb_name(pf: &str, i: u32) -> String {
    format!("{pf}q{i}")
}

/// FNV-1a of the PF name: a stable 24-bit tag that keeps MACs of different PFs apart.
fn pf_tag(pf: &str) -> [u8; 3] {
    let mut h: u32 = 0x811c_9dc5;
    for b in pf.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let b = h.to_be_bytes();
    [b[1] ^ b[0], b[2], b[3]]
}

/// The stable, locally administered unicast MAC of VF `i`'s netdev: `02:<tag>:00:<i>`.
pub fn vf_default_mac(pf: &str, i: u32) -> MacAddr {
    let t = pf_tag(pf);
    MacAddr([0x02, t[0], t[1], t[2], 0x00, i as u8])
}

/// The stable MAC of VF `i`'s representor: `02:<tag>:01:<i>`.
pub fn representor_mac(pf: &str, i: u32) -> MacAddr {
    let t = pf_tag(pf);
    MacAddr([0x02, t[0], t[1], t[2], 0x01, i as u8])
}

/// The link group (`IFLA_GROUP`) of every link of emulated PF `pf`: `0x5e<tag>`. Lets [`down`]
/// delete all of them in one batched request (per-link deletion costs an RCU grace period each).
pub fn link_group(pf: &str) -> u32 {
    let t = pf_tag(pf);
    u32::from_be_bytes([0x5e, t[0], t[1], t[2]])
}

/// The stable MAC of the PF bridge: `02:<tag>:ff:ff`.
pub fn pf_mac(pf: &str) -> MacAddr {
    let t = pf_tag(pf);
    MacAddr([0x02, t[0], t[1], t[2], 0xff, 0xff])
}

/// The PCI address of the PF that owns buses `bus` and `bus + 1`: `ee00:<bus>:00.0`.
pub fn pf_pci(bus: u8) -> PciAddr {
    PciAddr {
        domain: EMU_PCI_DOMAIN,
        bus,
        device: 0,
        function: 0,
    }
}

/// The PCI address of VF `i` of the PF on `bus`: VFs are numbered on from device 1 function 0
/// (routing-ID offset 8, stride 1), so VF 247 is `<bus>:1f.7` and VF 248..=255 land on
/// `<bus+1>:00.0..7`. A PF therefore owns two buses; [`tree`] allocates even buses only.
pub fn vf_pci(bus: u8, i: u32) -> PciAddr {
    let rid = 8 + i;
    PciAddr {
        domain: EMU_PCI_DOMAIN,
        bus: bus.wrapping_add((rid / 256) as u8),
        device: ((rid % 256) / 8) as u8,
        function: (rid % 8) as u8,
    }
}

impl EmulatedNic {
    /// Describes PF `pf` on `bus` with `vfs` VFs (names, addresses, MACs).
    pub fn describe(pf: &str, bus: u8, vfs: u32) -> Self {
        EmulatedNic {
            pf: pf.to_string(),
            pci: pf_pci(bus),
            bus,
            mac: pf_mac(pf),
            vfs: (0..vfs)
                .map(|i| EmulatedVf {
                    index: i,
                    pci: vf_pci(bus, i),
                    netdev: vf_netdev_name(pf, i),
                    representor: representor_name(pf, i),
                    ifb: ifb_name(pf, i),
                    default_mac: vf_default_mac(pf, i),
                })
                .collect(),
        }
    }

    /// VF `i`, or the kernel-like "no such VF" error.
    pub fn vf(&self, i: u32) -> Result<&EmulatedVf, EmulateError> {
        self.vfs.get(i as usize).ok_or(EmulateError::NoSuchVf {
            pf: self.pf.clone(),
            vf: i,
            count: self.vfs.len() as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_validate() {
        assert!(validate_pf_name("abcdefghijk").is_ok());
        assert!(validate_pf_name("abcdefghijkl").is_err());
        assert!(validate_pf_name("").is_err());
        assert!(validate_pf_name("a/b").is_err());
        assert!(validate_pf_name("a b").is_err());
        assert!(validate_pf_name("emu-0_A").is_ok());
        assert_eq!(vf_netdev_name("abcdefghijk", 255).len(), 15);
        assert_eq!(ifb_name("abcdefghijk", 255).len(), 15);
    }

    #[test]
    fn vf_addresses_are_unique_and_span_two_buses() {
        let mut seen = std::collections::HashSet::new();
        assert!(seen.insert(pf_pci(4)));
        for i in 0..MAX_VFS {
            let a = vf_pci(4, i);
            assert!(a.bus == 4 || a.bus == 5, "{a}");
            assert!(seen.insert(a), "{a} twice");
        }
        assert_eq!(vf_pci(4, 0).to_string(), "ee00:04:01.0");
        assert_eq!(vf_pci(4, 255).to_string(), "ee00:05:00.7");
    }

    #[test]
    fn macs_are_stable_unicast_local_and_distinct() {
        let a = vf_default_mac("emu0", 3);
        assert_eq!(a, vf_default_mac("emu0", 3));
        assert_ne!(a, vf_default_mac("emu1", 3));
        assert_ne!(a, representor_mac("emu0", 3));
        assert!(!a.is_multicast());
        assert_eq!(a.0[0] & 2, 2);
    }
}

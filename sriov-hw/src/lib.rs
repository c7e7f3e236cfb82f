//! The SR-IOV hardware model shared by the `sriov` CNI plugin and the `sriov-device-plugin` agent.
//!
//! Everything that reads the machine takes its root as a parameter ([`sysfs::Sysfs`]), so the same
//! code runs on `/sys`, on fixture trees shaped like real NICs, and on the emulated NIC's tree.

pub mod announce;
pub mod attach;
pub mod cidr;
pub mod discovery;
pub mod emulated;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod mac;
pub mod netlink;
pub mod netns;
pub mod pci;
pub mod sysfs;
pub mod vf;
pub mod vfctl;

pub use cidr::IpCidr;
pub use mac::MacAddr;
pub use pci::PciAddr;

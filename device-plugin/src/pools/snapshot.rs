//! What the kubelet side serves: every pool with its devices and their health, as one immutable
//! snapshot. The inventory/health watcher publishes a new snapshot on a `tokio::sync::watch`
//! channel whenever anything changes; each ListAndWatch stream just follows the channel.

use std::sync::Arc;

use serde::Serialize;
use sriov_hw::PciAddr;

use super::config::AllocationPolicy;

/// One allocatable VF as kubelet sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// The device ID kubelet tracks: the VF's PCI address (`0000:3b:02.1`).
    pub id: String,
    /// The VF's PCI address, parsed.
    pub pci: PciAddr,
    /// Whether kubelet may hand it out (its PF's link carries traffic, not quarantined).
    pub healthy: bool,
    /// NUMA node of the VF; `None` where the kernel reports none (`-1`).
    pub numa_node: Option<u32>,
    /// The PF's PCI address.
    pub pf: PciAddr,
    /// The PF's netdev (for spreading/packing and for the PF-link health rule).
    pub pf_name: String,
    /// The VF's bound driver (`iavf`, `vfio-pci`…); `None` when unbound.
    pub driver: Option<String>,
    /// IOMMU group of a vfio-pci VF (`/dev/vfio/<group>`).
    pub iommu_group: Option<u32>,
}

/// One pool (one kubelet resource) and its devices, sorted by PCI address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolDevices {
    /// `resourcePrefix` (e.g. `intel.com`).
    pub prefix: String,
    /// `resourceName` (e.g. `sriov_netdevice`).
    pub name: String,
    /// `excludeTopology`: advertise devices without NUMA affinity.
    pub exclude_topology: bool,
    /// `needVhostNet`: containers also get vhost-net and tun.
    pub need_vhost_net: bool,
    /// How preferred allocations pick among free VFs.
    pub allocation_policy: AllocationPolicy,
    /// The pool's VFs, sorted by PCI address.
    pub devices: Vec<Device>,
}

impl PoolDevices {
    /// `<prefix>/<name>`, what pods request.
    pub fn resource(&self) -> String {
        format!("{}/{}", self.prefix, self.name)
    }
}

/// Every pool at one moment. Cheap to clone and share.
pub type Snapshot = Arc<Vec<PoolDevices>>;

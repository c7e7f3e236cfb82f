//! The pure part of the watcher: from the pool config, the discovered inventory and the PF link
//! states to the snapshot kubelet is served. No I/O, so it is tested on fixture inventories.

use std::collections::HashMap;
use std::sync::Arc;

use sriov_hw::PciAddr;
use sriov_hw::discovery::{Inventory, Pf, Vf};
use sriov_hw::netlink::LinkInfo;

use super::links::pf_link_healthy;
use crate::pools::{Device, PoolConfig, PoolDevices, Snapshot, assign};

/// PF netdev name → its link state (`None`: no such link in this namespace), as the watcher
/// last saw it.
pub type LinkStates = HashMap<String, Option<LinkInfo>>;

/// The netdev whose link state decides the health of `pf`'s VFs: its first netdev, the one VF
/// control goes through. `None` for a PF without netdev.
pub fn health_netdev(pf: &Pf) -> Option<&str> {
    pf.netdevs.first().map(String::as_str)
}

/// Whether `pf`'s VFs are healthy given `links` (see [`pf_link_healthy`] for the rule). A PF
/// without netdev, or whose netdev is not in `links` (state not read yet), is healthy: there is
/// no evidence against it.
pub fn pf_healthy(pf: &Pf, links: &LinkStates) -> bool {
    match health_netdev(pf).and_then(|n| links.get(n)) {
        Some(state) => pf_link_healthy(state.as_ref(), pf.driver.as_deref()),
        None => true,
    }
}

/// Every pool of `cfg` (in config order, empty pools included, so kubelet learns a pool lost its
/// devices) with its devices sorted by PCI address. Pool membership is [`assign`]'s (first
/// matching pool wins; PFs carrying the default route are skipped).
pub fn snapshot(cfg: &PoolConfig, inv: &Inventory, links: &LinkStates) -> Snapshot {
    let by_pci: HashMap<PciAddr, (&Pf, &Vf)> = inv
        .pfs
        .iter()
        .flat_map(|pf| pf.vfs.iter().map(move |vf| (vf.pci, (pf, vf))))
        .collect();
    let healthy: HashMap<PciAddr, bool> = inv
        .pfs
        .iter()
        .map(|pf| (pf.pci, pf_healthy(pf, links)))
        .collect();
    let pools = assign(cfg, inv);
    let out = cfg
        .resources
        .iter()
        .zip(pools)
        .map(|(r, pool)| {
            let mut devices: Vec<Device> = pool
                .vfs
                .iter()
                .filter_map(|pci| by_pci.get(pci))
                .map(|(pf, vf)| Device {
                    id: vf.pci.to_string(),
                    pci: vf.pci,
                    healthy: healthy.get(&pf.pci).copied().unwrap_or(true),
                    numa_node: vf.numa_node,
                    pf: pf.pci,
                    pf_name: health_netdev(pf).unwrap_or_default().to_string(),
                    driver: vf.driver.clone(),
                    iommu_group: vf.iommu_group,
                })
                .collect();
            devices.sort_by_key(|d| d.pci);
            PoolDevices {
                prefix: r.prefix.clone(),
                name: r.name.clone(),
                exclude_topology: r.exclude_topology,
                need_vhost_net: r.need_vhost_net,
                allocation_policy: r.allocation_policy,
                devices,
            }
        })
        .collect();
    Arc::new(out)
}

//! The pure part of the watcher: from the pool config, the discovered inventory, the PF link
//! states and the quarantine to the [`NodeView`] everyone is served. No I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sriov_hw::PciAddr;
use sriov_hw::discovery::{Inventory, Pf, Vf};
use sriov_hw::netlink::LinkInfo;

use super::links::pf_link_healthy;
use super::view::{NodeView, Quarantine};
use crate::pools::{Device, PoolConfig, PoolDevices, assign};

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
/// matching pool wins; PFs carrying the default route are skipped). A device is healthy unless
/// its PF's link is down or it is quarantined.
pub fn view(
    cfg: &PoolConfig,
    inventory: &Arc<Inventory>,
    links: &LinkStates,
    quarantine: &Arc<Quarantine>,
) -> NodeView {
    let inv: &Inventory = inventory;
    let by_pci: HashMap<PciAddr, (&Pf, &Vf)> = inv
        .pfs
        .iter()
        .flat_map(|pf| pf.vfs.iter().map(move |vf| (vf.pci, (pf, vf))))
        .collect();
    let down_pfs: BTreeMap<PciAddr, String> = inv
        .pfs
        .iter()
        .filter(|pf| !pf_healthy(pf, links))
        .map(|pf| (pf.pci, health_netdev(pf).unwrap_or_default().to_string()))
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
                    healthy: !down_pfs.contains_key(&pf.pci) && !quarantine.contains_key(&vf.pci),
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
    NodeView {
        inventory: Arc::clone(inventory),
        pools: Arc::new(out),
        down_pfs: Arc::new(down_pfs),
        quarantine: Arc::clone(quarantine),
    }
}

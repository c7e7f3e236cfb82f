//! Resource pools: the reference SR-IOV device plugin's `resourceList` config, read unchanged, and
//! the grouping of discovered VFs into pools by its selectors.

mod config;
mod pf_names;
mod selector;
mod snapshot;

pub use config::AllocationPolicy;
pub use config::{ConfigError, PoolConfig, ResourceConfig};
pub use selector::Selector;
pub use snapshot::{Device, PoolDevices, Snapshot};

use serde::Serialize;
use sriov_hw::discovery::{Inventory, Pf, Vf};

/// The default resource prefix, as the reference device plugin uses.
pub const DEFAULT_PREFIX: &str = "intel.com";

/// One pool: a kubelet resource and the VFs it advertises.
#[derive(Debug, Clone, Serialize)]
pub struct Pool {
    /// `<prefix>/<name>`, the name pods request.
    pub resource: String,
    /// The VFs in the pool, by PCI address.
    pub vfs: Vec<sriov_hw::PciAddr>,
}

/// Groups the inventory's VFs into pools. A VF joins the first pool whose selectors match it;
/// VFs of a PF that carries the node's default route are never pooled (handing them out could
/// cut the node off).
pub fn assign(cfg: &PoolConfig, inv: &Inventory) -> Vec<Pool> {
    let mut pools: Vec<Pool> = cfg
        .resources
        .iter()
        .map(|r| Pool {
            resource: r.full_name(),
            vfs: Vec::new(),
        })
        .collect();
    for pf in inv.pfs.iter().filter(|pf| !pf.default_route) {
        for vf in &pf.vfs {
            if let Some(i) = cfg.resources.iter().position(|r| r.matches(pf, vf)) {
                pools[i].vfs.push(vf.pci);
            }
        }
    }
    pools
}

impl ResourceConfig {
    /// Whether `vf` (of `pf`) belongs to this resource: any one of its selector sets matches.
    pub fn matches(&self, pf: &Pf, vf: &Vf) -> bool {
        (!self.is_rdma || vf.rdma) && self.selectors.iter().any(|s| s.matches(pf, vf))
    }
}

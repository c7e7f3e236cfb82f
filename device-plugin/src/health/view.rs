//! [`NodeView`]: the one snapshot of the node's VFs that the watcher publishes and every reader
//! (the node API's Plan and Status, each ListAndWatch stream, the metrics) takes, so the agent
//! never hands out a VF that kubelet is told is Unhealthy, or the other way round.

use std::collections::BTreeMap;
use std::sync::Arc;

use sriov_hw::PciAddr;
use sriov_hw::discovery::{Inventory, Pf, Vf};

use crate::pools::{PoolDevices, Snapshot};

/// Why a VF of the inventory may not be handed out now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// Its PF's link says the VF cannot carry traffic (`netdev` is the PF's).
    PfDown {
        /// The PF's netdev name in the host namespace.
        netdev: String,
    },
    /// Its netdev is not in the host namespace although no attachment holds it (left in a pod
    /// by someone else, or by a crash): handing it out would fail or steal it. The reconciler
    /// brings it home and lifts the quarantine.
    Quarantined {
        /// Why it was quarantined (where its netdev was found), for `status` and the logs.
        reason: String,
    },
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::PfDown { netdev } => write!(f, "PF {netdev} link is down"),
            Unavailable::Quarantined { reason } => write!(f, "quarantined: {reason}"),
        }
    }
}

/// VFs kept out of service until their netdev is home again: VF → why.
pub type Quarantine = BTreeMap<PciAddr, String>;

/// Inventory, pools with health, and quarantine at one moment. Cheap to clone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeView {
    /// Every PF and VF the last scan found (pooled or not).
    pub inventory: Arc<Inventory>,
    /// Every configured pool with its devices and their health, as kubelet is served.
    pub pools: Snapshot,
    /// PFs whose link makes their VFs Unhealthy → the PF netdev.
    pub down_pfs: Arc<BTreeMap<PciAddr, String>>,
    /// Quarantined VFs (also Unhealthy in `pools`).
    pub quarantine: Arc<Quarantine>,
}

impl NodeView {
    /// The VF at `pci` and its PF.
    pub fn vf(&self, pci: PciAddr) -> Option<(&Pf, &Vf)> {
        self.inventory
            .pfs
            .iter()
            .find_map(|pf| pf.vfs.iter().find(|v| v.pci == pci).map(|v| (pf, v)))
    }

    /// The pool named `name`: its full `<prefix>/<name>`, or the bare name when that is unique.
    pub fn pool(&self, name: &str) -> Option<&PoolDevices> {
        if let Some(p) = self.pools.iter().find(|p| p.resource() == name) {
            return Some(p);
        }
        let mut bare = self.pools.iter().filter(|p| p.name == name);
        match (bare.next(), bare.next()) {
            (Some(p), None) => Some(p),
            _ => None,
        }
    }

    /// Why the VF at `pci` (of PF `pf`) may not be handed out, or `None` when it may.
    pub fn unavailable(&self, pf: PciAddr, pci: PciAddr) -> Option<Unavailable> {
        if let Some(reason) = self.quarantine.get(&pci) {
            return Some(Unavailable::Quarantined {
                reason: reason.clone(),
            });
        }
        self.down_pfs.get(&pf).map(|netdev| Unavailable::PfDown {
            netdev: netdev.clone(),
        })
    }
}

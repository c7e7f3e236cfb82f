//! VFs whose netdev is not home: a Plan that finds a free VF's netdev outside the host namespace
//! (left in a pod by a crash, another plugin or an operator) does not hand it out. The VF is
//! quarantined in the watcher (Unhealthy to kubelet, skipped by Plan, listed by `status`), and
//! every reconciler pass looks for it in the node's network namespaces, by an identity the pod
//! cannot fake, and moves it home. Then the quarantine is lifted.

use std::collections::HashSet;
use std::path::Path;

use sriov_hw::PciAddr;
use sriov_hw::attach::{Machine, NodeMachine};
use sriov_hw::discovery;
use sriov_hw::netns::NetnsHandle;
use sriov_hw::vfctl::VfNetdevs;

use super::state::State;
use crate::health::Unavailable;

/// Quarantines the VF at `pci` for `why`; returns what a refused request is told.
pub async fn hold(state: &State, pci: PciAddr, why: String) -> Unavailable {
    if let Err(e) = state.watcher.quarantine(pci, why.clone()).await {
        tracing::error!(vf = %pci, error = %e, "cannot quarantine VF");
    }
    Unavailable::Quarantined { reason: why }
}

/// One pass over the quarantine: each VF no attachment holds is looked for and moved home; found
/// home (by us or anyone), its quarantine is lifted. Returns the VFs brought back into service.
pub async fn bring_home_all(state: &State) -> Vec<PciAddr> {
    let view = state.snapshot();
    if view.quarantine.is_empty() {
        return Vec::new();
    }
    let namespaces = node_namespaces(&state.cfg.proc_root);
    let mut lifted = Vec::new();
    for pci in view.quarantine.keys().copied() {
        let Some((pf, vf)) = view.vf(pci) else {
            continue;
        };
        match state.ledger.vf_holder(&pci.to_string()) {
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => continue, // held: not ours to move
        }
        if state
            .claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&pci)
        {
            continue;
        }
        let pf_driver = pf.driver.clone().unwrap_or_default();
        match bring_home(state, &namespaces, pci, vf.index, &pf_driver).await {
            Ok(Some(name)) => {
                tracing::info!(vf = %pci, netdev = %name, "quarantined VF is home");
                if let Err(e) = state.watcher.lift(pci).await {
                    tracing::error!(vf = %pci, error = %e, "cannot lift the quarantine");
                } else {
                    lifted.push(pci);
                }
            }
            Ok(None) => tracing::debug!(vf = %pci, "quarantined VF not found in any namespace"),
            Err(e) => tracing::warn!(vf = %pci, error = %e, "cannot bring a quarantined VF home"),
        }
    }
    lifted
}

/// Finds the VF at home or in one of `namespaces` and moves it home. `Ok(Some(name))`: it is
/// home under `name`; `Ok(None)`: not found anywhere we can see.
async fn bring_home(
    state: &State,
    namespaces: &[NetnsHandle],
    pci: PciAddr,
    index: u32,
    pf_driver: &str,
) -> Result<Option<String>, String> {
    let pf_name = discovery::pf_netdev_of_vf(&state.sysfs, pci).map_err(|e| e.to_string())?;
    let machine = NodeMachine::new(pf_driver, &state.cfg.sysfs_root).map_err(|e| e.to_string())?;
    let backend = machine.backend();
    if let Some(l) = backend
        .host_netdev(&pf_name, index, pci)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(Some(l.name));
    }
    for ns in namespaces {
        if ns.is_same(machine.host_ns()) {
            continue;
        }
        let Ok(inside) = machine.enter(ns) else {
            continue; // gone meanwhile
        };
        let Some(name) = backend
            .netdev_in(&inside, &pf_name, index, pci)
            .await
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        // A backend that knows its VFs by name gets that name back; otherwise the VF keeps the
        // name it has, unless the host already uses it.
        let home = match backend.home_name(&pf_name, index) {
            Some(n) => n,
            None if machine
                .netlink()
                .link_by_name(&name)
                .await
                .ok()
                .flatten()
                .is_none() =>
            {
                name.clone()
            }
            None => format!("vf{}", pci.to_string().replace([':', '.'], ""))
                .chars()
                .take(15)
                .collect(),
        };
        inside
            .move_to_netns(&name, machine.host_ns(), &home)
            .await
            .map_err(|e| format!("move {name} out of {}: {e}", ns.path().display()))?;
        return Ok(Some(home));
    }
    Ok(None)
}

/// Every network namespace a process or a bind mount under `/run/netns` keeps alive, once each.
fn node_namespaces(proc_root: &Path) -> Vec<NetnsHandle> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut paths: Vec<std::path::PathBuf> = Vec::new();
    for dir in ["/run/netns", "/var/run/netns"] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            paths.extend(rd.flatten().map(|e| e.path()));
        }
    }
    if let Ok(rd) = std::fs::read_dir(proc_root) {
        for e in rd.flatten() {
            if e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
            {
                paths.push(e.path().join("ns/net"));
            }
        }
    }
    for p in paths {
        if let Ok(ns) = NetnsHandle::open(&p)
            && seen.insert(ns.id())
        {
            out.push(ns);
        }
    }
    out
}

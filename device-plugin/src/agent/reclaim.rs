//! Giving back what a dead (or unwanted) attachment holds: the one path GC, the reconciler and
//! Plan's reclaim of a stale holder share.
//!
//! "Gone" means the recorded netns path no longer exists, no longer is a network namespace, or
//! opens to a different namespace than the (device, inode) recorded at ADD: `/proc/<pid>` paths
//! are reused by unrelated processes.

use sriov_hw::PciAddr;
use sriov_hw::attach::{self, NodeMachine};
use sriov_hw::netns::{NetnsError, NetnsHandle, NetnsId};
use sriov_proto::node::Attachment;

use super::state::State;
use crate::ledger::display_key;

/// Whether an attachment's pod namespace still exists.
#[derive(Debug)]
pub enum Liveness {
    /// Still the namespace recorded at ADD (handle kept open).
    Alive(NetnsHandle),
    /// Gone, for the reason given.
    Gone(String),
    /// Cannot tell (e.g. permission denied): treated as alive, never reclaimed.
    Unknown(String),
}

impl Liveness {
    /// The pod's namespace if it is still the recorded one: what a release restores the VF from.
    pub fn handle(&self) -> Option<&NetnsHandle> {
        match self {
            Liveness::Alive(h) => Some(h),
            Liveness::Gone(_) | Liveness::Unknown(_) => None,
        }
    }
}

/// Checks the recorded namespace of `a`.
pub fn liveness(a: &Attachment) -> Liveness {
    if a.netns_path.is_empty() {
        return Liveness::Gone("no netns recorded".into());
    }
    match NetnsHandle::open(&a.netns_path) {
        Ok(h) => {
            let recorded = NetnsId {
                dev: a.netns_dev,
                ino: a.netns_ino,
            };
            // ino 0: the CNI could not tell us the identity; the path is all we have.
            if a.netns_ino != 0 && h.id() != recorded {
                Liveness::Gone(format!(
                    "{} is now {} (recorded {recorded})",
                    a.netns_path,
                    h.id()
                ))
            } else {
                Liveness::Alive(h)
            }
        }
        Err(e @ (NetnsError::NotNamespace { .. } | NetnsError::WrongType { .. })) => {
            Liveness::Gone(e.to_string())
        }
        Err(e)
            if e.errno()
                .map(std::io::Error::from_raw_os_error)
                .map(|o| o.kind())
                == Some(std::io::ErrorKind::NotFound) =>
        {
            Liveness::Gone(e.to_string())
        }
        Err(e) => Liveness::Unknown(e.to_string()),
    }
}

/// Puts the VF of `a` back as it was before ADD (through the PF driver and sysfs root recorded
/// in it), then removes the record, freeing the VF and IPs. `pod_ns` is the pod's namespace if
/// it is still the recorded one.
///
/// If the restore fails, the record is kept (the reconciler or the next GC tries again) and the
/// errors are returned, unless the VF no longer exists on the node at all: then there is nothing
/// to restore and the record is removed.
pub async fn release(
    state: &State,
    a: &Attachment,
    pod_ns: Option<&NetnsHandle>,
) -> Result<(), String> {
    let key = a.key.clone().unwrap_or_default();
    let shown = display_key(&key);
    // Serialized with a live re-apply, and on the record as it is now (a re-apply may have
    // changed what is set on the VF since the caller read it).
    let _vf = state.vf_lock.lock().await;
    let current = state
        .ledger
        .get(&key)
        .map_err(|e| format!("reading {shown}: {e}"))?;
    let Some(current) = current else {
        return Ok(()); // released meanwhile
    };
    let a = &current;
    if vf_exists(state, a) {
        restore(a, pod_ns)
            .await
            .map_err(|e| format!("restoring VF {} of {shown}: {e}", a.vf_pci))?;
    } else {
        tracing::warn!(vf = %a.vf_pci, attachment = %shown, "VF no longer exists; forgetting the attachment without restoring it");
    }
    state
        .ledger
        .remove(&key)
        .map_err(|e| format!("removing {shown} from the ledger: {e}"))?;
    super::leasing::release(state, a);
    Ok(())
}

/// The one undo procedure (`sriov_hw::attach::restore`) applied to a ledger record.
pub async fn restore(a: &Attachment, pod_ns: Option<&NetnsHandle>) -> Result<(), String> {
    let hw = a.to_hw().map_err(|e| e.to_string())?;
    let m = NodeMachine::new(&a.pf_driver, std::path::Path::new(&a.sysfs_root))
        .map_err(|e| e.to_string())?;
    let ifname = a.key.as_ref().map(|k| k.ifname.as_str()).unwrap_or("");
    attach::restore(&m, &hw.target, &hw.original, &hw.settings, pod_ns, ifname)
        .await
        .map_err(|errs| {
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
}

/// Whether the VF of `a` is still a VF in its sysfs tree.
fn vf_exists(state: &State, a: &Attachment) -> bool {
    let Ok(pci) = a.vf_pci.parse::<PciAddr>() else {
        return false;
    };
    let sysfs =
        if a.sysfs_root.is_empty() || std::path::Path::new(&a.sysfs_root) == state.cfg.sysfs_root {
            state.sysfs.clone()
        } else {
            sriov_hw::sysfs::Sysfs::new(&a.sysfs_root)
        };
    sriov_hw::discovery::vf(&sysfs, pci).is_ok()
}

/// `ns/name` of the attachment's pod, for messages.
pub fn pod_of(a: &Attachment) -> String {
    let ns = if a.pod_namespace.is_empty() {
        crate::podtable::DEFAULT_NAMESPACE
    } else {
        &a.pod_namespace
    };
    format!("{ns}/{}", a.pod_name)
}

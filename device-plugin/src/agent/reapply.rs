//! Live re-apply: a pod table edit reaches the running pods' VFs, not only the next ADD.
//!
//! When the table in force changes, every committed attachment whose settings came from the
//! table is compared with its entry. VLAN, QoS, rates, spoof check and trust are set on the VF
//! through the PF with the same VF control calls as ADD; if one fails, those already set are put
//! back and the record is left as it was. The record's `settings` then say what the VF has, so
//! DEL restores the VF's original state (the record's `orig_vf`), never an intermediate one.
//! What cannot change under a running pod (its IPs, its MAC, or the entry removed) is left alone:
//! the record says `restart_needed` and an Event on the pod says why.
//!
//! A field the edited entry no longer sets keeps its current value until the pod restarts (the
//! netconf's value it would fall back to is not recorded).
//!
//! Re-applies and releases run under [`State::vf_lock`]: a release of a re-applied attachment puts
//! the PF side back to `orig_vf` itself, after whatever the CNI's DEL restored (see
//! [`restore_pf_side`]), so a re-apply racing a DEL cannot leave its values on a freed VF.

use std::sync::Arc;

use sriov_hw::attach::NodeMachine;
use sriov_hw::vfctl::VfControl;
use sriov_proto::node::{Attachment, State as AttState, VfSettings};

use super::plan::override_settings;
use super::state::State;
use crate::cluster::events::{Events, Kind};
use crate::ledger::display_key;
use crate::podtable::{PodConfig, PodTable};

/// What one attachment's re-apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to change.
    Unchanged,
    /// These fields were set on the VF.
    Applied(Vec<&'static str>),
    /// Set nothing; the pod must restart for the entry to take effect (why).
    RestartNeeded(String),
    /// The VF refused; everything was put back (the error).
    Failed(String),
}

/// Re-applies the table in force whenever it changes (see [`State::table_changed`]), until the
/// task is dropped.
pub async fn run(state: Arc<State>) {
    let Some(src) = state.podtable.clone() else {
        return;
    };
    loop {
        state.table_changed.notified().await;
        let table = src.lock().unwrap_or_else(|e| e.into_inner()).table();
        reapply_all(&state, &table).await;
    }
}

/// Re-applies `table` to every committed attachment that took its settings from the pod table.
pub async fn reapply_all(state: &Arc<State>, table: &PodTable) -> Vec<(String, Outcome)> {
    let Ok(all) = state.ledger.list() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for a in all {
        if a.state() != AttState::Committed || !a.desired.as_ref().is_some_and(|d| d.from_pod_table)
        {
            continue;
        }
        let entry = table.lookup(&a.network, &a.pod_namespace, &a.pod_name);
        let o = reapply_one(state, &a, entry.as_ref()).await;
        if o != Outcome::Unchanged {
            let key = display_key(&a.key.clone().unwrap_or_default());
            tracing::info!(attachment = %key, pod = %super::reclaim::pod_of(&a), outcome = ?o, "pod table re-applied");
            out.push((key, o));
        }
    }
    out
}

/// Why the entry cannot be honoured without a restart, if it cannot.
fn restart_reason(a: &Attachment, entry: Option<&PodConfig>) -> Option<String> {
    let Some(e) = entry else {
        return Some("the pod's entry was removed from the pod table".into());
    };
    let desired = a.desired.clone().unwrap_or_default();
    let table_ips: Vec<String> = e.ips.iter().map(ToString::to_string).collect();
    if !table_ips.is_empty() && table_ips != desired.ips {
        return Some(format!(
            "the pod table now gives IPs {table_ips:?}, the pod has {:?}: IPs change only when the pod restarts",
            desired.ips
        ));
    }
    let current_mac = a.settings.as_ref().map(|s| s.mac.as_str()).unwrap_or("");
    if let Some(m) = e.mac
        && !m.to_string().eq_ignore_ascii_case(current_mac)
    {
        return Some(format!(
            "the pod table now gives MAC {m}, the VF has {current_mac}: the MAC changes only when the pod restarts"
        ));
    }
    None
}

async fn reapply_one(state: &Arc<State>, a: &Attachment, entry: Option<&PodConfig>) -> Outcome {
    let key = a.key.clone().unwrap_or_default();
    let _vf = state.vf_lock.lock().await;
    // Re-read under the lock: a DEL may have released it meanwhile.
    let Ok(Some(a)) = state.ledger.get(&key) else {
        return Outcome::Unchanged;
    };
    if a.state() != AttState::Committed {
        return Outcome::Unchanged;
    }
    let restart = restart_reason(&a, entry).unwrap_or_default();
    if restart != a.restart_needed {
        let _ = state
            .ledger
            .update(&key, |r| r.restart_needed.clone_from(&restart));
        if !restart.is_empty() {
            pod_event(state, &a, "PodTableChangeNeedsRestart", restart.clone());
        }
    }
    let Some(e) = entry else {
        return Outcome::RestartNeeded(restart);
    };
    let old = a.settings.clone().unwrap_or_default();
    let mut new = old.clone();
    override_settings(&mut new, e);
    new.mac = old.mac.clone(); // never changed under a running pod
    let changed = changed_fields(&old, &new);
    if changed.is_empty() {
        return if restart.is_empty() {
            Outcome::Unchanged
        } else {
            Outcome::RestartNeeded(restart)
        };
    }
    // The record first: a crash between here and the VF leaves DEL restoring what may be set.
    let _ = state.ledger.update(&key, |r| {
        r.settings = Some(new.clone());
        r.reapplied = true;
    });
    match set_on_vf(&a, &old, &new).await {
        Ok(()) => {
            pod_event(
                state,
                &a,
                "PodTableApplied",
                format!(
                    "pod table edit applied to VF {} on PF {}: {}",
                    a.vf_pci,
                    a.pf_name,
                    changed.join(", ")
                ),
            );
            Outcome::Applied(changed)
        }
        Err(err) => {
            let _ = state
                .ledger
                .update(&key, |r| r.settings = Some(old.clone()));
            let why = format!(
                "VF {} refused the pod table edit, nothing changed: {err}",
                a.vf_pci
            );
            pod_event(state, &a, "PodTableApplyFailed", why.clone());
            Outcome::Failed(why)
        }
    }
}

/// The VF fields (in the order ADD sets them) that differ between `old` and `new`.
fn changed_fields(old: &VfSettings, new: &VfSettings) -> Vec<&'static str> {
    let mut c = Vec::new();
    if (old.vlan, old.qos) != (new.vlan, new.qos) {
        c.push("vlan");
    }
    if (old.min_tx_rate, old.max_tx_rate) != (new.min_tx_rate, new.max_tx_rate) {
        c.push("rate");
    }
    if old.spoofchk != new.spoofchk {
        c.push("spoofchk");
    }
    if old.trust != new.trust {
        c.push("trust");
    }
    c
}

/// Sets what differs on the VF; on the first failure puts back what was set (to `old`, or the
/// VF's original value where `old` left it alone) and returns the error.
async fn set_on_vf(a: &Attachment, old: &VfSettings, new: &VfSettings) -> Result<(), String> {
    let hw = a.to_hw().map_err(|e| e.to_string())?;
    let m = NodeMachine::new(&a.pf_driver, std::path::Path::new(&a.sysfs_root))
        .map_err(|e| e.to_string())?;
    let vfs = sriov_hw::attach::Machine::vfs(&m);
    let (pf, vf) = (a.pf_name.as_str(), a.vf_index);
    let orig = &hw.original.vf;
    let new_hw = new.to_hw().map_err(|e| e.to_string())?;
    let old_hw = old.to_hw().map_err(|e| e.to_string())?;
    let mut done: Vec<&'static str> = Vec::new();
    let mut result = Ok(());
    for field in changed_fields(old, new) {
        match set_field(vfs, pf, vf, field, &new_hw, orig).await {
            Ok(()) => done.push(field),
            Err(e) => {
                result = Err(e.to_string());
                break;
            }
        }
    }
    if result.is_err() {
        for field in done {
            if let Err(e) = set_field(vfs, pf, vf, field, &old_hw, orig).await {
                tracing::error!(vf = %a.vf_pci, %field, error = %e, "re-apply rollback failed");
            }
        }
    }
    result
}

/// Sets one of [`changed_fields`]' fields on the VF to its value in `s` (the VF's original
/// value where `s` leaves it unset).
async fn set_field<V: VfControl>(
    vfs: &V,
    pf: &str,
    vf: u32,
    field: &str,
    s: &sriov_hw::attach::VfSettings,
    orig: &sriov_hw::vfctl::VfState,
) -> Result<(), sriov_hw::vfctl::VfError> {
    match field {
        "vlan" => vfs.set_vlan(pf, vf, s.vlan.unwrap_or(orig.vlan)).await,
        "rate" => {
            vfs.set_rate(
                pf,
                vf,
                s.min_tx_rate.unwrap_or(orig.min_tx_rate),
                s.max_tx_rate.unwrap_or(orig.max_tx_rate),
            )
            .await
        }
        "spoofchk" => match s.spoofchk.or(orig.spoofchk) {
            Some(on) => vfs.set_spoofchk(pf, vf, on).await,
            None => Ok(()),
        },
        _ => match s.trust.or(orig.trust) {
            Some(on) => vfs.set_trust(pf, vf, on).await,
            None => Ok(()),
        },
    }
}

/// For a re-applied attachment being released: the PF side (VLAN, rates, spoof check, trust,
/// link state: `sriov_hw::attach::restore_vf_attributes`)
/// back to the VF's original values, after the CNI's own restore. Call under [`State::vf_lock`].
pub async fn restore_pf_side(a: &Attachment) -> Result<(), String> {
    if !a.reapplied {
        return Ok(());
    }
    let hw = a.to_hw().map_err(|e| e.to_string())?;
    let m = NodeMachine::new(&a.pf_driver, std::path::Path::new(&a.sysfs_root))
        .map_err(|e| e.to_string())?;
    let vfs = sriov_hw::attach::Machine::vfs(&m);
    let errs = sriov_hw::attach::restore_vf_attributes(
        vfs,
        &a.pf_name,
        a.vf_index,
        &hw.original.vf,
        &hw.settings,
    )
    .await;
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "))
    }
}

fn pod_event(state: &State, a: &Attachment, reason: &str, note: String) {
    if let Some(ev) = &state.events {
        ev.emit(
            Events::pod(&a.pod_namespace, &a.pod_name),
            if reason == "PodTableApplied" {
                Kind::Normal
            } else {
                Kind::Warning
            },
            reason,
            note,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_differs_is_set_in_add_order() {
        let old = VfSettings {
            vlan: Some(100),
            qos: Some(0),
            max_tx_rate: Some(100),
            ..VfSettings::default()
        };
        let mut new = old.clone();
        assert!(changed_fields(&old, &new).is_empty());
        new.max_tx_rate = Some(50);
        new.vlan = Some(200);
        new.trust = Some(true);
        assert_eq!(changed_fields(&old, &new), ["vlan", "rate", "trust"]);
    }

    #[test]
    fn ips_macs_and_removed_entries_need_a_restart() {
        let a = Attachment {
            desired: Some(sriov_proto::node::Desired {
                ips: vec!["10.0.0.10/24".into()],
                from_pod_table: true,
                ..Default::default()
            }),
            settings: Some(VfSettings {
                mac: "02:00:00:00:00:0a".into(),
                ..VfSettings::default()
            }),
            ..Attachment::default()
        };
        let same = PodConfig {
            ips: vec!["10.0.0.10/24".parse().unwrap()],
            mac: Some("02:00:00:00:00:0A".parse().unwrap()),
            vlan: Some(7),
            ..PodConfig::default()
        };
        assert_eq!(restart_reason(&a, Some(&same)), None);
        let mut ip = same.clone();
        ip.ips = vec!["10.0.0.11/24".parse().unwrap()];
        assert!(
            restart_reason(&a, Some(&ip))
                .unwrap()
                .contains("10.0.0.11/24")
        );
        let mut mac = same.clone();
        mac.mac = Some("02:00:00:00:00:0b".parse().unwrap());
        assert!(
            restart_reason(&a, Some(&mac))
                .unwrap()
                .contains("02:00:00:00:00:0b")
        );
        assert!(restart_reason(&a, None).unwrap().contains("removed"));
    }
}

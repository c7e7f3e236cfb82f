//! The reconciler: frees attachments whose pod namespace is gone (a DEL that never came, a node
//! reboot) and brings quarantined VFs home. Runs once before the agent serves and then every
//! `--reconcile-interval`. (The inventory watcher re-scans sysfs on its own schedule.)
//!
//! A PLANNED attachment is left alone while the CNI that planned it runs: it is between Plan and
//! Commit, configuring the VF, and may still commit (to this agent or to a restarted one).
//! Restoring that VF under it would make two writers of one VF. One whose CNI exited can no
//! longer commit; it is undone and freed (keeping it would refuse the runtime's retry of that
//! ADD with "already exists"). A PLANNED record that does not say which CNI planned it (written
//! by an older agent) is freed by the first pass, before the agent serves.

use std::sync::Arc;

use super::planner::{self, PlannerLiveness};
use super::reclaim::{self, Liveness};
use super::state::State;
use crate::ledger::display_key;
use sriov_proto::node::State as AttState;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Attachments released (`container/ifname`).
    pub freed: Vec<String>,
    /// Releases that failed (kept for the next pass).
    pub errors: Vec<String>,
}

/// One pass over the ledger: every attachment whose namespace is gone, or that is PLANNED by a
/// CNI that exited, is restored and removed; with `startup` (the pass before serving), also every
/// PLANNED one that does not name its CNI.
pub async fn reconcile_once(state: &State, startup: bool) -> Pass {
    let mut pass = Pass::default();
    let list = match state.ledger.list() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "reconcile: cannot list the ledger");
            pass.errors.push(e.to_string());
            return pass;
        }
    };
    let proc = std::path::Path::new(planner::PROC);
    for a in list {
        let key = display_key(&a.key.clone().unwrap_or_default());
        let live = reclaim::liveness(&a);
        let planned = a.state() == AttState::Planned;
        let why = match (
            &live,
            planned.then(|| planner::liveness(proc, a.planner.as_ref())),
        ) {
            // Its CNI is still at work (and rolls back itself if its namespace went away).
            (_, Some(PlannerLiveness::Running)) => continue,
            (Liveness::Gone(why), _) => why.clone(),
            (_, Some(PlannerLiveness::Exited(why))) => format!("planned, never committed: {why}"),
            (_, Some(PlannerLiveness::Unknown)) if startup => {
                "planned by an earlier agent instance, never committed".to_string()
            }
            (Liveness::Unknown(why), _) => {
                tracing::debug!(attachment = %key, %why, "reconcile: cannot tell whether the netns is alive; kept");
                continue;
            }
            (Liveness::Alive(_), _) => continue,
        };
        match reclaim::release(state, &a, live.handle()).await {
            Ok(()) => {
                tracing::info!(
                    attachment = %key, pod = %reclaim::pod_of(&a), vf = %a.vf_pci,
                    ips = ?a.reserved_ips, state = ?a.state(), %why,
                    "reconcile: freed an attachment"
                );
                pass.freed.push(key);
            }
            Err(e) => {
                tracing::warn!(attachment = %key, error = %e, "reconcile: release failed; will retry");
                pass.errors.push(e);
            }
        }
    }
    pass
}

/// Runs [`reconcile_once`] and a quarantine pass every `cfg.reconcile_interval` until the task
/// is aborted.
pub async fn run(state: Arc<State>) {
    let mut tick = tokio::time::interval(state.cfg.reconcile_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; the first pass ran before serving
    loop {
        tick.tick().await;
        if let Some(src) = &state.podtable {
            let outcome = src.lock().unwrap_or_else(|e| e.into_inner()).refresh();
            state.table_refreshed(&outcome);
        }
        reconcile_once(&state, false).await;
        super::quarantine::bring_home_all(&state).await;
    }
}

//! The reconciler: frees attachments whose pod namespace is gone (a DEL that never came, a node
//! reboot) and brings quarantined VFs home. Runs once before the agent serves and then every
//! `--reconcile-interval`. (The inventory watcher re-scans sysfs on its own schedule.)
//!
//! PLANNED attachments whose namespace is alive are left alone on later passes: a CNI may be in
//! the middle of ADD. The first pass, before the agent serves, frees every PLANNED attachment:
//! it was planned by an earlier instance of the agent (killed, crashed) and its ADD can no longer
//! commit (its Commit reaches an agent that does not know it, and the CNI rolls back), so
//! keeping it would only refuse the runtime's retry of that ADD with "already exists".

use std::sync::Arc;

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

/// One pass over the ledger: every attachment whose namespace is gone is restored and removed;
/// with `startup` (the pass before serving), every PLANNED one too.
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
    for a in list {
        let key = display_key(&a.key.clone().unwrap_or_default());
        let why = match reclaim::liveness(&a) {
            _ if startup && a.state() == AttState::Planned => {
                "planned by an earlier agent instance, never committed".to_string()
            }
            Liveness::Alive(_) => continue,
            Liveness::Unknown(why) => {
                tracing::debug!(attachment = %key, %why, "reconcile: cannot tell whether the netns is alive; kept");
                continue;
            }
            Liveness::Gone(why) => why,
        };
        match reclaim::release(state, &a, None).await {
            Ok(()) => {
                tracing::info!(
                    attachment = %key, pod = %reclaim::pod_of(&a), vf = %a.vf_pci,
                    ips = ?a.reserved_ips, state = ?a.state(), %why,
                    "reconcile: freed an attachment whose netns is gone"
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

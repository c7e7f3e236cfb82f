//! GC (CNI spec 1.1): release every attachment of a network that the runtime no longer lists in
//! `cni.dev/valid-attachments`. Keeps going past failures and reports them all.

use std::collections::HashSet;

use sriov_proto::node::{GcRequest, GcResponse};

use super::errors::AgentError;
use super::reclaim;
use super::state::State;
use crate::ledger::{att_key, display_key};

/// Restores and releases the attachments of `req.network` not in `req.valid`. A restore that
/// fails keeps its record (the next GC or the reconciler retries) and is reported in `errors`.
pub async fn gc(state: &State, req: GcRequest) -> Result<GcResponse, AgentError> {
    if req.network.is_empty() {
        return Err(AgentError::invalid("network", "empty"));
    }
    let valid: HashSet<Vec<u8>> = req.valid.iter().map(att_key).collect();
    let mut resp = GcResponse::default();
    for a in state.ledger.list()? {
        let key = a.key.clone().unwrap_or_default();
        if a.network != req.network || valid.contains(&att_key(&key)) {
            continue;
        }
        let live = reclaim::liveness(&a);
        match reclaim::release(state, &a, live.handle()).await {
            Ok(()) => {
                tracing::info!(attachment = %display_key(&key), pod = %reclaim::pod_of(&a), vf = %a.vf_pci, "released by GC");
                resp.released.push(a);
            }
            Err(e) => {
                tracing::warn!(attachment = %display_key(&key), error = %e, "GC could not release");
                resp.errors.push(e);
            }
        }
    }
    Ok(resp)
}

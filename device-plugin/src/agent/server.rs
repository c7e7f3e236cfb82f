//! The node API service (tonic): thin handlers that call the agent's modules and map errors once
//! ([`super::errors`]).

use std::sync::Arc;

use sriov_proto::node::node_server::Node;
use sriov_proto::node::{
    Attachment, AttachmentKey, CommitRequest, Empty, FetchResponse, GcRequest, GcResponse,
    OutOfService, PlanRequest, PoolStatus, StatusRequest, StatusResponse,
};
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};

use super::errors::AgentError;
use super::state::State;
use super::{gc, plan, planner};
use crate::ledger::display_key;

/// The `Node` service over the agent's state.
#[derive(Clone)]
pub struct NodeService {
    state: Arc<State>,
}

impl NodeService {
    /// The service over `state`; one per agent, cloned per connection by tonic.
    pub fn new(state: Arc<State>) -> Self {
        NodeService { state }
    }
}

fn key_of(k: AttachmentKey) -> Result<AttachmentKey, AgentError> {
    if k.container_id.is_empty() {
        return Err(AgentError::invalid("key.container_id", "empty"));
    }
    if k.ifname.is_empty() {
        return Err(AgentError::invalid("key.ifname", "empty"));
    }
    Ok(k)
}

/// The Status answer: every attachment, each pool's free and out-of-service VFs, the quarantine,
/// the pod table's health, the leases.
pub fn status(state: &State) -> Result<StatusResponse, AgentError> {
    let attachments = state.ledger.list()?;
    let view = state.snapshot();
    let mut pools = Vec::with_capacity(view.pools.len());
    for p in view.pools.iter() {
        let mut free = Vec::new();
        let mut out_of_service = Vec::new();
        for d in &p.devices {
            if state.ledger.vf_holder(&d.id)?.is_some() {
                continue;
            }
            match view.unavailable(d.pf, d.pci) {
                None => free.push(d.id.clone()),
                Some(why) => out_of_service.push(OutOfService {
                    pci: d.id.clone(),
                    reason: why.to_string(),
                }),
            }
        }
        pools.push(PoolStatus {
            resource: p.resource(),
            total: p.devices.len() as u32,
            free,
            out_of_service,
        });
    }
    let quarantined = view
        .quarantine
        .iter()
        .map(|(pci, reason)| OutOfService {
            pci: pci.to_string(),
            reason: reason.clone(),
        })
        .collect();
    let (pod_table_error, pod_table_loads) = match &state.podtable {
        Some(src) => {
            let st = src.lock().unwrap_or_else(|e| e.into_inner()).status();
            (st.last_error.unwrap_or_default(), st.loads_ok)
        }
        None => (String::new(), 0),
    };
    let (leased_ips, fenced_ips) = match &state.leases {
        Some(l) => l.keys(),
        None => (Vec::new(), Vec::new()),
    };
    Ok(StatusResponse {
        attachments,
        pools,
        pod_table_error,
        pod_table_loads,
        leased_ips,
        fenced_ips,
        quarantined,
    })
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn plan(&self, req: Request<PlanRequest>) -> Result<Response<Attachment>, Status> {
        let planner = req
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|i| i.peer_cred)
            .and_then(|c| c.pid())
            .and_then(|pid| u32::try_from(pid).ok())
            .and_then(|pid| planner::identify(std::path::Path::new(planner::PROC), pid));
        let req = req.into_inner();
        match plan::plan(&self.state, req, planner).await {
            Ok(a) => Ok(Response::new(a)),
            Err(e) => {
                tracing::info!(code = ?e.code(), error = %e, "plan refused");
                Err(e.into())
            }
        }
    }

    async fn commit(&self, req: Request<CommitRequest>) -> Result<Response<Attachment>, Status> {
        let req = req.into_inner();
        let key = key_of(req.key.unwrap_or_default())?;
        let a = self
            .state
            .ledger
            .commit(&key, &req.result_json)
            .map_err(AgentError::from)?;
        tracing::info!(attachment = %display_key(&key), vf = %a.vf_pci, "committed");
        super::neighbours::announce_in_background(&a, None);
        Ok(Response::new(a))
    }

    async fn abort(&self, req: Request<AttachmentKey>) -> Result<Response<Empty>, Status> {
        let key = key_of(req.into_inner())?;
        if let Some(a) = self.state.ledger.remove(&key).map_err(AgentError::from)? {
            tracing::info!(attachment = %display_key(&key), vf = %a.vf_pci, "aborted");
            super::leasing::release(&self.state, &a);
        }
        Ok(Response::new(Empty {}))
    }

    async fn fetch(&self, req: Request<AttachmentKey>) -> Result<Response<FetchResponse>, Status> {
        let key = key_of(req.into_inner())?;
        let a = self.state.ledger.get(&key).map_err(AgentError::from)?;
        Ok(Response::new(FetchResponse {
            found: a.is_some(),
            attachment: a,
        }))
    }

    async fn release(&self, req: Request<AttachmentKey>) -> Result<Response<Empty>, Status> {
        let key = key_of(req.into_inner())?;
        let _vf = self.state.vf_lock.lock().await;
        if let Some(a) = self.state.ledger.get(&key).map_err(AgentError::from)?
            && let Err(e) = super::reapply::restore_pf_side(&a).await
        {
            // Keep the record: the CNI retries DEL, restoring from it again.
            return Err(AgentError::hardware(
                &a.vf_pci,
                "restore after a pod table re-apply",
                super::errors::HwCause::Restore(e),
            )
            .into());
        }
        if let Some(a) = self.state.ledger.remove(&key).map_err(AgentError::from)? {
            tracing::info!(attachment = %display_key(&key), vf = %a.vf_pci, "released");
            super::leasing::release(&self.state, &a);
        }
        Ok(Response::new(Empty {}))
    }

    async fn gc(&self, req: Request<GcRequest>) -> Result<Response<GcResponse>, Status> {
        Ok(Response::new(gc::gc(&self.state, req.into_inner()).await?))
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(status(&self.state)?))
    }
}

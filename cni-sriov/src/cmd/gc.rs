//! GC (spec 1.1.0): release every attachment of this network that the runtime no longer lists in
//! `cni.dev/valid-attachments`. The agent does the cleaning (the same restore as DEL).

use sriov_proto::node::{AttachmentKey, GcRequest};

use super::block_on;
use crate::agent;
use crate::error::{CniError, code};
use crate::netconf::NetConf;

/// Runs GC. Success prints nothing.
pub fn gc(conf: &NetConf) -> Result<String, CniError> {
    let valid = conf
        .valid_attachments
        .as_ref()
        .ok_or_else(|| CniError::new(code::INVALID_CONFIG, "GC needs cni.dev/valid-attachments"))?;
    let req = GcRequest {
        network: conf.name.clone(),
        valid: valid
            .iter()
            .map(|v| AttachmentKey {
                container_id: v.container_id.clone(),
                ifname: v.ifname.clone(),
            })
            .collect(),
    };
    let resp = block_on(async {
        let mut a = agent::connect(&conf.agent_socket).await?;
        a.gc(req)
            .await
            .map_err(|s| CniError::from(s).context("GC failed"))
    })??
    .into_inner();
    if !resp.errors.is_empty() {
        return Err(
            CniError::new(code::TRY_AGAIN, "GC could not clean every attachment")
                .with_details(resp.errors.join("; ")),
        );
    }
    Ok(String::new())
}

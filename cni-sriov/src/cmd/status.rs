//! STATUS (spec 1.1.0): ready when the agent answers; 50 (not available) while it does not.

use sriov_proto::node::StatusRequest;

use super::block_on;
use crate::agent;
use crate::error::{CniError, code};
use crate::netconf::NetConf;

/// Runs STATUS. Success prints nothing.
pub fn status(conf: &NetConf) -> Result<String, CniError> {
    block_on(async {
        let mut a = agent::connect(&conf.agent_socket).await?;
        a.status(StatusRequest {})
            .await
            .map_err(|s| CniError::from(s).context("status"))
    })?
    .map_err(|e| CniError::new(code::NOT_AVAILABLE, e.msg).with_details(e.details))?;
    Ok(String::new())
}

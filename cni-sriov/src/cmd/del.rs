//! DEL: idempotent, and needs neither CNI_NETNS nor a live namespace. Everything to undo is in the
//! agent's record (keyed by container ID + ifname): the VF is found by its PCI address wherever it
//! is, renamed back, and its original configuration restored before the record is released.

use sriov_hw::attach::{self, NodeMachine};

use super::{block_on, fetch, joined, key, live_netns};
use crate::agent;
use crate::error::{CniError, code};
use crate::ipam;
use crate::netconf::NetConf;
use crate::request::Request;

/// Runs DEL. Success prints nothing.
pub fn del(req: &Request, conf: &NetConf) -> Result<String, CniError> {
    block_on(del_async(req, conf))??;
    Ok(String::new())
}

async fn del_async(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    let (mut agent, rec) = fetch(req, &conf.agent_socket).await?;
    let Some(rec) = rec else {
        // Never added, or already deleted (containerd calls DEL twice): nothing to do.
        return Ok(());
    };
    let hw = rec
        .to_hw()
        .map_err(|e| CniError::new(code::INTERNAL, format!("agent record: {e}")))?;
    let ns = live_netns(req.netns(), &rec);
    let vf_gone = !std::path::Path::new(&rec.sysfs_root)
        .join("bus/pci/devices")
        .join(&rec.vf_pci)
        .exists();
    if !vf_gone {
        let machine = NodeMachine::new(&rec.pf_driver, std::path::Path::new(&rec.sysfs_root))
            .map_err(|e| CniError::new(code::TRY_AGAIN, format!("netlink: {e}")))?;
        if let Err(errs) = attach::restore(
            &machine,
            &hw.target,
            &hw.original,
            &hw.settings,
            ns.as_ref(),
            &req.ifname,
        )
        .await
        {
            // Keep the record: releasing a VF whose configuration was not restored would let the
            // next pod record the leaked state as "original". The runtime retries DEL.
            return Err(CniError::new(
                code::TRY_AGAIN,
                format!("restoring VF {} on PF {} failed", rec.vf_pci, rec.pf_name),
            )
            .with_details(joined(&errs)));
        }
    }
    if rec.desired.as_ref().is_none_or(|d| d.ips.is_empty()) {
        ipam::exec(req, conf, "DEL")?;
    }
    agent
        .release(key(req))
        .await
        .map_err(|s| agent::to_cni("releasing the attachment failed", s))?;
    Ok(())
}

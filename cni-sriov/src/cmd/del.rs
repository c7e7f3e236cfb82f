//! DEL: idempotent, and needs neither CNI_NETNS nor a live namespace. Everything to undo is in the
//! agent's record (keyed by container ID + ifname): the VF is found by its PCI address wherever it
//! is, renamed back, and its original configuration restored before the record is released.

use sriov_hw::attach::{self, NodeMachine};

use super::{block_on, fetch, key, live_netns};
use crate::error::{CniError, Failure};
use crate::netconf::NetConf;
use crate::request::Request;
use crate::{ipam, logfile};

/// Runs DEL. Success prints nothing.
pub fn del(req: &Request, conf: &NetConf) -> Result<String, CniError> {
    block_on(del_async(req, conf))??;
    Ok(String::new())
}

async fn del_async(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    let (mut agent, rec) = fetch(req, &conf.agent_socket).await?;
    let Some(rec) = rec else {
        // Never added, or already deleted (containerd calls DEL twice): nothing to do.
        tracing::debug!("no attachment recorded: nothing to undo");
        return Ok(());
    };
    logfile::set_vf(&rec.vf_pci);
    let hw = rec.to_hw()?;
    let ns = live_netns(req.netns(), &rec);
    let vf_gone = !std::path::Path::new(&rec.sysfs_root)
        .join("bus/pci/devices")
        .join(&rec.vf_pci)
        .exists();
    tracing::debug!(
        pf = %rec.pf_name,
        vf_index = rec.vf_index,
        pod_netns_alive = ns.is_some(),
        vf_gone,
        "restoring the VF"
    );
    if !vf_gone {
        let machine = NodeMachine::new(&rec.pf_driver, std::path::Path::new(&rec.sysfs_root))
            .map_err(Failure::RestoreUnreachable)?;
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
            return Err(Failure::Restore {
                vf: rec.vf_pci.clone(),
                pf: rec.pf_name.clone(),
                errs,
            }
            .into());
        }
    }
    if rec.desired.as_ref().is_none_or(|d| d.ips.is_empty()) {
        tracing::debug!(
            plugin = conf.ipam_type(),
            "releasing the delegated addresses"
        );
        ipam::exec(req, conf, "DEL")?;
    }
    agent
        .release(key(req))
        .await
        .map_err(|s| CniError::from(s).context("releasing the attachment failed"))?;
    tracing::debug!("attachment released");
    Ok(())
}

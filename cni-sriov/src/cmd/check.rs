//! CHECK: the attachment is recorded and committed, and the pod interface is still there with the
//! recorded MAC and addresses.

use sriov_hw::netlink::Netlink;
use sriov_hw::netns::NetnsHandle;
use sriov_proto::node::State;

use super::{block_on, fetch};
use crate::error::{CniError, Failure, code};
use crate::netconf::NetConf;
use crate::request::Request;
use crate::result::CniResult;
use crate::{ipam, logfile};

/// Runs CHECK. Success prints nothing.
pub fn check(req: &Request, conf: &NetConf) -> Result<String, CniError> {
    block_on(check_async(req, conf))??;
    if conf.ipam_type().is_some() {
        ipam::exec(req, conf, "CHECK")?;
    }
    Ok(String::new())
}

async fn check_async(req: &Request, conf: &NetConf) -> Result<(), CniError> {
    let (_, rec) = fetch(req, &conf.agent_socket).await?;
    let fail = |msg: String| CniError::new(code::UNKNOWN_CONTAINER, msg);
    let rec =
        rec.ok_or_else(|| fail(format!("no attachment {}/{}", req.container_id, req.ifname)))?;
    logfile::set_vf(&rec.vf_pci);
    if rec.state() != State::Committed {
        return Err(fail(format!(
            "attachment {}/{} was never completed",
            req.container_id, req.ifname
        )));
    }
    if rec.vfio {
        return Ok(());
    }
    let stored = CniResult::parse_bytes(rec.result_json.as_bytes(), "1.1.0")?;
    let path = req.netns().unwrap_or(std::path::Path::new(&rec.netns_path));
    let ns = NetnsHandle::open(path).map_err(Failure::PodNetnsGone)?;
    let nl = Netlink::in_netns(&ns)?;
    let link = nl
        .link_by_name(&req.ifname)
        .await?
        .ok_or_else(|| fail(format!("{} is missing from the pod namespace", req.ifname)))?;
    let want_mac = stored.interfaces.first().and_then(|i| i.mac.clone());
    if want_mac.is_some() && link.mac.map(|m| m.to_string()) != want_mac {
        return Err(fail(format!(
            "{} has MAC {:?}, expected {want_mac:?}",
            req.ifname, link.mac
        )));
    }
    let have = nl.list_addresses(&req.ifname).await?;
    for ip in &stored.ips {
        if !have
            .iter()
            .any(|a| a.addr == ip.address.addr && a.prefix == ip.address.prefix)
        {
            return Err(fail(format!("{} lost address {}", req.ifname, ip.address)));
        }
    }
    Ok(())
}

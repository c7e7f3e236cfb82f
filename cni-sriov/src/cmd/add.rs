//! ADD: plan with the agent (intent recorded before the kernel is touched), configure the VF,
//! commit. Any failure rolls back in reverse and aborts the intent, leaving nothing behind; a
//! rollback step that fails does not change the error the runtime gets, and is logged.

use std::net::IpAddr;

use sriov_hw::attach::{self, NodeMachine, PodConfig, Route as HwRoute};
use sriov_hw::netns::NetnsHandle;
use sriov_proto::convert::{link_state_name, proto_name};
use sriov_proto::node::{Attachment, PlanRequest, VfSettings};

use super::{block_on, key};
use crate::error::{CniError, Failure, code};
use crate::logfile::rollback_failed;
use crate::netconf::NetConf;
use crate::request::Request;
use crate::result::{CniResult, Dns, Interface, IpCidr, IpConfig, Route};
use crate::{agent, ipam, logfile};

/// Runs ADD and returns the result JSON in the netconf's version.
pub fn add(req: &Request, conf: &NetConf) -> Result<String, CniError> {
    let netns_path = req
        .netns()
        .ok_or_else(|| CniError::new(code::INVALID_ENV, "CNI_NETNS is not set"))?;
    let ns = NetnsHandle::open(netns_path).map_err(|source| Failure::Netns {
        path: netns_path.to_path_buf(),
        source,
    })?;
    let result = block_on(add_async(req, conf, &ns))??;
    result.to_json(&conf.cni_version)
}

async fn add_async(req: &Request, conf: &NetConf, ns: &NetnsHandle) -> Result<CniResult, CniError> {
    let mut agent = agent::connect(&conf.agent_socket).await?;
    let rec = agent
        .plan(plan_request(req, conf, ns))
        .await
        .map_err(|s| CniError::from(s).context("the agent refused the attachment"))?
        .into_inner();
    logfile::set_vf(&rec.vf_pci);
    tracing::debug!(
        pf = %rec.pf_name,
        vf_index = rec.vf_index,
        vfio = rec.vfio,
        "planned: intent recorded"
    );
    match configure(req, conf, ns, &rec).await {
        Ok(result) => {
            let json = result.to_json("1.1.0")?;
            let commit = agent
                .commit(sriov_proto::node::CommitRequest {
                    key: Some(key(req)),
                    result_json: json,
                    ipam_ips: Vec::new(),
                })
                .await;
            match commit {
                Ok(_) => {
                    tracing::debug!("committed");
                    Ok(result)
                }
                Err(s) => {
                    // The agent did not record success: undo, so the runtime's retry starts clean.
                    undo(req, conf, ns, &rec).await;
                    abort(&mut agent, conf, req).await;
                    Err(CniError::from(s).context("recording the attachment failed"))
                }
            }
        }
        Err(e) => {
            abort(&mut agent, conf, req).await;
            Err(e)
        }
    }
}

/// Drops the intent recorded by Plan. A failure is only logged: the ADD's own error is what the
/// runtime must see, and the agent's reconciler (or the runtime's DEL) cleans a pending record.
/// How long a rolled-back ADD keeps trying to drop its intent while the agent is unreachable. The
/// agent may have recorded the Commit and died before answering (kill -9, a DaemonSet rollout):
/// until the record is aborted the ledger says "committed" for an ADD that failed. A restarted
/// agent serves again within a second or two; past this, the runtime's DEL of the failed
/// sandbox cleans the record up.
const ABORT_RETRY: std::time::Duration = std::time::Duration::from_secs(3);

async fn abort(agent: &mut agent::Agent, conf: &NetConf, req: &Request) {
    let started = std::time::Instant::now();
    let mut res = agent.abort(key(req)).await;
    while let Err(s) = &res {
        let unreachable = matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
        );
        if !unreachable || started.elapsed() >= ABORT_RETRY {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Ok(fresh) = agent::connect(&conf.agent_socket).await {
            *agent = fresh;
            res = agent.abort(key(req)).await;
        }
    }
    match res {
        Ok(_) => tracing::debug!("intent aborted"),
        Err(s) => rollback_failed("abort the intent", &CniError::from(s)),
    }
}

/// Gives delegated addresses back after a failed ADD; a failure is logged (see [`abort`]).
fn ipam_del(req: &Request, conf: &NetConf) {
    match ipam::exec(req, conf, "DEL") {
        Ok(_) => tracing::debug!(plugin = conf.ipam_type(), "delegated addresses released"),
        Err(e) => rollback_failed("release the delegated addresses (IPAM DEL)", &e),
    }
}

/// Everything between Plan and Commit. On error the kernel and IPAM are already rolled back.
async fn configure(
    req: &Request,
    conf: &NetConf,
    ns: &NetnsHandle,
    rec: &Attachment,
) -> Result<CniResult, CniError> {
    let hw = rec.to_hw()?;
    let desired = rec.desired.clone().unwrap_or_default();
    let (mut result, delegated) = if desired.ips.is_empty() {
        tracing::debug!(
            plugin = conf.ipam_type(),
            "addresses from the netconf's IPAM"
        );
        match ipam::exec(req, conf, "ADD")? {
            Some(r) => (r, true),
            None => (CniResult::default(), false),
        }
    } else {
        (fixed_addresses(&desired)?, false)
    };
    let pod = PodConfig {
        ifname: req.ifname.clone(),
        mtu: conf.mtu,
        addresses: result.ips.iter().map(|i| i.address).collect(),
        routes: result
            .routes
            .iter()
            .map(|r| HwRoute {
                dst: r.dst,
                gw: r.gw,
            })
            .collect(),
    };
    let machine = match NodeMachine::new(&rec.pf_driver, std::path::Path::new(&rec.sysfs_root)) {
        Ok(m) => m,
        Err(e) => {
            if delegated {
                ipam_del(req, conf);
            }
            return Err(e.into());
        }
    };
    let applied =
        match attach::apply(&machine, &hw.target, &hw.original, &hw.settings, ns, &pod).await {
            Ok(a) => a,
            Err(e) => {
                for r in &e.rollback {
                    rollback_failed("undo the VF configuration", r);
                }
                if delegated {
                    ipam_del(req, conf);
                }
                return Err(Failure::Attach {
                    vf: rec.vf_pci.clone(),
                    pf: rec.pf_name.clone(),
                    source: e,
                }
                .into());
            }
        };
    tracing::debug!(
        ifname = %applied.ifname,
        mac = applied.mac.map(|m| m.to_string()),
        mtu = applied.mtu,
        "VF attached"
    );
    let iface = Interface {
        name: if hw.target.vfio {
            rec.vf_pci.clone()
        } else {
            applied.ifname
        },
        mac: applied.mac.map(|m| m.to_string()),
        sandbox: (!hw.target.vfio).then(|| rec.netns_path.clone()),
        mtu: (applied.mtu > 0).then_some(applied.mtu),
        pci_id: Some(rec.vf_pci.clone()),
        socket_path: None,
    };
    result.interfaces = vec![iface];
    for ip in &mut result.ips {
        ip.interface = Some(0);
    }
    if result.dns.is_empty()
        && let Some(d) = &conf.dns
    {
        result.dns = d.clone();
    }
    Ok(result)
}

/// Rolls a configured attachment back (used when Commit fails), attempting every step and
/// logging each one that fails.
async fn undo(req: &Request, conf: &NetConf, ns: &NetnsHandle, rec: &Attachment) {
    let restore = async {
        let hw = rec.to_hw()?;
        let machine = NodeMachine::new(&rec.pf_driver, std::path::Path::new(&rec.sysfs_root))?;
        let r = attach::restore(
            &machine,
            &hw.target,
            &hw.original,
            &hw.settings,
            Some(ns),
            &req.ifname,
        )
        .await;
        Ok::<_, CniError>(r.err().unwrap_or_default())
    };
    match restore.await {
        Ok(errs) if errs.is_empty() => tracing::debug!("VF configuration undone"),
        Ok(errs) => {
            for e in &errs {
                rollback_failed("undo the VF configuration", e);
            }
        }
        Err(e) => rollback_failed("undo the VF configuration", &e),
    }
    if rec.desired.as_ref().is_none_or(|d| d.ips.is_empty()) {
        ipam_del(req, conf);
    }
}

/// The result for addresses the pod table (or runtimeConfig) fixed.
fn fixed_addresses(d: &sriov_proto::node::Desired) -> Result<CniResult, CniError> {
    let bad = |what: &str, v: &str| {
        CniError::new(code::INTERNAL, format!("agent sent a bad {what} {v:?}"))
    };
    let gateways: Vec<IpAddr> = d
        .gateways
        .iter()
        .map(|g| g.parse().map_err(|_| bad("gateway", g)))
        .collect::<Result<_, _>>()?;
    let mut r = CniResult::default();
    for ip in &d.ips {
        let address: IpCidr = ip.parse().map_err(|_| bad("IP", ip))?;
        let gateway = gateways
            .iter()
            .copied()
            .find(|g| g.is_ipv4() == address.is_ipv4());
        r.ips.push(IpConfig {
            address,
            gateway,
            interface: Some(0),
        });
    }
    for rt in &d.routes {
        let dst: IpCidr = rt.dst.parse().map_err(|_| bad("route", &rt.dst))?;
        let gw = if rt.gw.is_empty() {
            None
        } else {
            Some(rt.gw.parse().map_err(|_| bad("route gateway", &rt.gw))?)
        };
        r.routes.push(Route::new(dst, gw));
    }
    if let Some(dns) = &d.dns {
        r.dns = Dns {
            nameservers: dns.nameservers.clone(),
            domain: (!dns.domain.is_empty()).then(|| dns.domain.clone()),
            search: dns.search.clone(),
            options: dns.options.clone(),
        };
    }
    Ok(r)
}

fn plan_request(req: &Request, conf: &NetConf, ns: &NetnsHandle) -> PlanRequest {
    let id = ns.id();
    let a = &req.args;
    PlanRequest {
        key: Some(key(req)),
        netns_path: req
            .netns()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        netns_dev: id.dev,
        netns_ino: id.ino,
        pod_namespace: a.namespace().to_string(),
        pod_name: a.pod_name.clone().unwrap_or_default(),
        pod_uid: a.pod_uid.clone().unwrap_or_default(),
        network: conf.name.clone(),
        device_id: conf.device_id().map(|d| d.to_string()).unwrap_or_default(),
        resource_name: conf.resource_name.clone().unwrap_or_default(),
        use_pod_table: conf.pod_table,
        requested_ips: conf
            .runtime_config
            .ips
            .iter()
            .map(|c| c.to_string())
            .collect(),
        netconf: Some(VfSettings {
            mac: conf.mac.map(|m| m.to_string()).unwrap_or_default(),
            vlan: conf.vlan.map(u32::from),
            qos: conf.vlan_qos.map(u32::from),
            vlan_proto: conf
                .vlan_proto
                .map(proto_name)
                .unwrap_or_default()
                .to_string(),
            min_tx_rate: conf.min_tx_rate,
            max_tx_rate: conf.max_tx_rate,
            spoofchk: conf.spoofchk,
            trust: conf.trust,
            link_state: conf
                .link_state
                .map(link_state_name)
                .unwrap_or_default()
                .to_string(),
        }),
        mac_override: conf
            .runtime_config
            .mac
            .or(a.mac)
            .map(|m| m.to_string())
            .unwrap_or_default(),
    }
}

//! Plan: the first half of CNI ADD. Decide what the attachment gets (VF, settings, addresses),
//! capture the VF's original state before anything touches it, and record the intent durably.
//!
//! Order: validate → merge netconf, pod table and runtimeConfig → choose and claim a VF (under the
//! claims lock, no I/O) → read its original state → `ledger.plan` (one flushed transaction). A VF
//! or IP held by an attachment whose namespace is gone is reclaimed and the Plan retried once.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sriov_hw::attach::NodeMachine;
use sriov_hw::discovery::{self, Pf, Vf};
use sriov_hw::netlink::LinkInfo;
use sriov_hw::vfctl::{VfControl, VfNetdevs};
use sriov_hw::{MacAddr, PciAddr};
use sriov_proto::node::{
    Attachment, AttachmentKey, Desired, Dns, PlanRequest, Planner, Route, State as AttState,
    VfConfig, VfSettings,
};

use super::errors::AgentError;
use super::leasing;
use super::planner::{self, PlannerLiveness};
use super::quarantine;
use super::reclaim::{self, Liveness};
use super::state::{Claim, State};
use crate::ledger::{LedgerError, display_key};
use crate::podtable::{IpCidr, PodConfig};

/// The driver a VF is bound to when userspace (DPDK) owns it: no netdev.
pub const VFIO_DRIVER: &str = "vfio-pci";

/// What the attachment should get, before a VF is chosen.
struct Merged {
    desired: Desired,
    settings: VfSettings,
    reserved: Vec<String>,
}

/// Handles a Plan request from the CNI process `planner` (when the socket told us): returns the
/// PLANNED record.
pub async fn plan(
    state: &Arc<State>,
    req: PlanRequest,
    planner: Option<Planner>,
) -> Result<Attachment, AgentError> {
    let key = validate(&req)?;
    let merged = merge(state, &req)?;
    if let Some(old) = state.ledger.get(&key)? {
        refuse_or_release_abandoned(state, &old).await?;
    }
    // The cluster's word first: a fixed IP another node holds is refused before any VF is chosen.
    let leases = leasing::acquire(
        state,
        &req.network,
        &merged.reserved,
        (&req.pod_namespace, &req.pod_name),
    )
    .await?;
    let mut reclaimed = false;
    loop {
        let (claim, pf, vf) = match resolve(state, &req).await? {
            Resolved::Claimed(c, found) => (c, found.0, found.1),
            Resolved::Held(holder, pci) => {
                if reclaimed {
                    return Err(LedgerError::VfBusy {
                        pci: pci.to_string(),
                        holder: display_key(&holder),
                    }
                    .into());
                }
                reclaim_or_refuse(state, &holder, format!("VF {pci}")).await?;
                reclaimed = true;
                continue;
            }
        };
        let mut att = match record(state, &req, &key, &merged, &pf, &vf).await {
            Ok(att) => att,
            Err(AgentError::NotHome(why)) => {
                drop(claim);
                let why = quarantine::hold(state, vf.pci, why).await;
                if state.cfg.standalone && req.device_id.is_empty() {
                    continue; // the view now leaves it out: the next free VF of the pool
                }
                return Err(AgentError::OutOfService {
                    device: vf.pci.to_string(),
                    why,
                });
            }
            Err(e) => return Err(e),
        };
        att.planner = planner;
        let res = state.ledger.plan(&att);
        drop(claim);
        match res {
            Ok(()) => {
                leases.keep();
                tracing::info!(
                    attachment = %display_key(&key), pod = %reclaim::pod_of(&att),
                    vf = %att.vf_pci, ips = ?att.reserved_ips, "planned"
                );
                return Ok(att);
            }
            Err(LedgerError::IpBusy { ip, network, .. }) if !reclaimed => {
                if let Some(holder) = state.ledger.ip_holder(&network, &ip)? {
                    reclaim_or_refuse(state, &holder, format!("IP {ip} of network {network}"))
                        .await?;
                }
                reclaimed = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A record already under this key: the runtime's retry of an ADD whose CNI died between Plan
/// and Commit (killed by the runtime's timeout, or with an agent that died) leaves a PLANNED
/// record nobody will commit; it is undone and released so the retry starts clean. Anything else
/// is refused as "already exists".
async fn refuse_or_release_abandoned(state: &State, old: &Attachment) -> Result<(), AgentError> {
    let shown = display_key(&old.key.clone().unwrap_or_default());
    let abandoned = match old.state() {
        AttState::Planned => planner::liveness(Path::new(planner::PROC), old.planner.as_ref()),
        _ => PlannerLiveness::Unknown,
    };
    let PlannerLiveness::Exited(why) = abandoned else {
        return Err(LedgerError::Exists {
            key: shown,
            state: format!("{:?}", old.state()),
        }
        .into());
    };
    tracing::info!(attachment = %shown, vf = %old.vf_pci, %why, "releasing an abandoned PLANNED record before the retry");
    let live = reclaim::liveness(old);
    reclaim::release(state, old, live.handle())
        .await
        .map_err(|cause| AgentError::Reclaim {
            what: format!("the abandoned PLANNED record's VF {}", old.vf_pci),
            cause,
        })
}

/// Reclaims `holder` if its namespace is gone; otherwise refuses, naming it.
async fn reclaim_or_refuse(
    state: &State,
    holder: &AttachmentKey,
    what: String,
) -> Result<(), AgentError> {
    let Some(h) = state.ledger.get(holder)? else {
        return Ok(()); // released meanwhile
    };
    match reclaim::liveness(&h) {
        Liveness::Gone(why) => {
            tracing::info!(holder = %display_key(holder), pod = %reclaim::pod_of(&h), %why, "reclaiming {what} from a stale attachment");
            reclaim::release(state, &h, None)
                .await
                .map_err(|cause| AgentError::Reclaim { what, cause })
        }
        Liveness::Alive(_) | Liveness::Unknown(_) => Err(AgentError::Held {
            what,
            pod: reclaim::pod_of(&h),
            container: holder.container_id.clone(),
            ifname: holder.ifname.clone(),
        }),
    }
}

fn validate(req: &PlanRequest) -> Result<AttachmentKey, AgentError> {
    let key = req
        .key
        .clone()
        .ok_or_else(|| AgentError::invalid("key", "missing"))?;
    for (field, v) in [
        ("key.container_id", &key.container_id),
        ("key.ifname", &key.ifname),
        ("network", &req.network),
        ("netns_path", &req.netns_path),
    ] {
        if v.is_empty() {
            return Err(AgentError::invalid(field, "empty"));
        }
        if v.contains('\0') {
            return Err(AgentError::invalid(field, "contains NUL"));
        }
    }
    Ok(key)
}

/// Netconf settings, the pod table entry and runtimeConfig merged, per DESIGN §4's precedence.
fn merge(state: &State, req: &PlanRequest) -> Result<Merged, AgentError> {
    let entry = if req.use_pod_table {
        pod_table_entry(state, req)?
    } else {
        None
    };
    merge_entry(req, entry.as_ref())
}

/// [`merge`] with the pod table entry already looked up. MAC: `mac_override` > table > netconf;
/// IPs: `requested_ips` > table; VLAN, QoS and rates: table > netconf, field by field.
fn merge_entry(req: &PlanRequest, entry: Option<&PodConfig>) -> Result<Merged, AgentError> {
    let requested = req
        .requested_ips
        .iter()
        .map(|s| s.parse::<IpCidr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AgentError::invalid("requested_ips", e))?;
    let mut settings = req.netconf.clone().unwrap_or_default();
    settings
        .to_hw()
        .map_err(|e| AgentError::invalid("netconf", e))?;
    let mac_override = if req.mac_override.is_empty() {
        None
    } else {
        Some(
            req.mac_override
                .parse::<MacAddr>()
                .map_err(|e| AgentError::invalid("mac_override", e))?,
        )
    };
    if let Some(e) = entry {
        override_settings(&mut settings, e);
    }
    if let Some(m) = mac_override {
        settings.mac = m.to_string();
    }
    let mut desired = Desired::default();
    if let Some(e) = entry {
        desired.from_pod_table = true;
        desired.ips = e.ips.iter().map(ToString::to_string).collect();
        desired.gateways = e.gateway.iter().map(ToString::to_string).collect();
        desired.routes = e
            .routes
            .iter()
            .map(|r| Route {
                dst: r.dst.to_string(),
                gw: r.gw.map(|g| g.to_string()).unwrap_or_default(),
            })
            .collect();
        desired.dns = e.dns.as_ref().map(|d| Dns {
            nameservers: d.nameservers.iter().map(ToString::to_string).collect(),
            domain: d.domain.clone().unwrap_or_default(),
            search: d.search.clone(),
            options: d.options.clone(),
        });
    }
    if !requested.is_empty() {
        // runtimeConfig `ips` win; a table gateway survives only inside one of their subnets.
        desired.ips = requested.iter().map(ToString::to_string).collect();
        if let Some(e) = entry {
            desired.gateways = e
                .gateway
                .iter()
                .filter(|g| requested.iter().any(|c| c.contains(**g)))
                .map(ToString::to_string)
                .collect();
        }
    }
    let reserved = desired.ips.clone();
    Ok(Merged {
        desired,
        settings,
        reserved,
    })
}

/// The pod table's field-by-field overrides of the netconf's VF settings (also what a live
/// re-apply of an edited entry computes).
pub fn override_settings(s: &mut VfSettings, e: &PodConfig) {
    if let Some(m) = e.mac {
        s.mac = m.to_string();
    }
    if let Some(v) = e.vlan {
        s.vlan = Some(v.into());
        s.qos = Some(e.vlan_qos.unwrap_or(0).into());
    } else if let (Some(q), Some(_)) = (e.vlan_qos, s.vlan) {
        s.qos = Some(q.into());
    }
    if let Some(r) = e.max_tx_rate {
        s.max_tx_rate = Some(r);
    }
    if let Some(r) = e.min_tx_rate {
        s.min_tx_rate = Some(r);
    }
    if let Some(on) = e.spoofchk {
        s.spoofchk = Some(on);
    }
    if let Some(on) = e.trust {
        s.trust = Some(on);
    }
}

/// The pod's entry in the pod table in force, after a cheap refresh. A configured table that has
/// never loaded is an error: falling back to IPAM would hand the pod a different address.
fn pod_table_entry(state: &State, req: &PlanRequest) -> Result<Option<PodConfig>, AgentError> {
    let Some(src) = &state.podtable else {
        return Ok(None);
    };
    let mut src = src.lock().unwrap_or_else(|e| e.into_inner());
    state.table_refreshed(&src.refresh());
    if src.awaiting_first() {
        return Err(AgentError::PodTableUnknown(src.origin()));
    }
    let st = src.status();
    if st.loads_ok == 0
        && let Some(err) = st.last_error
    {
        return Err(AgentError::PodTableInvalid(err));
    }
    Ok(src
        .table()
        .lookup(&req.network, &req.pod_namespace, &req.pod_name))
}

enum Resolved<'a> {
    Claimed(Claim<'a>, Box<(Pf, Vf)>),
    Held(AttachmentKey, PciAddr),
}

/// Picks the VF (the request's `device_id`, or in standalone mode the first free VF of the pool)
/// and claims it so no concurrent Plan takes it before this one writes the ledger.
async fn resolve<'a>(state: &'a State, req: &PlanRequest) -> Result<Resolved<'a>, AgentError> {
    let mut snap = state.snapshot();
    let pci = if !req.device_id.is_empty() {
        let pci: PciAddr = req
            .device_id
            .parse()
            .map_err(|e| AgentError::invalid("device_id", e))?;
        if snap.vf(pci).is_none() {
            // Maybe created since the last scan.
            state.rescan().await;
            snap = state.snapshot();
        }
        if snap.vf(pci).is_none() {
            return Err(AgentError::UnknownDevice(pci.to_string()));
        }
        if !req.resource_name.is_empty()
            && let Some(pool) = snap.pool(&req.resource_name)
            && !pool.devices.iter().any(|d| d.pci == pci)
        {
            return Err(AgentError::NotInPool {
                device: pci.to_string(),
                pool: pool.resource(),
            });
        }
        if let Some((pf, _)) = snap.vf(pci)
            && let Some(why) = snap.unavailable(pf.pci, pci)
        {
            return Err(AgentError::OutOfService {
                device: pci.to_string(),
                why,
            });
        }
        let mut claims = state.claims.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = state.ledger.vf_holder(&pci.to_string())? {
            return Ok(Resolved::Held(h, pci));
        }
        if !claims.insert(pci) {
            return Err(LedgerError::VfBusy {
                pci: pci.to_string(),
                holder: "a concurrent Plan".into(),
            }
            .into());
        }
        pci
    } else if state.cfg.standalone {
        if req.resource_name.is_empty() {
            return Err(AgentError::invalid(
                "resource_name",
                "empty: without a deviceID the agent needs the pool to choose from",
            ));
        }
        let pool = snap
            .pool(&req.resource_name)
            .ok_or_else(|| AgentError::UnknownPool(req.resource_name.clone()))?;
        let mut claims = state.claims.lock().unwrap_or_else(|e| e.into_inner());
        let mut chosen = None;
        let mut unavailable = 0;
        for d in &pool.devices {
            if !d.healthy {
                unavailable += 1;
                continue;
            }
            if !claims.contains(&d.pci) && state.ledger.vf_holder(&d.id)?.is_none() {
                chosen = Some(d.pci);
                break;
            }
        }
        let pci = chosen.ok_or_else(|| AgentError::PoolExhausted {
            pool: pool.resource(),
            total: pool.devices.len(),
            unavailable,
        })?;
        claims.insert(pci);
        pci
    } else if let Some(sock) = &state.cfg.pod_resources_socket {
        // Kubelet allocated devices to the pod; take the first one not attached yet (a pod with
        // two interfaces of one resource gets one each). Multus-injected deviceIDs never get here.
        let pod = format!("{}/{}", req.pod_namespace, req.pod_name);
        let held = crate::podresources::devices_of_pod(
            sock,
            &req.pod_namespace,
            &req.pod_name,
            &req.resource_name,
        )
        .await
        .map_err(|e| AgentError::PodResources(e.to_string()))?;
        let mut claims = state.claims.lock().unwrap_or_else(|e| e.into_inner());
        let mut chosen = None;
        let mut out_of_service = None;
        for id in &held {
            let Ok(pci) = id.parse::<PciAddr>() else {
                continue;
            };
            let Some((pf, _)) = snap.vf(pci) else {
                continue;
            };
            if claims.contains(&pci) || state.ledger.vf_holder(id)?.is_some() {
                continue;
            }
            match snap.unavailable(pf.pci, pci) {
                None => {
                    chosen = Some(pci);
                    break;
                }
                Some(why) => out_of_service = Some((pci, why)),
            }
        }
        if chosen.is_none()
            && let Some((pci, why)) = out_of_service
        {
            return Err(AgentError::OutOfService {
                device: pci.to_string(),
                why,
            });
        }
        let pci = chosen.ok_or_else(|| AgentError::NoAllocatedDevice {
            pod,
            resource: req.resource_name.clone(),
            held: held.clone(),
        })?;
        claims.insert(pci);
        pci
    } else {
        return Err(AgentError::NotStandalone);
    };
    let claim = Claim { state, pci };
    let (pf, vf) = snap
        .vf(pci)
        .map(|(p, v)| (p.clone(), v.clone()))
        .ok_or_else(|| AgentError::UnknownDevice(pci.to_string()))?;
    Ok(Resolved::Claimed(claim, Box::new((pf, vf))))
}

/// Builds the PLANNED record, reading the VF's original state (netdev name, MAC, MTU in the
/// host; its configuration on the PF). Changes nothing, except re-creating an emulated VF whose
/// veth died with an earlier pod's namespace.
async fn record(
    state: &State,
    req: &PlanRequest,
    key: &AttachmentKey,
    m: &Merged,
    pf: &Pf,
    vf: &Vf,
) -> Result<Attachment, AgentError> {
    let pf_name = discovery::pf_netdev_of_vf(&state.sysfs, vf.pci).map_err(|e| {
        AgentError::Precondition(format!("PF of VF {} has no usable netdev: {e}", vf.pci))
    })?;
    let pf_driver = pf.driver.clone().unwrap_or_default();
    let vf_driver = vf.driver.clone().unwrap_or_default();
    let vfio = vf_driver == VFIO_DRIVER;
    let root = &state.cfg.sysfs_root;
    let shown = format!("{} ({pf_name} VF {})", vf.pci, vf.index);
    let machine = NodeMachine::new(&pf_driver, root)
        .map_err(|e| AgentError::hardware(&shown, "netlink", e))?;
    let link = if vfio {
        None
    } else {
        Some(host_netdev(state, &machine, &pf_name, &pf_driver, vf).await?)
    };
    let orig_vf = machine
        .backend()
        .vf_state(&pf_name, vf.index)
        .await
        .map(|s| VfConfig::from(&s))
        .map_err(|e| AgentError::hardware(&shown, "read VF state", e))?;
    let created_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut att = Attachment {
        key: Some(key.clone()),
        network: req.network.clone(),
        pod_namespace: req.pod_namespace.clone(),
        pod_name: req.pod_name.clone(),
        pod_uid: req.pod_uid.clone(),
        netns_path: req.netns_path.clone(),
        netns_dev: req.netns_dev,
        netns_ino: req.netns_ino,
        vf_pci: vf.pci.to_string(),
        pf_pci: pf.pci.to_string(),
        pf_name,
        vf_index: vf.index,
        vf_driver,
        pf_driver,
        vfio,
        orig_netdev: link.as_ref().map(|l| l.name.clone()).unwrap_or_default(),
        orig_mac: link
            .as_ref()
            .and_then(|l| l.mac)
            .map(|m| m.to_string())
            .unwrap_or_default(),
        orig_mtu: link.as_ref().map_or(0, |l| l.mtu),
        orig_vf: Some(orig_vf),
        desired: Some(m.desired.clone()),
        result_json: String::new(),
        created_unix,
        reserved_ips: m.reserved.clone(),
        sysfs_root: root.display().to_string(),
        settings: Some(m.settings.clone()),
        ..Default::default()
    };
    att.set_state(AttState::Planned);
    Ok(att)
}

/// The VF's netdev in the host namespace, as the PF's backend finds it. One that is not there is
/// revived (an emulated VF whose veth died with a namespace is re-created; a no-op for a real VF)
/// and looked up once more. `_state` and `_pf_driver` are unused: the machine's backend knows.
async fn host_netdev(
    _state: &State,
    machine: &NodeMachine,
    pf_name: &str,
    _pf_driver: &str,
    vf: &Vf,
) -> Result<LinkInfo, AgentError> {
    let backend = machine.backend();
    let hw = |e: sriov_hw::vfctl::VfError| AgentError::hardware(vf.pci, "find its netdev", e);
    let lookup = || backend.host_netdev(pf_name, vf.index, vf.pci);
    if let Some(l) = lookup().await.map_err(hw)? {
        return Ok(l);
    }
    backend.revive(pf_name, vf.index).await.map_err(hw)?;
    if let Some(l) = lookup().await.map_err(hw)? {
        return Ok(l);
    }
    match vf.driver.as_deref() {
        // No driver, no netdev anywhere: nothing is "away", the VF is just not usable as it is.
        None => Err(AgentError::Precondition(format!(
            "VF {} has no driver bound: no netdev to attach",
            vf.pci
        ))),
        Some(driver) => Err(AgentError::NotHome(format!(
            "{} netdev is not in the host namespace (driver {driver}) and no attachment holds it",
            vf.pci
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> PodConfig {
        PodConfig {
            ips: vec![
                "10.1.0.5/24".parse().unwrap(),
                "fd00::5/64".parse().unwrap(),
            ],
            gateway: vec!["10.1.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
            mac: Some("02:00:00:00:00:05".parse().unwrap()),
            vlan: Some(200),
            max_tx_rate: Some(100),
            ..Default::default()
        }
    }

    fn req() -> PlanRequest {
        PlanRequest {
            netconf: Some(VfSettings {
                mac: "02:00:00:00:00:99".into(),
                vlan: Some(10),
                qos: Some(4),
                vlan_proto: "802.1ad".into(),
                min_tx_rate: Some(5),
                spoofchk: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_pod_table_overrides_the_netconf_field_by_field() {
        let m = merge_entry(&req(), Some(&entry())).unwrap();
        let s = m.settings;
        assert_eq!(s.mac, "02:00:00:00:00:05");
        // Table VLAN: QoS defaults to 0 (not the netconf's 4), the netconf's protocol stays.
        assert_eq!(
            (s.vlan, s.qos, s.vlan_proto.as_str()),
            (Some(200), Some(0), "802.1ad")
        );
        assert_eq!((s.min_tx_rate, s.max_tx_rate), (Some(5), Some(100)));
        assert_eq!(s.spoofchk, Some(false));
        let d = m.desired;
        assert!(d.from_pod_table);
        assert_eq!(d.ips, ["10.1.0.5/24", "fd00::5/64"]);
        assert_eq!(d.gateways, ["10.1.0.1", "fd00::1"]);
        assert_eq!(m.reserved, d.ips);
    }

    #[test]
    fn mac_override_and_requested_ips_beat_the_table() {
        let mut r = req();
        r.mac_override = "02:00:00:00:00:aa".into();
        r.requested_ips = vec!["10.1.0.77/24".into()];
        let m = merge_entry(&r, Some(&entry())).unwrap();
        assert_eq!(m.settings.mac, "02:00:00:00:00:aa");
        assert_eq!(m.desired.ips, ["10.1.0.77/24"]);
        // Only the gateway inside a requested subnet survives.
        assert_eq!(m.desired.gateways, ["10.1.0.1"]);
        assert_eq!(m.reserved, ["10.1.0.77/24"]);
    }

    #[test]
    fn without_an_entry_the_netconf_stands_and_nothing_is_reserved() {
        let m = merge_entry(&req(), None).unwrap();
        assert_eq!(m.settings, req().netconf.unwrap());
        assert!(!m.desired.from_pod_table);
        assert!(m.desired.ips.is_empty() && m.reserved.is_empty());
    }

    #[test]
    fn table_qos_without_table_vlan_applies_to_the_netconf_vlan() {
        let e = PodConfig {
            vlan_qos: Some(6),
            ..Default::default()
        };
        let s = merge_entry(&req(), Some(&e)).unwrap().settings;
        assert_eq!((s.vlan, s.qos), (Some(10), Some(6)));
    }

    #[test]
    fn bad_netconf_settings_are_invalid_arguments() {
        let mut r = req();
        r.netconf.as_mut().unwrap().vlan_proto = "802.1x".into();
        let e = merge_entry(&r, None).err().unwrap();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.to_string().contains("netconf"), "{e}");
    }
}

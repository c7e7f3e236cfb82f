//! The agent's side of the cluster-wide IP leases ([`crate::cluster::leases`]): which IPs of an
//! attachment are leased, taking them in Plan, letting them go with the record, re-adopting
//! them after a restart, and the [`Fencer`] that takes an address off a pod's VF and back.

use std::net::IpAddr;
use std::sync::Arc;

use sriov_hw::cidr::IpCidr;
use sriov_hw::netlink::Netlink;
use sriov_hw::netns::NetnsHandle;
use sriov_proto::node::Attachment;

use super::errors::AgentError;
use super::state::State;
use crate::cluster::events::Kind;
use crate::cluster::leases::{Fencer, IpKey, LeaseError};

/// The leased keys of an attachment: every reserved IP (pod table or runtimeConfig) on its network.
pub fn keys_of(network: &str, reserved: &[String]) -> Vec<IpKey> {
    reserved
        .iter()
        .filter_map(|s| s.split('/').next()?.parse::<IpAddr>().ok())
        .map(|ip| IpKey {
            network: network.to_string(),
            ip,
        })
        .collect()
}

/// Leases taken by one Plan; dropped without [`Taken::keep`], they are released (in the
/// background: the Plan failed after taking them).
pub struct Taken {
    state: Option<Arc<State>>,
    fresh: Vec<IpKey>,
}

impl Taken {
    /// The Plan's record is written: the leases now belong to the attachment.
    pub fn keep(mut self) {
        self.fresh.clear();
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        let (Some(state), false) = (self.state.take(), self.fresh.is_empty()) else {
            return;
        };
        let fresh = std::mem::take(&mut self.fresh);
        tokio::spawn(async move {
            if let Some(l) = &state.leases {
                for k in &fresh {
                    l.release(k).await;
                }
            }
        });
    }
}

/// Takes every lease of `reserved` for `pod` before the kernel is touched. Any refusal answers
/// the Plan (code 11 for the CNI), releases what this call took, and is an Event on the pod.
pub async fn acquire(
    state: &Arc<State>,
    network: &str,
    reserved: &[String],
    pod: (&str, &str),
) -> Result<Taken, AgentError> {
    let mut taken = Taken {
        state: Some(Arc::clone(state)),
        fresh: Vec::new(),
    };
    let Some(leases) = &state.leases else {
        return Ok(taken);
    };
    let pod_key = format!("{}/{}", pod.0, pod.1);
    for k in keys_of(network, reserved) {
        match leases.acquire(&k, &pod_key).await {
            Ok(true) => taken.fresh.push(k),
            Ok(false) => {}
            Err(e) => {
                if let LeaseError::Held { node, .. } = &e {
                    leases.pod_event(
                        &pod_key,
                        Kind::Warning,
                        "FixedIPRefused",
                        format!("{k} is held by node {node}: {e}"),
                    );
                }
                return Err(AgentError::Lease(e.to_string()));
            }
        }
    }
    Ok(taken)
}

/// Lets go of an attachment's leases once its record is gone (DEL, Abort, reconciler): no more
/// renewals from now, and the Lease objects deleted in the background, so DEL does not wait on
/// the API server (a late delete is safe: until it lands, other nodes only wait longer).
pub fn release(state: &State, a: &Attachment) {
    if let Some(l) = &state.leases {
        let keys = keys_of(&a.network, &a.reserved_ips);
        for k in &keys {
            l.forget(k);
        }
        let l = Arc::clone(l);
        tokio::spawn(async move {
            for k in &keys {
                l.delete_if_ours(k).await;
            }
        });
    }
}

/// After a restart: every recorded attachment's leases are this node's to renew.
pub fn adopt_all(state: &State) {
    let Some(l) = &state.leases else { return };
    let Ok(all) = state.ledger.list() else { return };
    for a in &all {
        let pod = format!("{}/{}", a.pod_namespace, a.pod_name);
        for k in keys_of(&a.network, &a.reserved_ips) {
            l.adopt(&k, &pod);
        }
    }
}

/// Fences on the ledger: the attachment that reserved the IP names the pod netns, the interface
/// and the address with its prefix.
pub struct LedgerFencer {
    /// The agent's state: the ledger to find the holder, the VF to fence on.
    pub state: Arc<State>,
}

impl LedgerFencer {
    /// The attachment holding `key`, its netns, the pod-side name and the address with prefix.
    fn locate(&self, key: &IpKey) -> Result<(Attachment, NetnsHandle, String, IpCidr), String> {
        let holder = self
            .state
            .ledger
            .ip_holder(&key.network, &key.ip.to_string())
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no attachment holds {key}"))?;
        let a = self
            .state
            .ledger
            .get(&holder)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no attachment holds {key}"))?;
        let cidr = a
            .reserved_ips
            .iter()
            .filter_map(|s| s.parse::<IpCidr>().ok())
            .find(|c| c.addr == key.ip)
            .ok_or_else(|| format!("{key}: no prefix recorded"))?;
        let ns = NetnsHandle::open(&a.netns_path).map_err(|e| e.to_string())?;
        let ifname = holder.ifname.clone();
        Ok((a, ns, ifname, cidr))
    }
}

#[tonic::async_trait]
impl Fencer for LedgerFencer {
    async fn fence(&self, key: &IpKey) -> Result<(), String> {
        let (_, ns, ifname, cidr) = self.locate(key)?;
        let nl = Netlink::in_netns(&ns).map_err(|e| e.to_string())?;
        nl.del_address(&ifname, cidr)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn restore(&self, key: &IpKey) -> Result<(), String> {
        let (a, ns, ifname, cidr) = self.locate(key)?;
        let nl = Netlink::in_netns(&ns).map_err(|e| e.to_string())?;
        match nl.add_address(&ifname, cidr).await {
            Ok(()) => {}
            Err(e) if e.errno() == Some(nix::libc::EEXIST) => {}
            Err(e) => return Err(e.to_string()),
        }
        // Deleting the address took the routes through it with it.
        for (dst, gw) in routes_of(&a.result_json) {
            if dst.addr.is_ipv4() != key.ip.is_ipv4() {
                continue;
            }
            match nl.add_route(&ifname, dst, gw).await {
                Ok(()) => {}
                Err(e) if e.errno() == Some(nix::libc::EEXIST) => {}
                Err(e) => tracing::warn!(ip = %key, route = %dst, error = %e, "route not restored"),
            }
        }
        // The peers may have learnt another MAC for it meanwhile (the node that held it).
        super::neighbours::announce_in_background(&a, Some(key.ip));
        Ok(())
    }
}

/// The routes of a committed CNI result (`routes: [{dst, gw?}]`).
fn routes_of(result_json: &str) -> Vec<(IpCidr, Option<IpAddr>)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(result_json) else {
        return Vec::new();
    };
    v.get("routes")
        .and_then(|r| r.as_array())
        .map(|rs| {
            rs.iter()
                .filter_map(|r| {
                    let dst = r.get("dst")?.as_str()?.parse::<IpCidr>().ok()?;
                    let gw = r
                        .get("gw")
                        .and_then(|g| g.as_str())
                        .and_then(|g| g.parse().ok());
                    Some((dst, gw))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_cidrs_become_lease_keys() {
        let k = keys_of(
            "db-net",
            &["10.10.0.10/24".into(), "fd00::10/64".into(), "junk".into()],
        );
        assert_eq!(k.len(), 2);
        assert_eq!(k[0].ip.to_string(), "10.10.0.10");
        assert_eq!(k[1].ip.to_string(), "fd00::10");
    }

    #[test]
    fn routes_come_back_from_the_committed_result() {
        let r = routes_of(
            r#"{"routes":[{"dst":"0.0.0.0/0","gw":"10.10.0.1"},{"dst":"192.0.2.0/24"}]}"#,
        );
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].1, Some("10.10.0.1".parse().unwrap()));
        assert_eq!(r[1].1, None);
        assert!(routes_of("not json").is_empty());
    }
}

//! Turns the file's raw shape into the typed table, collecting every problem instead of stopping
//! at the first. Three passes per network: decode each field (syntax and ranges), merge each
//! entry over the defaults and check the result as one pod sees it (gateway inside its subnets,
//! QoS only with a VLAN, min ≤ max rate), then check across pods (an IP or MAC given twice).

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::Value;
use sriov_hw::MacAddr;

use super::decode::{Fields, decode};
use super::error::{PodTableError, Problem, Scope};
use super::keys::check_pod_key;
use super::model::PodConfig;
use super::raw::RawTable;
use super::{NetworkTable, PodTable};

/// Validates a decoded file into a table; any problem rejects the whole table.
pub(super) fn build(raw: RawTable) -> Result<PodTable, PodTableError> {
    let mut problems = Vec::new();
    let mut networks = HashMap::with_capacity(raw.networks.0.len());
    let mut entries = 0;
    for (name, net) in raw.networks.0 {
        let mut report = |scope: Scope, message: String| {
            problems.push(Problem {
                network: name.clone(),
                scope,
                message,
            })
        };
        if name.is_empty() {
            report(Scope::Network, "network name is empty".into());
        }
        if networks.contains_key(&name) {
            report(Scope::Network, "network appears twice in the table".into());
        }
        for key in &net.bad_keys {
            report(
                Scope::Network,
                match key.as_str() {
                    "defaults" | "pods" => format!("{key:?} appears twice"),
                    _ => format!("unknown key {key:?} (expected defaults, pods)"),
                },
            );
        }

        let mut msgs = Vec::new();
        let defaults = decode(net.defaults.unwrap_or(Value::Null), &mut msgs);
        let defaults_ok = msgs.is_empty();
        for m in msgs.drain(..) {
            report(Scope::Defaults, m);
        }

        let mut table = NetworkTable::default();
        table.pods.reserve(net.pods.0.len());
        let mut macs: HashMap<MacAddr, String> = HashMap::new();
        for (key, value) in net.pods.0 {
            let mut msgs = Vec::new();
            if let Err(e) = check_pod_key(&key) {
                msgs.push(e);
            }
            if table.pods.contains_key(&key) {
                msgs.push("pod key appears twice in this network".into());
            }
            let entry = decode(value, &mut msgs);
            if msgs.is_empty() && defaults_ok {
                let inherited_ips = entry.ips.is_none() && defaults.ips.is_some();
                let pod = merge(entry, &defaults, &mut msgs);
                let hint = if inherited_ips {
                    " (ips come from defaults)"
                } else {
                    ""
                };
                for (i, ip) in pod.ips.iter().enumerate() {
                    if let Some(other) = table.holders.get(&ip.addr) {
                        msgs.push(format!(
                            "ips[{i}] {} is also given to pod {other:?}{hint}",
                            ip.addr
                        ));
                    }
                }
                if let Some(mac) = pod.mac
                    && let Some(other) = macs.get(&mac)
                {
                    msgs.push(format!("mac {mac} is also given to pod {other:?}"));
                }
                if msgs.is_empty() {
                    for ip in &pod.ips {
                        table.holders.insert(ip.addr, key.clone());
                    }
                    if let Some(mac) = pod.mac {
                        macs.insert(mac, key.clone());
                    }
                    table.pods.insert(key.clone(), pod);
                }
            }
            for m in msgs {
                report(Scope::Pod(key.clone()), m);
            }
        }
        entries += table.pods.len();
        networks.insert(name, table);
    }
    if problems.is_empty() {
        Ok(PodTable { networks, entries })
    } else {
        Err(PodTableError::Invalid(problems))
    }
}

/// Merges an entry over the defaults (module docs: field by field, the entry wins) and checks
/// what only the merged pod can show.
fn merge(entry: Fields, defaults: &Fields, msgs: &mut Vec<String>) -> PodConfig {
    let d = defaults.clone();
    let ips = entry.ips.or(d.ips).unwrap_or_default();
    let has_family = |v4: bool| ips.iter().any(|c| c.is_ipv4() == v4);
    let subnets_of = |v4: bool| {
        let s: Vec<String> = ips
            .iter()
            .filter(|c| c.is_ipv4() == v4)
            .map(|c| c.to_string())
            .collect();
        if s.is_empty() {
            format!("the pod has no {} address", family(v4))
        } else {
            s.join(", ")
        }
    };
    let in_subnet = |ip: IpAddr| ips.iter().any(|c| c.contains(ip));

    let (gateway, from_defaults) = match entry.gateway {
        Some(g) => (g, false),
        // A dual-stack default gateway applies to the families the pod has addresses in.
        None => (
            d.gateway
                .unwrap_or_default()
                .into_iter()
                .filter(|g| has_family(g.is_ipv4()))
                .collect(),
            true,
        ),
    };
    let origin = if from_defaults {
        " (from defaults)"
    } else {
        ""
    };
    for g in &gateway {
        if ips.iter().any(|c| c.addr == *g) {
            msgs.push(format!("gateway {g}{origin} is the pod's own address"));
        } else if !in_subnet(*g) {
            msgs.push(format!(
                "gateway {g}{origin} is not inside any of the pod's {} subnets ({})",
                family(g.is_ipv4()),
                subnets_of(g.is_ipv4())
            ));
        }
    }

    let routes_from_defaults = entry.routes.is_none();
    let routes = entry.routes.or(d.routes).unwrap_or_default();
    let origin = if routes_from_defaults {
        " (from defaults)"
    } else {
        ""
    };
    for (i, r) in routes.iter().enumerate() {
        if let Some(gw) = r.gw
            && !in_subnet(gw)
        {
            msgs.push(format!(
                "routes[{i}].gw {gw}{origin} is not inside any of the pod's {} subnets ({})",
                family(gw.is_ipv4()),
                subnets_of(gw.is_ipv4())
            ));
        }
    }

    let vlan = entry.vlan.or(d.vlan);
    let vlan_qos = entry.vlan_qos.or(d.vlan_qos);
    if let Some(q) = vlan_qos.filter(|q| *q != 0)
        && vlan.unwrap_or(0) == 0
    {
        msgs.push(format!("vlanQoS {q} needs a vlan other than 0"));
    }
    let max_tx_rate = entry.max_tx_rate.or(d.max_tx_rate);
    let min_tx_rate = entry.min_tx_rate.or(d.min_tx_rate);
    if let (Some(min), Some(max)) = (min_tx_rate, max_tx_rate)
        && max != 0
        && min > max
    {
        msgs.push(format!("min_tx_rate {min} exceeds max_tx_rate {max}"));
    }

    PodConfig {
        gateway,
        routes,
        dns: entry.dns.or(d.dns),
        mac: entry.mac.or(d.mac),
        vlan,
        vlan_qos,
        max_tx_rate,
        min_tx_rate,
        spoofchk: entry.spoofchk.or(d.spoofchk),
        trust: entry.trust.or(d.trust),
        ips,
    }
}

fn family(v4: bool) -> &'static str {
    if v4 { "IPv4" } else { "IPv6" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::podtable::decode::tests::check;

    #[test]
    fn merged_checks() {
        let merged = |entry: &str, defaults: &str| {
            let (e, d) = (check(entry).unwrap(), check(defaults).unwrap());
            let mut msgs = Vec::new();
            let p = merge(e, &d, &mut msgs);
            (p, msgs)
        };
        let (_, m) = merged(r#"{"ips": ["10.0.0.5/24"], "gateway": "10.0.1.1"}"#, "{}");
        assert_eq!(
            m,
            ["gateway 10.0.1.1 is not inside any of the pod's IPv4 subnets (10.0.0.5/24)"]
        );
        let (_, m) = merged(r#"{"ips": ["10.0.0.5/24"]}"#, r#"{"gateway": "10.0.0.5"}"#);
        assert_eq!(
            m,
            ["gateway 10.0.0.5 (from defaults) is the pod's own address"]
        );
        let (_, m) = merged(r#"{"ips": ["10.0.0.5/24"], "gateway": "fd00::1"}"#, "{}");
        assert_eq!(
            m,
            [
                "gateway fd00::1 is not inside any of the pod's IPv6 subnets (the pod has no IPv6 address)"
            ]
        );
        // Inherited dual-stack gateways apply only to the families the pod has.
        let (p, m) = merged(
            r#"{"ips": ["10.0.0.5/24"]}"#,
            r#"{"gateway": ["10.0.0.1", "fd00::1"]}"#,
        );
        assert!(m.is_empty(), "{m:?}");
        assert_eq!(p.gateway, ["10.0.0.1".parse::<IpAddr>().unwrap()]);
        let (_, m) = merged(r#"{"vlanQoS": 3}"#, "{}");
        assert_eq!(m, ["vlanQoS 3 needs a vlan other than 0"]);
        let (_, m) = merged(r#"{"vlanQoS": 3}"#, r#"{"vlan": 0}"#);
        assert_eq!(m, ["vlanQoS 3 needs a vlan other than 0"]);
        let (_, m) = merged(r#"{"vlanQoS": 3}"#, r#"{"vlan": 7}"#);
        assert!(m.is_empty());
        let (_, m) = merged(r#"{"min_tx_rate": 500}"#, r#"{"max_tx_rate": 100}"#);
        assert_eq!(m, ["min_tx_rate 500 exceeds max_tx_rate 100"]);
        let (_, m) = merged(r#"{"min_tx_rate": 500, "max_tx_rate": 0}"#, "{}");
        assert!(m.is_empty());
        let (_, m) = merged(
            r#"{"ips": ["10.0.0.5/24"]}"#,
            r#"{"routes": [{"dst": "10.9.0.0/16", "gw": "10.1.0.1"}]}"#,
        );
        assert_eq!(
            m,
            [
                "routes[0].gw 10.1.0.1 (from defaults) is not inside any of the pod's IPv4 subnets (10.0.0.5/24)"
            ]
        );
    }
}

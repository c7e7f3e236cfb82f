//! Decoding one entry or the defaults: each field parsed and range-checked on its own, every
//! problem quoted with its field and value (`ips[0] "10.0.0.300/24" is not a CIDR`).

use std::net::IpAddr;

use serde_json::Value;
use sriov_hw::MacAddr;

use super::MAX_RATE_MBPS;
use super::model::{Dns, IpCidr, Route};
use super::raw::RawEntry;

/// An entry or the defaults after decoding: each field typed, `None` when not given.
#[derive(Default, Clone)]
pub(super) struct Fields {
    pub(super) ips: Option<Vec<IpCidr>>,
    pub(super) gateway: Option<Vec<IpAddr>>,
    pub(super) routes: Option<Vec<Route>>,
    pub(super) dns: Option<Dns>,
    pub(super) mac: Option<MacAddr>,
    pub(super) vlan: Option<u16>,
    pub(super) vlan_qos: Option<u8>,
    pub(super) max_tx_rate: Option<u32>,
    pub(super) min_tx_rate: Option<u32>,
    pub(super) spoofchk: Option<bool>,
    pub(super) trust: Option<bool>,
}

/// Decodes and range-checks one entry or the defaults (`null` = nothing given).
pub(super) fn decode(value: Value, msgs: &mut Vec<String>) -> Fields {
    if value.is_null() {
        return Fields::default();
    }
    let raw = RawEntry::decode(value, msgs);
    let ips = raw.ips.map(|ips| {
        let mut out: Vec<IpCidr> = Vec::with_capacity(ips.len());
        for (i, s) in ips.iter().enumerate() {
            let c = match s.parse::<IpCidr>() {
                Ok(c) => c,
                Err(e) => {
                    msgs.push(format!("ips[{i}] {e}"));
                    continue;
                }
            };
            if let Err(why) = check_host_address(&c) {
                msgs.push(format!("ips[{i}] {c} {why}"));
            }
            if let Some(j) = ips
                .iter()
                .take(i)
                .position(|p| p.parse::<IpCidr>().is_ok_and(|p| p.addr == c.addr))
            {
                msgs.push(format!("ips[{i}] {c} repeats the address of ips[{j}]"));
            }
            out.push(c);
        }
        out
    });

    let gateway = raw.gateway.map(|v| {
        let (items, list) = match v {
            Value::String(s) => (vec![Value::String(s)], false),
            Value::Array(a) => (a, true),
            other => {
                msgs.push(format!(
                    "gateway must be an IP address or a list of them, not {other}"
                ));
                return Vec::new();
            }
        };
        let mut out: Vec<IpAddr> = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let field = if list {
                format!("gateway[{i}]")
            } else {
                "gateway".into()
            };
            match parse_ip(&item) {
                Some(ip) if ip.is_unspecified() || ip.is_multicast() => {
                    msgs.push(format!("{field} {ip} is not a usable gateway"))
                }
                Some(ip) => {
                    if let Some(prev) = out.iter().find(|p| p.is_ipv4() == ip.is_ipv4()) {
                        msgs.push(format!(
                            "{field} {ip}: gateway already has {prev}; at most one per family"
                        ));
                    } else {
                        out.push(ip);
                    }
                }
                None => msgs.push(format!("{field} {item} is not an IP address")),
            }
        }
        out
    });

    let routes = raw.routes.map(|routes| {
        let mut out = Vec::with_capacity(routes.len());
        for (i, r) in routes.into_iter().enumerate() {
            let dst = match r.dst.parse::<IpCidr>() {
                Ok(d) => d,
                Err(e) => {
                    msgs.push(format!("routes[{i}].dst {e}"));
                    continue;
                }
            };
            if dst.network() != dst.addr {
                msgs.push(format!(
                    "routes[{i}].dst {dst} has host bits set (the subnet is {}/{})",
                    dst.network(),
                    dst.prefix
                ));
            }
            let gw = match r.gw.as_deref().map(|g| (g, g.parse::<IpAddr>())) {
                None => None,
                Some((g, Err(_))) => {
                    msgs.push(format!("routes[{i}].gw {g:?} is not an IP address"));
                    continue;
                }
                Some((_, Ok(g))) if g.is_ipv4() != dst.is_ipv4() => {
                    msgs.push(format!(
                        "routes[{i}].gw {g} is not of the same family as dst {dst}"
                    ));
                    continue;
                }
                Some((_, Ok(g))) => Some(g),
            };
            out.push(Route { dst, gw });
        }
        out
    });

    let dns = raw.dns.map(|d| {
        let mut nameservers = Vec::with_capacity(d.nameservers.len());
        for (i, s) in d.nameservers.iter().enumerate() {
            match s.parse::<IpAddr>() {
                Ok(ip) => nameservers.push(ip),
                Err(_) => msgs.push(format!("dns.nameservers[{i}] {s:?} is not an IP address")),
            }
        }
        Dns {
            nameservers,
            domain: d.domain,
            search: d.search,
            options: d.options,
        }
    });

    let mac = raw.mac.and_then(|s| match s.parse::<MacAddr>() {
        Err(_) => {
            msgs.push(format!(
                "mac {s:?} is not a MAC address (like 02:00:00:00:00:01)"
            ));
            None
        }
        Ok(m) if m.is_zero() => {
            msgs.push(format!("mac {s:?} is all zeros"));
            None
        }
        Ok(m) if m.is_multicast() => {
            msgs.push(format!(
                "mac {s:?} is a multicast address (first octet is odd)"
            ));
            None
        }
        Ok(m) => Some(m),
    });

    let vlan = raw.vlan.and_then(|v| in_range(msgs, "vlan", v, 4094));
    let vlan_qos = raw.vlan_qos.and_then(|v| in_range(msgs, "vlanQoS", v, 7));
    let max_tx_rate = raw
        .max_tx_rate
        .and_then(|v| in_range(msgs, "max_tx_rate", v, MAX_RATE_MBPS));
    let min_tx_rate = raw
        .min_tx_rate
        .and_then(|v| in_range(msgs, "min_tx_rate", v, MAX_RATE_MBPS));
    Fields {
        ips,
        gateway,
        routes,
        dns,
        mac,
        vlan,
        vlan_qos,
        max_tx_rate,
        min_tx_rate,
        spoofchk: raw.spoofchk,
        trust: raw.trust,
    }
}

/// `0..=max`, converted to the field's type.
fn in_range<T: TryFrom<i64> + Into<u64>>(
    msgs: &mut Vec<String>,
    field: &str,
    v: i64,
    max: T,
) -> Option<T> {
    let max: u64 = max.into();
    match T::try_from(v) {
        Ok(t) if v >= 0 && (v as u64) <= max => Some(t),
        _ => {
            msgs.push(format!("{field} {v} is out of range 0..={max}"));
            None
        }
    }
}

fn parse_ip(v: &Value) -> Option<IpAddr> {
    v.as_str()?.parse().ok()
}

/// A pod address must be one a host can own.
fn check_host_address(c: &IpCidr) -> Result<(), &'static str> {
    let a = c.addr;
    if a.is_unspecified() {
        return Err("is the unspecified address");
    }
    if a.is_multicast() {
        return Err("is a multicast address");
    }
    if a.is_loopback() {
        return Err("is a loopback address");
    }
    if let IpAddr::V4(v4) = a {
        if v4.is_broadcast() {
            return Err("is the broadcast address");
        }
        // /31 and /32 have no network or broadcast address (RFC 3021).
        if c.prefix < 31 {
            if a == c.network() {
                return Err("is the subnet's network address");
            }
            if Some(v4) == c.broadcast() {
                return Err("is the subnet's broadcast address");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Decodes `json`, returning the fields or the problems.
    pub(in crate::podtable) fn check(json: &str) -> Result<Fields, Vec<String>> {
        let mut msgs = Vec::new();
        let f = decode(serde_json::from_str(json).unwrap(), &mut msgs);
        if msgs.is_empty() { Ok(f) } else { Err(msgs) }
    }

    #[test]
    fn decodes_every_field() {
        let f = check(
            r#"{"ips": ["10.0.0.11/24", "fd00::11/64"], "gateway": ["10.0.0.1", "fd00::1"],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.0.0.254"}],
                "dns": {"nameservers": ["10.0.0.53"], "domain": "db.local", "search": ["db.local"], "options": ["ndots:2"]},
                "mac": "02:00:00:00:00:0b", "vlan": 100, "vlanQoS": 3, "max_tx_rate": 1000, "min_tx_rate": 100}"#,
        )
        .unwrap();
        assert_eq!(f.ips.unwrap().len(), 2);
        assert_eq!(f.gateway.unwrap().len(), 2);
        assert_eq!(f.routes.unwrap()[1].gw, Some("10.0.0.254".parse().unwrap()));
        assert_eq!(f.dns.unwrap().nameservers.len(), 1);
        assert_eq!(f.vlan, Some(100));
        assert_eq!(f.vlan_qos, Some(3));
        assert_eq!(f.max_tx_rate, Some(1000));
    }

    #[test]
    fn range_checks_quote_the_value() {
        for (json, frag) in [
            (r#"{"vlan": 4095}"#, "vlan 4095 is out of range 0..=4094"),
            (r#"{"vlan": -1}"#, "vlan -1 is out of range"),
            (r#"{"vlanQoS": 8}"#, "vlanQoS 8 is out of range 0..=7"),
            (r#"{"max_tx_rate": -5}"#, "max_tx_rate -5 is out of range"),
            (
                r#"{"min_tx_rate": 99999999999}"#,
                "min_tx_rate 99999999999 is out of range",
            ),
            (r#"{"vlan": "100"}"#, "vlan: invalid type: string \"100\""),
            (r#"{"vlan": 1.5}"#, "vlan: invalid type: floating point"),
            (
                r#"{"mac": "02:00:00:00:00"}"#,
                "mac \"02:00:00:00:00\" is not a MAC",
            ),
            (r#"{"mac": "00:00:00:00:00:00"}"#, "all zeros"),
            (r#"{"mac": "01:00:5e:00:00:01"}"#, "multicast"),
            (r#"{"ip": ["10.0.0.1/24"]}"#, "unknown key \"ip\""),
            (
                r#"{"gateway": 5}"#,
                "gateway must be an IP address or a list",
            ),
            (
                r#"{"gateway": "10.0.0.256"}"#,
                "gateway \"10.0.0.256\" is not an IP address",
            ),
            (
                r#"{"gateway": ["10.0.0.1", "10.0.0.2"]}"#,
                "gateway[1] 10.0.0.2: gateway already has 10.0.0.1",
            ),
            (
                r#"{"routes": [{"dst": "10.1.0.5/16"}]}"#,
                "routes[0].dst 10.1.0.5/16 has host bits set (the subnet is 10.1.0.0/16)",
            ),
            (
                r#"{"routes": [{"dst": "10.1.0.0/16", "gw": "fd00::1"}]}"#,
                "not of the same family",
            ),
            (
                r#"{"routes": [{"dst": "10.1.0.0/16", "via": "10.0.0.1"}]}"#,
                "unknown field `via`",
            ),
            (
                r#"{"dns": {"nameservers": ["dns.example"]}}"#,
                "dns.nameservers[0] \"dns.example\"",
            ),
            (
                r#"{"ips": ["10.0.0.0/24"]}"#,
                "ips[0] 10.0.0.0/24 is the subnet's network address",
            ),
            (
                r#"{"ips": ["10.0.0.255/24"]}"#,
                "ips[0] 10.0.0.255/24 is the subnet's broadcast address",
            ),
            (r#"{"ips": ["127.0.0.2/8"]}"#, "loopback"),
            (
                r#"{"ips": ["10.0.0.5/24", "10.0.0.5/16"]}"#,
                "ips[1] 10.0.0.5/16 repeats the address of ips[0]",
            ),
            (r#"{"ips": "10.0.0.5/24"}"#, "ips: invalid type"),
            (r#"[1]"#, "must be an object"),
        ] {
            let msgs = check(json)
                .err()
                .unwrap_or_else(|| panic!("{json} accepted"));
            assert!(msgs.iter().any(|m| m.contains(frag)), "{json}: {msgs:?}");
        }
    }

    #[test]
    fn point_to_point_prefixes_have_no_network_address() {
        check(r#"{"ips": ["10.0.0.0/31", "10.0.0.7/32", "fd00::/64"]}"#).unwrap();
    }
}

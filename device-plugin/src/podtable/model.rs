//! The typed, validated pod table values the agent hands to the CNI: addresses with prefixes,
//! routes and DNS in the CNI result's shape, and one pod's merged [`PodConfig`].

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sriov_hw::MacAddr;
pub use sriov_hw::cidr::{IpCidr, ParseCidrError};

/// A route as the CNI result carries it. `gw: None` means on-link (or the pod's default
/// gateway, as the CNI spec leaves it to the plugin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination prefix (`0.0.0.0/0` for a default route).
    pub dst: IpCidr,
    /// Next hop; `None` = on-link.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gw: Option<IpAddr>,
}

/// DNS settings in the CNI result's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Resolver addresses, in order of preference.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub nameservers: Vec<IpAddr>,
    /// Local domain for short-name lookups.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub domain: Option<String>,
    /// Search domains, in order.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub search: Vec<String>,
    /// Resolver options (`ndots:5`…), as for resolv.conf.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub options: Vec<String>,
}

/// What the pod table gives one pod on one network: its entry merged over the network's
/// defaults (see the module docs for the rule), validated. `None` fields mean "the table says
/// nothing": the netconf's value (or the driver's) applies.
///
/// Serializes in the table's own spelling (`vlanQoS`, `max_tx_rate`…), for `status` output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PodConfig {
    /// The pod's addresses with their prefixes, in table order; the first of each family is
    /// the primary one. May be empty (an entry that only sets a VLAN or rates).
    pub ips: Vec<IpCidr>,
    /// Default gateways, at most one per family, each inside one of `ips`' subnets.
    pub gateway: Vec<IpAddr>,
    /// Routes to add in the pod after the interface is up.
    pub routes: Vec<Route>,
    /// Resolver settings for the CNI result; `None` leaves IPAM's or the netconf's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// Unicast, non-zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// 0..=4094; 0 means untagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// 802.1p priority 0..=7; non-zero only together with a VLAN ≠ 0.
    #[serde(rename = "vlanQoS", skip_serializing_if = "Option::is_none")]
    pub vlan_qos: Option<u8>,
    /// Mbit/s; 0 means unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tx_rate: Option<u32>,
    /// Mbit/s; 0 means no guarantee. At most `max_tx_rate` when that is non-zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tx_rate: Option<u32>,
    /// The VF's spoof check (the PF drops frames from any other source MAC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spoofchk: Option<bool>,
    /// Whether the VF may change its own MAC and use promiscuous modes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_prints_and_round_trips_through_serde() {
        for s in [
            "10.10.0.11/24",
            "fd00::11/64",
            "0.0.0.0/0",
            "::/0",
            "10.0.0.1/32",
            "fd00::1/128",
        ] {
            let c: IpCidr = s.parse().unwrap();
            assert_eq!(c.to_string(), s);
            let j = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<IpCidr>(&j).unwrap(), c);
        }
        let c: IpCidr = "10.10.0.11/24".parse().unwrap();
        assert_eq!(c.addr, "10.10.0.11".parse::<IpAddr>().unwrap());
        assert_eq!(c.prefix, 24);
    }

    #[test]
    fn cidr_rejects_garbage_quoting_it() {
        for (bad, why) in [
            ("10.0.0.300/24", "bad address"),
            ("10.0.0.1", "missing /prefix"),
            ("10.0.0.1/33", "prefix exceeds 32"),
            ("fd00::1/129", "prefix exceeds 128"),
            ("10.0.0.1/", "prefix is not a number"),
            ("10.0.0.1/+8", "prefix is not a number"),
            ("10.0.0.1/ 8", "prefix is not a number"),
            ("10.0.0.1/0024", "prefix is not a number"),
            ("/24", "bad address"),
            ("", "missing /prefix"),
        ] {
            let e = bad.parse::<IpCidr>().unwrap_err();
            assert_eq!(e.reason, why, "{bad:?}");
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn cidr_arithmetic() {
        let c: IpCidr = "10.1.2.3/16".parse().unwrap();
        assert_eq!(c.network().to_string(), "10.1.0.0");
        assert_eq!(c.broadcast().unwrap().to_string(), "10.1.255.255");
        assert!(c.contains("10.1.200.1".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(!c.contains("fd00::1".parse().unwrap()));
        let all: IpCidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.1".parse().unwrap()));
        let v6: IpCidr = "fd00:1::5/64".parse().unwrap();
        assert_eq!(v6.network().to_string(), "fd00:1::");
        assert!(v6.contains("fd00:1::ffff".parse().unwrap()));
        assert!(!v6.contains("fd00:2::1".parse().unwrap()));
        assert_eq!(v6.broadcast(), None);
    }
}

//! The typed, validated pod table values the agent hands to the CNI: addresses with prefixes,
//! routes and DNS in the CNI result's shape, and one pod's merged [`PodConfig`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sriov_hw::MacAddr;

/// An address with its prefix length, as CNI results and the pod table write it:
/// `10.10.0.11/24`, `fd00::11/64`. The address keeps its host bits (it is the pod's address,
/// not only the subnet); [`IpCidr::network`] gives the subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpCidr {
    pub addr: IpAddr,
    /// 0..=32 for IPv4, 0..=128 for IPv6 (checked by [`IpCidr::new`] and parsing).
    pub prefix: u8,
}

/// Why a string is not a CIDR; the message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a CIDR ({reason})")]
pub struct ParseCidrError {
    pub input: String,
    pub reason: &'static str,
}

impl IpCidr {
    /// Builds a CIDR, refusing a prefix longer than the address family allows.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, ParseCidrError> {
        if prefix > max_prefix(addr) {
            return Err(ParseCidrError {
                input: format!("{addr}/{prefix}"),
                reason: if addr.is_ipv4() {
                    "prefix exceeds 32"
                } else {
                    "prefix exceeds 128"
                },
            });
        }
        Ok(IpCidr { addr, prefix })
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The subnet's first address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & v4_mask(self.prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & v6_mask(self.prefix))),
        }
    }

    /// The IPv4 subnet's broadcast address; `None` for IPv6.
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        match self.addr {
            IpAddr::V4(a) => Some(Ipv4Addr::from(u32::from(a) | !v4_mask(self.prefix))),
            IpAddr::V6(_) => None,
        }
    }

    /// Whether `ip` is inside this subnet (always false across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let m = v4_mask(self.prefix);
                u32::from(a) & m == u32::from(b) & m
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let m = v6_mask(self.prefix);
                u128::from(a) & m == u128::from(b) & m
            }
            _ => false,
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn v4_mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn v6_mask(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for IpCidr {
    type Err = ParseCidrError;

    /// `address/prefix`; the prefix is required and must be plain decimal digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseCidrError {
            input: s.to_string(),
            reason,
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(|| err("missing /prefix"))?;
        let addr: IpAddr = addr.parse().map_err(|_| err("bad address"))?;
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("prefix is not a number"));
        }
        let prefix: u8 = prefix.parse().map_err(|_| err("prefix is not a number"))?;
        IpCidr::new(addr, prefix).map_err(|e| err(e.reason))
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpCidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpCidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A route as the CNI result carries it. `gw: None` means on-link (or the pod's default
/// gateway, as the CNI spec leaves it to the plugin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub dst: IpCidr,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gw: Option<IpAddr>,
}

/// DNS settings in the CNI result's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub nameservers: Vec<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub search: Vec<String>,
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
    pub routes: Vec<Route>,
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

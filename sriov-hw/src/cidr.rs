//! IP addresses with a prefix length: what interfaces, routes, CNI results and the pod table
//! carry. One type for all of them, so an address parsed from a pod table reaches netlink unchanged.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An address with its prefix length, as CNI results and the pod table write it:
/// `10.10.0.11/24`, `fd00::11/64`. The address keeps its host bits (it is the pod's address,
/// not only the subnet); [`IpCidr::network`] gives the subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpCidr {
    /// The address itself, host bits included (the pod's own address, not the network).
    pub addr: IpAddr,
    /// 0..=32 for IPv4, 0..=128 for IPv6 (checked by [`IpCidr::new`] and parsing).
    pub prefix: u8,
}

/// Why a string is not a CIDR; the message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a CIDR ({reason})")]
pub struct ParseCidrError {
    /// The text that failed to parse, quoted in the message.
    pub input: String,
    /// What is wrong with it (e.g. "prefix exceeds 32").
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

    /// Whether this is an IPv4 address (CNI results tag each IP with its family).
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

impl IpCidr {
    /// `0.0.0.0/0` or `::/0`, in the family of `like` (a default route's destination).
    pub fn default_route(like: IpAddr) -> Self {
        let addr = match like {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        IpCidr { addr, prefix: 0 }
    }

    /// Whether this is a default route destination (`/0`).
    pub fn is_default(&self) -> bool {
        self.prefix == 0
    }
}

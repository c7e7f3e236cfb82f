//! Addresses and routes on a link: what the CNI configures inside the pod namespace after moving the
//! VF there, and what DEL or a re-ADD flushes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NetlinkError};
use crate::cidr::IpCidr;

/// A route of a link, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// Destination; `/0` for a default route.
    pub destination: IpCidr,
    /// Next hop, `None` for an on-link (directly connected) route.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Routing table (254 = main).
    pub table: u32,
}

fn family_of(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn ip_of(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// The address message for `addr` on link `index`; IPv4 needs IFA_LOCAL as well as IFA_ADDRESS.
fn address_message(index: u32, addr: IpCidr) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family_of(addr.addr);
    msg.header.prefix_len = addr.prefix;
    msg.header.index = index;
    if addr.addr.is_ipv4() {
        msg.attributes.push(AddressAttribute::Local(addr.addr));
    }
    msg.attributes.push(AddressAttribute::Address(addr.addr));
    msg
}

impl Netlink {
    /// Adds `addr` to `link`. IPv6 addresses go through duplicate address detection as usual (they
    /// are "tentative" for a moment). Fails with `EEXIST` if the address is already there.
    pub async fn add_address(&self, link: &str, addr: IpCidr) -> Result<(), NetlinkError> {
        let op = "add address";
        let index = self.require_link(op, link).await?.index;
        self.ack(
            op,
            &format!("{addr} on {link}"),
            RouteNetlinkMessage::NewAddress(address_message(index, addr)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await
    }

    /// The addresses on `link`, both families, including IPv6 link-local ones.
    pub async fn list_addresses(&self, link: &str) -> Result<Vec<IpCidr>, NetlinkError> {
        let op = "list addresses";
        let index = self.require_link(op, link).await?.index;
        Ok(self
            .address_messages(op, link, index)
            .await?
            .iter()
            .filter_map(|m| {
                let addr = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })?;
                Some(IpCidr {
                    addr,
                    prefix: m.header.prefix_len,
                })
            })
            .collect())
    }

    /// Removes `addr` (address and prefix) from `link`; `Ok(false)` when it was not there. The
    /// agent's fencing takes one fixed IP off a pod's VF this way and leaves the rest alone.
    pub async fn del_address(&self, link: &str, addr: IpCidr) -> Result<bool, NetlinkError> {
        let op = "delete address";
        let index = self.require_link(op, link).await?.index;
        let r = self
            .ack(
                op,
                &format!("{addr} on {link}"),
                RouteNetlinkMessage::DelAddress(address_message(index, addr)),
                0,
            )
            .await;
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::EADDRNOTAVAIL) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes every address from `link` (like `ip addr flush dev LINK`). Keeps going after a
    /// failed deletion and returns the first error once all were tried.
    pub async fn flush_addresses(&self, link: &str) -> Result<(), NetlinkError> {
        let op = "flush addresses";
        let index = self.require_link(op, link).await?.index;
        let mut first_err = None;
        for msg in self.address_messages(op, link, index).await? {
            if let Err(e) = self
                .ack(op, link, RouteNetlinkMessage::DelAddress(msg), 0)
                .await
            {
                // An address that vanished meanwhile (e.g. with its primary) is what we wanted.
                if e.errno() != Some(libc::EADDRNOTAVAIL) && first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    async fn address_messages(
        &self,
        op: &'static str,
        link: &str,
        index: u32,
    ) -> Result<Vec<AddressMessage>, NetlinkError> {
        let replies = self
            .dump(
                op,
                link,
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            )
            .await?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => Some(a),
                _ => None,
            })
            .collect())
    }

    /// Adds a default route via `gateway` out of `link`.
    pub async fn add_default_route(&self, link: &str, gateway: IpAddr) -> Result<(), NetlinkError> {
        self.add_route(link, IpCidr::default_route(gateway), Some(gateway))
            .await
    }

    /// Adds a route to `destination` out of `link` in the main table: via `gateway` when given,
    /// else on-link (scope link). Gateway and destination must be the same family.
    pub async fn add_route(
        &self,
        link: &str,
        destination: IpCidr,
        gateway: Option<IpAddr>,
    ) -> Result<(), NetlinkError> {
        let op = "add route";
        let target = match gateway {
            Some(gw) => format!("{destination} via {gw} dev {link}"),
            None => format!("{destination} dev {link}"),
        };
        if IpCidr::new(destination.addr, destination.prefix).is_err()
            || gateway.is_some_and(|gw| gw.is_ipv4() != destination.addr.is_ipv4())
        {
            return Err(NetlinkError::Invalid {
                op,
                target,
                message: "destination and gateway must be valid and of the same family".into(),
            });
        }
        let index = self.require_link(op, link).await?.index;

        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(destination.addr);
        msg.header.destination_prefix_length = destination.prefix;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.kind = RouteType::Unicast;
        msg.header.scope = if gateway.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        if !destination.is_default() {
            msg.attributes
                .push(RouteAttribute::Destination(destination.addr.into()));
        }
        if let Some(gw) = gateway {
            msg.attributes.push(RouteAttribute::Gateway(gw.into()));
        }
        msg.attributes.push(RouteAttribute::Oif(index));
        self.ack(
            op,
            &target,
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await
    }

    /// The routes (both families, all tables) whose output interface is `link`, including the
    /// kernel's own prefix and IPv6 link-local/multicast routes.
    pub async fn list_routes(&self, link: &str) -> Result<Vec<RouteInfo>, NetlinkError> {
        let op = "list routes";
        let index = self.require_link(op, link).await?.index;
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut req = RouteMessage::default();
            req.header.address_family = family;
            let replies = self
                .dump(op, link, RouteNetlinkMessage::GetRoute(req))
                .await?;
            for m in replies {
                let RouteNetlinkMessage::NewRoute(r) = m else {
                    continue;
                };
                if let Some(info) = route_info(&r)
                    && info.oif == Some(index)
                {
                    out.push(info);
                }
            }
        }
        Ok(out)
    }
}

/// Decodes a kernel route message; `None` for families we do not model (MPLS…).
fn route_info(r: &RouteMessage) -> Option<RouteInfo> {
    let any = match r.header.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut info = RouteInfo {
        destination: IpCidr {
            addr: any,
            prefix: r.header.destination_prefix_length,
        },
        gateway: None,
        oif: None,
        table: u32::from(r.header.table),
    };
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => {
                if let Some(ip) = ip_of(d) {
                    info.destination.addr = ip;
                }
            }
            RouteAttribute::Gateway(g) => info.gateway = ip_of(g),
            RouteAttribute::Oif(i) => info.oif = Some(*i),
            RouteAttribute::Table(t) => info.table = *t,
            _ => {}
        }
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_prefixes() {
        let p: IpCidr = "10.1.2.3/24".parse().unwrap();
        assert_eq!(p.addr, IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(p.prefix, 24);
        assert_eq!(p.to_string(), "10.1.2.3/24");
        let p6: IpCidr = "fd00::5/64".parse().unwrap();
        assert_eq!(p6.to_string(), "fd00::5/64");
        for bad in [
            "10.1.2.3",
            "10.1.2.3/33",
            "fd00::/129",
            "x/1",
            "10.0.0.1/-1",
        ] {
            assert!(bad.parse::<IpCidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn default_route_follows_the_gateway_family() {
        let v6 = IpCidr::default_route("fd00::1".parse().unwrap());
        assert_eq!(v6.to_string(), "::/0");
        assert!(v6.is_default());
        assert_eq!(
            IpCidr::default_route("10.0.0.1".parse().unwrap()).to_string(),
            "0.0.0.0/0"
        );
    }

    #[test]
    fn ipv4_address_message_carries_local_and_address() {
        let m = address_message(7, "10.0.0.2/24".parse().unwrap());
        assert_eq!(m.header.index, 7);
        assert_eq!(m.header.prefix_len, 24);
        assert_eq!(m.attributes.len(), 2);
        let m6 = address_message(7, "fd00::2/64".parse().unwrap());
        assert_eq!(m6.attributes.len(), 1);
    }

    #[test]
    fn decodes_a_route_message() {
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.header.destination_prefix_length = 8;
        r.header.table = RouteHeader::RT_TABLE_MAIN;
        r.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                Ipv4Addr::new(10, 0, 0, 0),
            )));
        r.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(
                10, 1, 0, 1,
            ))));
        r.attributes.push(RouteAttribute::Oif(3));
        let info = route_info(&r).unwrap();
        assert_eq!(info.destination.to_string(), "10.0.0.0/8");
        assert_eq!(info.gateway, Some("10.1.0.1".parse().unwrap()));
        assert_eq!(info.oif, Some(3));
        assert_eq!(info.table, u32::from(RouteHeader::RT_TABLE_MAIN));
    }
}

//! The announcement frames, built byte by byte: a gratuitous ARP request for an IPv4 address and
//! an unsolicited neighbour advertisement for an IPv6 address, each a complete Ethernet frame as
//! an `AF_PACKET`/`SOCK_RAW` socket sends it (no 802.1Q tag: on a VF the NIC adds the port VLAN,
//! on the emulated NIC the eswitch's VLAN group does). Pure functions, so the exact bytes are
//! unit-tested.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::mac::MacAddr;

/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// Length of a gratuitous ARP frame: Ethernet header (14) + ARP for IPv4 over Ethernet (28).
/// Shorter than the 60-byte minimum on purpose, as the kernel's own ARP frames are: the driver
/// (or the NIC) pads it.
pub const GARP_LEN: usize = 14 + 28;
/// Length of an unsolicited NA frame: Ethernet (14) + IPv6 (40) + NA (24) + target link-layer
/// address option (8).
pub const NA_LEN: usize = 14 + 40 + NA_PAYLOAD_LEN;

/// The ICMPv6 part of the NA: type, code, checksum, flags + reserved, target, the option.
const NA_PAYLOAD_LEN: usize = 4 + 4 + 16 + 8;
/// ICMPv6 Neighbor Advertisement (RFC 4861 §4.4).
const ICMPV6_NA: u8 = 136;
/// IPv6 next header value of ICMPv6.
const IPPROTO_ICMPV6: u8 = 58;
/// NA flags byte: Router (0x80) and Solicited (0x40) clear, Override (0x20) set, so receivers
/// replace the link-layer address they have cached even though they did not ask.
const NA_FLAGS_OVERRIDE: u8 = 0x20;
/// ND option "Target Link-Layer Address" (RFC 4861 §4.6.1), length 1 (in units of 8 bytes).
const ND_OPT_TARGET_LLADDR: u8 = 2;
/// ND messages are only accepted with hop limit 255: proof they were not routed.
const ND_HOP_LIMIT: u8 = 255;
/// The link-local all-nodes group every IPv6 neighbour listens on.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// The Ethernet broadcast address.
pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

/// The frame announcing `ip` at `mac`: [`gratuitous_arp`] for IPv4, [`unsolicited_na`] for IPv6.
/// `None` for addresses nobody can be told about (unspecified, loopback, multicast, broadcast).
pub fn announcement(mac: MacAddr, ip: IpAddr) -> Option<Vec<u8>> {
    match ip {
        IpAddr::V4(a) => {
            let unusable = a.is_unspecified() || a.is_loopback() || a.is_multicast();
            (!unusable && !a.is_broadcast()).then(|| gratuitous_arp(mac, a).to_vec())
        }
        IpAddr::V6(a) => {
            let unusable = a.is_unspecified() || a.is_loopback() || a.is_multicast();
            (!unusable).then(|| unsolicited_na(mac, a).to_vec())
        }
    }
}

/// A gratuitous ARP request (RFC 5227 §3 "ARP Announcement"): broadcast, sender and target
/// protocol address both `ip`, sender hardware address `mac`, target hardware address zero.
/// Linux updates an existing neighbour entry on it even with `arp_accept=0` (it creates none).
pub fn gratuitous_arp(mac: MacAddr, ip: Ipv4Addr) -> [u8; GARP_LEN] {
    let mut f = [0u8; GARP_LEN];
    f[0..6].copy_from_slice(&BROADCAST.0);
    f[6..12].copy_from_slice(&mac.0);
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    // Hardware type Ethernet (1), protocol IPv4, address lengths 6 and 4, operation request (1).
    f[14..22].copy_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
    f[22..28].copy_from_slice(&mac.0);
    f[28..32].copy_from_slice(&ip.octets());
    // Target hardware address 00:00:00:00:00:00 (already zero), then the target IP.
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// An unsolicited neighbour advertisement for `addr` (RFC 4861 §7.2.6): to all-nodes
/// (`ff02::1`, Ethernet `33:33:00:00:00:01`), from `addr` itself, hop limit 255, Override set
/// and Solicited clear, with a Target Link-Layer Address option carrying `mac`, and the ICMPv6
/// checksum over the pseudo-header.
pub fn unsolicited_na(mac: MacAddr, addr: Ipv6Addr) -> [u8; NA_LEN] {
    let mut f = [0u8; NA_LEN];
    let group = ALL_NODES.octets();
    // Ethernet: the multicast MAC 33:33 + the group's low 32 bits (RFC 2464 §7).
    f[0..2].copy_from_slice(&[0x33, 0x33]);
    f[2..6].copy_from_slice(&group[12..16]);
    f[6..12].copy_from_slice(&mac.0);
    f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
    // IPv6: version 6, traffic class and flow label 0.
    let ip = &mut f[14..54];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(NA_PAYLOAD_LEN as u16).to_be_bytes());
    ip[6] = IPPROTO_ICMPV6;
    ip[7] = ND_HOP_LIMIT;
    ip[8..24].copy_from_slice(&addr.octets());
    ip[24..40].copy_from_slice(&group);
    // ICMPv6 NA: type, code 0, checksum (below), flags, 3 reserved bytes, target, option.
    let na = &mut f[54..];
    na[0] = ICMPV6_NA;
    na[4] = NA_FLAGS_OVERRIDE;
    na[8..24].copy_from_slice(&addr.octets());
    na[24] = ND_OPT_TARGET_LLADDR;
    na[25] = 1;
    na[26..32].copy_from_slice(&mac.0);
    let sum = icmpv6_checksum(&addr, &ALL_NODES, na);
    na[2..4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The ICMPv6 checksum (RFC 4443 §2.3): the ones' complement of the ones' complement sum over
/// the IPv6 pseudo-header (source, destination, upper-layer length, next header) and `msg`,
/// whose checksum field must be zero while it is computed.
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> u16 {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    let mut sum = ones_sum(0, &src.octets());
    sum = ones_sum(sum, &dst.octets());
    sum = ones_sum(sum, &len.to_be_bytes());
    sum = ones_sum(sum, &[0, 0, 0, IPPROTO_ICMPV6]);
    !fold(ones_sum(sum, msg))
}

/// Adds `data` as big-endian 16-bit words (an odd last byte padded with zero) to `sum`.
fn ones_sum(mut sum: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    sum
}

/// Folds the carries back into 16 bits.
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 16 bits.
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x02, 0xaa, 0x00, 0x00, 0x00, 0x12]);

    #[test]
    fn gratuitous_arp_is_a_broadcast_request_for_the_address_itself() {
        let f = gratuitous_arp(MAC, Ipv4Addr::new(10, 78, 0, 12));
        // Byte for byte the gratuitous ARP Linux 6.18 itself sends for this address and MAC
        // (`arp_notify=1` and a MAC change), captured off a veth.
        #[rustfmt::skip]
        let want: [u8; GARP_LEN] = [
            // Ethernet: broadcast, from the VF, ARP.
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0xaa, 0x00, 0x00, 0x00, 0x12, 0x08, 0x06,
            // Ethernet/IPv4, 6/4, request.
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
            // Sender: the VF's MAC and the address.
            0x02, 0xaa, 0x00, 0x00, 0x00, 0x12, 10, 78, 0, 12,
            // Target: zero MAC and the same address.
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 10, 78, 0, 12,
        ];
        assert_eq!(f, want);
    }

    #[test]
    fn unsolicited_na_bytes_and_checksum() {
        let f = unsolicited_na(MAC, "fd78::12".parse().unwrap());
        // Byte for byte, checksum 0x58ce included, the unsolicited NA Linux 6.18 itself sends for
        // this address and MAC (`ndisc_notify=1` and a MAC change), captured off a veth; the
        // checksum was also computed separately (RFC 4443 pseudo-header sum, in Python).
        #[rustfmt::skip]
        let want: [u8; NA_LEN] = [
            // Ethernet: 33:33:00:00:00:01, from the VF, IPv6.
            0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x02, 0xaa, 0x00, 0x00, 0x00, 0x12, 0x86, 0xdd,
            // IPv6: version 6, payload 32, ICMPv6, hop limit 255.
            0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff,
            // Source fd78::12.
            0xfd, 0x78, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x12,
            // Destination ff02::1.
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01,
            // NA, code 0, checksum, Override only, reserved.
            0x88, 0x00, 0x58, 0xce, 0x20, 0x00, 0x00, 0x00,
            // Target fd78::12.
            0xfd, 0x78, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x12,
            // Target link-layer address option: type 2, length 1 (8 bytes), the VF's MAC.
            0x02, 0x01, 0x02, 0xaa, 0x00, 0x00, 0x00, 0x12,
        ];
        assert_eq!(f, want);
    }

    #[test]
    fn na_checksum_verifies_for_addresses_that_carry() {
        // A receiver sums pseudo-header and message including the checksum: all ones means valid.
        for addr in [
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fe80::1",
            "2001:db8::ff:fe00:1",
        ] {
            let a: Ipv6Addr = addr.parse().unwrap();
            for mac in [MAC, MacAddr([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff])] {
                let f = unsolicited_na(mac, a);
                let mut sum = ones_sum(0, &f[22..54]); // source + destination
                sum = ones_sum(sum, &(NA_PAYLOAD_LEN as u32).to_be_bytes());
                sum = ones_sum(sum, &[0, 0, 0, IPPROTO_ICMPV6]);
                assert_eq!(fold(ones_sum(sum, &f[54..])), 0xffff, "{addr} {mac}");
            }
        }
    }

    #[test]
    fn sum_pads_an_odd_byte_and_folds_carries() {
        assert_eq!(ones_sum(0, &[0x12]), 0x1200);
        assert_eq!(ones_sum(0, &[0xff, 0xff, 0x00, 0x02]), 0x1_0001);
        assert_eq!(fold(0x1_0001), 0x0002);
        assert_eq!(fold(0x1_fffe), 0xffff);
    }

    #[test]
    fn only_announceable_addresses_get_a_frame() {
        for skip in [
            "0.0.0.0",
            "127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "ff02::1",
        ] {
            assert!(announcement(MAC, skip.parse().unwrap()).is_none(), "{skip}");
        }
        let v4 = announcement(MAC, "10.78.0.12".parse().unwrap()).unwrap();
        assert_eq!(v4.len(), GARP_LEN);
        let v6 = announcement(MAC, "fe80::12".parse().unwrap()).unwrap();
        assert_eq!(v6.len(), NA_LEN);
    }
}

//! Which interfaces carry a default route, from the kernel's route tables in `/proc`.
//!
//! A PF carrying the node's default route is usually the node's own uplink; operators exclude it
//! from pools or at least want to see it. We read `/proc/net/route` and `/proc/net/ipv6_route`
//! (of the reader's network namespace: the agent runs with hostNetwork) instead of asking netlink,
//! so tests can point the proc root at a fixture.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::sysfs::{Sysfs, SysfsError};

/// RTF_UP: the route is usable.
const RTF_UP: u32 = 0x0001;
/// RTF_REJECT: an unreachable/prohibit route (e.g. the `::/0` on `lo` every host has).
const RTF_REJECT: u32 = 0x0200;

/// The names of interfaces with an IPv4 `0.0.0.0/0` or IPv6 `::/0` route that is up and not a
/// reject route, read under `proc_root` (normally `/proc`).
///
/// A missing `net/ipv6_route` (IPv6 disabled) is not an error; an unreadable `net/route` is.
pub fn default_route_interfaces(proc_root: &Path) -> Result<BTreeSet<String>, SysfsError> {
    let proc_ = Sysfs::new(proc_root);
    let mut out = BTreeSet::new();
    for_each_line(&proc_, "net/route", |fields| {
        // Iface Destination Gateway Flags RefCnt Use Metric Mask …
        if let [iface, dest, _gw, flags, _, _, _, mask, ..] = fields
            && *dest == "00000000"
            && *mask == "00000000"
            && usable(flags)
        {
            out.insert(iface.to_string());
        }
    })?;
    let v6 = for_each_line(&proc_, "net/ipv6_route", |fields| {
        // dest plen src src_plen next_hop metric refcnt use flags dev
        if let [dest, plen, _, _, _, _, _, _, flags, dev] = fields
            && *plen == "00"
            && dest.len() == 32
            && dest.bytes().all(|b| b == b'0')
            && usable(flags)
            && *dev != "lo"
        {
            out.insert(dev.to_string());
        }
    });
    match v6 {
        Err(e) if e.is_not_found() => {}
        other => other?,
    }
    Ok(out)
}

fn usable(flags_hex: &str) -> bool {
    u32::from_str_radix(flags_hex, 16).is_ok_and(|f| f & RTF_UP != 0 && f & RTF_REJECT == 0)
}

/// Streams a route table line by line (they can be long on routers) as whitespace-split fields.
fn for_each_line(proc_: &Sysfs, rel: &str, mut f: impl FnMut(&[&str])) -> Result<(), SysfsError> {
    let reader = BufReader::new(proc_.open(rel)?);
    for line in reader.lines() {
        let line = line.map_err(|error| SysfsError::Io {
            path: proc_.path(rel),
            error,
        })?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        f(&fields);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn finds_v4_and_v6_defaults_but_not_reject_or_connected_routes() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net");
        fs::create_dir_all(&net).unwrap();
        fs::write(
            net.join("route"),
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
             eth1\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
             down0\t00000000\t0101A8C0\t0002\t0\t0\t100\t00000000\t0\t0\t0\n",
        )
        .unwrap();
        let z = "0".repeat(32);
        fs::write(
            net.join("ipv6_route"),
            format!(
                "{z} 00 {z} 00 fe800000000000000000000000000001 00000400 00000001 00000000 00450003     eth2\n\
                 fe800000000000000000000000000000 40 {z} 00 {z} 00000100 00000001 00000000 00000001     eth1\n\
                 {z} 00 {z} 00 {z} ffffffff 00000001 00000000 00200200       lo\n\
                 {z} 00 {z} 00 {z} ffffffff 00000001 00000000 00200200     rej0\n"
            ),
        )
        .unwrap();
        let got = default_route_interfaces(dir.path()).unwrap();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), ["eth0", "eth2"]);
    }

    #[test]
    fn missing_ipv6_is_fine_missing_ipv4_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = default_route_interfaces(dir.path()).unwrap_err();
        assert!(e.is_not_found());
        assert!(e.path().ends_with("net/route"), "{e}");
        fs::create_dir_all(dir.path().join("net")).unwrap();
        fs::write(
            dir.path().join("net/route"),
            "Iface\tDestination\n garbage\n\n",
        )
        .unwrap();
        assert!(default_route_interfaces(dir.path()).unwrap().is_empty());
    }
}

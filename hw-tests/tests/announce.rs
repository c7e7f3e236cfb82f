//! Neighbours learn a moved fixed IP at once: after ADD, a host on the pod's VLAN that still
//! caches the pod's dual-stack address at an old MAC holds the VF's MAC within a second (gratuitous
//! ARP for IPv4, unsolicited NA for IPv6), without sending anything itself. A host on another
//! VLAN hears nothing. The real `sriov` binary and agent on the emulated NIC.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::process::Command;
use std::time::{Duration, Instant};

use hw_tests::cni_fixture::{Bed, NET, pod_netns};
use hw_tests::{Netns, require_root, run_ok, skip, unique_name};
use serde_json::{Value, json};

const POD_V4: &str = "10.78.0.12";
const POD_V6: &str = "fd78::12";
/// The MAC the neighbours cached before the pod moved.
const OLD_MAC: &str = "02:00:00:00:0d:01";

/// `default/db-2` is dual-stack on VLAN 100; `default/warm-0`'s ADD creates VLAN 100's bridge
/// (the emulated eswitch makes a VLAN group on first use) so the neighbour can join it first.
fn pod_table() -> Value {
    json!({"networks": {NET: {
        "defaults": {"gateway": ["10.78.0.1", "fd78::1"], "vlan": 100},
        "pods": {
            "default/warm-0": {"ips": ["10.78.0.30/24"]},
            "default/db-2": {"ips": [format!("{POD_V4}/24"), format!("{POD_V6}/64")]},
        }
    }}})
}

/// A host on bridge `bridge`: a netns whose veth's other end is a port of it, with addresses in
/// the pod's subnets (no DAD) and the pod's addresses cached at [`OLD_MAC`], state STALE. The
/// namespace (and with it the veth pair) is deleted on drop.
struct Neighbour {
    ns: Netns,
}

impl Neighbour {
    const IF: &str = "nb0";

    fn on(bridge: &str, own_v4: &str, own_v6: &str) -> Self {
        let ns = Netns::new(&unique_name("nb"));
        let host_end = unique_name("nbh");
        // Created with its peer already in the namespace: nothing is left in the host if the
        // test fails, since deleting the namespace deletes the pair.
        run_ok(Command::new("ip").args([
            "link",
            "add",
            &host_end,
            "type",
            "veth",
            "peer",
            "name",
            Self::IF,
            "netns",
            &ns.name,
        ]));
        run_ok(Command::new("ip").args(["link", "set", &host_end, "master", bridge, "up"]));
        let n = Neighbour { ns };
        // Linux's defaults, pinned: unsolicited ARP creates no entry, unsolicited NAs are taken.
        // The announcement must work against exactly these.
        for key in ["all", "default", Self::IF] {
            n.sysctl(&format!("net.ipv4.conf.{key}.arp_accept=0"));
            n.sysctl(&format!("net.ipv6.conf.{key}.drop_unsolicited_na=0"));
        }
        n.ip(&["addr", "add", own_v4, "dev", Self::IF]);
        n.ip(&["addr", "add", own_v6, "dev", Self::IF, "nodad"]);
        n.ip(&["link", "set", Self::IF, "up"]);
        for ip in [POD_V4, POD_V6] {
            n.ip(&[
                "neigh",
                "replace",
                ip,
                "lladdr",
                OLD_MAC,
                "dev",
                Self::IF,
                "nud",
                "stale",
            ]);
        }
        n
    }

    fn sysctl(&self, setting: &str) {
        run_ok(Command::new("ip").args(["netns", "exec", &self.ns.name, "sysctl", "-qw", setting]));
    }

    fn ip(&self, args: &[&str]) {
        run_ok(Command::new("ip").args(["-n", &self.ns.name]).args(args));
    }

    /// The cached MAC of each pod address (`None` when there is no entry).
    fn cached(&self) -> [Option<String>; 2] {
        let entries = self.ns.ip_json(&["neigh", "show", "dev", Self::IF]);
        [POD_V4, POD_V6].map(|ip| {
            entries.as_array().into_iter().flatten().find_map(|e| {
                (e["dst"] == ip).then(|| e["lladdr"].as_str().unwrap_or("").to_string())
            })
        })
    }
}

/// What the test cannot run without besides root, if anything.
fn missing_tool() -> Option<&'static str> {
    let ip_json = Command::new("ip")
        .args(["-j", "neigh", "show"])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"["));
    if !ip_json {
        return Some("needs iproute2 with JSON output (`ip -j`)");
    }
    let sysctl = Command::new("sysctl")
        .args(["-n", "kernel.ostype"])
        .output()
        .is_ok_and(|o| o.status.success());
    (!sysctl).then_some("needs `sysctl` (procps)")
}

#[test]
fn add_tells_the_vlans_neighbours_the_new_mac_of_a_dual_stack_fixed_ip() {
    let test = "add_tells_the_vlans_neighbours_the_new_mac_of_a_dual_stack_fixed_ip";
    if !require_root(test) {
        return;
    }
    if let Some(why) = missing_tool() {
        skip(test, why);
        return;
    }
    let bed = Bed::new(2, &pod_table());
    let conf = bed.conf("1.1.0", json!({}));
    let warm_ns = pod_netns();
    let warm = bed.call("ADD", "c-warm", &warm_ns.path(), "warm-0", &conf);
    assert!(warm.ok, "warm-up ADD: {:?} {}", warm.json, warm.stderr);
    assert!(
        bed.call("DEL", "c-warm", &warm_ns.path(), "warm-0", &conf)
            .ok
    );

    let vlan100 = format!("{}b064", bed.pf());
    let same_vlan = Neighbour::on(&vlan100, "10.78.0.2/24", "fd78::2/64");
    // The untagged group (the PF bridge itself): another VLAN, same subnets.
    let other_vlan = Neighbour::on(bed.pf(), "10.78.0.3/24", "fd78::3/64");
    let old = Some(OLD_MAC.to_string());
    assert_eq!(same_vlan.cached(), [old.clone(), old.clone()]);

    let ns = pod_netns();
    let add = bed.call("ADD", "c-db2", &ns.path(), "db-2", &conf);
    assert!(add.ok, "ADD failed: {:?} {}", add.json, add.stderr);
    let returned = Instant::now();
    let new_mac = add.json["interfaces"][0]["mac"]
        .as_str()
        .expect("the result names the VF's MAC")
        .to_string();
    assert_ne!(new_mac, OLD_MAC);
    let ips: Vec<&str> = add.json["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["address"].as_str())
        .collect();
    assert_eq!(ips, [format!("{POD_V4}/24"), format!("{POD_V6}/64")]);

    let new = Some(new_mac.clone());
    let mut seen = same_vlan.cached();
    while seen != [new.clone(), new.clone()] && returned.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(20));
        seen = same_vlan.cached();
    }
    assert_eq!(
        seen,
        [new.clone(), new.clone()],
        "the neighbour on VLAN 100 still caches [{POD_V4}, {POD_V6}] as {seen:?} 1 s after ADD, \
         not at the VF's {new_mac}"
    );
    assert_eq!(
        other_vlan.cached(),
        [old.clone(), old],
        "a host on another VLAN heard the announcement"
    );

    assert!(bed.call("DEL", "c-db2", &ns.path(), "db-2", &conf).ok);
    bed.all_vfs_pristine(2).unwrap();
}

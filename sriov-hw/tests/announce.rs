//! Privileged: `announce` between two real namespaces joined by a veth pair, read back from the
//! neighbour's cache with iproute2: the cache follows, the carrier wait waits for carrier and no
//! longer than its bound, and a missing link is reported, never a panic or a hang.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{NetnsGuard, VethGuard, ip_json, ip_ok, privileged};
use sriov_hw::MacAddr;
use sriov_hw::announce::{Announced, Schedule, announce};
use sriov_hw::netns::NetnsHandle;

const OLD: &str = "02:00:00:00:0d:01";
const V4: &str = "10.79.0.5";
const V6: &str = "fd79::5";

/// A pod namespace holding `net1` (MAC [`mac`], the addresses, admin down) and a neighbour
/// namespace holding its peer `nb0` (up, caching the addresses at [`OLD`], state STALE).
struct Pair {
    pod: NetnsGuard,
    nb: NetnsGuard,
    _veth: VethGuard,
}

fn mac() -> MacAddr {
    MacAddr([0x02, 0xaa, 0, 0, 0, 0x05])
}

impl Pair {
    fn new() -> Self {
        let (pod, nb) = (NetnsGuard::new(), NetnsGuard::new());
        let mut veth = VethGuard::new();
        veth.also_in = vec![pod.name.clone(), nb.name.clone()];
        ip_ok(&["link", "set", &veth.a, "netns", &pod.name, "name", "net1"]);
        ip_ok(&["link", "set", &veth.b, "netns", &nb.name, "name", "nb0"]);
        let p = |args: &[&str]| ip_in(&pod.name, args);
        let n = |args: &[&str]| ip_in(&nb.name, args);
        p(&["link", "set", "net1", "address", &mac().to_string()]);
        p(&["addr", "add", &format!("{V4}/24"), "dev", "net1"]);
        p(&["addr", "add", &format!("{V6}/64"), "dev", "net1"]);
        n(&["addr", "add", "10.79.0.2/24", "dev", "nb0"]);
        n(&["addr", "add", "fd79::2/64", "dev", "nb0", "nodad"]);
        n(&["link", "set", "nb0", "up"]);
        for ip in [V4, V6] {
            n(&[
                "neigh", "replace", ip, "lladdr", OLD, "dev", "nb0", "nud", "stale",
            ]);
        }
        Pair {
            pod,
            nb,
            _veth: veth,
        }
    }

    fn handle(&self) -> NetnsHandle {
        NetnsHandle::open(self.pod.path()).unwrap()
    }

    /// The neighbour's cached MAC for [`V4`] and [`V6`].
    fn cached(&self) -> [String; 2] {
        let entries = ip_json(&["-n", &self.nb.name, "neigh", "show", "dev", "nb0"]);
        [V4, V6].map(|ip| {
            entries
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["dst"] == ip)
                .and_then(|e| e["lladdr"].as_str())
                .unwrap_or("")
                .to_string()
        })
    }
}

/// `ip -n <ns> <args>`, failing the test if it fails.
fn ip_in(ns: &str, args: &[&str]) {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    ip_ok(&all);
}

fn addrs() -> Vec<IpAddr> {
    // Twice the same address (sent once per round), and one nobody can be told about.
    [V4, V6, V4, "::1"].map(|a| a.parse().unwrap()).to_vec()
}

#[tokio::test]
async fn announce_waits_for_carrier_then_the_neighbour_caches_the_new_mac() {
    if !privileged("announce_waits_for_carrier_then_the_neighbour_caches_the_new_mac") {
        return;
    }
    let pair = Pair::new();
    let ns = pair.handle();
    let schedule = Schedule {
        carrier_wait: Duration::from_secs(5),
        ..Schedule::CNI
    };
    let pod = pair.pod.name.clone();
    // net1 comes up 150 ms into the wait; the announcement must follow it, not the bound.
    let up = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        tokio::task::spawn_blocking(move || ip_ok(&["-n", &pod, "link", "set", "net1", "up"])).await
    });
    let start = Instant::now();
    let done = announce(&ns, "net1", mac(), &addrs(), &schedule).await;
    let took = start.elapsed();
    up.await.unwrap().unwrap();
    assert_eq!(
        done,
        Announced {
            carrier: true,
            sent: 2 * Schedule::CNI.rounds,
            failed: 0
        }
    );
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let new = mac().to_string();
    assert_eq!(pair.cached(), [new.clone(), new]);
}

#[tokio::test]
async fn announce_without_carrier_gives_up_waiting_at_the_bound() {
    if !privileged("announce_without_carrier_gives_up_waiting_at_the_bound") {
        return;
    }
    let pair = Pair::new();
    ip_ok(&["-n", &pair.nb.name, "link", "set", "nb0", "down"]);
    ip_ok(&["-n", &pair.pod.name, "link", "set", "net1", "up"]);
    let schedule = Schedule {
        carrier_wait: Duration::from_millis(150),
        ..Schedule::CNI
    };
    let start = Instant::now();
    let done = announce(&pair.handle(), "net1", mac(), &addrs(), &schedule).await;
    let took = start.elapsed();
    assert!(!done.carrier, "{done:?}");
    // Sent anyway (the kernel drops them on a link without carrier), and no error.
    assert_eq!(done.sent + done.failed, 2 * schedule.rounds, "{done:?}");
    assert!(
        took >= schedule.carrier_wait && took < Duration::from_secs(1),
        "{took:?}"
    );
}

#[tokio::test]
async fn announce_on_a_missing_link_reports_every_frame_failed() {
    if !privileged("announce_on_a_missing_link_reports_every_frame_failed") {
        return;
    }
    let pair = Pair::new();
    let done = announce(&pair.handle(), "nosuch0", mac(), &addrs(), &Schedule::CNI).await;
    assert_eq!(
        done,
        Announced {
            carrier: false,
            sent: 0,
            failed: 2 * Schedule::CNI.rounds
        }
    );
    assert_eq!(pair.cached(), [OLD.to_string(), OLD.to_string()]);
    // Nothing to announce is no work at all.
    let none = announce(&pair.handle(), "net1", mac(), &[], &Schedule::CNI).await;
    assert_eq!(none, Announced::default());
}

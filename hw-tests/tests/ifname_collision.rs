//! ADD with a `CNI_IFNAME` the pod namespace already has (its own `eth0`, or `lo`): refused
//! before the VF moves, with the pod's interface untouched, the VF home under its own name,
//! nothing in the ledger, and the pool still usable.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::process::Command;

use hw_tests::cni_fixture::{Bed, default_pod_table, pod_netns};
use hw_tests::{Netns, require_root, run_ok, unique_name};
use serde_json::{Value, json};

/// The host end of the pod's own veth, deleted on drop (it dies with the namespace when the pod
/// end is still there; this covers a pod end moved out of it).
struct HostVeth(String);

impl Drop for HostVeth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

/// What the pod's own interface looks like, to compare after the refused ADD.
#[derive(Debug, PartialEq)]
struct PodLink {
    ifindex: u64,
    mac: String,
    addrs: Vec<String>,
}

fn pod_link(ns: &Netns, name: &str) -> Option<PodLink> {
    let a = ns.ip_json(&["addr", "show", "dev", name]);
    let l = a.as_array()?.first()?;
    Some(PodLink {
        ifindex: l["ifindex"].as_u64()?,
        mac: l["address"].as_str()?.to_string(),
        addrs: l["addr_info"]
            .as_array()?
            .iter()
            .filter_map(|i| Some(format!("{}/{}", i["local"].as_str()?, i["prefixlen"])))
            .collect(),
    })
}

/// Gives `ns` its own `eth0` with 192.0.2.2/24: one end of a veth whose other end stays in the
/// host.
fn give_pod_eth0(ns: &Netns) -> HostVeth {
    let host = unique_name("ih");
    let peer = unique_name("ip");
    run_ok(Command::new("ip").args(["link", "add", &host, "type", "veth", "peer", "name", &peer]));
    let guard = HostVeth(host);
    run_ok(Command::new("ip").args(["link", "set", &peer, "netns", &ns.name, "name", "eth0"]));
    run_ok(Command::new("ip").args(["-n", &ns.name, "addr", "add", "192.0.2.2/24", "dev", "eth0"]));
    run_ok(Command::new("ip").args(["-n", &ns.name, "link", "set", "eth0", "up"]));
    guard
}

/// The refusal: not ok, code 4 (CNI_IFNAME is an invalid environment variable), naming the
/// interface.
fn assert_refused(out: &hw_tests::CniOutcome, ifname: &str) {
    assert!(!out.ok, "ADD as {ifname} succeeded: {:?}", out.json);
    assert_eq!(out.code(), 4, "{:?}", out.json);
    let msg = out.json["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&format!("\"{ifname}\"")) && msg.contains("CNI_IFNAME"),
        "message must name the interface: {msg}"
    );
}

/// The VF is home and free: its netdev in the host under its own name, pristine, no attachment.
fn assert_vf_home(bed: &Bed) {
    assert_eq!(bed.host_vf_netdevs(), [format!("{}v0", bed.pf())]);
    assert!(
        bed.attachments().is_empty(),
        "attachments: {:?}",
        bed.attachments()
    );
    bed.all_vfs_pristine(1).unwrap();
}

/// A following ADD as `net1` works on the same bed, and DEL gives the VF back.
fn assert_pool_usable(bed: &Bed, ns: &Netns) {
    let conf = bed.conf("1.0.0", json!({}));
    let out = bed.call("ADD", "c-after", &ns.path(), "db-0", &conf);
    assert!(
        out.ok,
        "ADD as net1 after the refusal failed: {:?}",
        out.json
    );
    assert_eq!(out.json["interfaces"][0]["name"], "net1", "{:?}", out.json);
    assert!(ns.has_link("net1"));
    assert_eq!(bed.attachments().len(), 1);
    let del = bed.call("DEL", "c-after", &ns.path(), "db-0", &conf);
    assert!(del.ok, "{:?}", del.json);
    assert_vf_home(bed);
}

#[test]
fn add_as_the_pods_own_eth0_is_refused_and_leaves_the_pods_eth0_alone() {
    if !require_root("add_as_the_pods_own_eth0_is_refused_and_leaves_the_pods_eth0_alone") {
        return;
    }
    let bed = Bed::new(1, &default_pod_table());
    let ns = pod_netns();
    let _host_end = give_pod_eth0(&ns);
    let before = pod_link(&ns, "eth0").expect("pod eth0");
    assert_eq!(before.addrs, ["192.0.2.2/24"]);

    let conf = bed.conf("1.0.0", json!({}));
    let out = bed.call_as("ADD", "c-eth0", &ns.path(), "eth0", "db-0", &conf);
    assert_refused(&out, "eth0");

    assert_eq!(
        pod_link(&ns, "eth0").as_ref(),
        Some(&before),
        "the pod's eth0 changed"
    );
    let links: Value = ns.ip_json(&["link", "show"]);
    let names: Vec<&str> = links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str())
        .collect();
    assert_eq!(names, ["lo", "eth0"], "only the pod's own links: {names:?}");
    assert_vf_home(&bed);
    assert_pool_usable(&bed, &ns);
    assert_eq!(pod_link(&ns, "eth0").as_ref(), Some(&before));
}

#[test]
fn add_as_lo_is_refused_and_the_vf_stays_home() {
    if !require_root("add_as_lo_is_refused_and_the_vf_stays_home") {
        return;
    }
    let bed = Bed::new(1, &default_pod_table());
    let ns = pod_netns();
    let conf = bed.conf("1.0.0", json!({}));
    let out = bed.call_as("ADD", "c-lo", &ns.path(), "lo", "db-0", &conf);
    assert_refused(&out, "lo");
    let links: Value = ns.ip_json(&["link", "show"]);
    assert_eq!(
        links.as_array().map(Vec::len),
        Some(1),
        "only lo in the pod: {links}"
    );
    assert_eq!(links[0]["ifname"], "lo");
    assert_vf_home(&bed);
    assert_pool_usable(&bed, &ns);
}

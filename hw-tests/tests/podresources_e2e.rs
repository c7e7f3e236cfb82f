//! The CNI path without `deviceID` end to end: the real agent (not standalone) asks a kubelet
//! PodResources stand-in which VF the pod holds, and the real `sriov` binary attaches exactly
//! that VF. No Multus: the netconf names only `resourceName`, as a cluster without Multus's
//! device-ID injection sends it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use hw_tests::cni_fixture::{Bed, RESOURCE, default_pod_table, pod_netns};
use hw_tests::podresources::PodResourcesStandIn;
use hw_tests::require_root;
use serde_json::json;

/// CNI error code 7: invalid network config (the pod holds no device of the resource).
const INVALID_CONFIG: u64 = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_attaches_the_vf_kubelet_gave_the_pod_and_del_restores() {
    if !require_root("add_attaches_the_vf_kubelet_gave_the_pod_and_del_restores") {
        return;
    }
    let bed = tokio::task::block_in_place(|| Bed::with_kubelet(3, &default_pod_table(), |_| {}));
    let pr = PodResourcesStandIn::start(&bed.pod_resources_socket()).expect("PodResources");
    let vfs = bed.vf_pcis();
    // Not the first free VF, so the test tells "asked kubelet" from "took the first one".
    let x = vfs[2].clone();
    pr.hold("default", "db-0", "mysql", "example.com/other", &[&vfs[0]]);
    pr.hold("default", "db-0", "mysql", RESOURCE, &[&x]);
    pr.hold("default", "web-0", "nginx", RESOURCE, &[&vfs[1]]);

    let ns = pod_netns();
    let conf = bed.conf("1.1.0", json!({}));
    assert!(conf.get("deviceID").is_none());
    let add = tokio::task::block_in_place(|| bed.call("ADD", "c-db0", &ns.path(), "db-0", &conf));
    assert!(
        add.ok,
        "ADD failed: {:?} {}\nagent log:\n{}",
        add.json,
        add.stderr,
        bed.agent.log()
    );
    assert!(pr.list_calls() >= 1, "the agent never asked PodResources");
    let r = &add.json;
    assert_eq!(r["cniVersion"], "1.1.0");
    assert_eq!(r["interfaces"][0]["pciID"], x.as_str(), "{r}");
    assert_eq!(r["interfaces"][0]["sandbox"], ns.path().as_str());
    assert_eq!(r["ips"][0]["address"], "10.77.0.10/24", "pod table IP: {r}");

    // The kernel: that VF's netdev is in the pod as net1, with the fixed IP.
    let link = ns.ip_json(&["-d", "addr", "show", "net1"]);
    assert_eq!(
        link.as_array().map(Vec::len),
        Some(1),
        "net1 not in pod: {link}"
    );
    assert!(link.to_string().contains("10.77.0.10"), "{link}");
    let idx = vfs.iter().position(|p| *p == x).unwrap();
    let host = bed.host_vf_netdevs();
    assert!(
        !host.contains(&format!("{}v{idx}", bed.pf())),
        "VF {idx} still in host: {host:?}"
    );
    let att = tokio::task::block_in_place(|| bed.attachments());
    assert_eq!(att.len(), 1);
    assert_eq!(att[0]["vf_pci"], x.as_str());
    assert_eq!(att[0]["pod"], "default/db-0", "{att:?}");

    let del = tokio::task::block_in_place(|| bed.call("DEL", "c-db0", &ns.path(), "db-0", &conf));
    assert!(del.ok, "DEL failed: {:?} {}", del.json, del.stderr);
    assert!(tokio::task::block_in_place(|| bed.attachments()).is_empty());
    tokio::task::block_in_place(|| bed.all_vfs_pristine(3)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_holding_no_device_of_the_resource_gets_error_7_naming_it() {
    if !require_root("a_pod_holding_no_device_of_the_resource_gets_error_7_naming_it") {
        return;
    }
    let bed = tokio::task::block_in_place(|| Bed::with_kubelet(2, &default_pod_table(), |_| {}));
    let pr = PodResourcesStandIn::start(&bed.pod_resources_socket()).expect("PodResources");
    let vfs = bed.vf_pcis();
    // db-1 exists in kubelet's view but holds only another resource's device.
    pr.hold("default", "db-1", "mysql", "example.com/other", &[&vfs[0]]);
    pr.hold("default", "db-0", "mysql", RESOURCE, &[&vfs[1]]);

    let ns = pod_netns();
    let conf = bed.conf("1.1.0", json!({}));
    let add = tokio::task::block_in_place(|| bed.call("ADD", "c-db1", &ns.path(), "db-1", &conf));
    assert!(!add.ok, "ADD must fail: {}", add.json);
    assert_eq!(add.code(), INVALID_CONFIG, "{}", add.json);
    let msg = add.json.to_string();
    assert!(
        msg.contains("default/db-1"),
        "error does not name the pod: {msg}"
    );
    assert!(
        msg.contains(RESOURCE),
        "error does not name the resource: {msg}"
    );
    assert!(tokio::task::block_in_place(|| bed.attachments()).is_empty());
    assert!(
        ns.ip_json(&["link", "show", "net1"])
            .as_array()
            .is_none_or(|a| a.is_empty())
    );
    // A pod kubelet does not know at all: same answer.
    let add = tokio::task::block_in_place(|| bed.call("ADD", "c-x", &ns.path(), "web-0", &conf));
    assert_eq!(add.code(), INVALID_CONFIG, "{}", add.json);
    assert!(
        add.json.to_string().contains("default/web-0"),
        "{}",
        add.json
    );
    tokio::task::block_in_place(|| bed.all_vfs_pristine(2)).unwrap();
}

//! The CNI path end to end on the emulated NIC: the real `sriov` binary, the real agent in
//! standalone mode, real namespaces. Assertions read the kernel (`ip -j`, `bridge -j`, `tc -j`), the
//! VF table as the PF reports it, the parsed CNI result and the agent's ledger (`status`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use hw_tests::cni_fixture::{Bed, default_pod_table, pod_netns};
use hw_tests::{require_root, unique_name};
use serde_json::{Value, json};

fn addrs(ns: &hw_tests::Netns, ifname: &str) -> Vec<String> {
    ns.ip_json(&["addr", "show", "dev", ifname])
        .as_array()
        .and_then(|a| a.first())
        .and_then(|l| l["addr_info"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect()
}

#[test]
fn add_gives_the_fixed_ip_vlan_rate_and_del_restores_everything() {
    if !require_root("add_gives_the_fixed_ip_vlan_rate_and_del_restores_everything") {
        return;
    }
    let bed = Bed::new(2, &default_pod_table());
    let ns = pod_netns();
    let conf = bed.conf("1.1.0", json!({}));
    let add = bed.call("ADD", "c-db1", &ns.path(), "db-1", &conf);
    assert!(add.ok, "ADD failed: {:?} {}", add.json, add.stderr);
    let r = &add.json;
    assert_eq!(r["cniVersion"], "1.1.0");
    assert_eq!(r["interfaces"][0]["name"], "net1");
    assert_eq!(r["interfaces"][0]["sandbox"], ns.path().as_str());
    assert_eq!(r["interfaces"][0]["mac"], "02:aa:00:00:00:11");
    assert_eq!(r["ips"][0]["address"], "10.77.0.11/24");
    assert_eq!(r["ips"][0]["gateway"], "10.77.0.1");
    let pci = r["interfaces"][0]["pciID"]
        .as_str()
        .expect("pciID in 1.1.0")
        .to_string();

    // The kernel: the VF is in the pod as net1 with the fixed IP and MAC, up.
    let link = ns.ip_json(&["link", "show", "net1"]);
    assert_eq!(link[0]["address"], "02:aa:00:00:00:11");
    assert!(addrs(&ns, "net1").contains(&"10.77.0.11/24".to_string()));
    // The PF: VLAN 100 and 100 Mbit/s from the pod table defaults, admin MAC from the entry.
    let att = bed.attachments();
    assert_eq!(att.len(), 1);
    assert_eq!(att[0]["vf_pci"], pci.as_str());
    let idx = att[0]["vf_index"].as_u64().unwrap() as usize;
    let st = &bed.vf_states()[idx];
    assert_eq!(st["vlan"]["vlan"], 100, "{st}");
    assert_eq!(st["max_tx_rate"], 100, "{st}");
    assert_eq!(st["mac"], "02:aa:00:00:00:11", "{st}");
    // The eswitch: the representor on VLAN 100's bridge, locked to the admin MAC.
    let port = bed.eswitch_port(idx as u32);
    assert_eq!(port.bridge, format!("{}b064", bed.pf()), "{port:?}");
    assert!(port.locked, "{port:?}");
    assert_eq!(port.static_macs, vec!["02:aa:00:00:00:11"], "{port:?}");

    // CHECK passes while everything is in place.
    let chk = bed.call(
        "CHECK",
        "c-db1",
        &ns.path(),
        "db-1",
        &json!({"prevResult": r})
            .as_object()
            .map(|p| {
                let mut c = conf.clone();
                c.as_object_mut().unwrap().extend(p.clone());
                c
            })
            .unwrap(),
    );
    assert!(chk.ok, "CHECK failed: {:?}", chk.json);

    let del = bed.call("DEL", "c-db1", &ns.path(), "db-1", &conf);
    assert!(del.ok, "DEL failed: {:?} {}", del.json, del.stderr);
    assert!(bed.attachments().is_empty());
    bed.all_vfs_pristine(2).unwrap();
    assert!(
        ns.ip_json(&["link", "show", "net1"])
            .as_array()
            .is_none_or(|a| a.is_empty())
    );
    // DEL again (containerd does) is a no-op success.
    assert!(bed.call("DEL", "c-db1", &ns.path(), "db-1", &conf).ok);
}

#[test]
fn results_parse_in_every_supported_version() {
    if !require_root("results_parse_in_every_supported_version") {
        return;
    }
    let bed = Bed::new(1, &default_pod_table());
    for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let ns = pod_netns();
        let conf = bed.conf(v, json!({}));
        let add = bed.call("ADD", &format!("c-{v}"), &ns.path(), "db-0", &conf);
        assert!(add.ok, "{v}: {:?}", add.json);
        let r = &add.json;
        assert_eq!(r["cniVersion"], v);
        assert_eq!(r["ips"][0]["address"], "10.77.0.10/24");
        assert_eq!(r["ips"][0]["interface"], 0);
        let pre_1 = v.starts_with("0.");
        assert_eq!(
            r["ips"][0].get("version").is_some(),
            pre_1,
            "{v}: ips[].version"
        );
        assert_eq!(
            r["interfaces"][0].get("pciID").is_some(),
            v == "1.1.0",
            "{v}: pciID"
        );
        assert!(
            bed.call("DEL", &format!("c-{v}"), &ns.path(), "db-0", &conf)
                .ok
        );
    }
    assert!(bed.attachments().is_empty());
}

#[test]
fn vlan_isolation_through_the_cni_path() {
    if !require_root("vlan_isolation_through_the_cni_path") {
        return;
    }
    let bed = Bed::new(3, &default_pod_table());
    let conf = bed.conf("1.0.0", json!({}));
    let pods = [
        ("db-0", pod_netns()),
        ("db-1", pod_netns()),
        ("web-0", pod_netns()),
    ];
    for (pod, ns) in &pods {
        let r = bed.call("ADD", &format!("c-{pod}"), &ns.path(), pod, &conf);
        assert!(r.ok, "{pod}: {:?}", r.json);
    }
    let ping = |from: &hw_tests::Netns, to: &str| {
        std::process::Command::new("ip")
            .args(["netns", "exec", &from.name, "ping", "-c1", "-W1", to])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    assert!(ping(&pods[0].1, "10.77.0.11"), "same VLAN must pass");
    assert!(
        !ping(&pods[2].1, "10.77.0.10"),
        "different VLAN must not pass"
    );
    for (pod, ns) in &pods {
        assert!(
            bed.call("DEL", &format!("c-{pod}"), &ns.path(), pod, &conf)
                .ok
        );
    }
    bed.all_vfs_pristine(3).unwrap();
}

#[test]
fn del_after_the_netns_is_gone_frees_vf_and_ip_for_the_next_pod() {
    if !require_root("del_after_the_netns_is_gone_frees_vf_and_ip_for_the_next_pod") {
        return;
    }
    // One VF: the next pod can only start if the first one's VF really came back.
    let bed = Bed::new(1, &default_pod_table());
    let conf = bed.conf("1.0.0", json!({}));
    let ns = pod_netns();
    assert!(bed.call("ADD", "c-first", &ns.path(), "db-0", &conf).ok);
    ns.delete();
    let del = bed.call("DEL", "c-first", "", "db-0", &conf);
    assert!(
        del.ok,
        "DEL with empty CNI_NETNS: {:?} {}",
        del.json, del.stderr
    );
    assert!(bed.attachments().is_empty(), "ledger not empty");
    bed.all_vfs_pristine(1).unwrap();
    let status = bed.agent.status();
    assert_eq!(
        status["pools"][0]["free"].as_array().map(Vec::len),
        Some(1),
        "{status}"
    );

    let ns2 = pod_netns();
    let again = bed.call("ADD", "c-second", &ns2.path(), "db-0", &conf);
    assert!(again.ok, "next pod: {:?}", again.json);
    assert_eq!(again.json["ips"][0]["address"], "10.77.0.10/24");
    assert!(bed.call("DEL", "c-second", &ns2.path(), "db-0", &conf).ok);
    bed.all_vfs_pristine(1).unwrap();
}

#[test]
fn redundant_sandbox_for_the_same_pod_waits_then_reclaims() {
    if !require_root("redundant_sandbox_for_the_same_pod_waits_then_reclaims") {
        return;
    }
    let bed = Bed::new(2, &default_pod_table());
    let conf = bed.conf("1.0.0", json!({}));
    let (ns1, ns2) = (pod_netns(), pod_netns());
    assert!(bed.call("ADD", "c-one", &ns1.path(), "db-0", &conf).ok);
    let second = bed.call("ADD", "c-two", &ns2.path(), "db-0", &conf);
    assert!(!second.ok);
    assert_eq!(second.code(), 11, "{:?}", second.json);
    let msg = second.json["msg"].as_str().unwrap_or("");
    assert!(
        msg.contains("c-one") || msg.contains("default/db-0"),
        "holder not named: {msg}"
    );
    // Nothing of the second sandbox was recorded or configured.
    assert_eq!(bed.attachments().len(), 1);
    assert!(
        ns2.ip_json(&["link", "show", "net1"])
            .as_array()
            .is_none_or(|a| a.is_empty())
    );

    // The first sandbox's netns is torn down without a DEL: the IP is reclaimed.
    ns1.delete();
    let third = bed.call("ADD", "c-two", &ns2.path(), "db-0", &conf);
    assert!(third.ok, "reclaim: {:?} {}", third.json, third.stderr);
    assert_eq!(third.json["ips"][0]["address"], "10.77.0.10/24");
    // The late DEL of the first sandbox is harmless.
    assert!(bed.call("DEL", "c-one", "", "db-0", &conf).ok);
    assert_eq!(bed.attachments().len(), 1);
    assert!(bed.call("DEL", "c-two", &ns2.path(), "db-0", &conf).ok);
    bed.all_vfs_pristine(2).unwrap();
}

#[test]
fn kill_9_at_any_step_of_add_then_del_or_gc_restores() {
    if !require_root("kill_9_at_any_step_of_add_then_del_or_gc_restores") {
        return;
    }
    let bed = Bed::new(1, &default_pod_table());
    let conf = bed.conf("1.1.0", json!({}));
    let steps = [
        "set VF netdev down",
        "set VF netdev MAC",
        "configure the VF on the PF",
        "move VF into the pod namespace",
        "configure addresses",
        "add route",
        "read the pod interface back",
    ];
    for (i, step) in steps.iter().enumerate() {
        let ns = pod_netns();
        let cid = format!("c-crash{i}");
        let fault = [("SRIOV_FAULT_STEP", *step)];
        let out = bed.call_with("ADD", &cid, &ns.path(), "db-1", &conf, &fault);
        assert!(
            !out.ok && out.json.is_null(),
            "{step}: the plugin was not killed: {:?}",
            out.json
        );
        assert_eq!(
            bed.attachments().len(),
            1,
            "{step}: intent must be recorded before the kernel is touched"
        );
        // Half of the crashes are cleaned by DEL, half by GC (nothing valid).
        if i % 2 == 0 {
            let del = bed.call("DEL", &cid, &ns.path(), "db-1", &conf);
            assert!(del.ok, "{step}: DEL {:?} {}", del.json, del.stderr);
        } else {
            let mut gc = conf.clone();
            gc["cni.dev/valid-attachments"] = json!([]);
            let out = hw_tests::cni(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/usr/lib/cni")], &gc);
            assert!(out.ok, "{step}: GC {:?} {}", out.json, out.stderr);
        }
        assert!(bed.attachments().is_empty(), "{step}: ledger not empty");
        bed.all_vfs_pristine(1)
            .unwrap_or_else(|e| panic!("{step}: {e}"));
    }
}

#[test]
fn eight_concurrent_adds_then_dels_never_share_a_vf_or_ip() {
    if !require_root("eight_concurrent_adds_then_dels_never_share_a_vf_or_ip") {
        return;
    }
    let mut pods = serde_json::Map::new();
    for i in 0..8 {
        pods.insert(
            format!("default/p-{i}"),
            json!({"ips": [format!("10.66.0.{}/24", 10 + i)]}),
        );
    }
    let table = json!({"networks": {"db-net": {"defaults": {"vlan": 10}, "pods": pods}}});
    let bed = Bed::new(8, &table);
    let conf = bed.conf("1.1.0", json!({}));
    let nss: Vec<_> = (0..8).map(|_| pod_netns()).collect();
    let results: Vec<Value> = std::thread::scope(|s| {
        let hs: Vec<_> = nss
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (bed, conf) = (&bed, &conf);
                s.spawn(move || {
                    bed.call(
                        "ADD",
                        &format!("c-p{i}"),
                        &ns.path(),
                        &format!("p-{i}"),
                        conf,
                    )
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                let o = h.join().unwrap();
                assert!(o.ok, "{:?} {}", o.json, o.stderr);
                o.json
            })
            .collect()
    });
    let mut vfs: Vec<_> = results
        .iter()
        .map(|r| r["interfaces"][0]["pciID"].to_string())
        .collect();
    let mut ips: Vec<_> = results
        .iter()
        .map(|r| r["ips"][0]["address"].to_string())
        .collect();
    vfs.sort();
    vfs.dedup();
    ips.sort();
    ips.dedup();
    assert_eq!((vfs.len(), ips.len()), (8, 8), "a VF or IP was given twice");
    assert_eq!(bed.attachments().len(), 8);
    std::thread::scope(|s| {
        for (i, ns) in nss.iter().enumerate() {
            let (bed, conf) = (&bed, &conf);
            s.spawn(move || {
                let o = bed.call(
                    "DEL",
                    &format!("c-p{i}"),
                    &ns.path(),
                    &format!("p-{i}"),
                    conf,
                );
                assert!(o.ok, "{:?} {}", o.json, o.stderr);
            });
        }
    });
    assert!(bed.attachments().is_empty());
    bed.all_vfs_pristine(8).unwrap();
}

#[test]
fn ipam_is_delegated_when_the_pod_table_has_no_entry() {
    if !require_root("ipam_is_delegated_when_the_pod_table_has_no_entry") {
        return;
    }
    let bed = Bed::new(1, &default_pod_table());
    let conf = bed.conf(
        "1.0.0",
        json!({"vlan": 300, "ipam": {"type": "static", "addresses": [{"address": "10.55.0.7/24"}]}}),
    );
    let ns = pod_netns();
    let add = bed.call("ADD", "c-other", &ns.path(), "not-in-table", &conf);
    assert!(add.ok, "{:?} {}", add.json, add.stderr);
    assert_eq!(add.json["ips"][0]["address"], "10.55.0.7/24");
    assert!(addrs(&ns, "net1").contains(&"10.55.0.7/24".to_string()));
    assert_eq!(
        bed.vf_states()[0]["vlan"]["vlan"],
        300,
        "netconf VLAN applies without a table entry"
    );
    assert!(
        bed.call("DEL", "c-other", &ns.path(), "not-in-table", &conf)
            .ok
    );
    bed.all_vfs_pristine(1).unwrap();
}

#[test]
fn agent_crash_and_restart_keeps_the_ledger() {
    if !require_root("agent_crash_and_restart_keeps_the_ledger") {
        return;
    }
    let bed = Bed::new(1, &default_pod_table());
    let conf = bed.conf("1.0.0", json!({}));
    let ns = pod_netns();
    assert!(bed.call("ADD", "c-keep", &ns.path(), "db-0", &conf).ok);
    bed.agent.crash_and_restart();
    assert_eq!(
        bed.attachments().len(),
        1,
        "ledger lost across an agent restart"
    );
    assert!(bed.call("DEL", "c-keep", &ns.path(), "db-0", &conf).ok);
    bed.all_vfs_pristine(1).unwrap();
}

#[test]
fn agent_unreachable_is_try_again_and_status_50() {
    let conf = json!({"cniVersion": "1.1.0", "name": "x", "type": "sriov",
        "agentSocket": format!("/tmp/{}-none.sock", unique_name("na"))});
    let out = hw_tests::cni(
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/proc/self/ns/net"),
            ("CNI_IFNAME", "net1"),
        ],
        &conf,
    );
    assert_eq!(out.code(), 11, "{:?}", out.json);
    let st = hw_tests::cni(&[("CNI_COMMAND", "STATUS")], &conf);
    assert_eq!(st.code(), 50, "{:?}", st.json);
}

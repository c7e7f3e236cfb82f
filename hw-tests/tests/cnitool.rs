//! The real CNI client: libcni's `cnitool` (built from Debian's source package by
//! `scripts/build-cnitool.sh`) drives `sriov` through add/check/del with cniVersion 1.0.0 and 0.4.0.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::process::Command;

use hw_tests::cni_fixture::{Bed, NET, default_pod_table, pod_netns};
use hw_tests::require_root;
use serde_json::json;

fn cnitool() -> Option<std::path::PathBuf> {
    let p = std::env::var("SRIOV_CNITOOL")
        .ok()
        .map(std::path::PathBuf::from)?;
    p.exists().then_some(p)
}

#[test]
fn cnitool_add_check_del_in_1_0_0_and_0_4_0() {
    if !require_root("cnitool_add_check_del_in_1_0_0_and_0_4_0") {
        return;
    }
    let Some(tool) = cnitool() else {
        let why = "skipped: cnitool not built (run scripts/build-cnitool.sh; SRIOV_CNITOOL)";
        assert!(
            std::env::var("SRIOV_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "{why}"
        );
        eprintln!("{why}");
        return;
    };
    let bed = Bed::new(1, &default_pod_table());
    let plugin_dir = hw_tests::bin("sriov").parent().unwrap().to_path_buf();
    for version in ["1.0.0", "0.4.0"] {
        let confdir = bed.dir.path().join(format!("net.d-{version}"));
        std::fs::create_dir_all(&confdir).unwrap();
        let mut plugin = bed.conf(version, json!({}));
        plugin.as_object_mut().unwrap().remove("cniVersion");
        plugin.as_object_mut().unwrap().remove("name");
        let list = json!({"cniVersion": version, "name": NET, "plugins": [plugin]});
        std::fs::write(confdir.join("10-db.conflist"), list.to_string()).unwrap();
        let ns = pod_netns();
        let run = |verb: &str| {
            Command::new(&tool)
                .args([verb, NET, &ns.path()])
                .env("NETCONFPATH", &confdir)
                .env("CNI_PATH", format!("{}:/usr/lib/cni", plugin_dir.display()))
                .env(
                    "CNI_ARGS",
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=db-0",
                )
                .env("CNI_IFNAME", "net1")
                .output()
                .expect("spawn cnitool")
        };
        let add = run("add");
        assert!(
            add.status.success(),
            "{version} add: {}",
            String::from_utf8_lossy(&add.stderr)
        );
        let r: serde_json::Value =
            serde_json::from_slice(&add.stdout).expect("cnitool prints the result");
        assert_eq!(r["ips"][0]["address"], "10.77.0.10/24", "{version}: {r}");
        let link = ns.ip_json(&["link", "show", "net1"]);
        assert_eq!(
            link.as_array().map(Vec::len),
            Some(1),
            "{version}: net1 not in the pod"
        );
        let check = run("check");
        assert!(
            check.status.success(),
            "{version} check: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let del = run("del");
        assert!(
            del.status.success(),
            "{version} del: {}",
            String::from_utf8_lossy(&del.stderr)
        );
        assert!(
            bed.attachments().is_empty(),
            "{version}: ledger not empty after del"
        );
        bed.all_vfs_pristine(1).unwrap();
    }
}

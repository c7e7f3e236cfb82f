//! `emulate up` of 8 VFs, then `inventory --json` lists exactly those; `emulate down` leaves no
//! links and no sysfs tree. Drives the real `sriov-device-plugin` binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::process::Command;

use hw_tests::{EmulatedNic, bin, link_names, require_root, run_ok, unique_name};

fn inventory(root: &std::path::Path) -> serde_json::Value {
    let out = run_ok(
        Command::new(bin("sriov-device-plugin"))
            .args(["inventory", "--json", "--sysfs-root"])
            .arg(root),
    );
    serde_json::from_slice(&out.stdout).expect("inventory --json prints JSON")
}

#[test]
fn emulate_up_8_then_inventory_lists_exactly_those() {
    if !require_root("emulate_up_8_then_inventory_lists_exactly_those") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sys");
    let pf = unique_name("ei");
    let nic = EmulatedNic::up(&pf, 8, &root);

    let inv = inventory(&root);
    let pfs = inv["pfs"].as_array().expect("pfs array");
    assert_eq!(pfs.len(), 1, "{inv:#}");
    let p = &pfs[0];
    assert_eq!(p["netdevs"], serde_json::json!([pf]));
    assert_eq!(p["driver"], "sriov-emu");
    assert_eq!(p["num_vfs"], 8);
    let vfs = p["vfs"].as_array().expect("vfs array");
    assert_eq!(vfs.len(), 8);
    let links = link_names();
    assert!(links.contains(&pf), "bridge {pf} missing");
    for (i, vf) in vfs.iter().enumerate() {
        assert_eq!(vf["index"], i as u64);
        assert_eq!(vf["pf"], p["pci"]);
        let name = format!("{pf}v{i}");
        assert_eq!(vf["netdevs"], serde_json::json!([name]));
        assert!(
            links.contains(&name),
            "VF netdev {name} missing from ip link"
        );
        let rep = format!("{pf}r{i}");
        let l = hw_tests::ip_json(&["-d", "link", "show", &rep]);
        assert_eq!(
            l[0]["master"],
            pf.as_str(),
            "representor {rep} not on the bridge"
        );
    }

    // Idempotent: a second up changes nothing.
    nic.up_again(8);
    let again = inventory(&root);
    assert_eq!(again["pfs"], inv["pfs"]);

    let out = nic.down();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let links = link_names();
    assert!(
        !links.iter().any(|l| l.starts_with(&pf)),
        "links left behind: {links:?}"
    );
    let left: Vec<_> = std::fs::read_dir(&root)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "sysfs tree left: {left:?}");
    assert_eq!(inventory(&root)["pfs"], serde_json::json!([]));
}

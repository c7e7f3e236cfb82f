//! VFs the agent must not hand out although no attachment holds them: one whose netdev is in a
//! namespace it does not know (quarantined, shown in `status`, brought home by the reconciler
//! once it can see that namespace), and the VFs of a PF whose link is down.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use hw_tests::cni_fixture::{Bed, default_pod_table, pod_netns};
use hw_tests::{require_root, run_ok, unique_name};
use serde_json::{Value, json};

/// A network namespace pinned only by a bind mount outside `/run/netns` (so no process and no
/// well-known path shows it to the agent), unmounted on drop.
struct HiddenNetns {
    path: PathBuf,
    sleeper: Option<Child>,
}

impl HiddenNetns {
    fn new() -> Self {
        let path = std::env::temp_dir().join(unique_name("hns"));
        std::fs::write(&path, b"").unwrap();
        run_ok(
            Command::new("unshare")
                .arg(format!("--net={}", path.display()))
                .arg("true"),
        );
        HiddenNetns {
            path,
            sleeper: None,
        }
    }

    /// Link names inside.
    fn links(&self) -> Vec<String> {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.path.display()))
            .args(["ip", "-j", "link", "show"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }

    /// A process in the namespace: from now on `/proc/<pid>/ns/net` shows it.
    fn reveal(&mut self) {
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.path.display()))
            .args(["sleep", "120"])
            .spawn()
            .unwrap();
        self.sleeper = Some(child);
    }
}

impl Drop for HiddenNetns {
    fn drop(&mut self) {
        if let Some(mut c) = self.sleeper.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("umount").arg(&self.path).output();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Polls `f` every 50 ms for up to `limit`.
fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn quarantined(status: &Value) -> Vec<String> {
    status["quarantined"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|q| q["pci"].as_str().map(str::to_string))
        .collect()
}

fn out_of_service(status: &Value) -> Vec<(String, String)> {
    status["pools"][0]["out_of_service"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (
                o["pci"].as_str().unwrap_or_default().to_string(),
                o["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn free(status: &Value) -> Vec<String> {
    status["pools"][0]["free"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_vf_left_in_a_foreign_namespace_is_quarantined_skipped_and_brought_home() {
    if !require_root("a_vf_left_in_a_foreign_namespace_is_quarantined_skipped_and_brought_home") {
        return;
    }
    let bed = Bed::new(2, &default_pod_table());
    let vfs = bed.vf_pcis();
    let vf0 = format!("{}v0", bed.pf());
    let mut hidden = HiddenNetns::new();
    // Someone else's doing: VF 0's netdev is moved into a namespace the agent cannot see.
    run_ok(
        Command::new("ip")
            .args(["link", "set", &vf0, "netns"])
            .arg(&hidden.path),
    );
    assert!(hidden.links().contains(&vf0));

    // ADD picks VF 0 first, finds it away, quarantines it and takes VF 1.
    let ns = pod_netns();
    let conf = bed.conf("1.0.0", json!({}));
    let out = bed.call("ADD", "c-q1", &ns.path(), "db-0", &conf);
    assert!(out.ok, "{:?}", out.json);
    let atts = bed.attachments();
    assert_eq!(atts.len(), 1, "{atts:?}");
    assert_eq!(atts[0]["vf_pci"], vfs[1].as_str(), "{atts:?}");
    assert!(ns.has_link("net1"));
    let st = bed.agent.status();
    assert_eq!(quarantined(&st), [vfs[0].clone()], "{st}");
    let oos = out_of_service(&st);
    assert_eq!(oos.len(), 1, "{st}");
    assert_eq!(oos[0].0, vfs[0]);
    assert!(oos[0].1.contains("not in the host namespace"), "{st}");
    assert!(free(&st).is_empty(), "{st}");

    // Asked for by deviceID it is refused (try again later), naming the quarantine.
    let ns2 = pod_netns();
    let by_id = bed.conf("1.0.0", json!({"deviceID": vfs[0]}));
    let out = bed.call("ADD", "c-q2", &ns2.path(), "db-1", &by_id);
    assert!(!out.ok, "{:?}", out.json);
    assert_eq!(out.code(), 11, "{:?}", out.json);
    let msg = out.json["msg"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains(&vfs[0]) && msg.contains("quarantined"),
        "{msg}"
    );
    assert!(!ns2.has_link("net1"));
    assert_eq!(bed.attachments().len(), 1);

    // Reconciler passes (every second) that cannot find it keep it quarantined and away.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(quarantined(&bed.agent.status()), [vfs[0].clone()]);
    assert!(hidden.links().contains(&vf0));

    // Once a process shows the namespace, the reconciler brings VF 0 home and lifts it.
    hidden.reveal();
    wait_until(Duration::from_secs(10), "VF 0 back in the host", || {
        bed.host_vf_netdevs().contains(&vf0)
    });
    assert!(!hidden.links().contains(&vf0), "{:?}", hidden.links());
    wait_until(Duration::from_secs(3), "quarantine lifted", || {
        quarantined(&bed.agent.status()).is_empty()
    });
    let st = bed.agent.status();
    assert_eq!(free(&st), [vfs[0].clone()], "{st}");
    assert!(out_of_service(&st).is_empty(), "{st}");

    // It is handed out again, and everything comes back.
    let out = bed.call("ADD", "c-q3", &ns2.path(), "db-1", &conf);
    assert!(out.ok, "{:?}", out.json);
    assert!(
        bed.attachments()
            .iter()
            .any(|a| a["vf_pci"] == vfs[0].as_str()),
        "{:?}",
        bed.attachments()
    );
    for (cid, n, pod) in [("c-q1", &ns, "db-0"), ("c-q3", &ns2, "db-1")] {
        let del = bed.call("DEL", cid, &n.path(), pod, &conf);
        assert!(del.ok, "{:?}", del.json);
    }
    assert!(bed.attachments().is_empty());
    let mut home = bed.host_vf_netdevs();
    home.sort();
    assert_eq!(home, [vf0, format!("{}v1", bed.pf())]);
    bed.all_vfs_pristine(2).unwrap();
}

#[test]
fn the_vfs_of_a_pf_whose_link_is_down_are_never_handed_out() {
    if !require_root("the_vfs_of_a_pf_whose_link_is_down_are_never_handed_out") {
        return;
    }
    let bed = Bed::new(2, &default_pod_table());
    let vfs = bed.vf_pcis();
    let pf = bed.pf().to_string();
    run_ok(Command::new("ip").args(["link", "set", &pf, "down"]));
    wait_until(Duration::from_secs(3), "both VFs out of service", || {
        out_of_service(&bed.agent.status()).len() == 2
    });
    let st = bed.agent.status();
    assert!(
        out_of_service(&st)
            .iter()
            .all(|(_, why)| why.contains(&pf) && why.contains("down")),
        "{st}"
    );
    assert!(free(&st).is_empty(), "{st}");

    let ns = pod_netns();
    let conf = bed.conf("1.0.0", json!({}));
    let out = bed.call("ADD", "c-d1", &ns.path(), "db-0", &conf);
    assert!(!out.ok, "ADD behind a down PF succeeded: {:?}", out.json);
    assert_eq!(out.code(), 11, "{:?}", out.json);
    let msg = out.json["msg"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("out of service"), "{msg}");
    let by_id = bed.conf("1.0.0", json!({"deviceID": vfs[1]}));
    let out = bed.call("ADD", "c-d2", &ns.path(), "db-0", &by_id);
    assert!(!out.ok, "{:?}", out.json);
    assert_eq!(out.code(), 11, "{:?}", out.json);
    assert!(
        out.json["msg"]
            .as_str()
            .is_some_and(|m| m.contains(&vfs[1]) && m.contains("down")),
        "{:?}",
        out.json
    );
    // Nothing moved, nothing recorded.
    assert!(!ns.has_link("net1"));
    assert!(bed.attachments().is_empty());
    assert_eq!(bed.host_vf_netdevs().len(), 2);
    bed.all_vfs_pristine(2).unwrap();

    run_ok(Command::new("ip").args(["link", "set", &pf, "up"]));
    wait_until(Duration::from_secs(3), "VFs back in service", || {
        free(&bed.agent.status()).len() == 2
    });
    let out = bed.call("ADD", "c-d3", &ns.path(), "db-0", &conf);
    assert!(out.ok, "{:?}", out.json);
    let del = bed.call("DEL", "c-d3", &ns.path(), "db-0", &conf);
    assert!(del.ok, "{:?}", del.json);
    assert!(bed.attachments().is_empty());
}

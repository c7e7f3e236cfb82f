//! Faults of the agent's storage (issue 6): the state directory read-only at start, and full
//! while the agent runs. Assertions are on what peers see: the agent's exit status and stderr,
//! the CNI's error JSON and exit code, the kernel (`ip -j`, the PF's VF table) and the ledger
//! through `sriov-device-plugin status --json` — never on log lines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hw_tests::cni_fixture::{Bed, default_pod_table, pod_netns};
use hw_tests::mounts::Tmpfs;
use hw_tests::{CniOutcome, Netns, bin, require_root};
use serde_json::json;

/// Runs `sriov-device-plugin run --standalone` on `state_dir` (no NIC: an empty sysfs root) and
/// expects it to exit non-zero within 10 s. Returns its stderr.
fn agent_must_refuse(dir: &Path, state_dir: &Path) -> String {
    let pools = dir.join("pools.json");
    std::fs::write(&pools, r#"{"resourceList": [{"resourceName": "emu", "selectors": {"drivers": ["sriov-emu-vf"]}}]}"#).unwrap();
    std::fs::create_dir_all(dir.join("sys")).unwrap();
    let socket = dir.join("agent.sock");
    let mut child = Command::new(bin("sriov-device-plugin"))
        .args(["run", "--standalone", "--no-metrics", "--socket"])
        .arg(&socket)
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--sysfs-root")
        .arg(dir.join("sys"))
        .arg("--config")
        .arg(&pools)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait agent") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("agent output");
            panic!(
                "agent on {} still running after 10 s: {}",
                state_dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).unwrap();
    assert!(
        !status.success(),
        "agent on {} exited {status}",
        state_dir.display()
    );
    assert!(
        !socket.exists(),
        "agent served although its state dir is unusable"
    );
    stderr
}

#[test]
fn agent_on_read_only_state_dir_exits_naming_it() {
    if !require_root("agent_on_read_only_state_dir_exits_naming_it") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // An existing, empty state dir on a read-only filesystem; and one that does not exist yet.
    let ro = Tmpfs::mount(1024, true).expect("read-only tmpfs");
    for state in [ro.path().to_path_buf(), ro.path().join("state")] {
        let err = agent_must_refuse(dir.path(), &state);
        assert!(
            err.contains(&state.display().to_string()),
            "stderr does not name {}: {err}",
            state.display()
        );
        assert!(
            err.to_lowercase().contains("read-only"),
            "stderr does not say read-only: {err}"
        );
    }
    // A ledger the agent wrote, then the filesystem went read-only (errors=remount-ro).
    let fs = Tmpfs::mount(8192, false).expect("tmpfs");
    let state = fs.path().join("state");
    {
        let bed = Bed::standalone_with(1, &default_pod_table(), |d| state_on(&state, d));
        let ns = pod_netns();
        let add = bed.call(
            "ADD",
            "c-ro",
            &ns.path(),
            "db-0",
            &bed.conf("1.1.0", json!({})),
        );
        assert!(add.ok, "{:?} {}", add.json, add.stderr);
    }
    fs.remount_read_only().expect("remount ro");
    let err = agent_must_refuse(dir.path(), &state);
    assert!(
        err.contains(&state.display().to_string()),
        "stderr does not name {}: {err}",
        state.display()
    );
}

/// Puts the bed's state directory (`<bed>/state`) at `target` through a symlink.
fn state_on(target: &Path, bed_dir: &Path) {
    std::fs::create_dir_all(target).expect("state dir");
    std::os::unix::fs::symlink(target, bed_dir.join("state")).expect("symlink state dir");
}

/// A failed ADD says the storage is full, names the state dir, asks to try again (11), and
/// left nothing: no `net1` in the pod, the VF in the host under its name, untouched.
fn assert_refused_for_space(bed: &Bed, out: &CniOutcome, ns: &Netns) {
    let state = &bed.agent.state_dir;
    assert!(!out.ok, "ADD succeeded on a full disk: {:?}", out.json);
    assert_eq!(out.code(), 11, "{:?} {}", out.json, out.stderr);
    let msg = out.json["msg"].as_str().unwrap_or("");
    assert!(
        msg.contains("No space left on device"),
        "msg does not name the problem: {msg}"
    );
    assert!(
        msg.contains(&state.display().to_string()),
        "msg does not name the state dir: {msg}"
    );
    assert!(!ns.has_link("net1"), "the failed ADD left net1 in the pod");
    bed.vfs_pristine_except(2, &[0])
        .unwrap_or_else(|e| panic!("after the failed ADD: {e}"));
}

#[test]
fn full_state_dir_fails_add_cleanly_until_space_is_freed() {
    if !require_root("full_state_dir_fails_add_cleanly_until_space_is_freed") {
        return;
    }
    let fs = Tmpfs::mount(2048, false).expect("tmpfs");
    let state = fs.path().join("state");
    let bed = Bed::standalone_with(2, &default_pod_table(), |d| state_on(&state, d));
    let conf = bed.conf("1.1.0", json!({}));
    let held_ns = pod_netns();
    let held = bed.call("ADD", "c-held", &held_ns.path(), "db-0", &conf);
    assert!(held.ok, "{:?} {}", held.json, held.stderr);
    let filler = fs.fill("filler").expect("fill the state dir's filesystem");
    assert_eq!(fs.free_bytes().unwrap(), 0);

    // Pods come and go on the other VF until the ledger needs space it cannot get (sled
    // writes into space it already holds first). Whichever write hits the wall fails cleanly.
    let ns = pod_netns();
    let mut failed_del = None;
    let mut hit = false;
    for i in 0..60 {
        let cid = format!("c-probe{i}");
        let add = bed.call("ADD", &cid, &ns.path(), "db-1", &conf);
        if !add.ok {
            assert_refused_for_space(&bed, &add, &ns);
            failed_del = Some(cid); // the runtime DELs a failed ADD (its record may be PLANNED)
            hit = true;
            break;
        }
        let del = bed.call("DEL", &cid, &ns.path(), "db-1", &conf);
        if !del.ok {
            assert_eq!(del.code(), 11, "DEL on a full disk: {:?}", del.json);
            failed_del = Some(cid);
            hit = true;
            break;
        }
    }
    assert!(hit, "60 ADD/DEL cycles on a full disk never failed");
    // While the disk stays full, ADD keeps failing the same clean way.
    let out = bed.call("ADD", "c-full", &ns.path(), "db-1", &conf);
    assert_refused_for_space(&bed, &out, &ns);

    std::fs::remove_file(filler).expect("free the space");
    let status = bed.agent.status();
    assert!(
        !status["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["container_id"] == "c-full"),
        "the refused ADD is in the ledger: {status}"
    );
    if let Some(cid) = failed_del {
        let del = bed.call("DEL", &cid, &ns.path(), "db-1", &conf);
        assert!(
            del.ok,
            "DEL {cid} after space was freed: {:?} {}",
            del.json, del.stderr
        );
    }
    let atts = bed.attachments();
    assert_eq!(atts.len(), 1, "{atts:?}");
    assert_eq!(atts[0]["container_id"], "c-held");
    // Space is back: the same ADD works, and everything comes apart cleanly.
    let again = bed.call("ADD", "c-full", &ns.path(), "db-1", &conf);
    assert!(
        again.ok,
        "ADD after space was freed: {:?} {}",
        again.json, again.stderr
    );
    assert!(ns.has_link("net1"));
    for (cid, ns, pod) in [("c-full", &ns, "db-1"), ("c-held", &held_ns, "db-0")] {
        let del = bed.call("DEL", cid, &ns.path(), pod, &conf);
        assert!(del.ok, "DEL {cid}: {:?} {}", del.json, del.stderr);
    }
    assert!(bed.attachments().is_empty());
    bed.all_vfs_pristine(2).unwrap();
}

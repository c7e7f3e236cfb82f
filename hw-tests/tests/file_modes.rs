//! The agent's files and sockets are private whatever umask it starts under: the state
//! directory 0700, the ledger's files 0600, the node API socket and every kubelet plugin socket
//! 0600. And a CNI caller that may not open the node socket is told "permission denied".
//! With `--socket-group`, the node API socket is 0660 and the group's members may dial it.
//!
//! Its own test binary: the tests set the process umask to 000 (as a careless init system
//! would), which every child inherits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use std::os::unix::fs::MetadataExt;

use hw_tests::kubelet_bed::registered_bed;
use hw_tests::{Agent, bin, require_root};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn walk(dir: &Path, out: &mut Vec<(String, u32, bool)>) {
    for e in std::fs::read_dir(dir).expect("read state dir") {
        let e = e.expect("entry");
        let is_dir = e.file_type().expect("type").is_dir();
        out.push((e.path().display().to_string(), mode(&e.path()), is_dir));
        if is_dir {
            walk(&e.path(), out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_sockets_are_private_under_umask_000() {
    if !require_root("state_and_sockets_are_private_under_umask_000") {
        return;
    }
    // SAFETY: umask has no preconditions; this binary runs only this test.
    unsafe { libc::umask(0) };
    let (_kubelet, bed, reg) = registered_bed(2).await;

    assert_eq!(mode(&bed.agent.state_dir), 0o700, "state dir");
    let mut files = Vec::new();
    walk(&bed.agent.state_dir, &mut files);
    assert!(!files.is_empty(), "the ledger has files");
    for (path, m, is_dir) in &files {
        assert_eq!(*m, if *is_dir { 0o700 } else { 0o600 }, "{path}");
    }
    assert_eq!(mode(&bed.agent.socket), 0o600, "node API socket");
    let plugin = bed.kubelet_dir().join(&reg.request.endpoint);
    assert_eq!(mode(&plugin), 0o600, "{}", plugin.display());

    // STATUS as an unprivileged user: refused, and told why.
    let conf = bed.conf("1.1.0", serde_json::json!({}));
    let (ok, err) = status_as(65534, 65534, &conf);
    assert!(!ok);
    assert_eq!(err["code"], 50, "{err}");
    let msg = err["msg"].as_str().unwrap_or_default();
    assert!(msg.contains("permission denied"), "{err}");
}

/// Runs the CNI's STATUS with `conf` as `uid`:`gid`; returns (success, stdout JSON or null).
fn status_as(uid: u32, gid: u32, conf: &serde_json::Value) -> (bool, serde_json::Value) {
    let mut child = Command::new(bin("sriov"))
        .env_clear()
        .env("CNI_COMMAND", "STATUS")
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sriov");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(conf.to_string().as_bytes())
            .expect("netconf");
    }
    let out = child.wait_with_output().expect("wait sriov");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.success(), json)
}

#[test]
fn a_socket_group_may_dial_the_node_api_and_others_may_not() {
    if !require_root("a_socket_group_may_dial_the_node_api_and_others_may_not") {
        return;
    }
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0) };
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    std::fs::create_dir_all(&sys).unwrap();
    let pools = hw_tests::cni_fixture::write_pools(dir.path());
    // The group: nogroup (65534), which uid 65533 is not in.
    let agent = Agent::start_with(
        dir.path(),
        &sys,
        &pools,
        None,
        &["--standalone", "--socket-group", "65534"],
    );
    let meta = std::fs::metadata(&agent.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660, "node API socket");
    assert_eq!((meta.uid(), meta.gid()), (0, 65534));
    let conf = serde_json::json!({
        "cniVersion": "1.1.0", "name": "g", "type": "sriov",
        "agentSocket": agent.socket.display().to_string(),
    });
    let (ok, out) = status_as(65533, 65534, &conf);
    assert!(ok, "a group member's STATUS: {out}");
    let (ok, err) = status_as(65533, 65533, &conf);
    assert!(!ok);
    assert!(
        err["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("permission denied"),
        "{err}"
    );
}

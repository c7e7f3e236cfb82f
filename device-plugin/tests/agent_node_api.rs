//! The node API's refusals and bookkeeping that need no NIC (and no root): the agent runs
//! in-process on an empty sysfs tree, and the `run`/`status` commands as the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

mod agent_support;

use std::process::Command;

use agent_support::{POOL, TestAgent, key, standalone};
use sriov_proto::node::{
    AttachmentKey, CommitRequest, GcRequest, PlanRequest, StatusRequest, VfSettings,
};
use tonic::Code;

fn req(container: &str) -> PlanRequest {
    PlanRequest {
        key: Some(key(container)),
        netns_path: "/proc/self/ns/net".into(),
        pod_namespace: "default".into(),
        pod_name: "db-0".into(),
        network: "n1".into(),
        resource_name: POOL.into(),
        netconf: Some(VfSettings::default()),
        ..Default::default()
    }
}

async fn plan_code(agent: &TestAgent, r: PlanRequest) -> (Code, String) {
    let s = agent.client().await.plan(r).await.unwrap_err();
    (s.code(), s.message().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_refuses_bad_requests_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let agent = TestAgent::start(standalone(dir.path(), dir.path())).await;

    let mut r = req("c1");
    r.key.as_mut().unwrap().container_id.clear();
    let (code, msg) = plan_code(&agent, r).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("key.container_id"), "{msg}");

    let mut r = req("c1");
    r.network.clear();
    let (code, msg) = plan_code(&agent, r).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("network"), "{msg}");

    let mut r = req("c1");
    r.requested_ips = vec!["10.0.0.300/24".into()];
    let (code, msg) = plan_code(&agent, r).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        msg.contains("requested_ips") && msg.contains("10.0.0.300"),
        "{msg}"
    );

    let mut r = req("c1");
    r.mac_override = "zz:00".into();
    assert_eq!(plan_code(&agent, r).await.0, Code::InvalidArgument);

    let mut r = req("c1");
    r.resource_name = "test.io/nope".into();
    let (code, msg) = plan_code(&agent, r).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("unknown pool"), "{msg}");

    let mut r = req("c1");
    r.device_id = "0000:af:02.1".into();
    let (code, msg) = plan_code(&agent, r).await;
    assert_eq!(code, Code::InvalidArgument);
    assert!(msg.contains("unknown device"), "{msg}");

    // The known pool exists but this tree has no VFs in it.
    let (code, _) = plan_code(&agent, req("c1")).await;
    assert_eq!(code, Code::ResourceExhausted);

    // Nothing was recorded by any refusal.
    let st = agent.client().await.status(StatusRequest {}).await.unwrap();
    assert!(st.get_ref().attachments.is_empty());
    assert_eq!(st.get_ref().pools.len(), 1);
    assert_eq!(st.get_ref().pools[0].resource, POOL);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_standalone_and_device_id_plan_is_a_failed_precondition() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = standalone(dir.path(), dir.path());
    cfg.standalone = false;
    let agent = TestAgent::start(cfg).await;
    let (code, msg) = plan_code(&agent, req("c1")).await;
    assert_eq!(code, Code::FailedPrecondition);
    assert!(msg.contains("not standalone"), "{msg}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_table_that_never_loaded_makes_plan_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("podtable.json");
    std::fs::write(
        &table,
        r#"{"networks": {"n1": {"pods": {"default/db-0": {"ips": ["10.0.0.1/33"]}}}}}"#,
    )
    .unwrap();
    let mut cfg = standalone(dir.path(), dir.path());
    cfg.pod_table = Some(table);
    let agent = TestAgent::start(cfg).await;
    let mut r = req("c1");
    r.use_pod_table = true;
    let (code, msg) = plan_code(&agent, r).await;
    assert_eq!(code, Code::Unavailable);
    assert!(msg.starts_with("pod table invalid"), "{msg}");
    let st = agent.client().await.status(StatusRequest {}).await.unwrap();
    assert!(!st.get_ref().pod_table_error.is_empty());
    assert_eq!(st.get_ref().pod_table_loads, 0);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn commit_abort_fetch_release_and_gc_on_absent_attachments() {
    let dir = tempfile::tempdir().unwrap();
    let agent = TestAgent::start(standalone(dir.path(), dir.path())).await;
    let mut c = agent.client().await;
    let s = c
        .commit(CommitRequest {
            key: Some(key("nope")),
            result_json: "{}".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound);
    // DEL twice, abort after a failed plan: all fine when absent.
    c.abort(key("nope")).await.unwrap();
    c.release(key("nope")).await.unwrap();
    c.release(key("nope")).await.unwrap();
    let f = c.fetch(key("nope")).await.unwrap().into_inner();
    assert!(!f.found && f.attachment.is_none());
    let s = c.fetch(AttachmentKey::default()).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    let g = c
        .gc(GcRequest {
            network: "n1".into(),
            valid: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(g.released.is_empty() && g.errors.is_empty());
    drop(c);
    agent.stop().await;
    // The socket is removed on shutdown.
    assert!(!dir.path().join("run/agent.sock").exists());
}

#[test]
fn run_refuses_an_invalid_pool_config_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pools.json");
    std::fs::write(
        &cfg,
        r#"{"resourceList":[{"resourceName":"good","selectors":{"drivers":["x"]}},{"resourceName":"bad pool!","selectors":{"drivers":["x"]}}]}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .args(["run", "--standalone", "--socket"])
        .arg(dir.path().join("agent.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--sysfs-root")
        .arg(dir.path())
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("resourceList[1]") && err.contains("bad pool!"),
        "{err}"
    );
    assert!(!dir.path().join("agent.sock").exists());
}

#[test]
fn run_standalone_without_a_pool_config_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .args(["run", "--standalone", "--socket"])
        .arg(dir.path().join("agent.sock"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--config"), "{err}");
}

#[test]
fn status_without_an_agent_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .args(["status", "--json", "--socket"])
        .arg(&sock)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("agent unreachable"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn run_serves_status_and_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run/agent.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .args(["run", "--standalone", "--socket"])
        .arg(&sock)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--sysfs-root")
        .arg(dir.path())
        .arg("--config")
        .arg(agent_support::pool_config(dir.path()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .args(["status", "--json", "--socket"])
        .arg(&sock)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pools"][0]["resource"], POOL);
    assert_eq!(v["attachments"].as_array().unwrap().len(), 0);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!sock.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pool_reload_keeps_the_last_good_config_when_the_new_one_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = standalone(dir.path(), dir.path());
    let path = cfg.pool_config.clone().unwrap();
    let agent = device_plugin::agent::Agent::start(cfg).await.unwrap();
    let pools = |a: &device_plugin::agent::Agent| -> Vec<String> {
        a.state()
            .snapshot()
            .pools
            .iter()
            .map(|p| p.resource())
            .collect()
    };
    assert_eq!(pools(&agent), [POOL]);
    std::fs::write(&path, r#"{"resourceList":[{"resourceName":"x y"}]}"#).unwrap();
    let e = agent.state().reload_pools().await.unwrap_err().to_string();
    assert!(e.contains("resourceList[0]"), "{e}");
    assert_eq!(pools(&agent), [POOL]);
    std::fs::write(
        &path,
        r#"{"resourceList":[{"resourceName":"a","selectors":{}},{"resourceName":"b","resourcePrefix":"p.io","selectors":{}}]}"#,
    )
    .unwrap();
    agent.state().reload_pools().await.unwrap();
    assert_eq!(pools(&agent), ["intel.com/a", "p.io/b"]);
}

//! Faults (issue 6): kubelet restarted under load, and the agent killed (-9) during Allocate and
//! during ADD. Every assertion is on what a peer can see: the kernel (`ip -j`, the PF's VF
//! table), the kubelet stand-in (registrations, ListAndWatch lists, Allocate answers), the CNI
//! results and exit codes, and the ledger through `sriov-device-plugin status --json` — never on
//! log lines. The agent's storage failing is in `faults_storage.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hw_tests::cni_fixture::{Bed, pod_netns};
use hw_tests::kubelet_bed::{pools_of, two_pool_bed, wait_recovered};
use hw_tests::load::{Call, Epoch, Load};
use hw_tests::{CniOutcome, Netns, require_root};
use serde_json::{Value, json};
use sriov_proto::deviceplugin::v1beta1 as api;

/// No call made while all was well failed, and no answer was ever wrong.
fn assert_calm_calls_ok(calls: &[Call]) {
    let bad: Vec<&Call> = calls
        .iter()
        .filter(|c| c.wrong() || (c.in_calm() && c.result.is_err()))
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} calls failed outside a fault: {:?}",
        bad.len(),
        calls.len(),
        &bad[..bad.len().min(5)]
    );
}

/// ADD/DEL in a loop on `vf` (Multus-style deviceID) until `stop`; every call must succeed.
fn churn(bed: &Bed, vf: &str, stop: &AtomicBool, done: &AtomicUsize) {
    let conf = bed.conf("1.1.0", json!({"deviceID": vf}));
    while !stop.load(Ordering::SeqCst) {
        let n = done.load(Ordering::SeqCst);
        let (ns, cid) = (pod_netns(), format!("c-churn{n}"));
        let add = bed.call("ADD", &cid, &ns.path(), "db-1", &conf);
        assert!(add.ok, "churn ADD {n}: {:?} {}", add.json, add.stderr);
        let del = bed.call("DEL", &cid, &ns.path(), "db-1", &conf);
        assert!(del.ok, "churn DEL {n}: {:?} {}", del.json, del.stderr);
        done.fetch_add(1, Ordering::SeqCst);
    }
}

/// Sets the flag when dropped, panics included.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_restarts_under_load_lose_nothing() {
    if !require_root("kubelet_restarts_under_load_lose_nothing") {
        return;
    }
    let since = Instant::now();
    let (mut kubelet, bed) = two_pool_bed();
    let pools = pools_of(&bed);
    wait_recovered(&kubelet, &bed, &pools, since).await;
    let (vf0, vf1) = (pools[0].1[0].clone(), pools[0].1[1].clone());
    // A long-lived attachment that every restart must leave alone.
    let long_ns = pod_netns();
    let long_conf = bed.conf("1.1.0", json!({"deviceID": vf1}));
    let add = tokio::task::block_in_place(|| {
        bed.call("ADD", "c-long", &long_ns.path(), "db-0", &long_conf)
    });
    assert!(add.ok, "ADD: {:?} {}", add.json, add.stderr);

    let epoch = Arc::new(Epoch::default());
    let load = Load::start(kubelet.dialer(), epoch.clone(), &pools, 2);
    let (stop, churned) = (AtomicBool::new(false), AtomicUsize::new(0));
    tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            // A failed assertion below must stop the churn, or the scope waits for it forever.
            let _stop = StopOnDrop(&stop);
            let churner = s.spawn(|| churn(&bed, &vf0, &stop, &churned));
            let rt = tokio::runtime::Handle::current();
            for round in 0..4 {
                // Restart only once the load and the ADD/DEL loop made progress since the last.
                let (e, c) = (epoch.get(), churned.load(Ordering::SeqCst));
                while pools.iter().any(|(r, _)| load.ok_since(r, e) < 10)
                    || churned.load(Ordering::SeqCst) == c
                {
                    assert!(!churner.is_finished(), "churn stopped");
                    std::thread::sleep(Duration::from_millis(10));
                }
                let regs = kubelet.registrations().len();
                epoch.fault();
                // Alternate a full restart (all sockets cleared) and a bare new kubelet.sock.
                let t = if round % 2 == 0 {
                    kubelet.restart()
                } else {
                    kubelet.recreate_socket()
                }
                .expect("restart stand-in");
                rt.block_on(wait_recovered(&kubelet, &bed, &pools, t));
                epoch.recovered();
                let new = kubelet.registrations().len() - regs;
                eprintln!(
                    "restart {round}: {new} registrations, {} ADD/DEL so far",
                    churned.load(Ordering::SeqCst)
                );
                bed.assert_ledger(&[("c-long", &vf1)], "c-churn");
            }
            let e = epoch.get();
            while pools.iter().any(|(r, _)| load.ok_since(r, e) < 10) {
                std::thread::sleep(Duration::from_millis(10));
            }
            stop.store(true, Ordering::SeqCst);
            churner.join().expect("churn thread");
        })
    });
    let calls = load.stop().await;
    eprintln!(
        "{} kubelet calls, {} failed (during restarts), {} ADD/DEL",
        calls.len(),
        calls.iter().filter(|c| c.result.is_err()).count(),
        churned.load(Ordering::SeqCst)
    );
    assert_calm_calls_ok(&calls);
    assert!(
        churned.load(Ordering::SeqCst) > 0,
        "no ADD/DEL ran during the restarts"
    );
    tokio::task::block_in_place(|| {
        bed.assert_ledger(&[("c-long", &vf1)], "-none-");
        assert!(
            bed.call("DEL", "c-long", &long_ns.path(), "db-0", &long_conf)
                .ok
        );
        assert!(bed.attachments().is_empty());
        bed.all_vfs_pristine(4).unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_during_allocates_comes_back_whole() {
    if !require_root("agent_killed_during_allocates_comes_back_whole") {
        return;
    }
    let since = Instant::now();
    let (kubelet, bed) = two_pool_bed();
    let pools = pools_of(&bed);
    wait_recovered(&kubelet, &bed, &pools, since).await;
    let vf1 = pools[0].1[1].clone();
    let ns = pod_netns();
    let conf = bed.conf("1.1.0", json!({"deviceID": vf1}));
    let add = tokio::task::block_in_place(|| bed.call("ADD", "c-held", &ns.path(), "db-0", &conf));
    assert!(add.ok, "ADD: {:?} {}", add.json, add.stderr);

    let epoch = Arc::new(Epoch::default());
    let load = Load::start(kubelet.dialer(), epoch.clone(), &pools, 4);
    while pools.iter().any(|(r, _)| load.ok_since(r, 0) < 20) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    epoch.fault();
    let t = Instant::now();
    tokio::task::block_in_place(|| bed.agent.crash_and_restart());
    wait_recovered(&kubelet, &bed, &pools, t).await;
    epoch.recovered();
    let e = epoch.get();
    while pools.iter().any(|(r, _)| load.ok_since(r, e) < 10) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let calls = load.stop().await;
    let hit = calls
        .iter()
        .filter(|c| c.start_epoch == 1 || c.end_epoch == 1)
        .count();
    eprintln!("{} calls, {hit} overlapped the kill", calls.len());
    assert_calm_calls_ok(&calls);
    assert!(hit > 0, "no call was in flight when the agent was killed");

    // Every device still allocatable through the restarted agent, with its env var.
    for (resource, ids) in &pools {
        let mut plugin = kubelet.plugin(resource).await.expect("dial");
        let resp = plugin
            .allocate(api::AllocateRequest {
                container_requests: vec![api::ContainerAllocateRequest {
                    devices_ids: ids.clone(),
                }],
            })
            .await
            .unwrap_or_else(|e| panic!("Allocate {ids:?}: {e}"))
            .into_inner();
        let envs = &resp.container_responses[0].envs;
        assert!(
            envs.values().any(|v| *v == ids.join(",")),
            "{resource}: {envs:?}"
        );
    }
    // Device-info files: whole JSON naming their device, whatever moment the kill hit.
    for f in std::fs::read_dir(bed.devinfo_dir())
        .expect("devinfo dir")
        .flatten()
    {
        let name = f.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let body: Value = serde_json::from_slice(&std::fs::read(f.path()).unwrap())
            .unwrap_or_else(|e| panic!("device-info {name} is not JSON after the kill: {e}"));
        assert!(
            name.contains(body["pci"]["pci-address"].as_str().unwrap_or("?")),
            "{name}: {body}"
        );
    }
    tokio::task::block_in_place(|| {
        bed.assert_ledger(&[("c-held", &vf1)], "-none-");
        assert!(bed.call("DEL", "c-held", &ns.path(), "db-0", &conf).ok);
        assert!(bed.attachments().is_empty());
        bed.all_vfs_pristine(4).unwrap();
    });
}

/// Calls the CNI like a runtime: an unreachable agent (error 11) is retried for up to 30 s.
fn call_retrying(
    bed: &Bed,
    cmd: &str,
    cid: &str,
    netns: &str,
    pod: &str,
    conf: &Value,
) -> CniOutcome {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = bed.call(cmd, cid, netns, pod, conf);
        if out.ok || out.code() != 11 || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn agent_killed_during_adds_then_dels_restore_everything() {
    if !require_root("agent_killed_during_adds_then_dels_restore_everything") {
        return;
    }
    const PODS: usize = 6;
    let mut table = serde_json::Map::new();
    for i in 0..PODS {
        table.insert(
            format!("default/k{i}"),
            json!({"ips": [format!("10.68.0.{}/24", 10 + i)]}),
        );
    }
    let table = json!({"networks": {"db-net": {"defaults": {"vlan": 30, "max_tx_rate": 200}, "pods": table}}});
    let bed = Bed::new(PODS as u32, &table);
    let conf = bed.conf("1.1.0", json!({"mac": "02:00:00:68:00:01", "trust": "on"}));
    let mut disrupted = 0;
    for round in 0..3 {
        let nss: Vec<Netns> = (0..PODS).map(|_| pod_netns()).collect();
        let cid = |i: usize| format!("c-kill{round}-{i}");
        let finished = AtomicUsize::new(0);
        // Every ADD at once; the agent dies (-9) the moment the first one returns, while the
        // others are between Plan and Commit or still planning.
        let outs: Vec<CniOutcome> = std::thread::scope(|s| {
            let hs: Vec<_> = nss
                .iter()
                .enumerate()
                .map(|(i, ns)| {
                    let (bed, conf, finished, cid) = (&bed, &conf, &finished, cid(i));
                    s.spawn(move || {
                        let out = bed.call("ADD", &cid, &ns.path(), &format!("k{i}"), conf);
                        finished.fetch_add(1, Ordering::SeqCst);
                        out
                    })
                })
                .collect();
            while finished.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            bed.agent.crash_and_restart();
            hs.into_iter()
                .map(|h| h.join().expect("ADD thread"))
                .collect()
        });
        let status = bed.agent.status();
        let atts = status["attachments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (i, out) in outs.iter().enumerate() {
            let rec = atts.iter().find(|a| a["container_id"] == cid(i).as_str());
            if out.ok {
                // Succeeded: committed in the ledger, the VF in the pod with the result's MAC.
                assert_eq!(
                    rec.map(|r| r["state"].clone()),
                    Some(json!("committed")),
                    "ADD {i} ok but {status}"
                );
                let link = nss[i].ip_json(&["link", "show", "net1"]);
                assert_eq!(
                    link[0]["address"], out.json["interfaces"][0]["mac"],
                    "{link}"
                );
            } else {
                // Failed: error 11 (try again), nothing in the pod, nothing committed.
                disrupted += 1;
                assert_eq!(out.code(), 11, "ADD {i}: {:?} {}", out.json, out.stderr);
                assert!(
                    !nss[i].has_link("net1"),
                    "ADD {i} failed but left net1 in the pod"
                );
                assert_ne!(
                    rec.map(|r| r["state"].clone()),
                    Some(json!("committed")),
                    "ADD {i} failed but {status}"
                );
            }
        }
        eprintln!(
            "round {round}: {} of {PODS} ADDs failed by the kill",
            outs.iter().filter(|o| !o.ok).count()
        );
        // The runtime DELs every sandbox (failed ADDs included); each DEL succeeds.
        for (i, ns) in nss.iter().enumerate() {
            let del = call_retrying(&bed, "DEL", &cid(i), &ns.path(), &format!("k{i}"), &conf);
            assert!(del.ok, "DEL {i}: {:?} {}", del.json, del.stderr);
            assert!(!ns.has_link("net1"), "net1 still in pod {i} after DEL");
        }
        assert!(
            bed.attachments().is_empty(),
            "ledger not empty: {:?}",
            bed.attachments()
        );
        bed.all_vfs_pristine(PODS as u32)
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let free = bed.agent.status()["pools"][0]["free"]
            .as_array()
            .map(Vec::len);
        assert_eq!(free, Some(PODS), "not every VF free again");
        if disrupted > 0 {
            break;
        }
    }
    assert!(
        disrupted > 0,
        "in 3 rounds the kill never caught an ADD in flight"
    );
}

/// A PLANNED record left by a killed agent (its CNI died mid-ADD, the pod's namespace lives on)
/// is undone by the restarted agent's first reconcile: the runtime's retry of that ADD
/// succeeds instead of getting "already exists (Planned)" until some DEL comes.
#[test]
fn a_planned_record_of_a_killed_agent_does_not_block_the_retry() {
    if !require_root("a_planned_record_of_a_killed_agent_does_not_block_the_retry") {
        return;
    }
    let bed = Bed::new(1, &hw_tests::cni_fixture::default_pod_table());
    let conf = bed.conf("1.1.0", json!({}));
    let ns = pod_netns();
    let run = |fault: &'static str| {
        bed.call_with(
            "ADD",
            "c-planned",
            &ns.path(),
            "db-0",
            &conf,
            &[("SRIOV_FAULT_STEP", fault)],
        )
    };
    // The CNI is killed after Plan, with the VF half configured; then the agent is killed too.
    let out = run("configure the VF on the PF");
    assert!(
        !out.ok && out.json.is_null(),
        "the plugin was not killed: {:?}",
        out.json
    );
    assert_eq!(bed.attachments()[0]["state"], "planned");
    bed.agent.crash_and_restart();
    // The retry: committed, the VF in the pod.
    let out = run("none");
    assert!(out.ok, "retried ADD: {:?} {}", out.json, out.stderr);
    assert!(ns.has_link("net1"));
    let atts = bed.attachments();
    assert_eq!(atts.len(), 1, "{atts:?}");
    assert_eq!(atts[0]["state"], "committed");
    let del = bed.call("DEL", "c-planned", &ns.path(), "db-0", &conf);
    assert!(del.ok, "DEL: {:?}", del.json);
    bed.all_vfs_pristine(1).unwrap_or_else(|e| panic!("{e}"));
}

/// A CNI held (SIGSTOP) at a step between Plan and Commit; on drop it is killed, never left
/// stopped.
struct Paused(Option<std::process::Child>);

impl Paused {
    /// Waits until the plugin stopped itself; panics (with its output) if it exited instead.
    fn wait_stopped(child: std::process::Child) -> Self {
        let mut p = Paused(Some(child));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let c = p.0.as_mut().unwrap();
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", c.id())).unwrap_or_default();
            if stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('T'))
            {
                return p;
            }
            if c.try_wait().unwrap().is_some() {
                let out = hw_tests::cni_collect(p.0.take().unwrap());
                panic!(
                    "the plugin exited before its pause: {:?} {}",
                    out.json, out.stderr
                );
            }
            assert!(
                Instant::now() < deadline,
                "the plugin never reached its pause"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lets it go on and waits for its outcome.
    fn resume(mut self) -> CniOutcome {
        let c = self.0.take().unwrap();
        let cont = std::process::Command::new("kill")
            .args(["-CONT", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(cont.success(), "kill -CONT failed");
        hw_tests::cni_collect(c)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The agent killed and restarted while a CNI is between Plan and Commit (its VF half
/// configured: PF-side settings only, or already moved into the pod): the restarted agent must
/// not undo that VF under the running CNI (two writers of one VF leave settings behind). The CNI
/// goes on and commits to the new agent: the ADD succeeds, the VF in the pod with the result's
/// MAC, and DEL leaves it pristine.
#[test]
fn an_agent_restart_leaves_a_running_cnis_planned_vf_alone() {
    if !require_root("an_agent_restart_leaves_a_running_cnis_planned_vf_alone") {
        return;
    }
    for step in ["configure the VF on the PF", "configure addresses"] {
        let bed = Bed::new(1, &hw_tests::cni_fixture::default_pod_table());
        let conf = bed.conf("1.1.0", json!({"mac": "02:00:00:69:00:01", "trust": "on"}));
        let ns = pod_netns();
        let pause = [("SRIOV_PAUSE_STEP", step)];
        let cni = bed.spawn_with("ADD", "c-inflight", &ns.path(), "db-0", &conf, &pause);
        let paused = Paused::wait_stopped(cni);
        assert_eq!(bed.attachments()[0]["state"], "planned", "{step}");
        let in_pod = ns.has_link("net1");
        bed.agent.crash_and_restart();
        let atts = bed.attachments();
        assert_eq!(
            atts.first().map(|a| a["state"].clone()),
            Some(json!("planned")),
            "paused at {step:?}: the restarted agent freed a record its CNI is still working on: {atts:?}"
        );
        assert_eq!(
            ns.has_link("net1"),
            in_pod,
            "paused at {step:?}: the restarted agent moved the VF under the CNI"
        );
        let out = paused.resume();
        assert!(
            out.ok,
            "paused at {step:?}: ADD: {:?} {}",
            out.json, out.stderr
        );
        let link = ns.ip_json(&["link", "show", "net1"]);
        assert_eq!(
            link[0]["address"], out.json["interfaces"][0]["mac"],
            "{link}"
        );
        assert_eq!(bed.attachments()[0]["state"], "committed");
        let del = bed.call("DEL", "c-inflight", &ns.path(), "db-0", &conf);
        assert!(del.ok, "DEL: {:?}", del.json);
        assert!(bed.attachments().is_empty());
        bed.all_vfs_pristine(1)
            .unwrap_or_else(|e| panic!("paused at {step:?}: {e}"));
    }
}

/// A CNI killed between Plan and Commit while the agent lives on (a runtime's timeout): the
/// runtime's retry of that ADD is not refused with "already exists (Planned)"; the abandoned
/// record is undone and the retry commits.
#[test]
fn the_retry_of_an_add_whose_cni_was_killed_succeeds() {
    if !require_root("the_retry_of_an_add_whose_cni_was_killed_succeeds") {
        return;
    }
    let bed = Bed::new(1, &hw_tests::cni_fixture::default_pod_table());
    let conf = bed.conf("1.1.0", json!({"mac": "02:00:00:69:00:02"}));
    let ns = pod_netns();
    let kill = [("SRIOV_FAULT_STEP", "configure addresses")];
    let out = bed.call_with("ADD", "c-killed", &ns.path(), "db-0", &conf, &kill);
    assert!(!out.ok && out.json.is_null(), "not killed: {:?}", out.json);
    assert_eq!(bed.attachments()[0]["state"], "planned");
    let out = bed.call("ADD", "c-killed", &ns.path(), "db-0", &conf);
    assert!(out.ok, "retried ADD: {:?} {}", out.json, out.stderr);
    let link = ns.ip_json(&["link", "show", "net1"]);
    assert_eq!(link[0]["address"], "02:00:00:69:00:02", "{link}");
    let atts = bed.attachments();
    assert_eq!(atts.len(), 1, "{atts:?}");
    assert_eq!(atts[0]["state"], "committed");
    let del = bed.call("DEL", "c-killed", &ns.path(), "db-0", &conf);
    assert!(del.ok, "DEL: {:?}", del.json);
    bed.all_vfs_pristine(1).unwrap_or_else(|e| panic!("{e}"));
}

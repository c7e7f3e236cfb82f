//! Faults (issue 6): kubelet restarted under load, the agent killed (-9) during Allocate and
//! during ADD, and the agent's state directory read-only or full. Every assertion is on what a
//! peer can see: the kernel (`ip -j`, the PF's VF table), the kubelet stand-in (registrations,
//! ListAndWatch lists, Allocate answers), the CNI results and exit codes, the agent's exit status
//! and stderr, and the ledger through `sriov-device-plugin status --json` — never on log lines.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hw_tests::cni_fixture::{Bed, RESOURCE, RESOURCE_ENV, default_pod_table, pod_netns};
use hw_tests::kubelet::{DeviceList, KubeletStandIn};
use hw_tests::load::{Call, Epoch, Load};
use hw_tests::mounts::Tmpfs;
use hw_tests::{CniOutcome, Netns, bin, require_root, run_ok};
use serde_json::{Value, json};
use sriov_proto::deviceplugin::v1beta1 as api;
use sriov_proto::kubelet::HEALTHY;

/// The second pool of the kubelet beds (VFs 2 and 3; [`RESOURCE`] has VFs 0 and 1).
const RESOURCE_B: &str = "test.io/emu_b";
/// Bound for anything that involves a process start (registration, first list).
const START: Duration = Duration::from_secs(10);

/// A kubelet bed with 4 VFs split over two pools, the stand-in listening before the agent
/// starts. The stand-in is returned first so it outlives the agent.
fn two_pool_bed() -> (KubeletStandIn, Bed) {
    let mut kubelet = None;
    let bed = tokio::task::block_in_place(|| {
        Bed::with_kubelet(4, &default_pod_table(), |dir| {
            let inv = run_ok(
                Command::new(bin("sriov-device-plugin"))
                    .args(["inventory", "--json", "--sysfs-root"])
                    .arg(dir.join("sys")),
            );
            let inv: Value = serde_json::from_slice(&inv.stdout).expect("inventory JSON");
            let pf = inv["pfs"][0]["netdevs"][0]
                .as_str()
                .expect("one PF")
                .to_string();
            let pool = |name: &str, range: &str| {
                json!({"resourceName": name, "resourcePrefix": "test.io",
                       "selectors": {"pfNames": [format!("{pf}#{range}")]}})
            };
            let pools = json!({"resourceList": [pool("emu", "0-1"), pool("emu_b", "2-3")]});
            std::fs::write(dir.join("pools.json"), pools.to_string()).expect("pools");
            kubelet = Some(KubeletStandIn::start(&dir.join("kubelet")).expect("stand-in"));
        })
    });
    (kubelet.expect("stand-in started"), bed)
}

/// `(resource, device IDs)` of both pools, as the bed's inventory numbers the VFs.
fn pools_of(bed: &Bed) -> Vec<(String, Vec<String>)> {
    let vfs = tokio::task::block_in_place(|| bed.vf_pcis());
    assert_eq!(vfs.len(), 4, "{vfs:?}");
    vec![
        (RESOURCE.to_string(), vfs[..2].to_vec()),
        (RESOURCE_B.to_string(), vfs[2..].to_vec()),
    ]
}

fn ids(l: &DeviceList) -> Vec<String> {
    let mut v: Vec<String> = l.devices.iter().map(|d| d.id.clone()).collect();
    v.sort();
    v
}

/// Waits until every pool registered after `since` and its stream delivered its full device
/// list, all Healthy. Panics naming what is missing.
async fn wait_recovered(
    kubelet: &KubeletStandIn,
    bed: &Bed,
    pools: &[(String, Vec<String>)],
    since: Instant,
) {
    for (resource, want) in pools {
        kubelet
            .wait_registration(resource, since, START)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{resource} did not register again; log:\n{}",
                    bed.agent.log()
                )
            });
        let list = kubelet
            .wait_devices(resource, START, |l| {
                l.received >= since
                    && ids(l) == *want
                    && l.devices.iter().all(|d| d.health == HEALTHY)
            })
            .await;
        assert!(
            list.is_some(),
            "{resource}: no full Healthy list {want:?} after the fault; last: {:?}",
            kubelet.devices(resource).map(|l| l.devices)
        );
    }
}

/// Checks the ledger holds exactly `want` (container IDs, each once, committed, on its VF),
/// besides attachments whose container ID starts with `transient`, and that each pool's free
/// list is its VFs minus the attached ones.
fn assert_ledger(bed: &Bed, want: &[(&str, &str)], transient: &str) {
    let status = bed.agent.status();
    let atts = status["attachments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut vfs: Vec<&str> = atts.iter().filter_map(|a| a["vf_pci"].as_str()).collect();
    vfs.sort();
    vfs.dedup();
    assert_eq!(vfs.len(), atts.len(), "a VF recorded twice: {status}");
    for (cid, vf) in want {
        let mine: Vec<&Value> = atts.iter().filter(|a| a["container_id"] == *cid).collect();
        assert_eq!(
            mine.len(),
            1,
            "attachment {cid} lost or duplicated: {status}"
        );
        assert_eq!(mine[0]["vf_pci"], *vf, "{status}");
        assert_eq!(mine[0]["state"], "committed", "{status}");
    }
    for a in &atts {
        let cid = a["container_id"].as_str().unwrap_or("");
        assert!(
            want.iter().any(|(w, _)| *w == cid) || cid.starts_with(transient),
            "phantom attachment {cid}: {status}"
        );
    }
    for p in status["pools"].as_array().cloned().unwrap_or_default() {
        let free: Vec<&str> = p["free"]
            .as_array()
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let total = p["total"].as_u64().unwrap_or(0) as usize;
        let held = free.iter().filter(|f| vfs.contains(f)).count();
        assert_eq!(held, 0, "a VF both free and attached: {status}");
        assert!(
            free.len() + vfs.len() >= total,
            "VFs neither free nor attached: {status}"
        );
    }
}

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
            let churner = s.spawn(|| churn(&bed, &vf0, &stop, &churned));
            let rt = tokio::runtime::Handle::current();
            for round in 0..4 {
                let e = epoch.get();
                while pools.iter().any(|(r, _)| load.ok_since(r, e) < 10) {
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
                assert_ledger(&bed, &[("c-long", &vf1)], "c-churn");
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
        assert_ledger(&bed, &[("c-long", &vf1)], "-none-");
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
    let _ = RESOURCE_ENV;
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
        assert_ledger(&bed, &[("c-held", &vf1)], "-none-");
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

/// Whether `ns` holds a link named `net1` (the pod side of an attachment).
fn has_net1(ns: &Netns) -> bool {
    ns.ip_json(&["link", "show", "net1"])
        .as_array()
        .is_some_and(|a| !a.is_empty())
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
                    !has_net1(&nss[i]),
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
            assert!(!has_net1(ns), "net1 still in pod {i} after DEL");
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
    assert!(!has_net1(ns), "the failed ADD left net1 in the pod");
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
    assert!(has_net1(&ns));
    for (cid, ns, pod) in [("c-full", &ns, "db-1"), ("c-held", &held_ns, "db-0")] {
        let del = bed.call("DEL", cid, &ns.path(), pod, &conf);
        assert!(del.ok, "DEL {cid}: {:?} {}", del.json, del.stderr);
    }
    assert!(bed.attachments().is_empty());
    bed.all_vfs_pristine(2).unwrap();
}

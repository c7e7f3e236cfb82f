//! The churn soak: pod lifecycles through the real CNI path on the emulated NIC with the agent
//! running, mixing the cases that leak with other plugins — DEL with an empty CNI_NETNS, the netns
//! deleted before DEL, a redundant second sandbox for the same pod name, every DEL repeated — with
//! 8 lifecycles in parallel and the agent killed (-9) and restarted mid-run. Afterwards nothing may
//! be left: no attachment, every VF back with its original name and configuration, every fixed IP
//! free, no stray links, netns or qdiscs, every eswitch port back on the PF bridge unlocked,
//! and a bounded ledger.
//!
//! CI runs 200 lifecycles; the full day (1440) is `SRIOV_CHURN_LIFECYCLES=1440 cargo test -p
//! hw-tests --test churn -- --nocapture` (as root, after `cargo build --workspace --all-features --bins`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hw_tests::cni_fixture::Bed;
use hw_tests::{CniOutcome, Netns, require_root, unique_name};
use serde_json::{Value, json};

const WORKERS: usize = 8;
const PODS_PER_WORKER: usize = 2;
const VFS: u32 = 10;
const AGENT_RESTARTS: usize = 5;

/// A tiny deterministic generator (no rand crate for one test).
struct Lcg(u64);
impl Lcg {
    fn pct(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % 100
    }
}

/// Calls the CNI like a runtime: an unreachable agent (error 11) is retried.
fn call(bed: &Bed, cmd: &str, cid: &str, netns: &str, pod: &str, conf: &Value) -> CniOutcome {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = bed.call(cmd, cid, netns, pod, conf);
        let unreachable = out.code() == 11
            && out.json["msg"]
                .as_str()
                .unwrap_or("")
                .contains("not reachable");
        if !unreachable || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// DEL until it succeeds (the runtime keeps retrying a failed DEL, e.g. error 11 while the agent
/// restarts), then once more the same way with an empty netns (containerd's second DEL).
fn del_twice(bed: &Bed, cid: &str, netns: &str, pod: &str, conf: &Value) {
    for ns in [netns, ""] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = call(bed, "DEL", cid, ns, pod, conf);
            if out.ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "DEL {cid} (netns {ns:?}) keeps failing: {:?} {}",
                out.json,
                out.stderr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn churn_soak_leaves_nothing_behind() {
    if !require_root("churn_soak_leaves_nothing_behind") {
        return;
    }
    let lifecycles: usize = std::env::var("SRIOV_CHURN_LIFECYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut pods = serde_json::Map::new();
    for w in 0..WORKERS {
        for p in 0..PODS_PER_WORKER {
            let n = w * PODS_PER_WORKER + p;
            pods.insert(
                format!("default/w{w}-p{p}"),
                json!({"ips": [format!("10.61.0.{}/24", 10 + n)]}),
            );
        }
    }
    let table = json!({"networks": {"db-net": {"defaults": {"vlan": 42, "max_tx_rate": 500}, "pods": pods}}});
    let bed = Bed::new(VFS, &table);
    let conf = bed.conf("1.0.0", json!({"mac": "02:00:00:5e:00:01", "trust": "on"}));
    let prefix = unique_name("ch");
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let (mut redundant, mut empty_netns, mut netns_gone) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let (bed, conf, done, prefix) = (&bed, &conf, &done, &prefix);
            let (redundant, empty_netns, netns_gone) = (&redundant, &empty_netns, &netns_gone);
            s.spawn(move || {
                let mut rng = Lcg(w as u64 + 7);
                loop {
                    let i = done.fetch_add(1, Ordering::SeqCst);
                    if i >= lifecycles {
                        break;
                    }
                    let pod = format!("w{w}-p{}", i % PODS_PER_WORKER);
                    let cid = format!("{prefix}-{i}");
                    let ns = Netns::new(&format!("{prefix}{i}"));
                    let add = call(bed, "ADD", &cid, &ns.path(), &pod, conf);
                    if !add.ok {
                        // A failed ADD (e.g. the agent died mid-call) is followed by DEL, as runtimes do.
                        del_twice(bed, &cid, &ns.path(), &pod, conf);
                        continue;
                    }
                    assert_eq!(
                        add.json["ips"][0]["address"]
                            .as_str()
                            .map(|a| a.starts_with("10.61.0.")),
                        Some(true),
                        "{:?}",
                        add.json
                    );
                    let r = rng.pct();
                    if r < 5 {
                        // A redundant second sandbox for the same pod while the first is alive: refused
                        // (11) and nothing recorded; after the first's netns is gone it reclaims.
                        redundant.fetch_add(1, Ordering::Relaxed);
                        let ns2 = Netns::new(&format!("{prefix}{i}b"));
                        let cid2 = format!("{cid}-b");
                        let second = call(bed, "ADD", &cid2, &ns2.path(), &pod, conf);
                        assert!(
                            !second.ok && second.code() == 11,
                            "second sandbox: {:?}",
                            second.json
                        );
                        del_twice(bed, &cid2, &ns2.path(), &pod, conf);
                        ns.delete();
                        let third = call(bed, "ADD", &cid2, &ns2.path(), &pod, conf);
                        // Reclaimed (or, if the agent was killed mid-call, a retryable 11).
                        assert!(third.ok || third.code() == 11, "reclaim: {:?}", third.json);
                        del_twice(bed, &cid2, &ns2.path(), &pod, conf);
                        del_twice(bed, &cid, "", &pod, conf);
                    } else if r < 15 {
                        empty_netns.fetch_add(1, Ordering::Relaxed);
                        del_twice(bed, &cid, "", &pod, conf);
                    } else if r < 25 {
                        netns_gone.fetch_add(1, Ordering::Relaxed);
                        ns.delete();
                        del_twice(bed, &cid, &ns.path(), &pod, conf);
                    } else {
                        del_twice(bed, &cid, &ns.path(), &pod, conf);
                    }
                }
            });
        }
        // The agent dies (-9) and comes back AGENT_RESTARTS times while the workers run.
        let (bed_ref, done_ref, stop_ref) = (&bed, &done, &stop);
        s.spawn(move || {
            for k in 1..=AGENT_RESTARTS {
                let at = lifecycles * k / (AGENT_RESTARTS + 1);
                while done_ref.load(Ordering::SeqCst) < at && !stop_ref.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                bed_ref.agent.crash_and_restart();
            }
        });
    });
    stop.store(true, Ordering::SeqCst);
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "churn: {lifecycles} lifecycles in {secs:.1} s ({:.1}/s), {AGENT_RESTARTS} agent kills; redundant {}, empty-netns DEL {}, netns-gone DEL {}",
        lifecycles as f64 / secs,
        redundant.get_mut(),
        empty_netns.get_mut(),
        netns_gone.get_mut()
    );

    // Nothing left: ledger, VFs, IPs, links, netns, qdiscs, eswitch ports (in all_vfs_pristine), bounded store.
    assert!(
        bed.attachments().is_empty(),
        "attachments left: {:?}",
        bed.attachments()
    );
    bed.all_vfs_pristine(VFS).unwrap();
    let status = bed.agent.status();
    assert_eq!(
        status["pools"][0]["free"].as_array().map(Vec::len),
        Some(VFS as usize),
        "{status}"
    );
    let links = hw_tests::link_names();
    let stray: Vec<_> = links.iter().filter(|l| *l == "net1").collect();
    assert!(stray.is_empty(), "stray links: {stray:?}");
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&netns.stdout).contains(&prefix),
        "netns left"
    );
    for i in 0..VFS {
        let q = hw_tests::ip_json(&["link", "show", &format!("{}r{i}", bed.pf())]);
        assert_eq!(
            q.as_array().map(Vec::len),
            Some(1),
            "representor {i} missing"
        );
        let tc = std::process::Command::new("tc")
            .args(["-j", "qdisc", "show", "dev", &format!("{}r{i}", bed.pf())])
            .output()
            .unwrap();
        let tc = String::from_utf8_lossy(&tc.stdout);
        assert!(
            !tc.contains("tbf") && !tc.contains("ingress"),
            "qdisc left on representor {i}: {tc}"
        );
        // The VF's shaper (an ifb kept for reuse) is idle: no tbf.
        let ifb = std::process::Command::new("tc")
            .args(["-j", "qdisc", "show", "dev", &format!("{}q{i}", bed.pf())])
            .output()
            .unwrap();
        let ifb = String::from_utf8_lossy(&ifb.stdout);
        assert!(!ifb.contains("tbf"), "tbf left on the ifb of VF {i}: {ifb}");
    }
    let size: u64 = walk_size(&bed.agent.state_dir);
    eprintln!("churn: ledger on disk {size} bytes");
    assert!(size < 64 << 20, "ledger grew to {size} bytes");
}

fn walk_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

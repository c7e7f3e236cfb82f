//! Pod start-up on a real single-node cluster (a benchmark, not a test): `--pods` pods created
//! at once, time from the create call to each pod's Ready (as a `kubectl get -w` watch sees
//! it), p50/p99 over `--rounds` rounds, for two node networks measured alternately in the same
//! run on the same cluster:
//!
//! - `sriov`: deploy/ applied (DaemonSet agent as the device plugin, deploy/cni's conflist),
//!   each pod asking for one VF of the emulated NIC (kubelet Allocate, then CNI ADD through the
//!   agent, host-local IPAM);
//! - `host-device + static`: Debian's reference plugins, each pod getting its own veth moved in
//!   by host-device and a static address. One conflist serves every pod, so a 6-line shell shim
//!   (`bench-host-device`) fills in the pod's device and address from its name, then execs
//!   host-device; it is part of the peer's figure (a bash start, ~2 ms).
//!
//! Needs root and the kube binaries (`scripts/k8s/build-kube.sh`). Brings the cluster up and
//! down itself. The kubelet's API client rate is raised (`--kube-api-qps`, default 50): at the
//! kubelet's own default of 5 the pods' status updates go out ~400 ms apart whatever the network,
//! and that is all the benchmark would measure. Usage: `bench_kube_startup [--pods 8] [--rounds 3]`; see
//! `scripts/bench-kube-startup.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed expectation fails the test

use std::io::BufReader;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hw_tests::kube::{self, Cluster, HostFile, kubectl_ok, pod_ready, wait_for};
use hw_tests::kube_deploy::{Deployed, agent_status, busybox_container};
use hw_tests::{EmulatedNic, run_ok};
use serde_json::{Value, json};

const NS: &str = "bench";
const POOL: &str = "example.com/sriov_netdevice";

struct Opts {
    pods: usize,
    rounds: usize,
    kube_api_qps: u32,
}

fn opts() -> Opts {
    let mut o = Opts {
        pods: 8,
        rounds: 3,
        kube_api_qps: 50,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for w in args.chunks(2) {
        let v = w.get(1).and_then(|v| v.parse().ok());
        match (w[0].as_str(), v) {
            ("--pods", Some(v)) => o.pods = v,
            ("--rounds", Some(v)) => o.rounds = v,
            ("--kube-api-qps", Some(v)) => o.kube_api_qps = u32::try_from(v).unwrap_or(u32::MAX),
            _ => {
                eprintln!("usage: bench_kube_startup [--pods N] [--rounds R] [--kube-api-qps Q]");
                std::process::exit(2);
            }
        }
    }
    o
}

/// The peer's pieces on the host, removed on drop: veth pairs, the shim, `static` in the CNI dir.
struct Peer {
    pods: usize,
    files: Vec<HostFile>,
}

const SHIM: &str = r#"#!/bin/bash
# Fills in this pod's device and address, then runs Debian's host-device (bench only).
n=${CNI_ARGS##*K8S_POD_NAME=bench-}; n=${n%%;*}
conf=$(cat); conf=${conf//__DEV__/bhd$n}; conf=${conf//__IP__/$((10 + n))}
exec /usr/lib/cni/host-device <<<"$conf"
"#;

impl Peer {
    fn setup(pods: usize) -> Self {
        for i in 0..pods {
            let _ = Command::new("ip")
                .args(["link", "del", &format!("bhd{i}")])
                .stderr(Stdio::null())
                .status();
            run_ok(Command::new("ip").args([
                "link",
                "add",
                &format!("bhd{i}"),
                "type",
                "veth",
                "peer",
                "name",
                &format!("bhp{i}"),
            ]));
        }
        let shim = HostFile::write("/opt/cni/bin/bench-host-device", SHIM.as_bytes());
        run_ok(Command::new("chmod").args(["0755", "/opt/cni/bin/bench-host-device"]));
        let stat = std::fs::read("/usr/lib/cni/static").expect("Debian's static IPAM plugin");
        let stat = HostFile::write("/opt/cni/bin/static", &stat);
        run_ok(Command::new("chmod").args(["0755", "/opt/cni/bin/static"]));
        Peer {
            pods,
            files: vec![shim, stat],
        }
    }

    fn conflist() -> Vec<u8> {
        json!({"cniVersion": "0.4.0", "name": "bench-peer", "plugins": [{
            "type": "bench-host-device", "device": "__DEV__",
            "ipam": {"type": "static", "addresses": [{"address": "10.30.0.__IP__/24"}]}}]})
        .to_string()
        .into_bytes()
    }

    /// Every veth is back in the host namespace (the pods' DELs are done).
    fn all_home(&self) -> bool {
        (0..self.pods).all(|i| {
            Command::new("ip")
                .args(["link", "show", &format!("bhd{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        for i in 0..self.pods {
            let _ = Command::new("ip")
                .args(["link", "del", &format!("bhd{i}")])
                .stderr(Stdio::null())
                .status();
        }
        self.files.clear();
    }
}

/// Creates `pods` pods at once and returns each one's creation-to-Ready time in ms.
fn round(pods: usize, limits: &Value) -> Vec<f64> {
    let items: Vec<Value> = (0..pods)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": format!("bench-{i}"), "namespace": NS},
                   "spec": {"terminationGracePeriodSeconds": 1,
                            "containers": [busybox_container("c", limits.clone())]}})
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("pods.json");
    std::fs::write(
        &f,
        json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string(),
    )
    .expect("write pods");

    let ready: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let mut watch = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kube::ADMIN_KUBECONFIG))
        .args(["get", "pods", "-n", NS, "-w", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl watch");
    let out = watch.stdout.take().expect("watch stdout");
    let seen = Arc::clone(&ready);
    let reader = std::thread::spawn(move || {
        let stream =
            serde_json::Deserializer::from_reader(BufReader::new(out)).into_iter::<Value>();
        for obj in stream.flatten() {
            let at = Instant::now();
            let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
            let mut r = seen.lock().unwrap_or_else(|e| e.into_inner());
            if pod_ready(&obj) && !r.iter().any(|(n, _)| *n == name) {
                r.push((name, at));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500)); // the watch is established
    let t0 = Instant::now();
    kubectl_ok(&["create", "-f", &f.to_string_lossy()]);
    wait_for(
        "every bench pod Ready",
        Duration::from_secs(180),
        || (ready.lock().map(|r| r.len()).unwrap_or(0) >= pods).then_some(()),
        || kube::component_log("kubelet", 20),
    );
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = reader.join();
    let r = ready.lock().unwrap_or_else(|e| e.into_inner());
    r.iter()
        .map(|(_, at)| at.duration_since(t0).as_secs_f64() * 1e3)
        .collect()
}

fn delete_all(done: impl Fn() -> bool) {
    kubectl_ok(&[
        "delete",
        "pod",
        "-n",
        NS,
        "--all",
        "--grace-period=0",
        "--force",
        "--wait=true",
    ]);
    wait_for(
        "the pods' DELs",
        Duration::from_secs(120),
        || done().then_some(()),
        String::new,
    );
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

fn main() {
    let o = opts();
    if !nix_root() {
        eprintln!("bench_kube_startup needs root");
        std::process::exit(2);
    }
    if let Some(why) = kube::unavailable() {
        eprintln!("bench_kube_startup: {why}");
        std::process::exit(2);
    }
    let root = tempfile::Builder::new()
        .prefix("sriov-bench-")
        .tempdir_in("/run")
        .expect("tempdir");
    let sysfs = root.path().join("sys");
    let pf = format!("kbn{}", std::process::id() % 10000);
    let vfs = u32::try_from(o.pods).unwrap_or(u32::MAX);
    let _nic = EmulatedNic::up(&pf, vfs, &sysfs);
    let qps = o.kube_api_qps.to_string();
    let cluster = Cluster::up_with(&[("SRIOV_K8S_KUBE_API_QPS", &qps)]);
    let pools = json!({"resourceList": [{"resourceName": "sriov_netdevice",
        "resourcePrefix": "example.com", "selectors": {"pfNames": [pf.clone()]}}]})
    .to_string();
    let mut deployed = Deployed::apply(&cluster, &sysfs, &pools, &[(POOL, o.pods as u64)]);
    kubectl_ok(&["create", "namespace", NS]);
    deployed.owns_namespace(NS);
    let peer = Peer::setup(o.pods);
    let no_attachments = || {
        agent_status()["attachments"]
            .as_array()
            .is_some_and(Vec::is_empty)
    };

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for r in 0..o.rounds {
        deployed.restore_conflist();
        std::thread::sleep(Duration::from_secs(2)); // containerd reloads its CNI config
        let t = round(o.pods, &json!({POOL: "1"}));
        eprintln!("round {r} sriov: {t:.0?}");
        ours.extend(t);
        delete_all(no_attachments);

        deployed.set_conflist("10-db-net.conflist", &Peer::conflist());
        std::thread::sleep(Duration::from_secs(2));
        let t = round(o.pods, &json!({}));
        eprintln!("round {r} host-device+static: {t:.0?}");
        theirs.extend(t);
        delete_all(|| peer.all_home());
    }
    let (p50, p99) = (pct(&mut ours, 0.5), pct(&mut ours, 0.99));
    let (q50, q99) = (pct(&mut theirs, 0.5), pct(&mut theirs, 0.99));
    println!(
        "pods created at once: {} x {} rounds, creation -> Ready (kubelet kubeAPIQPS {})",
        o.pods, o.rounds, o.kube_api_qps
    );
    println!("sriov (device plugin + CNI):  p50 {p50:.0} ms  p99 {p99:.0} ms");
    println!("host-device + static:         p50 {q50:.0} ms  p99 {q99:.0} ms");
    println!(
        "ratio sriov/peer:             p50 {:.2}  p99 {:.2}",
        p50 / q50,
        p99 / q99
    );
    drop(peer);
    drop(deployed);
    drop(cluster);
}

fn nix_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

//! Fixed IPs as a cluster-wide promise, against the real kube-apiserver v1.20.2
//! (`scripts/k8s/cluster.sh`): agents as nodes (each its own emulated PF and `--node-name`), the
//! pod table from a ConfigMap edited with `kubectl`, IP leases as `coordination.k8s.io/v1`
//! Leases, a partition made with a TCP proxy between one agent and the API server, and a probe
//! on the shared L2 asking who has the IP the whole time. Every assertion reads the API server,
//! the kernel or the CNI result.
//!
//! One test: the steps share one cluster (one per machine).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hw_tests::api_bed::{
    ApiNode, NAMESPACE, Wire, event_notes, lease, lease_holder, put_pod_table,
};
use hw_tests::kube::{Cluster, unavailable};
use hw_tests::{Netns, bin, eswitch_port, require_root, run_ok, skip, unique_name};
use serde_json::{Value, json};

/// Short leases so the partition plays out in seconds: renew every 3 s, fence at 6 s.
const LEASE_SECONDS: &str = "9";

#[test]
fn fixed_ips_are_a_cluster_wide_promise() {
    let test = "fixed_ips_are_a_cluster_wide_promise";
    if !require_root(test) {
        return;
    }
    if let Some(why) = unavailable() {
        skip(test, &why);
        return;
    }
    let _cluster = Cluster::up("10s");
    configmap_edits_are_in_force_within_a_second();
    two_nodes_never_answer_for_one_ip();
}

/// Polls `f` every 20 ms until it answers, for at most `timeout`; panics naming `what`.
fn until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The IPv4 addresses (without prefix) on `net1` in `ns`.
fn addrs(ns: &Netns) -> Vec<String> {
    addrs_in(&ns.name)
}

/// The IPv4 addresses (without prefix) on `net1` in namespace `name`.
fn addrs_in(name: &str) -> Vec<String> {
    hw_tests::ip_json(&["-n", name, "-4", "addr", "show", "dev", "net1"])[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["local"].as_str().map(str::to_string))
        .collect()
}

fn first_ip(out: &Value) -> String {
    out["ips"][0]["address"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn configmap_edits_are_in_force_within_a_second() {
    let cm = format!("pt-{}", unique_name("c"));
    let net = format!("cm{}", std::process::id() % 10000);
    let table = |ip: &str| json!({"networks": {&net: {"pods": {"default/db-0": {"ips": [ip]}}}}});
    put_pod_table(&cm, &table("10.78.1.10/24"));
    let node = ApiNode::start(
        "node-c",
        2,
        &cm,
        false,
        &["--lease-duration", LEASE_SECONDS],
    );
    until("the first pod table load", Duration::from_secs(10), || {
        (node.table_loads() >= 1).then_some(())
    });
    let ns = Netns::new(&unique_name("cm"));
    let add = node.call("ADD", "c1", &ns.path(), "db-0", &net);
    assert!(add.ok, "ADD: {:?} {}", add.json, add.stderr);
    assert_eq!(first_ip(&add.json), "10.78.1.10/24");
    assert_eq!(addrs(&ns), ["10.78.1.10"]);
    // The lease names this node and the pod.
    let l = lease(&net, "10.78.1.10").expect("lease of 10.78.1.10");
    assert_eq!(l["spec"]["holderIdentity"], "node-c");
    assert_eq!(
        l["metadata"]["annotations"]["sriov.example.com/pod"],
        "default/db-0"
    );
    let del = node.call("DEL", "c1", &ns.path(), "db-0", &net);
    assert!(del.ok, "DEL: {:?}", del.json);
    until("DEL to delete the lease", Duration::from_secs(5), || {
        lease(&net, "10.78.1.10").is_none().then_some(())
    });

    // An edit with kubectl is in force within a second of kubectl returning.
    let loads = node.table_loads();
    put_pod_table(&cm, &table("10.78.1.11/24"));
    let edited = Instant::now();
    until("the edit to load", Duration::from_secs(5), || {
        (node.table_loads() > loads).then_some(())
    });
    let took = edited.elapsed();
    eprintln!(
        "configmap edit in force {} ms after kubectl returned",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(1), "edit took {took:?}");
    let add = node.call("ADD", "c2", &ns.path(), "db-0", &net);
    assert!(add.ok, "ADD after the edit: {:?}", add.json);
    assert_eq!(first_ip(&add.json), "10.78.1.11/24");
    assert!(node.call("DEL", "c2", &ns.path(), "db-0", &net).ok);

    // A bad edit keeps the last good table and is an Event on the ConfigMap naming the problem.
    put_pod_table(&cm, &table("10.78.1.300/24"));
    let err = until(
        "the bad edit to be rejected",
        Duration::from_secs(5),
        || node.table_error(),
    );
    assert!(err.contains("10.78.1.300"), "{err}");
    let add = node.call("ADD", "c3", &ns.path(), "db-0", &net);
    assert!(add.ok, "ADD under a bad edit: {:?}", add.json);
    assert_eq!(
        first_ip(&add.json),
        "10.78.1.11/24",
        "the last good table stays"
    );
    assert!(node.call("DEL", "c3", &ns.path(), "db-0", &net).ok);
    let notes = until(
        "the PodTableRejected Event",
        Duration::from_secs(10),
        || {
            let n = event_notes(NAMESPACE, &cm, "PodTableRejected");
            (!n.is_empty()).then_some(n)
        },
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("10.78.1.300") && n.contains("db-0")),
        "{notes:?}"
    );
    // Live re-apply: a running pod's VLAN and rate follow an edit, read back from the eswitch.
    let shaped = |vlan: u16, rate: u32| {
        json!({"networks": {&net: {"pods": {"default/db-0": {
            "ips": ["10.78.1.11/24"], "vlan": vlan, "max_tx_rate": rate}}}}})
    };
    put_pod_table(&cm, &shaped(100, 100));
    until("the fixed table", Duration::from_secs(5), || {
        node.table_error().is_none().then_some(())
    });
    let add = node.call("ADD", "c4", &ns.path(), "db-0", &net);
    assert!(add.ok, "ADD with VLAN and rate: {:?}", add.json);
    let att = node.agent.status()["attachments"][0].clone();
    let (pf, vf) = (
        att["pf"].as_str().unwrap_or_default().to_string(),
        att["vf_index"].as_u64().unwrap_or_default(),
    );
    let mbit = |m: u64| Some(m * 1_000_000 / 8);
    assert_eq!(eswitch_port(&pf, vf), (format!("{pf}b064"), mbit(100)));
    put_pod_table(&cm, &shaped(200, 50));
    let edited = Instant::now();
    until(
        "VLAN 200 and 50 Mbit/s on the running VF",
        Duration::from_secs(5),
        || (eswitch_port(&pf, vf) == (format!("{pf}b0c8"), mbit(50))).then_some(()),
    );
    let took = edited.elapsed();
    eprintln!(
        "live re-apply on the VF {} ms after kubectl returned",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(1), "re-apply took {took:?}");
    assert_eq!(addrs(&ns), ["10.78.1.11"], "the pod keeps its address");
    // An IP change is not applied under a running pod: status and an Event say a restart is needed.
    put_pod_table(
        &cm,
        &json!({"networks": {&net: {"pods": {"default/db-0": {
            "ips": ["10.78.1.12/24"], "vlan": 200, "max_tx_rate": 50}}}}}),
    );
    let why = until("restart needed in status", Duration::from_secs(5), || {
        node.agent.status()["attachments"][0]["restart_needed"]
            .as_str()
            .map(str::to_string)
    });
    assert!(why.contains("10.78.1.12"), "{why}");
    assert_eq!(addrs(&ns), ["10.78.1.11"]);
    let notes = until("the restart Event", Duration::from_secs(10), || {
        let n = event_notes("default", "db-0", "PodTableChangeNeedsRestart");
        (!n.is_empty()).then_some(n)
    });
    assert!(notes.iter().any(|n| n.contains("10.78.1.12")), "{notes:?}");
    // DEL restores the VF's original state, not the intermediate one.
    assert!(node.call("DEL", "c4", &ns.path(), "db-0", &net).ok);
    assert_eq!(
        eswitch_port(&pf, vf),
        (pf.clone(), None),
        "VLAN 0 and no shaper after DEL"
    );
}

/// The ARP probe on the shared L2, until [`Probe::replies`] stops it.
struct Probe {
    child: Child,
    _ns: Netns,
}

impl Probe {
    /// A namespace with a veth into `bridge`, asking who has `ip` every 100 ms for `secs`.
    fn start(bridge: &str, ip: &str, secs: u64) -> Probe {
        let ns = Netns::new(&unique_name("pr"));
        let host = unique_name("ph");
        run_ok(Command::new("ip").args([
            "link", "add", &host, "type", "veth", "peer", "name", "pr0", "netns", &ns.name,
        ]));
        run_ok(Command::new("ip").args(["link", "set", &host, "master", bridge, "up"]));
        run_ok(Command::new("ip").args([
            "-n",
            &ns.name,
            "addr",
            "add",
            "10.78.0.250/24",
            "dev",
            "pr0",
        ]));
        run_ok(Command::new("ip").args(["-n", &ns.name, "link", "set", "pr0", "up"]));
        let mac = ns.ip_json(&["link", "show", "pr0"])[0]["address"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(bin("arp_probe"))
            .args(["pr0", &mac, "10.78.0.250", ip, "100", &secs.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn arp_probe");
        Probe { child, _ns: ns }
    }

    /// Stops the probe: every reply as (request number, MAC).
    fn replies(mut self) -> Vec<(u64, String)> {
        let _ = self.child.kill();
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().expect("true"))
            .wait_with_output()
            .expect("probe output");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace().skip(1);
                Some((w.next()?.parse().ok()?, w.next()?.to_string()))
            })
            .collect()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn two_nodes_never_answer_for_one_ip() {
    let cm = format!("pt-{}", unique_name("l"));
    let net = format!("ln{}", std::process::id() % 10000);
    let ip = "10.78.0.10";
    put_pod_table(
        &cm,
        &json!({"networks": {&net: {"pods": {
            "default/db-0": {"ips": [format!("{ip}/24")]},
            "default/db-1": {"ips": ["10.78.0.11/24"]}}}}}),
    );
    let flags = ["--lease-duration", LEASE_SECONDS];
    let a = ApiNode::start("node-a", 2, &cm, true, &flags);
    let b = ApiNode::start("node-b", 2, &cm, false, &flags);
    let _l2 = Wire::join(a.bridge(), b.bridge());
    for n in [&a, &b] {
        until("the pod table", Duration::from_secs(10), || {
            (n.table_loads() >= 1).then_some(())
        });
    }
    let (pa, pb) = (
        Netns::new(&unique_name("pa")),
        Netns::new(&unique_name("pb")),
    );

    // db-0 on A; a Plan for db-0 on B is refused naming A, and B touches nothing.
    let add = a.call("ADD", "a1", &pa.path(), "db-0", &net);
    assert!(add.ok, "ADD on A: {:?} {}", add.json, add.stderr);
    assert_eq!(lease_holder(&net, ip).as_deref(), Some("node-a"));
    let refused = b.call("ADD", "b1", &pb.path(), "db-0", &net);
    assert_eq!(refused.code(), 11, "{:?}", refused.json);
    let msg = refused.json.to_string();
    assert!(
        msg.contains("node-a") && msg.contains("default/db-0"),
        "{msg}"
    );
    assert!(!pb.has_link("net1"), "a refused ADD moves nothing");
    assert!(
        b.agent.status()["attachments"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "a refused ADD records nothing"
    );
    let notes = until("the FixedIPRefused Event", Duration::from_secs(10), || {
        let n = event_notes("default", "db-0", "FixedIPRefused");
        (!n.is_empty()).then_some(n)
    });
    assert!(notes.iter().any(|n| n.contains("node-a")), "{notes:?}");

    // A's DEL releases; B then succeeds; and back to A.
    assert!(a.call("DEL", "a1", &pa.path(), "db-0", &net).ok);
    until("the lease to be deleted", Duration::from_secs(5), || {
        lease(&net, ip).is_none().then_some(())
    });
    let add = b.call("ADD", "b1", &pb.path(), "db-0", &net);
    assert!(add.ok, "ADD on B after A's DEL: {:?}", add.json);
    assert_eq!(lease_holder(&net, ip).as_deref(), Some("node-b"));
    assert!(b.call("DEL", "b1", &pb.path(), "db-0", &net).ok);
    let add = a.call("ADD", "a2", &pa.path(), "db-0", &net);
    assert!(add.ok, "ADD on A again: {:?}", add.json);
    let mac_a = add.json["interfaces"][0]["mac"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // A short partition: A fences, and once healed (nobody took the lease) puts the address back.
    let proxy = a.proxy.as_ref().expect("A is behind the proxy");
    proxy.cut();
    until("A to fence", Duration::from_secs(9), || {
        (!addrs(&pa).iter().any(|x| x == ip)).then_some(())
    });
    proxy.heal();
    let healed = Instant::now();
    until("A to restore the address", Duration::from_secs(10), || {
        addrs(&pa).iter().any(|x| x == ip).then_some(())
    });
    eprintln!(
        "short partition: address back {} ms after the heal",
        healed.elapsed().as_millis()
    );
    assert_eq!(lease_holder(&net, ip).as_deref(), Some("node-a"));
    let restored = until("the FixedIPRestored Event", Duration::from_secs(30), || {
        let n = event_notes("default", "db-0", "FixedIPRestored");
        (!n.is_empty()).then_some(n)
    });
    assert!(
        restored.iter().any(|n| n.contains("node-a")),
        "{restored:?}"
    );

    // Partition A from the API server, with the probe watching the shared L2 throughout.
    let probe = Probe::start(b.bridge(), ip, 120);
    std::thread::sleep(Duration::from_secs(3));
    let cut = Instant::now();
    proxy.cut();
    let mut fenced = None;
    let mut taken = None;
    let mut next_try = Instant::now();
    let mut mac_b = String::new();
    while taken.is_none() && cut.elapsed() < Duration::from_secs(40) {
        if fenced.is_none() && !addrs(&pa).iter().any(|x| x == ip) {
            fenced = Some(cut.elapsed());
        }
        if Instant::now() >= next_try {
            let r = b.call("ADD", "b2", &pb.path(), "db-0", &net);
            if r.ok {
                taken = Some(cut.elapsed());
                mac_b = r.json["interfaces"][0]["mac"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                assert!(
                    fenced.is_some(),
                    "B brought {ip} up before A had taken it off"
                );
            } else {
                assert_eq!(r.code(), 11, "{:?}", r.json);
            }
            next_try = Instant::now() + Duration::from_millis(500);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let fenced = fenced.expect("A fenced");
    let taken = taken.expect("B took the IP over");
    eprintln!(
        "partition: A fenced after {} ms, B took over after {} ms (lease {LEASE_SECONDS} s)",
        fenced.as_millis(),
        taken.as_millis()
    );
    assert!(
        fenced < Duration::from_secs(9),
        "A must fence before its lease can expire"
    );
    assert_eq!(lease_holder(&net, ip).as_deref(), Some("node-b"));
    assert_eq!(addrs(&pb), [ip]);
    let fenced_in_status = || {
        a.agent.status()["leases"]["fenced"]
            .as_array()
            .is_some_and(|f| {
                f.iter()
                    .any(|x| x.as_str() == Some(&format!("{ip} on network {net}")))
            })
    };
    assert!(fenced_in_status(), "A's status shows the fenced IP");

    // Still cut off: a new fixed-IP ADD on A cannot prove the IP free (error 11, nothing moved);
    // a pod without a fixed IP is unaffected.
    let pa2 = Netns::new(&unique_name("pa"));
    let r = a.call("ADD", "a3", &pa2.path(), "db-1", &net);
    assert_eq!(r.code(), 11, "{:?}", r.json);
    assert!(r.json.to_string().contains("cannot prove"), "{:?}", r.json);
    assert!(!pa2.has_link("net1"));
    let ipam_dir = tempfile::tempdir().expect("tempdir");
    let mut conf = a.conf(&net);
    conf["ipam"] = json!({"type": "host-local", "subnet": "10.79.0.0/24",
                          "dataDir": ipam_dir.path()});
    let env = |cmd: &'static str| {
        [
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "a4"),
            ("CNI_NETNS", "/placeholder"),
            ("CNI_IFNAME", "net1"),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
            ),
            ("CNI_PATH", "/usr/lib/cni"),
        ]
    };
    let pa2_path = pa2.path();
    let with_ns = |cmd| {
        let mut e = env(cmd);
        e[2].1 = &pa2_path;
        hw_tests::cni(&e, &conf)
    };
    let r = with_ns("ADD");
    assert!(
        r.ok,
        "a pod without a fixed IP is unaffected by the partition: {:?} {}",
        r.json, r.stderr
    );
    assert!(with_ns("DEL").ok);

    // Healed, A does not bring the address back while B holds it.
    proxy.heal();
    let healed = Instant::now();
    while healed.elapsed() < Duration::from_secs(8) {
        assert!(
            !addrs(&pa).iter().any(|x| x == ip),
            "A restored {ip} while B holds it"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lease_holder(&net, ip).as_deref(), Some("node-b"));
    assert!(fenced_in_status(), "still fenced while B holds the lease");
    assert_eq!(
        a.agent.status()["attachments"].as_array().map(Vec::len),
        Some(1),
        "A keeps the attachment"
    );
    let replies = probe.replies();
    assert!(!replies.is_empty(), "the probe heard {ip} answer");
    // Never two MACs for one request, and one hand-over A → B, never back.
    let mut by_request =
        std::collections::BTreeMap::<u64, std::collections::BTreeSet<String>>::new();
    for (seq, mac) in &replies {
        by_request.entry(*seq).or_default().insert(mac.clone());
    }
    for (seq, macs) in &by_request {
        assert_eq!(macs.len(), 1, "request {seq} answered by {macs:?}");
    }
    let mut order: Vec<&str> = Vec::new();
    for (_, mac) in &replies {
        if order.last() != Some(&mac.as_str()) {
            order.push(mac);
        }
    }
    assert_eq!(
        order,
        [mac_a.as_str(), mac_b.as_str()],
        "who answered, in order"
    );
    let fenced_notes = until("the FixedIPFenced Event", Duration::from_secs(30), || {
        let n = event_notes("default", "db-0", "FixedIPFenced");
        (!n.is_empty()).then_some(n)
    });
    assert!(
        fenced_notes.iter().any(|n| n.contains("node-a")),
        "{fenced_notes:?}"
    );
    let reclaimed = event_notes("default", "db-0", "FixedIPReclaimed");
    assert!(
        reclaimed
            .iter()
            .any(|n| n.contains("node-b") && n.contains("node-a")),
        "{reclaimed:?}"
    );

    // kill -9 of B while it holds the lease: after the restart it holds it on, without a gap.
    let before = lease(&net, ip).expect("lease");
    let transitions = before["spec"]["leaseTransitions"].clone();
    let watch = std::thread::spawn({
        let pb_name = pb.name.clone();
        move || {
            let start = Instant::now();
            let mut gaps = 0;
            while start.elapsed() < Duration::from_secs(12) {
                if !addrs_in(&pb_name).iter().any(|x| x == "10.78.0.10") {
                    gaps += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            gaps
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    b.agent.crash_and_restart();
    let restarted = Instant::now();
    let renewed = until(
        "a renewal after the restart",
        Duration::from_secs(10),
        || {
            let l = lease(&net, ip)?;
            (l["spec"]["renewTime"] != before["spec"]["renewTime"]
                && l["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"])
                .then_some(l)
        },
    );
    eprintln!(
        "restart: lease renewed {} ms after the agent came back",
        restarted.elapsed().as_millis()
    );
    assert_eq!(renewed["spec"]["holderIdentity"], "node-b");
    assert_eq!(
        renewed["spec"]["leaseTransitions"], transitions,
        "re-adopted, not re-taken"
    );
    assert_eq!(
        watch.join().expect("watcher"),
        0,
        "the address never left B's VF"
    );

    // Clean up through the CNI: B's DEL releases; A's DEL (fenced, not the holder) frees its VF.
    assert!(b.call("DEL", "b2", &pb.path(), "db-0", &net).ok);
    assert!(a.call("DEL", "a2", &pa.path(), "db-0", &net).ok);
    until("the lease to be deleted", Duration::from_secs(5), || {
        lease(&net, ip).is_none().then_some(())
    });
}

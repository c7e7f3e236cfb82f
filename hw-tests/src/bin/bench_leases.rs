//! What cluster-wide IP leases cost a fixed-IP ADD and DEL (a benchmark, not a test): two agents
//! against the real kube-apiserver v1.20.2, each with its own emulated PF and the same pod table
//! ConfigMap, one with leases (the default) and one with `--ip-leases=false`, driven alternately
//! through the real `sriov` binary (whole process, as the runtime calls it). Prints ADD and DEL
//! medians for both, their ratio, and the API server's own count of lease requests
//! (`apiserver_request_total{resource="leases"}` from its /metrics) per ADD and per DEL.
//!
//! Needs root and the kube binaries (`scripts/k8s/build-kube.sh`); brings the cluster up and
//! down itself. Usage: `bench_leases [--rounds 30]`; see `scripts/bench-leases.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed expectation fails the test

use std::time::{Duration, Instant};

use hw_tests::api_bed::{ApiNode, put_pod_table};
use hw_tests::kube::{Cluster, kubectl_ok};
use hw_tests::{Netns, unique_name};
use serde_json::json;

const NET: &str = "bench-net";

fn rounds() -> usize {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == "--rounds")
        .and_then(|i| a.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(30)
}

/// Lease requests the API server has served so far, by verb.
fn lease_requests() -> std::collections::BTreeMap<String, u64> {
    let text = kubectl_ok(&["get", "--raw", "/metrics"]);
    let mut by_verb = std::collections::BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        if !line.contains(r#"resource="leases""#)
            || !line.contains(r#"group="coordination.k8s.io""#)
        {
            continue;
        }
        let verb = line
            .split(r#"verb=""#)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?")
            .to_string();
        let n: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *by_verb.entry(verb).or_insert(0) += n as u64;
    }
    by_verb
}

fn diff(
    a: &std::collections::BTreeMap<String, u64>,
    b: &std::collections::BTreeMap<String, u64>,
) -> (u64, String) {
    let mut total = 0;
    let mut parts = Vec::new();
    for (verb, n) in b {
        let d = n - a.get(verb).copied().unwrap_or(0);
        if d > 0 {
            total += d;
            parts.push(format!("{verb} {d}"));
        }
    }
    (total, parts.join(", "))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let n = rounds();
    let _cluster = Cluster::up("10s");
    let cm = format!("bench-{}", unique_name("b"));
    let pods: serde_json::Map<String, serde_json::Value> = (0..n)
        .map(|i| {
            (
                format!("default/b-{i}"),
                json!({"ips": [format!("10.81.{}.{}/16", i / 250, i % 250 + 1)]}),
            )
        })
        .collect();
    put_pod_table(&cm, &json!({"networks": {NET: {"pods": pods}}}));
    let on = ApiNode::start("bench-on", 1, &cm, false, &[]);
    let off = ApiNode::start("bench-off", 1, &cm, false, &["--ip-leases=false"]);
    std::thread::sleep(Duration::from_secs(1));
    let mut t: [[Vec<f64>; 2]; 2] = Default::default(); // [on/off][add/del]
    let (mut add_reqs, mut del_reqs) = (0u64, 0u64);
    let (mut add_verbs, mut del_verbs) = (String::new(), String::new());
    for i in 0..n {
        for (k, node) in [(0, &on), (1, &off)] {
            let ns = Netns::new(&unique_name("bl"));
            let pod = format!("b-{i}");
            let before = (k == 0).then(lease_requests);
            let s = Instant::now();
            let r = node.call("ADD", &format!("c{i}"), &ns.path(), &pod, NET);
            t[k][0].push(s.elapsed().as_secs_f64() * 1e3);
            assert!(r.ok, "ADD: {:?} {}", r.json, r.stderr);
            let mid = (k == 0).then(lease_requests);
            let s = Instant::now();
            let r = node.call("DEL", &format!("c{i}"), &ns.path(), &pod, NET);
            t[k][1].push(s.elapsed().as_secs_f64() * 1e3);
            assert!(r.ok, "DEL: {:?}", r.json);
            if let (Some(b), Some(m)) = (before, mid) {
                let after = lease_requests();
                let (a, av) = diff(&b, &m);
                let (d, dv) = diff(&m, &after);
                add_reqs += a;
                del_reqs += d;
                (add_verbs, del_verbs) = (av, dv);
            }
        }
    }
    let [[mut on_add, mut on_del], [mut off_add, mut off_del]] = t;
    let (a1, d1, a0, d0) = (
        median(&mut on_add),
        median(&mut on_del),
        median(&mut off_add),
        median(&mut off_del),
    );
    println!(
        "fixed-IP ADD / DEL medians over {n} rounds (whole `sriov` process, binaries from SRIOV_BIN_DIR or target/debug):"
    );
    println!("  leases on : ADD {a1:.1} ms, DEL {d1:.1} ms");
    println!("  leases off: ADD {a0:.1} ms, DEL {d0:.1} ms");
    println!(
        "  added by the lease: ADD +{:.1} ms (ratio {:.2}), DEL +{:.1} ms (ratio {:.2})",
        a1 - a0,
        a1 / a0,
        d1 - d0,
        d1 / d0
    );
    println!(
        "  lease API requests per ADD: {:.1} (last: {add_verbs}); per DEL: {:.1} (last: {del_verbs})",
        add_reqs as f64 / n as f64,
        del_reqs as f64 / n as f64
    );
}

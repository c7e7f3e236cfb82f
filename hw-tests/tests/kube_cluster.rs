//! The project on a real Kubernetes v1.20.2 (kubelet, kube-apiserver, controller-manager,
//! scheduler built from Debian's source package; containerd 1.6 from apt), set up by
//! `scripts/k8s/cluster.sh` on loopback. `deploy/` is applied with `kubectl` as an operator
//! would; what changes for this machine is only what is site-specific: the image name (built
//! offline by `scripts/build-image.sh`), the node label, and for the emulated NIC its sysfs
//! root and PF names in the pool config. Every assertion reads what the API server, the kubelet
//! or the kernel report.
//!
//! One test: a machine runs one kubelet, and the steps build on each other.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hw_tests::kube::{
    self, BUSYBOX, Cluster, get_json, kubectl, kubectl_ok, node_resource, pod, pod_ready, wait_for,
};
use hw_tests::kube_deploy::{Deployed, agent_status, busybox_container, repo, yaml_docs};
use hw_tests::{EmulatedNic, bin, eswitch_port, require_root, run_ok, skip, unique_name};
use serde_json::{Value, json};

const NS: &str = "databases";
const POOL: &str = "example.com/sriov_netdevice";
const SPARE: &str = "example.com/sriov_spare";
const T: Duration = Duration::from_secs(90);

fn attachment_of(status: &Value, pod: &str) -> Option<Value> {
    status["attachments"]
        .as_array()?
        .iter()
        .find(|a| a["pod"] == format!("{NS}/{pod}") && a["state"] == "committed")
        .cloned()
}

/// `ip addr show eth0` inside the pod, as the pod sees it: (MAC, IPv4 CIDRs).
fn pod_eth0(pod: &str) -> (String, Vec<String>) {
    let out = kubectl_ok(&["exec", "-n", NS, pod, "--", "ip", "addr", "show", "eth0"]);
    let mut mac = String::new();
    let mut ips = Vec::new();
    for line in out.lines().map(str::trim) {
        let mut w = line.split_whitespace();
        match (w.next(), w.next()) {
            (Some("link/ether"), Some(m)) => mac = m.to_string(),
            (Some("inet"), Some(ip)) => ips.push(ip.to_string()),
            _ => {}
        }
    }
    (mac, ips)
}

fn pool_config(a: &str, b: &str) -> String {
    json!({"resourceList": [
        {"resourceName": "sriov_netdevice", "resourcePrefix": "example.com",
         "selectors": {"pfNames": [format!("{a}#0-2"), format!("{b}#0-2")]},
         "allocationPolicy": "pack"},
        {"resourceName": "sriov_spare", "resourcePrefix": "example.com",
         "selectors": {"pfNames": [format!("{a}#3"), format!("{b}#3")]}}
    ]})
    .to_string()
}

/// The example StatefulSet with busybox standing in for MySQL.
fn statefulset(dir: &Path) -> PathBuf {
    let mut docs = yaml_docs("deploy/examples/statefulset-db.yaml");
    for d in &mut docs {
        if d["kind"] == "StatefulSet" {
            let spec = &mut d["spec"]["template"]["spec"];
            spec["terminationGracePeriodSeconds"] = json!(1);
            let limits = spec["containers"][0]["resources"]["limits"].clone();
            spec["containers"][0] = busybox_container("mysql", limits);
        }
    }
    let path = dir.join("statefulset.json");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": docs});
    std::fs::write(&path, list.to_string()).expect("write sts");
    path
}

fn pod_table_entry(ns_pod: &str) -> Value {
    let cm = get_json(&["configmap", "-n", "kube-system", "sriov-podtable"]).expect("podtable");
    let table: Value =
        serde_json::from_str(cm["data"]["podtable.json"].as_str().expect("key")).expect("JSON");
    let net = &table["networks"]["db-net"];
    let mut e = net["defaults"].clone();
    for (k, v) in net["pods"][ns_pod].as_object().expect("entry").clone() {
        e[k] = v;
    }
    e
}

/// A db pod is up with the fixed IP, MAC, VLAN and rate of its pod table entry, as the kubelet
/// (pod IP), the pod (its eth0) and the PF's eswitch report them. Returns (uid, VF PCI).
fn check_db_pod(name: &str) -> (String, String) {
    let p = wait_for(
        &format!("{name} Ready"),
        T,
        || pod(NS, name).filter(pod_ready),
        || {
            format!(
                "{:#}\n{}",
                pod(NS, name).unwrap_or_default()["status"],
                kube::component_log("kubelet", 30)
            )
        },
    );
    let want = pod_table_entry(&format!("{NS}/{name}"));
    let ip = want["ips"][0].as_str().expect("fixed IP");
    assert_eq!(
        p["status"]["podIP"].as_str(),
        ip.split('/').next(),
        "kubelet reports the fixed IP"
    );
    let (mac, ips) = pod_eth0(name);
    assert_eq!(ips, vec![ip.to_string()], "{name} eth0");
    // The fixed IP is held cluster-wide by this node, for this pod.
    let addr = ip.split('/').next().unwrap_or_default();
    let l = hw_tests::api_bed::lease("db-net", addr).expect("the fixed IP's lease");
    assert_eq!(
        l["spec"]["holderIdentity"],
        kube::NODE,
        "lease holder of {addr}"
    );
    assert_eq!(
        l["metadata"]["annotations"]["sriov.example.com/pod"],
        format!("{NS}/{name}")
    );
    assert_eq!(
        mac,
        want["mac"].as_str().expect("fixed MAC"),
        "{name} eth0 MAC"
    );
    let a = attachment_of(&agent_status(), name).expect("committed attachment");
    let pf = a["pf"].as_str().expect("pf");
    let vf = a["vf_index"].as_u64().expect("vf index");
    let (bridge, rate) = eswitch_port(pf, vf);
    let vlan = want["vlan"].as_u64().expect("vlan");
    assert_eq!(
        bridge,
        format!("{pf}b{vlan:03x}"),
        "VLAN {vlan} on the eswitch"
    );
    let mbit = want["max_tx_rate"].as_u64().expect("rate");
    assert_eq!(
        rate,
        Some(mbit * 1_000_000 / 8),
        "tbf rate of {name}'s VF (bytes/s)"
    );
    let env = kubectl_ok(&["exec", "-n", NS, name, "--", "env"]);
    let vf_pci = a["vf_pci"].as_str().expect("vf pci").to_string();
    assert!(
        env.lines()
            .any(|l| l == format!("PCIDEVICE_EXAMPLE_COM_SRIOV_NETDEVICE={vf_pci}")),
        "{name} env names its VF {vf_pci}:\n{env}"
    );
    (
        p["metadata"]["uid"].as_str().unwrap_or("").to_string(),
        vf_pci,
    )
}

fn scale(n: u32) {
    kubectl_ok(&[
        "scale",
        "-n",
        NS,
        "statefulset/db",
        &format!("--replicas={n}"),
    ]);
}

#[test]
fn deploy_and_a_statefulset_on_a_real_cluster() {
    let test = "deploy_and_a_statefulset_on_a_real_cluster";
    if !require_root(test) {
        return;
    }
    if let Some(why) = kube::unavailable() {
        skip(test, &why);
        return;
    }
    let root_dir = tempfile::Builder::new()
        .prefix("sriov-kube-")
        .tempdir_in("/run")
        .unwrap();
    let sysfs = root_dir.path().join("sys");
    let (pf_a, pf_b) = (unique_name("ka"), unique_name("kb"));
    let _nic_a = EmulatedNic::up(&pf_a, 4, &sysfs);
    let _nic_b = EmulatedNic::up(&pf_b, 4, &sysfs);
    // The kubelet's syncFrequency (how often it refreshes ConfigMap volumes; the agent watches its
    // pod table through the API server and does not wait for it).
    let sync = std::env::var("SRIOV_K8S_SYNC_FREQUENCY").unwrap_or_else(|_| "10s".into());
    let cluster = Cluster::up(&sync);

    // Server-side validation catches a manifest the API server rejects (a broken copy of the
    // DaemonSet); deploy/ itself passes it inside Deployed::apply.
    let broken = tempfile::tempdir().unwrap();
    let mut ds = yaml_docs("deploy/daemonset.yaml").remove(0);
    ds["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["type"] = json!("Directroy");
    std::fs::write(broken.path().join("ds.json"), ds.to_string()).unwrap();
    let b = broken.path().to_string_lossy().to_string();
    let rejected = kubectl(&["apply", "--dry-run=server", "-f", &b]);
    assert!(
        !rejected.status.success(),
        "the API server must reject a bad hostPath type"
    );
    assert!(String::from_utf8_lossy(&rejected.stderr).contains("Directroy"));

    // deploy/ applied as an operator would: the DaemonSet installs `sriov` on the host and
    // registers both pools with the kubelet; capacity and allocatable are the VF counts.
    let pools = pool_config(&pf_a, &pf_b);
    let mut deployed = Deployed::apply(&cluster, &sysfs, &pools, &[(POOL, 6), (SPARE, 2)]);
    deployed.owns_namespace(NS);
    let installed = std::fs::read("/opt/cni/bin/sriov").expect("sriov installed on the host");
    let built = std::fs::read(repo().join("target/release/sriov")).expect("release sriov");
    assert!(
        installed == built,
        "the installed CNI is the image's binary"
    );

    // db-0 and db-1: fixed IPs, MACs, VLAN and rate from the pod table.
    let work = tempfile::tempdir().unwrap();
    let sts = statefulset(work.path());
    let sts = sts.to_string_lossy().to_string();
    kubectl_ok(&["apply", "-f", &sts]);
    let (uid0, vf0) = check_db_pod("db-0");
    let (_, vf1) = check_db_pod("db-1");
    assert_ne!(vf0, vf1);

    // Deleting db-0: the StatefulSet brings it back with the same IP, MAC and VLAN.
    kubectl_ok(&[
        "delete",
        "pod",
        "-n",
        NS,
        "db-0",
        "--grace-period=0",
        "--force",
    ]);
    wait_for(
        "a new db-0",
        T,
        || pod(NS, "db-0").filter(|p| p["metadata"]["uid"] != uid0.as_str()),
        String::new,
    );
    let (uid0, _) = check_db_pod("db-0");

    // Scaling to 1 frees db-1's VF and IP.
    scale(1);
    wait_for(
        "db-1's attachment released",
        T,
        || {
            (pod(NS, "db-1").is_none() && attachment_of(&agent_status(), "db-1").is_none())
                .then_some(())
        },
        || format!("{:#}", agent_status()),
    );
    let free: Vec<String> = agent_status()["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["resource"] == POOL)
        .flat_map(|p| p["free"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    assert!(
        free.contains(&vf1),
        "db-1's VF {vf1} is free again: {free:?}"
    );

    // An edit of the pod table ConfigMap reaches the agent through its watch on the API server
    // (no kubelet projection in the way): db-1 comes back with the new address.
    let mut table: Value = serde_json::from_str(
        get_json(&["configmap", "-n", "kube-system", "sriov-podtable"]).unwrap()["data"]["podtable.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    table["networks"]["db-net"]["pods"][format!("{NS}/db-1")]["ips"] = json!(["10.20.0.21/24"]);
    let patch = json!({"data": {"podtable.json": table.to_string()}}).to_string();
    let loads_before = agent_status()["pod_table"]["loads"].as_u64().unwrap_or(0);
    let edited = Instant::now();
    kubectl_ok(&[
        "patch",
        "configmap",
        "-n",
        "kube-system",
        "sriov-podtable",
        "-p",
        &patch,
    ]);
    wait_for(
        "the agent to load the edited pod table",
        Duration::from_secs(10),
        || (agent_status()["pod_table"]["loads"].as_u64() > Some(loads_before)).then_some(()),
        || format!("{}", agent_status()["pod_table"]),
    );
    eprintln!(
        "ConfigMap edit in force in the agent after {} ms",
        edited.elapsed().as_millis()
    );
    scale(2);
    check_db_pod("db-1");

    // A kubelet restart: the plugin re-registers (allocatable back), the pods are untouched.
    cluster.kubelet_restart();
    wait_for(
        "re-registration after the kubelet restart",
        T,
        || (node_resource(POOL) == (6, 6) && node_resource(SPARE) == (2, 2)).then_some(()),
        || {
            format!(
                "{POOL}: {:?}\n{}",
                node_resource(POOL),
                kube::component_log("kubelet", 40)
            )
        },
    );
    let p0 = pod(NS, "db-0").expect("db-0");
    assert_eq!(
        p0["metadata"]["uid"],
        uid0.as_str(),
        "db-0 survives a kubelet restart"
    );
    assert_eq!(p0["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(pod_eth0("db-0").1, vec!["10.20.0.10/24".to_string()]);

    // A PF link down lowers allocatable by its VFs; up brings them back.
    run_ok(Command::new("ip").args(["link", "set", &pf_b, "down"]));
    wait_for(
        "allocatable without PF B's VFs",
        T,
        || (node_resource(POOL) == (6, 3) && node_resource(SPARE) == (2, 1)).then_some(()),
        || {
            format!(
                "{POOL}: {:?} {SPARE}: {:?}",
                node_resource(POOL),
                node_resource(SPARE)
            )
        },
    );
    run_ok(Command::new("ip").args(["link", "set", &pf_b, "up"]));
    wait_for(
        "allocatable with PF B back",
        T,
        || (node_resource(POOL) == (6, 6)).then_some(()),
        || format!("{POOL}: {:?}", node_resource(POOL)),
    );

    // GetPreferredAllocation: with the StatefulSet gone, a pod asking for 3 VFs of the "pack"
    // pool gets 3 VFs of one PF, the ones our plugin prefers (kubelet alone picks any 3 of 6).
    scale(0);
    wait_for(
        "db pods gone",
        T,
        || {
            (attachment_of(&agent_status(), "db-0").is_none()
                && attachment_of(&agent_status(), "db-1").is_none())
            .then_some(())
        },
        || format!("{:#}", agent_status()),
    );
    let three = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "three", "namespace": NS},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": BUSYBOX, "imagePullPolicy": "Never",
            "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
            "resources": {"limits": {POOL: "3"}}}]}});
    let f = work.path().join("three.json");
    std::fs::write(&f, three.to_string()).unwrap();
    kubectl_ok(&["apply", "-f", &f.to_string_lossy()]);
    wait_for(
        "pod three Ready",
        T,
        || pod(NS, "three").filter(pod_ready),
        || kube::component_log("kubelet", 30),
    );
    let env = kubectl_ok(&["exec", "-n", NS, "three", "--", "env"]);
    let got: BTreeSet<String> = env
        .lines()
        .find_map(|l| l.strip_prefix("PCIDEVICE_EXAMPLE_COM_SRIOV_NETDEVICE="))
        .expect("PCIDEVICE env")
        .split(',')
        .map(str::to_string)
        .collect();
    let inv = run_ok(
        Command::new(bin("sriov-device-plugin"))
            .args(["inventory", "--json", "--sysfs-root"])
            .arg(&sysfs),
    );
    let inv: Value = serde_json::from_slice(&inv.stdout).unwrap();
    let pf_of = |vf: &str| {
        inv["pfs"].as_array().into_iter().flatten().find_map(|p| {
            p["vfs"]
                .as_array()?
                .iter()
                .any(|v| v["pci"] == vf)
                .then(|| p["pci"].clone())
        })
    };
    let pfs: BTreeSet<String> = got
        .iter()
        .filter_map(|v| pf_of(v))
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        (got.len(), pfs.len()),
        (3, 1),
        "3 VFs packed on one PF: {got:?}"
    );
    drop(deployed);
    drop(cluster);
}

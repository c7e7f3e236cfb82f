//! A real single-node Kubernetes v1.20.2 cluster for end-to-end tests: `scripts/k8s/cluster.sh`
//! brings it up (etcd, kube-apiserver, controller-manager, scheduler, containerd, kubelet) and
//! [`Cluster`] takes it down again on drop, panic or not. Tests talk to it as an operator does,
//! with `kubectl`, and read what the API server and the kubelet report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The kubelet's node name (kubelet 1.20 refuses a loopback `--node-ip`, so the node is named
/// after its address and `kubectl exec/logs` reach it).
pub const NODE: &str = "127.0.0.1";
/// The kube binaries' version the cluster runs.
pub const KUBE_VERSION: &str = "1.20.2";
/// The admin kubeconfig `cluster.sh up` writes.
pub const ADMIN_KUBECONFIG: &str = "/run/sriov-k8s/admin.kubeconfig";
/// The private containerd's socket.
pub const CONTAINERD_SOCKET: &str = "/run/sriov-k8s/containerd/containerd.sock";
/// The busybox image `cluster.sh up` imports.
pub const BUSYBOX: &str = "localhost/busybox:1";

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where `scripts/k8s/build-kube.sh` caches the binaries (`SRIOV_KUBE_CACHE` overrides).
pub fn kube_bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SRIOV_KUBE_CACHE") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache"));
    cache.join(format!("sriov-kube/v{KUBE_VERSION}"))
}

/// Why the cluster cannot be started here, if it cannot.
pub fn unavailable() -> Option<String> {
    let kubelet = kube_bin_dir().join("kubelet");
    if !kubelet.is_file() {
        return Some(format!(
            "{} is missing (run scripts/k8s/build-kube.sh)",
            kubelet.display()
        ));
    }
    None
}

/// `kubectl` against the cluster, with the admin kubeconfig.
pub fn kubectl(args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg(format!("--kubeconfig={ADMIN_KUBECONFIG}"))
        .arg("--request-timeout=20s")
        .args(args)
        .output()
        .expect("run kubectl")
}

/// `kubectl` that must succeed; its stdout.
pub fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl get … -o json`, or `None` if the object does not exist (or kubectl failed).
pub fn get_json(args: &[&str]) -> Option<Value> {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    let out = kubectl(&a);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Polls `f` every 250 ms until it returns `Some`, for at most `timeout`; panics naming `what`
/// and the last state `diag` describes.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
    diag: impl Fn() -> String,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}\n{}", diag());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The node's `status.capacity` and `status.allocatable` for `resource` (0 when absent).
pub fn node_resource(resource: &str) -> (u64, u64) {
    let node = get_json(&["node", NODE]).unwrap_or(Value::Null);
    let n = |which: &str| {
        node["status"][which][resource]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    (n("capacity"), n("allocatable"))
}

/// A pod's JSON, if it exists.
pub fn pod(ns: &str, name: &str) -> Option<Value> {
    get_json(&["pod", "-n", ns, name])
}

/// Whether a pod is Running with every container ready.
pub fn pod_ready(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// The last lines of one component's log (`kubelet`, `containerd`, `kube-apiserver`…).
pub fn component_log(component: &str, lines: usize) -> String {
    let text =
        std::fs::read_to_string(format!("/run/sriov-k8s/logs/{component}.log")).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| l.chars().take(400).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The cluster, brought up by [`Cluster::up`] and taken down on drop.
pub struct Cluster {
    script: PathBuf,
}

impl Cluster {
    /// `cluster.sh up` with the kubelet's `syncFrequency` (how often it refreshes ConfigMap
    /// volumes, among others). Panics with the script's output if the cluster does not come up.
    pub fn up(sync_frequency: &str) -> Self {
        Self::up_with(&[("SRIOV_K8S_SYNC_FREQUENCY", sync_frequency)])
    }

    /// `cluster.sh up` with `SRIOV_K8S_*` settings (see the script's header).
    pub fn up_with(env: &[(&str, &str)]) -> Self {
        let c = Cluster {
            script: repo().join("scripts/k8s/cluster.sh"),
        };
        let started = Instant::now();
        c.run(&["up"], env);
        eprintln!("cluster up in {:.1} s", started.elapsed().as_secs_f64());
        c
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) {
        let out = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("run cluster.sh");
        assert!(
            out.status.success(),
            "cluster.sh {}: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Restarts the kubelet (pods keep running in containerd) and waits for the Node.
    pub fn kubelet_restart(&self) {
        self.run(&["kubelet-restart"], &[]);
    }

    /// Waits for Node [`NODE`] to be Ready (it is not before a CNI config exists).
    pub fn wait_ready(&self) {
        self.run(&["wait-ready", "120"], &[]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let started = Instant::now();
        let out = Command::new("bash").arg(&self.script).arg("down").output();
        match out {
            Ok(o) if o.status.success() => {
                eprintln!("cluster down in {:.1} s", started.elapsed().as_secs_f64())
            }
            Ok(o) => eprintln!(
                "cluster.sh down failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("cluster.sh down: {e}"),
        }
    }
}

/// A file the test puts on the host (a CNI config), removed on drop.
pub struct HostFile(pub PathBuf);

impl HostFile {
    /// Writes `content` to `path` (parents created).
    pub fn write(path: impl Into<PathBuf>, content: &[u8]) -> Self {
        let path = path.into();
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).expect("create parent");
        }
        std::fs::write(&path, content).expect("write host file");
        HostFile(path)
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

//! `deploy/` applied to the [`crate::kube`] cluster as an operator would: the image built offline
//! and imported, the node labelled, the primary-network conflist in /etc/cni/net.d, and the
//! manifests applied with only site-specific values replaced (image, the emulated NIC's sysfs
//! root, the pool config). [`Deployed`] undoes it all on drop.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use crate::kube::repo;
use crate::kube::{
    BUSYBOX, CONTAINERD_SOCKET, Cluster, HostFile, NODE, component_log, kubectl, kubectl_ok,
    node_resource, wait_for,
};
use crate::{bin, run_ok};

/// The agent's node API socket on the host (deploy/daemonset.yaml).
pub const AGENT_SOCKET: &str = "/run/sriov/agent.sock";
/// Host paths the DaemonSet (or the test, for host-local) creates; removed on drop if they
/// were not there before.
const HOST_STATE: [&str; 5] = [
    "/var/lib/sriov",
    "/run/sriov",
    "/var/run/k8s.cni.cncf.io",
    "/opt/cni/bin/sriov",
    "/opt/cni/bin/host-local",
];

/// The YAML documents of a file under the repository root.
pub fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_norway::Deserializer::from_str(&text)
        .map(|d| {
            <Value as serde::Deserialize>::deserialize(d).unwrap_or_else(|e| panic!("{rel}: {e}"))
        })
        .collect()
}

/// deploy/*.yaml with the site-specific values replaced, written as JSON files into `dir`
/// (`<file stem>-<doc>.json`) for `kubectl apply -f dir`.
pub fn site_manifests(dir: &Path, image: &str, sysfs_root: &Path, pools: &str) {
    let mut files = 0;
    for entry in std::fs::read_dir(repo().join("deploy")).expect("deploy/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        for (i, mut doc) in yaml_docs(&format!("deploy/{name}")).into_iter().enumerate() {
            if doc["kind"] == "DaemonSet" {
                let spec = &mut doc["spec"]["template"]["spec"];
                for c in ["initContainers", "containers"] {
                    for c in spec[c].as_array_mut().into_iter().flatten() {
                        c["image"] = json!(image);
                        c["imagePullPolicy"] = json!("Never");
                    }
                }
                // The emulated NIC's sysfs tree, at the same path inside as on the host: the
                // agent hands VF paths to the CNI, which runs on the host.
                for v in spec["volumes"].as_array_mut().into_iter().flatten() {
                    if v["name"] == "sys" {
                        v["hostPath"]["path"] = json!(sysfs_root);
                    }
                }
                let agent = &mut spec["containers"][0];
                // No kube-proxy on the test cluster: the in-cluster config reaches the API
                // server where it listens, not through the `kubernetes` Service's ClusterIP.
                let api = crate::api_bed::api_addr();
                if let Some(env) = agent["env"].as_array_mut() {
                    env.push(
                        json!({"name": "KUBERNETES_SERVICE_HOST", "value": api.ip().to_string()}),
                    );
                    env.push(
                        json!({"name": "KUBERNETES_SERVICE_PORT", "value": api.port().to_string()}),
                    );
                }
                for m in agent["volumeMounts"].as_array_mut().into_iter().flatten() {
                    if m["name"] == "sys" {
                        m["mountPath"] = json!(sysfs_root);
                    }
                }
                for a in agent["args"].as_array_mut().into_iter().flatten() {
                    if a.as_str().is_some_and(|a| a.starts_with("--sysfs-root=")) {
                        *a = json!(format!("--sysfs-root={}", sysfs_root.display()));
                    }
                }
            }
            if doc["kind"] == "ConfigMap" && doc["metadata"]["name"] == "sriov-pools" {
                doc["data"]["config.json"] = json!(pools);
            }
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            std::fs::write(dir.join(format!("{stem}-{i}.json")), doc.to_string())
                .expect("write manifest");
            files += 1;
        }
    }
    assert!(files >= 3, "deploy/ has the DaemonSet and both ConfigMaps");
}

/// A busybox container that exits at once on SIGTERM (sh as PID 1 ignores it otherwise).
pub fn busybox_container(name: &str, limits: Value) -> Value {
    json!({"name": name, "image": BUSYBOX, "imagePullPolicy": "Never",
           "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"],
           "resources": {"limits": limits}})
}

/// The agent's `status --json` over its node API socket on the host (Null if unreachable).
pub fn agent_status() -> Value {
    let out = Command::new(bin("sriov-device-plugin"))
        .args(["status", "--json", "--socket", AGENT_SOCKET])
        .output()
        .expect("run status");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// deploy/ on the cluster. Dropping it deletes `namespaces` (so the CNI's DELs run while the
/// agent is still up), then the manifests, the CNI config and the host paths it created.
pub struct Deployed {
    /// The applied manifests.
    pub dir: tempfile::TempDir,
    /// The site's image name.
    pub image: String,
    conflist: Option<HostFile>,
    created: Vec<&'static str>,
    namespaces: Vec<String>,
}

impl Deployed {
    /// Builds and imports the image, writes the site manifests (checked by the API server
    /// first, `--dry-run=server`), labels the node, installs deploy/cni's conflist, applies,
    /// and waits until the kubelet lists every `(resource, count)` as allocatable.
    pub fn apply(cluster: &Cluster, sysfs_root: &Path, pools: &str, want: &[(&str, u64)]) -> Self {
        let started = Instant::now();
        let out = run_ok(
            Command::new("bash")
                .arg(repo().join("scripts/build-image.sh"))
                .args(["--containerd", CONTAINERD_SOCKET]),
        );
        let image = String::from_utf8_lossy(&out.stdout).trim().to_string();
        eprintln!(
            "image {image} built and imported in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        site_manifests(dir.path(), &image, sysfs_root, pools);
        let m = dir.path().to_string_lossy().to_string();
        kubectl_ok(&["apply", "--dry-run=server", "-f", &m]);

        let created = HOST_STATE
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect();
        // The conflist's IPAM for pods without a fixed IP: Debian's host-local.
        if !Path::new("/opt/cni/bin/host-local").exists() {
            std::fs::create_dir_all("/opt/cni/bin").expect("/opt/cni/bin");
            std::fs::copy("/usr/lib/cni/host-local", "/opt/cni/bin/host-local")
                .expect("copy host-local (containernetworking-plugins)");
        }
        let conflist =
            std::fs::read(repo().join("deploy/cni/10-db-net.conflist")).expect("conflist");
        let d = Deployed {
            dir,
            image,
            conflist: Some(HostFile::write(
                "/etc/cni/net.d/10-db-net.conflist",
                &conflist,
            )),
            created,
            namespaces: Vec::new(),
        };
        let label = "feature.node.kubernetes.io/network-sriov.capable=true";
        kubectl_ok(&["label", "node", NODE, "--overwrite", label]);
        let applied = Instant::now();
        kubectl_ok(&["apply", "-f", &m]);
        cluster.wait_ready();
        wait_for(
            "every pool in the node's allocatable",
            Duration::from_secs(90),
            || {
                want.iter()
                    .all(|(r, n)| node_resource(r) == (*n, *n))
                    .then_some(())
            },
            || {
                let now: Vec<_> = want.iter().map(|(r, _)| (r, node_resource(r))).collect();
                format!("{now:?}\n{}", component_log("kubelet", 40))
            },
        );
        eprintln!(
            "DaemonSet up, pools registered {:.1} s after apply",
            applied.elapsed().as_secs_f64()
        );
        d
    }

    /// Deletes `ns` before the DaemonSet on drop.
    pub fn owns_namespace(&mut self, ns: &str) {
        self.namespaces.push(ns.to_string());
    }

    /// Replaces the node's CNI config with another conflist (a peer plugin for benchmarks).
    pub fn set_conflist(&mut self, name: &str, content: &[u8]) {
        self.conflist = None;
        self.conflist = Some(HostFile::write(format!("/etc/cni/net.d/{name}"), content));
    }

    /// Puts deploy/cni's conflist back.
    pub fn restore_conflist(&mut self) {
        let c = std::fs::read(repo().join("deploy/cni/10-db-net.conflist")).expect("conflist");
        self.set_conflist("10-db-net.conflist", &c);
    }
}

impl Drop for Deployed {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = kubectl(&["delete", "namespace", ns, "--wait=true", "--timeout=90s"]);
        }
        let _ = kubectl(&[
            "delete",
            "-f",
            &self.dir.path().to_string_lossy(),
            "--wait=true",
        ]);
        self.conflist = None;
        for p in &self.created {
            let _ = std::fs::remove_dir_all(p).or_else(|_| std::fs::remove_file(p));
        }
    }
}

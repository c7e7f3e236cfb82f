//! Agents as nodes of the real API server ([`crate::kube::Cluster`]): each [`ApiNode`] is one
//! standalone agent with its own emulated PF, `--node-name`, and the pod table from a ConfigMap,
//! reaching the API server directly or through a [`Proxy`] the test can cut.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::kube::{ADMIN_KUBECONFIG, kubectl, kubectl_ok};
use crate::tcp_proxy::Proxy;
use crate::{Agent, CniOutcome, EmulatedNic, cni, run_ok, unique_name};

/// Where the tests' leases and pod table ConfigMaps live.
pub const NAMESPACE: &str = "kube-system";
/// The pool every [`ApiNode`] serves.
pub use crate::cni_fixture::RESOURCE;

/// The API server's address, from the admin kubeconfig.
pub fn api_addr() -> std::net::SocketAddr {
    let kc = std::fs::read_to_string(ADMIN_KUBECONFIG).expect("admin kubeconfig");
    let server = kc
        .lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .expect("server: in kubeconfig")
        .trim()
        .trim_start_matches("https://")
        .to_string();
    server.parse().expect("server is host:port")
}

/// The admin kubeconfig pointing at `addr` instead (for an agent behind a proxy).
pub fn kubeconfig_via(dir: &Path, addr: std::net::SocketAddr) -> PathBuf {
    let kc = std::fs::read_to_string(ADMIN_KUBECONFIG).expect("admin kubeconfig");
    let real = api_addr();
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        kc.replace(&format!("https://{real}"), &format!("https://{addr}")),
    )
    .expect("write kubeconfig");
    path
}

/// Creates or replaces ConfigMap `name` holding `table` as `podtable.json`.
pub fn put_pod_table(name: &str, table: &Value) {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {"podtable.json": table.to_string()}});
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("cm.json");
    std::fs::write(&f, cm.to_string()).expect("write cm");
    kubectl_ok(&["apply", "-f", &f.to_string_lossy()]);
}

/// The Lease of `ip` on `network` (`sriov-ip-<network>-<ip>`), if it exists.
pub fn lease(network: &str, ip: &str) -> Option<Value> {
    let name = format!("sriov-ip-{network}-{}", ip.replace(['.', ':'], "-"));
    crate::kube::get_json(&["lease", "-n", NAMESPACE, &name])
}

/// The holder of `ip`'s lease, if any.
pub fn lease_holder(network: &str, ip: &str) -> Option<String> {
    lease(network, ip).and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

/// Events (`events.k8s.io/v1`) in `ns` about object `name` with `reason`: their notes.
pub fn event_notes(ns: &str, name: &str, reason: &str) -> Vec<String> {
    let out = kubectl(&["get", "events.v1.events.k8s.io", "-n", ns, "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == name && e["reason"] == reason)
        .filter_map(|e| e["note"].as_str().map(str::to_string))
        .collect()
}

/// One node: an emulated PF, and a standalone agent talking to the API server.
pub struct ApiNode {
    /// The node's name (`--node-name`): lease holder and Event reporter.
    pub name: String,
    /// The node's standalone agent.
    pub agent: Agent,
    /// The node's emulated PF, under `<dir>/sys`.
    pub nic: EmulatedNic,
    /// Present when the node reaches the API server through a proxy.
    pub proxy: Option<Proxy>,
    /// The node's files (sysfs tree, pools, kubeconfig, agent state); removed on drop.
    pub dir: tempfile::TempDir,
}

impl ApiNode {
    /// Node `name` with `vfs` VFs, the pod table from ConfigMap `table_cm`, and `extra` agent
    /// flags. With `via_proxy`, the API server is reached through a [`Proxy`].
    pub fn start(name: &str, vfs: u32, table_cm: &str, via_proxy: bool, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("sys");
        let nic = EmulatedNic::up(&unique_name("an"), vfs, &root);
        let pools = crate::cni_fixture::write_pools(dir.path());
        let proxy = via_proxy.then(|| Proxy::start(api_addr()));
        let kubeconfig = match &proxy {
            Some(p) => kubeconfig_via(dir.path(), p.addr),
            None => PathBuf::from(ADMIN_KUBECONFIG),
        };
        let cm = format!("{NAMESPACE}/{table_cm}");
        let kc = kubeconfig.display().to_string();
        let mut flags = vec![
            "--standalone",
            "--kubeconfig",
            &kc,
            "--node-name",
            name,
            "--pod-table-configmap",
            &cm,
            "--lease-namespace",
            NAMESPACE,
        ];
        flags.extend_from_slice(extra);
        let agent = Agent::start_with(dir.path(), &root, &pools, None, &flags);
        ApiNode {
            name: name.to_string(),
            agent,
            nic,
            proxy,
            dir,
        }
    }

    /// The netconf for network `network` on this node's agent.
    pub fn conf(&self, network: &str) -> Value {
        json!({"cniVersion": "1.0.0", "name": network, "type": "sriov",
               "resourceName": RESOURCE,
               "agentSocket": self.agent.socket.display().to_string()})
    }

    /// `sriov` `cmd` for pod `default/<pod>` (container `cid`, interface `net1`).
    pub fn call(&self, cmd: &str, cid: &str, netns: &str, pod: &str, network: &str) -> CniOutcome {
        let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}");
        cni(
            &[
                ("CNI_COMMAND", cmd),
                ("CNI_CONTAINERID", cid),
                ("CNI_NETNS", netns),
                ("CNI_IFNAME", "net1"),
                ("CNI_ARGS", &args),
                ("CNI_PATH", "/usr/lib/cni"),
            ],
            &self.conf(network),
        )
    }

    /// The pod table error the agent reports (`status`), if any.
    pub fn table_error(&self) -> Option<String> {
        self.agent.status()["pod_table"]["error"]
            .as_str()
            .map(str::to_string)
    }

    /// The PF bridge (VLAN 0's L2).
    pub fn bridge(&self) -> &str {
        &self.nic.pf
    }

    /// The pod table loads the agent reports (`status`).
    pub fn table_loads(&self) -> u64 {
        self.agent.status()["pod_table"]["loads"]
            .as_u64()
            .unwrap_or_default()
    }
}

/// A veth joining two bridges (two nodes' PFs on one L2), deleted on drop.
pub struct Wire(pub String);

impl Wire {
    /// Joins bridge `a` and bridge `b`.
    pub fn join(a: &str, b: &str) -> Self {
        let (x, y) = (unique_name("wa"), unique_name("wb"));
        run_ok(Command::new("ip").args(["link", "add", &x, "type", "veth", "peer", "name", &y]));
        let w = Wire(x.clone());
        for (end, br) in [(&x, a), (&y, b)] {
            run_ok(Command::new("ip").args(["link", "set", end, "master", br, "up"]));
        }
        w
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

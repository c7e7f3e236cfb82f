//! Shared by the `agent_*` tests: the agent served in-process on a tempdir socket and state dir,
//! an emulated NIC and test network namespaces with guards that clean up even on panic.
#![allow(dead_code, unused_imports)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use device_plugin::agent::{self, AgentConfig, StartError};
use sriov_hw::attach::{self, NodeMachine};
use sriov_hw::netns::NetnsHandle;
use sriov_hw::vfctl::{EMULATED_DRIVER, VfControl, VfState};
use sriov_proto::node::node_client::NodeClient;
use sriov_proto::node::{Attachment, AttachmentKey, PlanRequest, VfSettings};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub use hw_tests::{require_root, unique_name};

/// The pool every emulated-NIC test uses.
pub const POOL: &str = "test.io/emu";

/// Writes a pool config selecting emulated VFs into `dir`.
pub fn pool_config(dir: &Path) -> PathBuf {
    let p = dir.join("pools.json");
    std::fs::write(
        &p,
        r#"{"resourceList":[{"resourceName":"emu","resourcePrefix":"test.io","selectors":{"drivers":["sriov-emu-vf"]}}]}"#,
    )
    .unwrap();
    p
}

/// A standalone agent config in `dir` (socket, ledger, pools) over `sysfs_root`.
pub fn standalone(dir: &Path, sysfs_root: &Path) -> AgentConfig {
    let mut cfg = AgentConfig::new(dir.join("run/agent.sock"), dir.join("state"));
    cfg.sysfs_root = sysfs_root.to_path_buf();
    cfg.pool_config = Some(pool_config(dir));
    cfg.standalone = true;
    cfg
}

/// The agent served in-process until [`TestAgent::stop`].
pub struct TestAgent {
    pub cfg: AgentConfig,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), StartError>>>,
}

impl TestAgent {
    /// Starts `agent::serve` and waits for its socket.
    pub async fn start(cfg: AgentConfig) -> TestAgent {
        // RUST_LOG=info shows the agent's logs (captured per test by the harness).
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(agent::serve(cfg.clone(), async {
            let _ = rx.await;
        }));
        for _ in 0..500 {
            if cfg.socket.exists() {
                return TestAgent {
                    cfg,
                    stop: Some(tx),
                    task: Some(task),
                };
            }
            if task.is_finished() {
                panic!("agent exited at start: {:?}", task.await);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("agent socket {} never appeared", cfg.socket.display());
    }

    pub async fn client(&self) -> NodeClient<Channel> {
        NodeClient::new(sriov_proto::connect_uds(&self.cfg.socket).await.unwrap())
    }

    /// Stops serving and waits until the agent (and its ledger) is gone.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("agent did not stop")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// An emulated NIC built in-process; torn down on drop.
pub struct Nic {
    pub pf: String,
    pub root: PathBuf,
}

impl Nic {
    pub async fn up(vfs: u32, root: &Path) -> Nic {
        let pf = unique_name("ag");
        assert!(pf.len() <= 8);
        let nic = Nic {
            pf: pf.clone(),
            root: root.to_path_buf(),
        };
        sriov_hw::emulated::up(&sriov_hw::emulated::EmulateSpec {
            pf,
            vfs,
            sysfs_root: root.to_path_buf(),
        })
        .await
        .unwrap();
        nic
    }

    pub fn vf_netdev(&self, i: u32) -> String {
        sriov_hw::emulated::vf_netdev_name(&self.pf, i)
    }

    /// The VF registers as the PF reports them.
    pub async fn vf_state(&self, i: u32) -> VfState {
        let m = NodeMachine::new(EMULATED_DRIVER, &self.root).unwrap();
        m.backend().vf_states(&self.pf).await.unwrap()[i as usize].clone()
    }
}

impl Drop for Nic {
    fn drop(&mut self) {
        let (pf, root) = (self.pf.clone(), self.root.clone());
        // Drop may run inside the test's runtime: tear down on a thread of our own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(sriov_hw::emulated::down(&pf, &root))
        })
        .join();
    }
}

/// A named network namespace (`ip netns add`), deleted on drop: `hw_tests::Netns` plus the
/// handle the Plan request needs.
pub struct Netns(hw_tests::Netns);

impl Netns {
    pub fn new() -> Netns {
        Netns(hw_tests::Netns::new(&unique_name("agns")))
    }

    pub fn handle(&self) -> NetnsHandle {
        NetnsHandle::open(self.0.path()).unwrap()
    }

    pub fn delete(&self) {
        self.0.delete();
    }
}

/// A Plan request as the CNI sends it for `pod` (namespace `default`) in `ns`.
pub fn plan_req(container: &str, ns: &Netns, pod: &str, network: &str) -> PlanRequest {
    let id = ns.handle().id();
    PlanRequest {
        key: Some(key(container)),
        netns_path: ns.0.path(),
        netns_dev: id.dev,
        netns_ino: id.ino,
        pod_namespace: "default".into(),
        pod_name: pod.into(),
        pod_uid: format!("uid-{pod}"),
        network: network.into(),
        resource_name: POOL.into(),
        netconf: Some(VfSettings::default()),
        ..Default::default()
    }
}

pub fn key(container: &str) -> AttachmentKey {
    AttachmentKey {
        container_id: container.into(),
        ifname: "net1".into(),
    }
}

/// Does what the CNI does on ADD with a planned record: configure the VF and move it into `ns`.
pub async fn cni_add(att: &Attachment, ns: &Netns) {
    let hw = att.to_hw().unwrap();
    let m = NodeMachine::new(&att.pf_driver, Path::new(&att.sysfs_root)).unwrap();
    let pod = attach::PodConfig {
        ifname: att.key.clone().unwrap().ifname,
        ..Default::default()
    };
    attach::apply(
        &m,
        &hw.target,
        &hw.original,
        &hw.settings,
        &ns.handle(),
        &pod,
    )
    .await
    .unwrap();
}

/// Whether link `name` exists in the host namespace, and its MAC.
pub fn host_link_mac(name: &str) -> Option<String> {
    let v = hw_tests::ip_json(&["link", "show", "dev", name]);
    v.as_array()?
        .first()?
        .get("address")?
        .as_str()
        .map(String::from)
}

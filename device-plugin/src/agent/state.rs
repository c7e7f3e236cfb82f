//! What the running agent holds: its configuration, the ledger, the inventory watcher (the one
//! owner of inventory, pools and health), the pod table source, and the in-flight VF claims of
//! concurrent Plans.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sriov_hw::PciAddr;
use sriov_hw::sysfs::Sysfs;

use super::errors::StartError;
use crate::cluster::Events;
use crate::cluster::leases::Leases;
use crate::health::{InventoryWatcher, NodeView};
use crate::ledger::Ledger;
use crate::podtable::PodTableSource;
use crate::podtable::RefreshOutcome;
use crate::pools::PoolConfig;

/// How the agent runs (the `run` flags).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node API socket.
    pub socket: PathBuf,
    /// A group allowed to dial the node API socket (mode 0660, owned by it); without one the
    /// socket is 0600, root's only.
    pub socket_group: Option<nix::unistd::Gid>,
    /// Where the ledger lives.
    pub state_dir: PathBuf,
    /// Where sysfs is mounted (`/sys`; a fixture or emulated tree in tests).
    pub sysfs_root: PathBuf,
    /// Where procfs is mounted (`/proc`): per-process namespaces and route tables are read there.
    pub proc_root: PathBuf,
    /// Pool config (reference device plugin format); required when `standalone`.
    pub pool_config: Option<PathBuf>,
    /// The pod table file (`--pod-table`), re-read when it changes.
    pub pod_table: Option<PathBuf>,
    /// The pod table arrives from a watch (`configmap NS/NAME`), not a file; `run` starts the
    /// watch and it offers contents to [`State::podtable`].
    pub pod_table_pushed: Option<String>,
    /// No kubelet: the agent picks VFs from its pools itself.
    pub standalone: bool,
    /// Kubelet's PodResources socket: without a deviceID (and not standalone), which devices of
    /// the netconf's resource the pod holds is asked there.
    pub pod_resources_socket: Option<PathBuf>,
    /// Period of the reconciler and of the sysfs rescan (`--reconcile-interval`, default 10 s).
    pub reconcile_interval: Duration,
}

impl AgentConfig {
    /// The defaults of `run`, with the given socket and state directory.
    pub fn new(socket: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        AgentConfig {
            socket: socket.into(),
            socket_group: None,
            state_dir: state_dir.into(),
            sysfs_root: PathBuf::from("/sys"),
            proc_root: PathBuf::from("/proc"),
            pool_config: None,
            pod_table: None,
            pod_table_pushed: None,
            standalone: false,
            pod_resources_socket: None,
            reconcile_interval: Duration::from_secs(10),
        }
    }
}

/// The agent's shared state. One per agent; handlers hold an `Arc`.
pub struct State {
    /// The configuration the agent was started with.
    pub cfg: AgentConfig,
    /// The attachment ledger (VF and IP holders, original VF state, CNI results).
    pub ledger: Ledger,
    /// sysfs reads at [`AgentConfig::sysfs_root`].
    pub sysfs: Sysfs,
    /// The one owner of inventory, pools, PF health and the quarantine.
    pub watcher: Arc<InventoryWatcher>,
    /// The pod table (file or watched ConfigMap), when one is configured.
    pub podtable: Option<Arc<Mutex<PodTableSource>>>,
    /// VFs chosen by a Plan that has not written the ledger yet (so two Plans never pick one VF
    /// while the first is still reading the VF's original state).
    pub claims: Mutex<HashSet<PciAddr>>,
    /// Serializes VF choice + claim across Plans (short: no I/O inside).
    pub plan_lock: tokio::sync::Mutex<()>,
    /// The cluster-wide IP leases, when an API server is configured and leases are on.
    pub leases: Option<Arc<Leases>>,
    /// Events on pods (re-apply, leases), when an API server is configured.
    pub events: Option<Events>,
    /// Serializes a live re-apply of one attachment against its release (see `reapply`).
    pub vf_lock: tokio::sync::Mutex<()>,
    /// Signalled when a new pod table is in force (the re-apply task waits on it).
    pub table_changed: tokio::sync::Notify,
}

impl State {
    /// Opens the ledger and takes the inventory, pools and health from `watcher`.
    pub fn open(cfg: AgentConfig, watcher: Arc<InventoryWatcher>) -> Result<Self, StartError> {
        if cfg.standalone && cfg.pool_config.is_none() {
            return Err(StartError::NoPoolConfig);
        }
        std::fs::create_dir_all(&cfg.state_dir).map_err(|source| StartError::StateDir {
            dir: cfg.state_dir.display().to_string(),
            source,
        })?;
        let ledger = Ledger::open(&cfg.state_dir).map_err(|source| StartError::Ledger {
            dir: cfg.state_dir.display().to_string(),
            source,
        })?;
        let sysfs = Sysfs::new(&cfg.sysfs_root);
        log_pools(&watcher.snapshot());
        let podtable = match (&cfg.pod_table, &cfg.pod_table_pushed) {
            (Some(p), _) => {
                let mut src = PodTableSource::new(p);
                src.refresh();
                Some(Arc::new(Mutex::new(src)))
            }
            (None, Some(what)) => Some(Arc::new(Mutex::new(PodTableSource::pushed(what)))),
            (None, None) => None,
        };
        Ok(State {
            ledger,
            sysfs,
            watcher,
            podtable,
            claims: Mutex::new(HashSet::new()),
            plan_lock: tokio::sync::Mutex::new(()),
            leases: None,
            events: None,
            vf_lock: tokio::sync::Mutex::new(()),
            table_changed: tokio::sync::Notify::new(),
            cfg,
        })
    }

    /// The inventory, pools, health and quarantine in force.
    pub fn snapshot(&self) -> NodeView {
        self.watcher.snapshot()
    }

    /// Re-scans sysfs now (a VF named by a request may have been created since the last scan).
    pub async fn rescan(&self) {
        if let Err(e) = self.watcher.rescan_now().await {
            tracing::warn!(error = %e, "inventory rescan failed; keeping the last inventory");
        }
    }

    /// Wakes the re-apply task when `outcome` put a new table in force.
    pub fn table_refreshed(&self, outcome: &RefreshOutcome) {
        if matches!(outcome, RefreshOutcome::Loaded { .. }) {
            self.table_changed.notify_one();
        }
    }

    /// Re-reads the pool config file (SIGHUP) and hands it to the watcher, which re-assigns the
    /// pools for the node API and kubelet at once. An invalid file leaves the last good config in
    /// force and returns the error.
    pub async fn reload_pools(&self) -> Result<(), StartError> {
        let Some(path) = &self.cfg.pool_config else {
            return Ok(());
        };
        let cfg = load_pools(path)?;
        self.watcher
            .set_config(cfg)
            .await
            .map_err(|e| StartError::Watcher(e.to_string()))?;
        log_pools(&self.snapshot());
        Ok(())
    }
}

/// The pool config of `cfg` (empty without a file), parsed once for the watcher.
pub fn pool_config(cfg: &AgentConfig) -> Result<PoolConfig, StartError> {
    match &cfg.pool_config {
        Some(path) => load_pools(path),
        None => Ok(PoolConfig::default()),
    }
}

fn load_pools(path: &std::path::Path) -> Result<PoolConfig, StartError> {
    PoolConfig::load(path).map_err(|source| StartError::Pools {
        path: path.display().to_string(),
        source,
    })
}

fn log_pools(s: &NodeView) {
    for p in s.pools.iter() {
        tracing::info!(pool = %p.resource(), vfs = p.devices.len(), "pool");
    }
}

/// Releases a VF claim when dropped (the Plan wrote the ledger, or failed).
pub struct Claim<'a> {
    /// The state whose `claims` holds the VF.
    pub state: &'a State,
    /// The claimed VF; removed from `claims` on drop.
    pub pci: PciAddr,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.state
            .claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.pci);
    }
}

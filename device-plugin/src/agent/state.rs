//! What the running agent holds: its configuration, the ledger, the pool config and inventory
//! snapshot, the pod table source, and the in-flight VF claims of concurrent Plans.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sriov_hw::PciAddr;
use sriov_hw::discovery::{self, Inventory, Pf, Vf};
use sriov_hw::sysfs::Sysfs;

use super::errors::StartError;
use super::inventory::InventoryFeed;
use crate::cluster::Events;
use crate::cluster::leases::Leases;
use crate::ledger::Ledger;
use crate::podtable::PodTableSource;
use crate::podtable::RefreshOutcome;
use crate::pools::{self, Pool, PoolConfig};

/// How the agent runs (the `run` flags).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The node API socket.
    pub socket: PathBuf,
    /// Where the ledger lives.
    pub state_dir: PathBuf,
    pub sysfs_root: PathBuf,
    pub proc_root: PathBuf,
    /// Pool config (reference device plugin format); required when `standalone`.
    pub pool_config: Option<PathBuf>,
    pub pod_table: Option<PathBuf>,
    /// The pod table arrives from a watch (`configmap NS/NAME`), not a file; `run` starts the
    /// watch and it offers contents to [`State::podtable`].
    pub pod_table_pushed: Option<String>,
    /// No kubelet: the agent picks VFs from its pools itself.
    pub standalone: bool,
    /// Kubelet's PodResources socket: without a deviceID (and not standalone), which devices of
    /// the netconf's resource the pod holds is asked there.
    pub pod_resources_socket: Option<PathBuf>,
    pub reconcile_interval: Duration,
}

impl AgentConfig {
    /// The defaults of `run`, with the given socket and state directory.
    pub fn new(socket: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        AgentConfig {
            socket: socket.into(),
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

/// The inventory and the pools built from it; swapped whole when either changes.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub inventory: Arc<Inventory>,
    pub pools: Vec<Pool>,
}

impl Snapshot {
    fn build(cfg: &PoolConfig, inventory: Arc<Inventory>) -> Self {
        let mut pools = pools::assign(cfg, &inventory);
        for p in &mut pools {
            p.vfs.sort();
        }
        Snapshot { inventory, pools }
    }

    /// The VF at `pci` and its PF.
    pub fn vf(&self, pci: PciAddr) -> Option<(&Pf, &Vf)> {
        self.inventory
            .pfs
            .iter()
            .find_map(|pf| pf.vfs.iter().find(|v| v.pci == pci).map(|v| (pf, v)))
    }

    /// The pool named `name`: its full `<prefix>/<name>`, or the bare name when that is unique.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        if let Some(p) = self.pools.iter().find(|p| p.resource == name) {
            return Some(p);
        }
        let mut bare = self
            .pools
            .iter()
            .filter(|p| p.resource.rsplit('/').next() == Some(name));
        match (bare.next(), bare.next()) {
            (Some(p), None) => Some(p),
            _ => None,
        }
    }
}

/// The agent's shared state. One per agent; handlers hold an `Arc`.
pub struct State {
    pub cfg: AgentConfig,
    pub ledger: Ledger,
    pub sysfs: Sysfs,
    /// The inventory's source when the agent does not scan sysfs itself (see [`InventoryFeed`]).
    feed: Option<Arc<dyn InventoryFeed>>,
    pool_config: RwLock<Arc<PoolConfig>>,
    snapshot: RwLock<Arc<Snapshot>>,
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
    /// Opens the ledger, loads the pool config and discovers the inventory.
    pub fn open(cfg: AgentConfig) -> Result<Self, StartError> {
        Self::open_with(cfg, None)
    }

    /// As [`State::open`]; with a `feed`, the inventory is the feed's instead of a scan of our
    /// own, now and on every rescan.
    pub fn open_with(
        cfg: AgentConfig,
        feed: Option<Arc<dyn InventoryFeed>>,
    ) -> Result<Self, StartError> {
        std::fs::create_dir_all(&cfg.state_dir).map_err(|source| StartError::StateDir {
            dir: cfg.state_dir.display().to_string(),
            source,
        })?;
        let ledger = Ledger::open(&cfg.state_dir).map_err(|source| StartError::Ledger {
            dir: cfg.state_dir.display().to_string(),
            source,
        })?;
        let pool_config = match &cfg.pool_config {
            Some(path) => load_pools(path)?,
            None if cfg.standalone => return Err(StartError::NoPoolConfig),
            None => PoolConfig::default(),
        };
        let sysfs = Sysfs::new(&cfg.sysfs_root);
        let inventory = match &feed {
            Some(f) => f.current(),
            None => Arc::new(discover_logged(&sysfs, &cfg)),
        };
        let snapshot = Snapshot::build(&pool_config, inventory);
        log_pools(&snapshot);
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
            feed,
            pool_config: RwLock::new(Arc::new(pool_config)),
            snapshot: RwLock::new(Arc::new(snapshot)),
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

    /// The inventory and pools in force (with a feed: rebuilt first if the feed's inventory
    /// changed since).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let cur = Arc::clone(&self.snapshot.read().unwrap_or_else(|e| e.into_inner()));
        if let Some(feed) = &self.feed {
            let inv = feed.current();
            if !Arc::ptr_eq(&inv, &cur.inventory) {
                return self.install(inv);
            }
        }
        cur
    }

    /// Whether the inventory comes from a feed (so [`State::rescan`] does no blocking I/O).
    pub fn has_feed(&self) -> bool {
        self.feed.is_some()
    }

    /// Re-scans: through the feed when there is one, else sysfs here (blocking reads, as
    /// [`State::rediscover`]).
    pub async fn rescan(&self) {
        match &self.feed {
            Some(f) => {
                f.rescan().await;
                self.snapshot();
            }
            None => self.rediscover(),
        }
    }

    /// Re-reads the inventory and rebuilds the pools: a sysfs scan of our own (blocking file
    /// reads: call from a blocking context or accept a short stall), or the feed's current one.
    pub fn rediscover(&self) {
        let inventory = match &self.feed {
            Some(f) => f.current(),
            None => {
                let prev = Arc::clone(&self.snapshot().inventory);
                let scan = discovery::discover(&self.sysfs, Some(&self.cfg.proc_root));
                Arc::new(scan.carry_over(&prev))
            }
        };
        self.install(inventory);
    }

    /// Builds the pools of `inventory` under the current config and puts them in force.
    fn install(&self, inventory: Arc<Inventory>) -> Arc<Snapshot> {
        let cfg = self.pool_config();
        let next = Arc::new(Snapshot::build(&cfg, inventory));
        let mut slot = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        let before = Arc::clone(&slot);
        if before.inventory.vfs().count() != next.inventory.vfs().count() {
            tracing::info!(
                before = before.inventory.vfs().count(),
                after = next.inventory.vfs().count(),
                "inventory changed"
            );
        }
        *slot = Arc::clone(&next);
        next
    }

    /// Wakes the re-apply task when `outcome` put a new table in force.
    pub fn table_refreshed(&self, outcome: &RefreshOutcome) {
        if matches!(outcome, RefreshOutcome::Loaded { .. }) {
            self.table_changed.notify_one();
        }
    }

    fn pool_config(&self) -> Arc<PoolConfig> {
        Arc::clone(&self.pool_config.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Re-reads the pool config file (SIGHUP). An invalid file leaves the last good config in
    /// force and returns the error.
    pub fn reload_pools(&self) -> Result<(), StartError> {
        let Some(path) = &self.cfg.pool_config else {
            return Ok(());
        };
        let cfg = load_pools(path)?;
        *self.pool_config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg);
        self.rediscover();
        log_pools(&self.snapshot());
        Ok(())
    }
}

fn discover_logged(sysfs: &Sysfs, cfg: &AgentConfig) -> Inventory {
    let inventory = discovery::discover(sysfs, Some(&cfg.proc_root));
    for w in &inventory.warnings {
        tracing::warn!("discovery: {w}");
    }
    inventory
}

fn load_pools(path: &std::path::Path) -> Result<PoolConfig, StartError> {
    PoolConfig::load(path).map_err(|source| StartError::Pools {
        path: path.display().to_string(),
        source,
    })
}

fn log_pools(s: &Snapshot) {
    for p in &s.pools {
        tracing::info!(pool = %p.resource, vfs = p.vfs.len(), "pool");
    }
}

/// Releases a VF claim when dropped (the Plan wrote the ledger, or failed).
pub struct Claim<'a> {
    pub state: &'a State,
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

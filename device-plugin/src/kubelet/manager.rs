//! The set of served pools: one [`PluginServer`] and registration per pool in the snapshot,
//! kept in step with config reloads and kubelet restarts by one task.
//!
//! Inputs, handled in one `select!` loop:
//! - a new [`Snapshot`]: each pool's view channel gets the new value only if that pool changed
//!   (so its ListAndWatch streams send exactly one new list); pools that appeared start a server
//!   and register; pools that vanished stop theirs and remove the socket;
//! - a poll tick (default 100 ms): a new `kubelet.sock` → register every pool again; a pool
//!   socket that is gone (kubelet removes them on restart) → new server, then register.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sriov_proto::kubelet::KUBELET_SOCKET_NAME;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::allocate::DEFAULT_DEVINFO_DIR;
use super::connection::PluginServer;
use super::plugin::{AllocateOptions, PoolPlugin};
use super::registration::{Registration, register_until_ok};
use super::view::PoolView;
use super::watch::KubeletSocket;
use super::{DEFAULT_KUBELET_DIR, socket_file_name};
use crate::health::NodeView;
use crate::pools::{PoolDevices, Snapshot};

/// Delay before retrying a pool socket that could not be bound.
const BIND_RETRY: Duration = Duration::from_secs(1);

/// How the kubelet side is set up. [`Default`] gives the production paths.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Kubelet's device plugin directory: `kubelet.sock` is there and our sockets go there.
    pub kubelet_dir: PathBuf,
    /// Where Allocate writes device-info spec files.
    pub devinfo_dir: PathBuf,
    /// Whether Allocate returns CDI device names (`--cdi`).
    pub cdi: bool,
    /// First part of our socket names (`<socket_prefix>_<prefix>_<name>.sock`), so our sockets
    /// are recognisable among other plugins'.
    pub socket_prefix: String,
    /// How often the sockets are checked for a kubelet restart. Re-registration happens within
    /// this interval plus one dial.
    pub poll_interval: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            kubelet_dir: PathBuf::from(DEFAULT_KUBELET_DIR),
            devinfo_dir: PathBuf::from(DEFAULT_DEVINFO_DIR),
            cdi: false,
            socket_prefix: "sriov".to_string(),
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// Live counters, shared with registration tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) registrations_ok: AtomicU64,
    pub(crate) registrations_failed: AtomicU64,
    pub(crate) server_starts: AtomicU64,
    pub(crate) pools: AtomicU64,
}

/// Counters for metrics, read with [`ManagerHandle::stats`]. All are totals since start except
/// `pools`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ManagerStats {
    /// `Register` calls kubelet accepted.
    pub registrations_ok: u64,
    /// `Register` attempts that failed (kubelet down, refused); each retry counts.
    pub registrations_failed: u64,
    /// Pool servers started (first start, and every re-creation after a kubelet restart).
    pub server_starts: u64,
    /// Pools currently served.
    pub pools: u64,
}

/// Starts the kubelet side. See [`DevicePluginManager::start`].
#[derive(Debug)]
pub struct DevicePluginManager;

impl DevicePluginManager {
    /// Serves every pool of `snapshots` to kubelet until the handle is shut down or dropped.
    ///
    /// Must be called inside a tokio runtime. Never fails: a missing kubelet or an unusable
    /// directory is logged and retried (kubelet often starts after the agent). The current
    /// snapshot is served at once; if the snapshot sender goes away, the last snapshot stays
    /// served.
    ///
    /// ```no_run
    /// # async fn run(snapshots: tokio::sync::watch::Receiver<device_plugin::health::NodeView>) {
    /// use device_plugin::kubelet::{DevicePluginManager, ManagerConfig};
    /// let config = ManagerConfig { cdi: true, ..ManagerConfig::default() };
    /// let handle = DevicePluginManager::start(config, snapshots);
    /// // ... serve until SIGTERM; export handle.stats() as metrics ...
    /// handle.shutdown().await;
    /// # }
    /// ```
    pub fn start(config: ManagerConfig, snapshots: watch::Receiver<NodeView>) -> ManagerHandle {
        let stale = super::allocate::remove_stale_devinfo_temps(&config.devinfo_dir);
        if stale > 0 {
            tracing::info!(removed = stale, dir = %config.devinfo_dir.display(),
                "removed device-info temporary files of a previous run");
        }
        let counters = Arc::new(Counters::default());
        let kubelet_sock = config.kubelet_dir.join(KUBELET_SOCKET_NAME);
        let manager = Manager {
            kubelet: KubeletSocket::new(&kubelet_sock),
            shared: Shared {
                alloc: Arc::new(AllocateOptions {
                    cdi: config.cdi,
                    devinfo_dir: config.devinfo_dir.clone(),
                }),
                kubelet_sock,
                counters: counters.clone(),
            },
            config,
            pools: BTreeMap::new(),
        };
        let (stop, stop_rx) = oneshot::channel();
        let task = tokio::spawn(manager.run(snapshots, stop_rx));
        ManagerHandle {
            stop: Some(stop),
            task,
            counters,
        }
    }
}

/// The running kubelet side. Dropping it stops the manager without waiting; prefer
/// [`ManagerHandle::shutdown`], which also waits until the sockets are removed.
#[derive(Debug)]
pub struct ManagerHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl ManagerHandle {
    /// Current counters, for the metrics endpoint.
    pub fn stats(&self) -> ManagerStats {
        let c = &self.counters;
        ManagerStats {
            registrations_ok: c.registrations_ok.load(Ordering::Relaxed),
            registrations_failed: c.registrations_failed.load(Ordering::Relaxed),
            server_starts: c.server_starts.load(Ordering::Relaxed),
            pools: c.pools.load(Ordering::Relaxed),
        }
    }

    /// Stops every pool server (ending ListAndWatch streams), removes our sockets and waits for
    /// it. Kubelet marks the resources unavailable when the sockets go.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(e) = (&mut self.task).await {
            tracing::error!(%e, "device plugin manager task failed");
        }
    }
}

impl Drop for ManagerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What every pool entry needs from the manager.
struct Shared {
    kubelet_sock: PathBuf,
    alloc: Arc<AllocateOptions>,
    counters: Arc<Counters>,
}

struct Manager {
    config: ManagerConfig,
    shared: Shared,
    kubelet: KubeletSocket,
    /// By resource name (`<prefix>/<name>`).
    pools: BTreeMap<String, Entry>,
}

/// One served pool.
struct Entry {
    view: watch::Sender<Arc<PoolView>>,
    reg: Registration,
    path: PathBuf,
    server: Option<PluginServer>,
    registering: Option<JoinHandle<()>>,
    /// When a failed bind may be retried.
    retry_at: Instant,
}

impl Manager {
    async fn run(
        mut self,
        mut snapshots: watch::Receiver<NodeView>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let first = snapshots.borrow_and_update().pools.clone();
        self.apply(&first);
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut open = true;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                changed = snapshots.changed(), if open => match changed {
                    Ok(()) => {
                        let snap = snapshots.borrow_and_update().pools.clone();
                        self.apply(&snap);
                    }
                    Err(_) => {
                        open = false;
                        tracing::warn!("pool snapshot channel closed; serving the last snapshot");
                    }
                },
                _ = tick.tick() => self.check_sockets(),
            }
        }
        let stopping: Vec<_> = std::mem::take(&mut self.pools)
            .into_values()
            .filter_map(Entry::close)
            .collect();
        for t in stopping {
            let _ = t.await;
        }
        self.shared.counters.pools.store(0, Ordering::Relaxed);
    }

    /// Brings the served set in line with `snap`.
    fn apply(&mut self, snap: &Snapshot) {
        let mut seen = BTreeSet::new();
        for pool in snap.iter() {
            let resource = pool.resource();
            if !seen.insert(resource.clone()) {
                tracing::warn!(%resource, "pool listed twice in the snapshot; the first one is served");
                continue;
            }
            match self.pools.get_mut(&resource) {
                Some(entry) => entry.update(pool),
                None => {
                    let entry = self.new_entry(pool);
                    self.pools.insert(resource, entry);
                }
            }
        }
        let gone: Vec<String> = self
            .pools
            .keys()
            .filter(|r| !seen.contains(*r))
            .cloned()
            .collect();
        for resource in gone {
            if let Some(entry) = self.pools.remove(&resource) {
                tracing::info!(%resource, "pool removed; stopping its device plugin");
                // Not awaited: the stop finishes in the background.
                drop(entry.close());
            }
        }
        self.shared
            .counters
            .pools
            .store(self.pools.len() as u64, Ordering::Relaxed);
    }

    fn new_entry(&self, pool: &PoolDevices) -> Entry {
        let resource = pool.resource();
        let base = socket_file_name(&self.config.socket_prefix, &pool.prefix, &pool.name);
        // Two resources may sanitise to one name (`a.b/x`, `a_b/x`): number the later one.
        let mut endpoint = base.clone();
        let mut n = 2;
        while self.pools.values().any(|e| e.reg.endpoint == endpoint) {
            endpoint = format!("{}-{n}.sock", base.trim_end_matches(".sock"));
            n += 1;
        }
        tracing::info!(%resource, %endpoint, devices = pool.devices.len(), "serving pool");
        let (view, _) = watch::channel(Arc::new(PoolView::new(pool.clone())));
        let mut entry = Entry {
            view,
            path: self.config.kubelet_dir.join(&endpoint),
            reg: Registration { resource, endpoint },
            server: None,
            registering: None,
            retry_at: Instant::now(),
        };
        entry.serve_and_register(&self.shared);
        entry
    }

    /// One poll: react to a new `kubelet.sock` and to pool sockets that vanished.
    fn check_sockets(&mut self) {
        let kubelet_new = self.kubelet.changed(&self.shared.kubelet_sock);
        if kubelet_new {
            tracing::info!(
                socket = %self.shared.kubelet_sock.display(),
                "kubelet socket (re)created; registering again"
            );
        }
        let now = Instant::now();
        for entry in self.pools.values_mut() {
            let intact = entry
                .server
                .as_ref()
                .is_some_and(PluginServer::socket_intact);
            if !intact {
                if entry.server.is_some() || now >= entry.retry_at {
                    if entry.server.is_some() {
                        tracing::info!(
                            resource = %entry.reg.resource,
                            socket = %entry.path.display(),
                            "device plugin socket removed; serving again"
                        );
                    }
                    entry.serve_and_register(&self.shared);
                }
            } else if kubelet_new {
                entry.register(&self.shared);
            }
        }
    }
}

impl Entry {
    /// Publishes `pool` to this pool's streams and calls if it differs from what they have.
    fn update(&mut self, pool: &PoolDevices) {
        self.view.send_if_modified(|cur| {
            if cur.pool == *pool {
                return false;
            }
            *cur = Arc::new(PoolView::new(pool.clone()));
            true
        });
    }

    /// (Re)creates the server on our socket, then registers. A bind failure is retried from
    /// the poll after [`BIND_RETRY`].
    fn serve_and_register(&mut self, shared: &Shared) {
        if let Some(old) = self.server.take() {
            drop(old.stop(false));
        }
        let view = self.view.subscribe();
        let alloc = shared.alloc.clone();
        match PluginServer::start(&self.path, |stop| PoolPlugin::new(view, stop, alloc)) {
            Ok(server) => {
                shared
                    .counters
                    .server_starts
                    .fetch_add(1, Ordering::Relaxed);
                self.server = Some(server);
                self.register(shared);
            }
            Err(e) => {
                tracing::error!(resource = %self.reg.resource, %e, "cannot serve pool; retrying");
                self.retry_at = Instant::now() + BIND_RETRY;
            }
        }
    }

    /// Starts registering afresh (abandoning a registration still retrying).
    fn register(&mut self, shared: &Shared) {
        if let Some(old) = self.registering.take() {
            old.abort();
        }
        self.registering = Some(tokio::spawn(register_until_ok(
            shared.kubelet_sock.clone(),
            self.reg.clone(),
            shared.counters.clone(),
        )));
    }

    /// Stops registering and serving, removing our socket. Returns the server's stop task.
    fn close(mut self) -> Option<JoinHandle<()>> {
        if let Some(r) = self.registering.take() {
            r.abort();
        }
        self.server.take().map(|s| s.stop(true))
        // `self.view` drops here: open ListAndWatch streams end.
    }
}

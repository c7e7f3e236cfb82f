//! [`InventoryWatcher`]: the one owner of the node's inventory, the pool config, the PF link
//! states and the VF quarantine. It publishes a [`NodeView`] whenever any of them changes; the
//! node API, every ListAndWatch stream and the metrics all read that one view.
//!
//! Inputs, all handled by the same task so they never race:
//! - link events from a [`LinkSource`] (PF down → its VFs Unhealthy, within milliseconds);
//! - a periodic sysfs rescan ([`WatcherOptions::rescan_interval`]), and [`InventoryWatcher::rescan_now`];
//! - a new pool config ([`InventoryWatcher::set_config`]);
//! - the agent's quarantine of a VF whose netdev is not home, and its lifting
//!   ([`InventoryWatcher::quarantine`], [`InventoryWatcher::lift`]).
//!
//! Missed link events are survivable: an overrun, a broken subscription (re-subscribed after
//! [`RESUBSCRIBE_DELAY`]) and every rescan re-read the PF links.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use sriov_hw::discovery::{Inventory, discover};
use sriov_hw::netlink::{LinkEvent, NetlinkError};
use sriov_hw::sysfs::Sysfs;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::assemble::{self, LinkStates, health_netdev, pf_healthy};
use super::links::LinkSource;
use super::view::{NodeView, Quarantine};
use crate::pools::PoolConfig;

/// How often sysfs is re-scanned unless configured otherwise.
pub const DEFAULT_RESCAN_INTERVAL: Duration = Duration::from_secs(10);

/// Wait before subscribing to link events again after the subscription broke.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// After a PF netdev disappears or is renamed, sysfs is re-scanned this much later (not at once:
/// a driver reload removes and re-creates things in several steps).
const RESCAN_DEBOUNCE: Duration = Duration::from_millis(250);

/// Where and how often the watcher looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherOptions {
    /// The sysfs root discovery reads (`/sys`, a fixture tree, the emulated NIC's tree).
    pub sysfs_root: PathBuf,
    /// The proc root whose route tables mark PFs carrying the default route; `None` = `/proc`.
    pub proc_root: Option<PathBuf>,
    /// Period of the sysfs rescan; must be non-zero.
    pub rescan_interval: Duration,
}

impl Default for WatcherOptions {
    fn default() -> Self {
        WatcherOptions {
            sysfs_root: PathBuf::from("/sys"),
            proc_root: None,
            rescan_interval: DEFAULT_RESCAN_INTERVAL,
        }
    }
}

/// What the rescans did, for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Rescans completed since start (the initial scan counts).
    pub scans: u64,
    /// Wall time of the last rescan: sysfs discovery, PF link reads and snapshot assembly.
    pub last_duration: Duration,
    /// PFs and VFs the last rescan found (all of them, pooled or not).
    pub pfs: usize,
    /// VFs the last rescan found, over all PFs.
    pub vfs: usize,
    /// Things the last rescan could not read (see `Inventory::warnings`).
    pub warnings: usize,
}

/// Why the watcher could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Link events could not be subscribed to at start; without them health would be a guess.
    #[error("cannot follow PF link state: {0}")]
    Links(#[from] NetlinkError),
    /// A zero rescan interval would spin.
    #[error("rescan interval must be greater than zero")]
    ZeroInterval,
    /// The watcher's task is gone (it panicked, or the runtime is shutting down).
    #[error("the inventory watcher has stopped")]
    Stopped,
}

enum Command {
    Rescan(oneshot::Sender<ScanStats>),
    SetConfig(PoolConfig, oneshot::Sender<()>),
    Quarantine(sriov_hw::PciAddr, String, oneshot::Sender<()>),
    Lift(sriov_hw::PciAddr, oneshot::Sender<()>),
}

/// The truthful inventory. Create with [`InventoryWatcher::start`]; follow
/// [`InventoryWatcher::subscribe`]. Dropping it stops the watcher task.
pub struct InventoryWatcher {
    cmds: mpsc::UnboundedSender<Command>,
    views: watch::Receiver<NodeView>,
    stats: watch::Receiver<ScanStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for InventoryWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl InventoryWatcher {
    /// Subscribes to link events, scans sysfs, reads the PF links, and spawns the watcher task on
    /// the current tokio runtime. When this returns, [`InventoryWatcher::snapshot`] already holds
    /// the first full snapshot. Fails only if link events cannot be subscribed to.
    pub async fn start(
        opts: WatcherOptions,
        config: PoolConfig,
        links: Arc<dyn LinkSource>,
    ) -> Result<Self, HealthError> {
        if opts.rescan_interval.is_zero() {
            return Err(HealthError::ZeroInterval);
        }
        // Subscribe before reading, so no change between the read and the subscription is lost.
        let events = links.subscribe()?;
        let (view_tx, views) = watch::channel(NodeView::default());
        let (stats_tx, stats) = watch::channel(ScanStats::default());
        let mut worker = Worker {
            opts,
            cfg: config,
            inv: Arc::new(Inventory::default()),
            links: LinkStates::new(),
            quarantine: Arc::new(Quarantine::new()),
            source: links,
            views: view_tx,
            stats: stats_tx,
        };
        worker.rescan().await;
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(worker.run(Some(events), cmd_rx));
        Ok(InventoryWatcher {
            cmds,
            views,
            stats,
            task,
        })
    }

    /// A receiver that sees every new view (each ListAndWatch stream follows one). A value is
    /// sent only when the view differs from the previous one.
    pub fn subscribe(&self) -> watch::Receiver<NodeView> {
        self.views.clone()
    }

    /// The current view.
    pub fn snapshot(&self) -> NodeView {
        self.views.borrow().clone()
    }

    /// The inventory of the last rescan.
    pub fn inventory(&self) -> Arc<Inventory> {
        Arc::clone(&self.views.borrow().inventory)
    }

    /// Statistics of the rescans so far.
    pub fn scan_stats(&self) -> ScanStats {
        self.stats.borrow().clone()
    }

    /// A receiver of [`ScanStats`], updated after every rescan (for the metrics collector).
    pub fn subscribe_scan_stats(&self) -> watch::Receiver<ScanStats> {
        self.stats.clone()
    }

    /// Re-scans sysfs and re-reads the PF links now; returns once the result is published.
    pub async fn rescan_now(&self) -> Result<ScanStats, HealthError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Command::Rescan(tx))
            .map_err(|_| HealthError::Stopped)?;
        rx.await.map_err(|_| HealthError::Stopped)
    }

    /// Replaces the pool config (a reload that validated); returns once the re-assigned snapshot
    /// is published. The inventory is not re-scanned.
    pub async fn set_config(&self, config: PoolConfig) -> Result<(), HealthError> {
        self.ask(|tx| Command::SetConfig(config, tx)).await
    }

    /// Takes the VF at `pci` out of service (Unhealthy to kubelet, never picked by Plan) until
    /// [`InventoryWatcher::lift`]; returns once the view says so.
    pub async fn quarantine(
        &self,
        pci: sriov_hw::PciAddr,
        reason: String,
    ) -> Result<(), HealthError> {
        self.ask(|tx| Command::Quarantine(pci, reason, tx)).await
    }

    /// Puts a quarantined VF back in service; returns once the view says so.
    pub async fn lift(&self, pci: sriov_hw::PciAddr) -> Result<(), HealthError> {
        self.ask(|tx| Command::Lift(pci, tx)).await
    }

    async fn ask(
        &self,
        cmd: impl FnOnce(oneshot::Sender<()>) -> Command,
    ) -> Result<(), HealthError> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(cmd(tx)).map_err(|_| HealthError::Stopped)?;
        rx.await.map_err(|_| HealthError::Stopped)
    }
}

/// The watcher task's state.
struct Worker {
    opts: WatcherOptions,
    cfg: PoolConfig,
    inv: Arc<Inventory>,
    links: LinkStates,
    quarantine: Arc<Quarantine>,
    source: Arc<dyn LinkSource>,
    views: watch::Sender<NodeView>,
    stats: watch::Sender<ScanStats>,
}

/// Sleeps until `at`, or forever when there is nothing scheduled.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next link event, or never when not subscribed.
async fn next_event(events: &mut Option<BoxStream<'static, LinkEvent>>) -> Option<LinkEvent> {
    match events {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

impl Worker {
    async fn run(
        mut self,
        mut events: Option<BoxStream<'static, LinkEvent>>,
        mut cmds: mpsc::UnboundedReceiver<Command>,
    ) {
        let every = self.opts.rescan_interval;
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rescan_at: Option<Instant> = None;
        let mut resubscribe_at: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                ev = next_event(&mut events) => match ev {
                    Some(ev) => {
                        if self.on_link_event(ev).await {
                            rescan_at.get_or_insert(Instant::now() + RESCAN_DEBOUNCE);
                        }
                    }
                    None => {
                        tracing::warn!("link event subscription ended; subscribing again");
                        events = None;
                        resubscribe_at = Some(Instant::now() + RESUBSCRIBE_DELAY);
                    }
                },
                cmd = cmds.recv() => match cmd {
                    None => return,
                    Some(Command::Rescan(ack)) => {
                        self.rescan().await;
                        let _ = ack.send(self.stats.borrow().clone());
                    }
                    Some(Command::SetConfig(cfg, ack)) => {
                        self.cfg = cfg;
                        self.publish();
                        let _ = ack.send(());
                    }
                    Some(Command::Quarantine(pci, reason, ack)) => {
                        if self.quarantine.get(&pci) != Some(&reason) {
                            tracing::warn!(vf = %pci, %reason, "VF quarantined");
                            Arc::make_mut(&mut self.quarantine).insert(pci, reason);
                            self.publish();
                        }
                        let _ = ack.send(());
                    }
                    Some(Command::Lift(pci, ack)) => {
                        if Arc::make_mut(&mut self.quarantine).remove(&pci).is_some() {
                            tracing::info!(vf = %pci, "VF back in service");
                            self.publish();
                        }
                        let _ = ack.send(());
                    }
                },
                _ = sleep_until(resubscribe_at) => match self.source.subscribe() {
                    Ok(s) => {
                        events = Some(s);
                        resubscribe_at = None;
                        self.refresh_links().await;
                        self.publish();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot subscribe to link events; retrying");
                        resubscribe_at = Some(Instant::now() + RESUBSCRIBE_DELAY);
                    }
                },
                _ = sleep_until(rescan_at) => {
                    rescan_at = None;
                    self.rescan().await;
                }
                _ = tick.tick() => self.rescan().await,
            }
        }
    }

    /// Applies one link event. Returns whether sysfs should be re-scanned soon (a PF netdev
    /// disappeared or was renamed, so the inventory is probably out of date).
    async fn on_link_event(&mut self, ev: LinkEvent) -> bool {
        match ev {
            LinkEvent::Changed(info) => {
                if self.links.contains_key(&info.name) {
                    let name = info.name.clone();
                    self.set_link(&name, Some(info));
                    return false;
                }
                // A tracked PF netdev under a new name: the old name is gone.
                let renamed: Vec<String> = self
                    .links
                    .iter()
                    .filter(|(_, s)| {
                        s.as_ref()
                            .is_some_and(|l| l.index != 0 && l.index == info.index)
                    })
                    .map(|(n, _)| n.clone())
                    .collect();
                for old in &renamed {
                    tracing::info!(old = %old, new = %info.name, "PF netdev renamed");
                    self.set_link(old, None);
                }
                !renamed.is_empty()
            }
            LinkEvent::Removed(info) => {
                if !self.links.contains_key(&info.name) {
                    return false;
                }
                self.set_link(&info.name, None);
                true
            }
            LinkEvent::Overrun => {
                tracing::warn!("link events were lost; re-reading PF links");
                self.refresh_links().await;
                self.publish();
                false
            }
        }
    }

    /// Records a tracked PF netdev's new state, logs a health change, and publishes.
    fn set_link(&mut self, name: &str, state: Option<sriov_hw::netlink::LinkInfo>) {
        let pf = self
            .inv
            .pfs
            .iter()
            .find(|pf| health_netdev(pf) == Some(name));
        let before = pf.map(|pf| pf_healthy(pf, &self.links));
        self.links.insert(name.to_string(), state);
        if let Some(pf) = pf {
            let after = pf_healthy(pf, &self.links);
            if before != Some(after) {
                let vfs = pf.vfs.len();
                if after {
                    tracing::info!(pf = %pf.pci, netdev = name, vfs, "PF link up: VFs healthy");
                } else {
                    tracing::warn!(pf = %pf.pci, netdev = name, vfs, "PF link down: VFs unhealthy");
                }
            }
        }
        self.publish();
    }

    /// Scans sysfs (on a blocking thread), re-reads the PF links and publishes.
    async fn rescan(&mut self) {
        let started = Instant::now();
        let sysfs = Sysfs::new(&self.opts.sysfs_root);
        let proc_root = self.opts.proc_root.clone();
        let inv = match tokio::task::spawn_blocking(move || discover(&sysfs, proc_root.as_deref()))
            .await
        {
            Ok(inv) => inv,
            Err(e) => {
                tracing::error!(error = %e, "sysfs scan failed; keeping the previous inventory");
                return;
            }
        };
        if !inv.unread.is_empty() {
            tracing::warn!(
                bus = inv.unread.bus, pfs = ?inv.unread.pfs, vfs = ?inv.unread.vfs,
                "sysfs scan incomplete; what it could not read keeps its last known state"
            );
        }
        let inv = inv.carry_over(&self.inv);
        if self
            .quarantine
            .keys()
            .any(|pci| !inv.vfs().any(|v| v.pci == *pci))
        {
            // A quarantined VF that is gone (numvfs lowered) has nothing left to bring home.
            Arc::make_mut(&mut self.quarantine).retain(|pci, _| inv.vfs().any(|v| v.pci == *pci));
        }
        if inv.warnings != self.inv.warnings {
            for w in &inv.warnings {
                tracing::warn!(root = %self.opts.sysfs_root.display(), "{w}");
            }
        }
        if inv.pfs != self.inv.pfs {
            let vfs = inv.vfs().count();
            tracing::info!(pfs = inv.pfs.len(), vfs, "inventory changed");
        }
        self.inv = Arc::new(inv);
        self.refresh_links().await;
        self.publish();
        let (pfs, vfs, warnings) = (
            self.inv.pfs.len(),
            self.inv.vfs().count(),
            self.inv.warnings.len(),
        );
        let last_duration = started.elapsed();
        self.stats.send_modify(|s| {
            s.scans += 1;
            s.last_duration = last_duration;
            s.pfs = pfs;
            s.vfs = vfs;
            s.warnings = warnings;
        });
    }

    /// Re-reads the link of every PF netdev in the inventory, and forgets links of PFs that are
    /// no longer there. A link that cannot be read keeps its last known state.
    async fn refresh_links(&mut self) {
        let names: Vec<String> = self
            .inv
            .pfs
            .iter()
            .filter_map(|pf| health_netdev(pf).map(str::to_string))
            .collect();
        let mut fresh = LinkStates::with_capacity(names.len());
        for name in names {
            match self.source.get(&name).await {
                Ok(state) => {
                    fresh.insert(name, state);
                }
                Err(e) => {
                    tracing::warn!(netdev = %name, error = %e, "cannot read PF link state");
                    if let Some(old) = self.links.remove(&name) {
                        fresh.insert(name, old);
                    }
                }
            }
        }
        self.links = fresh;
    }

    /// Assembles the view and sends it only if it changed.
    fn publish(&self) {
        let next = assemble::view(&self.cfg, &self.inv, &self.links, &self.quarantine);
        self.views.send_if_modified(|cur| {
            if *cur == next {
                return false;
            }
            *cur = next;
            true
        });
    }
}

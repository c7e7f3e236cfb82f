//! The node agent's core (DESIGN §2): the ledger-backed node API the `sriov` CNI talks to, the
//! reconciler that frees what dead pods held, and the pieces both share.
//!
//! - [`state`]: configuration, ledger, the inventory watcher, pod table source, VF claims.
//! - [`quarantine`]: VFs whose netdev is not home: kept out of service, brought home.
//! - [`plan`]: Plan (choose the VF, merge settings, capture the original state, record intent).
//! - [`planner`]: which CNI process planned an attachment, and whether it still runs.
//! - [`reclaim`]: "is this netns gone?" and the one release path (restore + remove).
//! - [`gc`], [`reconcile`]: the two callers of that path besides Plan.
//! - [`server`]: the tonic service; [`errors`]: the one mapping to `tonic::Status`.
//!
//! [`Agent::start`] does everything that can fail before serving (open the ledger, load pools,
//! discover, first reconcile); [`Agent::serve`] serves on the Unix socket until `shutdown`
//! resolves. [`serve`] is both, for tests.

pub mod errors;
pub mod gc;
pub mod leasing;
pub mod neighbours;
pub mod plan;
pub mod planner;
pub mod quarantine;
pub mod reapply;
pub mod reclaim;
pub mod reconcile;
pub mod server;
pub mod state;

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use sriov_proto::node::node_server::NodeServer;
use tokio::net::UnixListener;

pub use errors::{AgentError, StartError};
pub use state::{AgentConfig, State};

use crate::health::{InventoryWatcher, NetlinkLinks, WatcherOptions};

/// What the agent gets from the API server, when one is configured.
pub struct ClusterLink {
    /// Events on pods.
    pub events: crate::cluster::Events,
    /// Cluster-wide IP leases (unless turned off).
    pub leases: Option<Arc<crate::cluster::leases::Leases>>,
}

/// A started agent: state loaded and reconciled once, not yet serving.
pub struct Agent {
    state: Arc<State>,
}

impl Agent {
    /// Opens the ledger (exclusive: a second agent on the same state dir fails here, before it
    /// could touch the first one's socket), loads the pool config, discovers the inventory and
    /// runs the first reconcile (after a reboot every recorded netns is gone: this frees all).
    pub async fn start(cfg: AgentConfig) -> Result<Agent, StartError> {
        Self::start_with(cfg, None, None).await
    }

    /// As [`Agent::start`]; with a `watcher`, inventory, pools and health are that watcher's
    /// (`run` shares its watcher with the kubelet side), else the agent starts its own from
    /// `cfg`; with `cluster`, fixed IPs are leased cluster-wide, and the leases of every recorded
    /// attachment are re-adopted before the first reconcile.
    pub async fn start_with(
        cfg: AgentConfig,
        watcher: Option<Arc<InventoryWatcher>>,
        cluster: Option<ClusterLink>,
    ) -> Result<Agent, StartError> {
        let watcher = match watcher {
            Some(w) => w,
            None => Arc::new(own_watcher(&cfg).await?),
        };
        let mut state = State::open(cfg, watcher)?;
        if let Some(c) = cluster {
            state.leases = c.leases;
            state.events = Some(c.events);
        }
        let state = Arc::new(state);
        leasing::adopt_all(&state);
        if let Some(l) = &state.leases {
            // Before serving: a lease the last instance held is renewed now, or fenced at once.
            l.renew_due().await;
        }
        let pass = reconcile::reconcile_once(&state, true).await;
        tracing::info!(
            freed = pass.freed.len(),
            errors = pass.errors.len(),
            "first reconcile done"
        );
        Ok(Agent { state })
    }

    /// The shared state (for `run`'s SIGHUP handler and tests).
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Serves the node API on `cfg.socket` (parent created, stale socket removed, mode 0600) with
    /// the reconciler running, until `shutdown` resolves; then removes the socket.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
        let path = self.state.cfg.socket.clone();
        let listener = bind(&path, self.state.cfg.socket_group)?;
        tracing::info!(socket = %path.display(), standalone = self.state.cfg.standalone, "serving the node API");
        let reconciler = tokio::spawn(reconcile::run(Arc::clone(&self.state)));
        let reapplier = tokio::spawn(reapply::run(Arc::clone(&self.state)));
        let res = tonic::transport::Server::builder()
            .add_service(NodeServer::new(server::NodeService::new(Arc::clone(
                &self.state,
            ))))
            .serve_with_incoming_shutdown(sriov_proto::uds::incoming(listener), shutdown)
            .await;
        reconciler.abort();
        reapplier.abort();
        let _ = reconciler.await;
        let _ = std::fs::remove_file(&path);
        tracing::info!(socket = %path.display(), "stopped serving");
        res.map_err(StartError::from)
    }
}

/// The inventory watcher of an agent that is given none: `cfg`'s sysfs and pool config, PF
/// health from the host's link events.
async fn own_watcher(cfg: &AgentConfig) -> Result<InventoryWatcher, StartError> {
    if cfg.standalone && cfg.pool_config.is_none() {
        return Err(StartError::NoPoolConfig);
    }
    let pools = state::pool_config(cfg)?;
    let links = NetlinkLinks::host().map_err(|e| StartError::Watcher(e.to_string()))?;
    InventoryWatcher::start(
        WatcherOptions {
            sysfs_root: cfg.sysfs_root.clone(),
            proc_root: Some(cfg.proc_root.clone()),
            rescan_interval: cfg.reconcile_interval,
        },
        pools,
        Arc::new(links),
    )
    .await
    .map_err(|e| StartError::Watcher(e.to_string()))
}

/// Starts the agent and serves until `shutdown` resolves. Tests run it on a tempdir socket and
/// state dir: `tokio::spawn(agent::serve(cfg, async { rx.await.ok(); }))`.
pub async fn serve(cfg: AgentConfig, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    Agent::start(cfg).await?.serve(shutdown).await
}

/// Binds the node API socket at `path`: mode 0600, or 0660 owned by `group` when one is given,
/// set explicitly whatever the umask.
fn bind(path: &Path, group: Option<nix::unistd::Gid>) -> Result<UnixListener, StartError> {
    let err = |op| {
        move |source| StartError::Socket {
            path: path.display().to_string(),
            op,
            source,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err("create parent directory"))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(socket = %path.display(), "removed a stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err("remove stale socket")(e)),
    }
    // bind() creates the file before listen() runs: a client dialing in between is refused. Bind
    // and listen under a temporary name, then rename, so the socket appears already listening.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(err("bind"))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(err("chmod 0600"))?;
    if let Some(gid) = group {
        nix::unistd::chown(&tmp, None, Some(gid))
            .map_err(|e| err("chown to the socket group")(e.into()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o660))
            .map_err(err("chmod 0660"))?;
    }
    std::fs::rename(&tmp, path).map_err(err("rename into place"))?;
    Ok(listener)
}

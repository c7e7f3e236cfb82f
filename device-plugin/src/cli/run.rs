//! `run`: the node agent. Serves the node API on a Unix socket; unless `--standalone`, also the
//! kubelet device plugin API for every pool (with health from netlink link events) and asks
//! kubelet's PodResources API which VFs a pod holds. Prometheus metrics on a loopback address.
//! SIGTERM/SIGINT stop it; SIGHUP reloads the pool config (an invalid file keeps the last good one).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::agent::{Agent, AgentConfig, State};
use crate::cluster::leases::{LeaseTiming, Leases};
use crate::health::{InventoryWatcher, NetlinkLinks, WatcherOptions};
use crate::kubelet::{DevicePluginManager, ManagerConfig};
use crate::metrics::{AgentMetrics, Registry};

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node API socket the CNI dials.
    #[arg(long, default_value = sriov_proto::node::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// A group (name or numeric ID) whose members may dial the node API socket: the socket is
    /// then 0660 and owned by it. Without it the socket is 0600 (root only).
    #[arg(long, value_name = "GROUP", value_parser = parse_group)]
    socket_group: Option<nix::unistd::Gid>,
    /// Where the ledger lives (sled; only this process opens it).
    #[arg(long, default_value = "/var/lib/sriov")]
    state_dir: PathBuf,
    /// Root of the sysfs tree to discover VFs in.
    #[arg(long, default_value = "/sys")]
    sysfs_root: PathBuf,
    /// Root of procfs (for the default-route check).
    #[arg(long, default_value = "/proc")]
    proc_root: PathBuf,
    /// Pool config (reference device plugin `resourceList` JSON); required with --standalone.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Pod table file (fixed IPs, VLAN, rates per pod), usually mounted from a ConfigMap.
    #[arg(long, conflicts_with = "pod_table_configmap")]
    pod_table: Option<PathBuf>,
    /// Pod table from this ConfigMap (`NAMESPACE/NAME`, key `podtable.json`), watched through the
    /// API server: an edit is in force within a second.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pod_table_configmap: Option<String>,
    /// Kubeconfig for the API server. Without it, the in-cluster config is used when the pod's
    /// service-account token exists; with neither, the agent runs without the API server.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// This node's name (lease holder, Event reporter). Default: $NODE_NAME, then the hostname.
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// Where the IP leases live (`coordination.k8s.io/v1` Leases `sriov-ip-<network>-<ip>`).
    #[arg(long, default_value = "kube-system")]
    lease_namespace: String,
    /// Lease duration in seconds; renewals every third, the fence at two thirds (README).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=3600))]
    lease_duration: u64,
    /// With an API server, hold every fixed IP by a Lease (on by default; off only to measure
    /// or for a cluster where uniqueness is kept by other means).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    ip_leases: bool,
    /// No kubelet: the agent picks a free VF of the netconf's `resourceName` pool itself.
    #[arg(long)]
    standalone: bool,
    /// Seconds between reconciler passes (free attachments whose netns is gone, re-scan).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    reconcile_interval: u64,
    /// Kubelet's device plugin directory (kubelet.sock; our per-pool sockets go there).
    #[arg(long, default_value = "/var/lib/kubelet/device-plugins")]
    kubelet_dir: PathBuf,
    /// Kubelet's PodResources socket, asked which VFs a pod holds when the netconf has no deviceID.
    #[arg(long, default_value = sriov_proto::kubelet::POD_RESOURCES_SOCKET)]
    pod_resources_socket: PathBuf,
    /// Where Allocate writes device-info spec files.
    #[arg(long, default_value = "/var/run/k8s.cni.cncf.io/devinfo/dp")]
    devinfo_dir: PathBuf,
    /// Return CDI device names from Allocate.
    #[arg(long)]
    cdi: bool,
    /// Seconds between sysfs rescans for the kubelet inventory (VFs created or removed).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    rescan_interval: u64,
    /// Prometheus metrics address; loopback only unless --metrics-allow-remote.
    #[arg(long, default_value = "127.0.0.1:9808")]
    metrics_addr: SocketAddr,
    /// Allow a non-loopback metrics address.
    #[arg(long)]
    metrics_allow_remote: bool,
    /// Do not serve metrics.
    #[arg(long)]
    no_metrics: bool,
}

impl From<&Args> for AgentConfig {
    fn from(a: &Args) -> Self {
        AgentConfig {
            socket: a.socket.clone(),
            socket_group: a.socket_group,
            state_dir: a.state_dir.clone(),
            sysfs_root: a.sysfs_root.clone(),
            proc_root: a.proc_root.clone(),
            pool_config: a.config.clone(),
            pod_table: a.pod_table.clone(),
            pod_table_pushed: a
                .pod_table_configmap
                .as_ref()
                .map(|cm| format!("configmap {cm}")),
            standalone: a.standalone,
            pod_resources_socket: (!a.standalone).then(|| a.pod_resources_socket.clone()),
            reconcile_interval: Duration::from_secs(a.reconcile_interval),
        }
    }
}

/// `--socket-group`: a numeric GID as is, else a group name looked up in the group database.
fn parse_group(s: &str) -> Result<nix::unistd::Gid, String> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(nix::unistd::Gid::from_raw(n));
    }
    match nix::unistd::Group::from_name(s) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => Err(format!("no group named {s:?}")),
        Err(e) => Err(format!("looking up group {s:?}: {e}")),
    }
}

/// Raises the soft open-files limit to the hard one: sysfs scans of hundreds of VFs, netlink
/// sockets, gRPC streams and clients all hold descriptors, and the soft default (1024) is not
/// what the node allows the agent.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, %e, "could not raise the open-files limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(%e, "could not read the open-files limit"),
    }
}

/// Runs the agent on a multi-thread runtime until SIGTERM or SIGINT.
pub fn run(args: Args) -> anyhow::Result<()> {
    // Whatever the agent creates (ledger, sockets, device-info files) is for root only unless
    // set otherwise explicitly; the caller's umask (000 under some init systems) does not leak.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    raise_open_files_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    rt.block_on(async move {
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let node = crate::cluster::node_name(args.node_name.as_deref());
        let api = api_client(&args).await?;
        let registry = Registry::new();
        let metrics = AgentMetrics::new(&registry).context("metrics")?;
        let cfg: AgentConfig = (&args).into();
        let pools = crate::agent::state::pool_config(&cfg)?;
        // The one owner of inventory, pools and health (netlink link events): the node API and
        // the kubelet side both read its view; its sysfs scan is the only one.
        let watcher = InventoryWatcher::start(
            WatcherOptions {
                sysfs_root: args.sysfs_root.clone(),
                proc_root: Some(args.proc_root.clone()),
                rescan_interval: Duration::from_secs(args.rescan_interval),
            },
            pools,
            Arc::new(NetlinkLinks::host().context("netlink link events")?),
        )
        .await
        .context("inventory watcher")?;
        let watcher = Arc::new(watcher);
        let events = api.as_ref().map(|c| crate::cluster::Events::new(c.clone(), &node));
        let leases = match &api {
            Some(client) if args.ip_leases => {
                let timing = LeaseTiming::from_duration(Duration::from_secs(args.lease_duration));
                timing.check().map_err(anyhow::Error::msg)?;
                tracing::info!(namespace = %args.lease_namespace, node = %node, ?timing, "fixed IPs are leased cluster-wide");
                Some(Arc::new(Leases::new(
                    client.clone(),
                    &args.lease_namespace,
                    &node,
                    timing,
                    events.clone(),
                )))
            }
            _ => None,
        };
        let link = events.clone().map(|events| crate::agent::ClusterLink {
            events,
            leases: leases.clone(),
        });
        let agent = Agent::start_with(cfg, Some(Arc::clone(&watcher)), link).await?;
        let state = Arc::clone(agent.state());
        let renewer = leases.map(|l| {
            let fencer = Arc::new(crate::agent::leasing::LedgerFencer {
                state: Arc::clone(&state),
            });
            tokio::spawn(l.run(fencer))
        });
        let table_watch = match (&args.pod_table_configmap, &api, &state.podtable) {
            (Some(cm), Some(client), Some(src)) => {
                let cm = crate::cluster::ObjectName::parse("--pod-table-configmap", cm)?;
                tracing::info!(configmap = %cm, node = %node, "watching the pod table through the API server");
                Some(tokio::spawn(crate::cluster::podtable::watch(
                    client.clone(),
                    cm,
                    Arc::clone(src),
                    events.clone(),
                    Some(Arc::new({
                        let state = Arc::clone(&state);
                        move |o: &crate::podtable::RefreshOutcome| state.table_refreshed(o)
                    })),
                )))
            }
            _ => None,
        };
        metrics.follow(&watcher);
        let manager = (!args.standalone).then(|| {
            DevicePluginManager::start(
                ManagerConfig {
                    kubelet_dir: args.kubelet_dir.clone(),
                    devinfo_dir: args.devinfo_dir.clone(),
                    cdi: args.cdi,
                    ..ManagerConfig::default()
                },
                watcher.subscribe(),
            )
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let metrics_task = (!args.no_metrics).then(|| {
            let mut rx = stop_rx.clone();
            let (addr, remote, reg) = (
                args.metrics_addr,
                args.metrics_allow_remote,
                registry.clone(),
            );
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                if let Err(e) = crate::metrics::serve(addr, remote, reg, stopped).await {
                    tracing::error!(error = %e, %addr, "metrics server");
                }
            })
        });
        let gauges = tokio::spawn(publish_counts(
            Arc::clone(&state),
            metrics.clone(),
            stop_rx.clone(),
        ));
        let reload = {
            let (state, metrics) = (Arc::clone(&state), metrics.clone());
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    reload_pools(&state, &metrics).await;
                }
            })
        };
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        };
        let res = agent.serve(shutdown).await;
        let _ = stop_tx.send(true);
        reload.abort();
        if let Some(t) = table_watch {
            t.abort();
        }
        if let Some(t) = renewer {
            t.abort();
        }
        gauges.abort();
        if let Some(m) = manager {
            m.shutdown().await;
        }
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        res.map_err(anyhow::Error::from)
    })
}

/// The API client, when one is configured (`--kubeconfig`, or in a pod its service account).
/// `--pod-table-configmap` without one is a start-up error. Building a client does not connect.
async fn api_client(args: &Args) -> anyhow::Result<Option<kube::Client>> {
    if let Some(cm) = &args.pod_table_configmap {
        crate::cluster::ObjectName::parse("--pod-table-configmap", cm)?;
    }
    match crate::cluster::connect(args.kubeconfig.as_deref()).await {
        Ok(c) => Ok(Some(c)),
        Err(crate::cluster::ClusterError::NotConfigured) if args.pod_table_configmap.is_none() => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// SIGHUP: the watcher takes the new pool config, for the node API and the kubelet side at once;
/// an invalid file leaves the last good one in force.
async fn reload_pools(state: &State, metrics: &AgentMetrics) {
    if state.cfg.pool_config.is_none() {
        return;
    }
    let res = state.reload_pools().await;
    metrics.config_reload(res.is_ok());
    match res {
        Ok(()) => tracing::info!("SIGHUP: pool config reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: pool config rejected; keeping the last good one")
        }
    }
}

/// Keeps the attached-VF gauges and the pod table reload counter current (every 2 s).
async fn publish_counts(
    state: Arc<State>,
    metrics: AgentMetrics,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut last_loads = (0u64, 0u64);
    loop {
        let view = state.snapshot();
        if let Ok(atts) = state.ledger.list() {
            for pool in view.pools.iter() {
                let n = atts
                    .iter()
                    .filter(|a| pool.devices.iter().any(|d| d.id == a.vf_pci))
                    .count();
                metrics.set_attached(&pool.resource(), n);
            }
        }
        if let Some(l) = &state.leases {
            let c = l.counts();
            metrics.set_ip_leases(c.held, c.fenced);
        }
        if let Some(src) = &state.podtable {
            let st = src.lock().unwrap_or_else(|e| e.into_inner()).status();
            for _ in last_loads.0..st.loads_ok {
                metrics.pod_table_reload(true);
            }
            for _ in last_loads.1..st.loads_failed {
                metrics.pod_table_reload(false);
            }
            last_loads = (st.loads_ok, st.loads_failed);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

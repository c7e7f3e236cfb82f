//! `run`: the node agent. Serves the node API on a Unix socket until SIGTERM/SIGINT; SIGHUP
//! reloads the pool config (an invalid file keeps the last good one).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::agent::{Agent, AgentConfig};

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node API socket the CNI dials.
    #[arg(long, default_value = sriov_proto::node::DEFAULT_SOCKET)]
    socket: PathBuf,
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
    #[arg(long)]
    pod_table: Option<PathBuf>,
    /// No kubelet: the agent picks a free VF of the netconf's `resourceName` pool itself.
    #[arg(long)]
    standalone: bool,
    /// Seconds between reconciler passes (free attachments whose netns is gone, re-scan).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    reconcile_interval: u64,
}

impl From<Args> for AgentConfig {
    fn from(a: Args) -> Self {
        AgentConfig {
            socket: a.socket,
            state_dir: a.state_dir,
            sysfs_root: a.sysfs_root,
            proc_root: a.proc_root,
            pool_config: a.config,
            pod_table: a.pod_table,
            standalone: a.standalone,
            reconcile_interval: Duration::from_secs(a.reconcile_interval),
        }
    }
}

/// Runs the agent on a multi-thread runtime until SIGTERM or SIGINT.
pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    rt.block_on(async move {
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let agent = Agent::start(args.into()).await?;
        let state = std::sync::Arc::clone(agent.state());
        let reload = tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match state.reload_pools() {
                    Ok(()) => tracing::info!("SIGHUP: pool config reloaded"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: pool config rejected; keeping the last good one"),
                }
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        };
        let res = agent.serve(shutdown).await;
        reload.abort();
        res.map_err(anyhow::Error::from)
    })
}

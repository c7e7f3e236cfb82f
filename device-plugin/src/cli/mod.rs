//! Command-line surface: one subcommand per job, each in its own module.

mod emulate;
mod inventory;
mod run;
mod status;
mod vfs;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Where `emulate` builds its synthetic sysfs tree unless told otherwise.
pub const DEFAULT_EMULATED_SYSFS: &str = "/run/sriov-emu/sys";

/// SR-IOV node agent and tools.
#[derive(Debug, Parser)]
#[command(name = "sriov-device-plugin", version, about)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create or remove an emulated SR-IOV NIC (bridge + veth pairs + synthetic sysfs).
    Emulate {
        /// Create, remove or inspect an emulated NIC.
        #[command(subcommand)]
        action: emulate::Action,
    },
    /// Print what discovery sees: PFs, VFs, netdevs, drivers, NUMA (and pools with --config).
    Inventory(inventory::Args),
    /// Run the node agent: the node API for the CNI, the ledger, the pod table, the reconciler.
    Run(Box<run::Args>),
    /// Show what the running agent holds: attachments and free VFs per pool.
    Status(status::Args),
    /// Print every VF's configuration as its PF reports it (JSON).
    Vfs(vfs::Args),
}

/// Runs the chosen subcommand.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Emulate { action } => emulate::run(action),
        Cmd::Inventory(args) => inventory::run(args),
        Cmd::Run(args) => run::run(*args),
        Cmd::Status(args) => status::run(args),
        Cmd::Vfs(args) => vfs::run(args),
    }
}

/// A current-thread runtime for the short async jobs of the tools.
fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(f))
}

/// `--sysfs-root` default for the tools that act on the emulated NIC.
fn emulated_root(arg: Option<PathBuf>) -> PathBuf {
    arg.unwrap_or_else(|| PathBuf::from(DEFAULT_EMULATED_SYSFS))
}

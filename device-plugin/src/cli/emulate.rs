//! `emulate up|down`: the veth-backed SR-IOV NIC used by the demo and the tests.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use sriov_hw::emulated;

/// What to do with the emulated NIC.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Create (or reshape) the emulated PF with N VFs; idempotent.
    Up {
        /// Name of the PF (the bridge acting as the NIC's embedded switch).
        #[arg(long)]
        pf: String,
        /// Number of VFs (1-256).
        #[arg(long)]
        vfs: u32,
        /// Root of the synthetic sysfs tree.
        #[arg(long)]
        sysfs_root: Option<PathBuf>,
    },
    /// Remove the emulated PF and everything it created; idempotent.
    Down {
        #[arg(long)]
        pf: String,
        #[arg(long)]
        sysfs_root: Option<PathBuf>,
    },
}

/// Runs `emulate up` or `emulate down`.
pub fn run(action: Action) -> anyhow::Result<()> {
    match action {
        Action::Up {
            pf,
            vfs,
            sysfs_root,
        } => {
            let spec = emulated::EmulateSpec {
                pf: pf.clone(),
                vfs,
                sysfs_root: super::emulated_root(sysfs_root),
            };
            let nic = super::block_on(emulated::up(&spec))?
                .with_context(|| format!("emulate up --pf {pf} --vfs {vfs}"))?;
            println!("{}", serde_json::to_string_pretty(&nic)?);
            Ok(())
        }
        Action::Down { pf, sysfs_root } => {
            let root = super::emulated_root(sysfs_root);
            super::block_on(emulated::down(&pf, &root))?
                .with_context(|| format!("emulate down --pf {pf}"))?;
            Ok(())
        }
    }
}

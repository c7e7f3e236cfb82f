//! `vfs --pf NAME`: every VF's configuration as the PF reports it (through netlink for real
//! drivers, from the emulated NIC's registers for the emulated one) — what `ip -d link show` shows,
//! in JSON, through the same code the CNI uses.

use std::path::PathBuf;

use anyhow::Context;
use sriov_hw::discovery;
use sriov_hw::netlink::Netlink;
use sriov_hw::sysfs::Sysfs;
use sriov_hw::vfctl::{Backend, VfControl};

/// Arguments of `vfs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The PF's netdev name.
    #[arg(long)]
    pf: String,
    /// Root of the sysfs tree the PF is found in.
    #[arg(long, default_value = "/sys")]
    sysfs_root: PathBuf,
}

/// Prints the VF states of one PF as JSON.
pub fn run(args: Args) -> anyhow::Result<()> {
    let inv = discovery::discover(&Sysfs::new(&args.sysfs_root), None);
    let pf = inv
        .pfs
        .iter()
        .find(|p| p.netdevs.contains(&args.pf))
        .with_context(|| {
            format!(
                "no SR-IOV PF with netdev {} under {}",
                args.pf,
                args.sysfs_root.display()
            )
        })?;
    let driver = pf.driver.clone().unwrap_or_default();
    let states = super::block_on(async {
        let nl = Netlink::host()?;
        let backend = Backend::for_driver(&driver, nl, &args.sysfs_root);
        anyhow::Ok(backend.vf_states(&args.pf).await?)
    })??;
    println!("{}", serde_json::to_string_pretty(&states)?);
    Ok(())
}

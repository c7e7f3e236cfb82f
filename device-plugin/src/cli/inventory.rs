//! `inventory`: what discovery sees, for operators and tests.

use std::path::PathBuf;

use sriov_hw::discovery;

use crate::pools::{self, PoolConfig};
use sriov_hw::sysfs::Sysfs;

/// Arguments of `inventory`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Root of the sysfs tree to read.
    #[arg(long, default_value = "/sys")]
    sysfs_root: PathBuf,
    /// Root of procfs (for the default-route check).
    #[arg(long, default_value = "/proc")]
    proc_root: PathBuf,
    /// Pool config (reference device plugin `resourceList` format): also show the pools.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// "Vendor Device" from the PCI ID database (the table view only: the CNI never loads it).
fn device_name(vendor: u16, device: u16) -> String {
    match pci_ids::Device::from_vid_pid(vendor, device) {
        Some(d) => format!("{} {}", d.vendor().name(), d.name()),
        None => format!("{vendor:04x}:{device:04x}"),
    }
}

/// Runs discovery once and prints it.
pub fn run(args: Args) -> anyhow::Result<()> {
    let sysfs = Sysfs::new(&args.sysfs_root);
    let inv = discovery::discover(&sysfs, Some(&args.proc_root));
    let pools = match &args.config {
        Some(path) => Some(pools::assign(&PoolConfig::load(path)?, &inv)),
        None => None,
    };
    if args.json {
        let mut doc = serde_json::to_value(&inv)?;
        if let (Some(obj), Some(pools)) = (doc.as_object_mut(), &pools) {
            obj.insert("pools".into(), serde_json::to_value(pools)?);
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    for pf in &inv.pfs {
        println!(
            "PF {} {} driver={} vfs={}/{} numa={} [{}]",
            pf.pci,
            pf.netdevs.join(","),
            pf.driver.as_deref().unwrap_or("-"),
            pf.num_vfs,
            pf.total_vfs,
            pf.numa_node.map_or("-".into(), |n| n.to_string()),
            device_name(pf.vendor, pf.device),
        );
        for vf in &pf.vfs {
            println!(
                "  VF {:>3} {} {} driver={}",
                vf.index,
                vf.pci,
                vf.netdevs.join(","),
                vf.driver.as_deref().unwrap_or("-")
            );
        }
    }
    for pool in pools.iter().flatten() {
        println!("pool {} ({} VFs)", pool.resource, pool.vfs.len());
    }
    for w in &inv.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

//! Discovery against the real driver: `sriov-device-plugin inventory --json` must find the PF
//! and every VF with the PCI address, driver and index the kernel's sysfs links give.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::Options;
use super::report::{Report, info};

/// The PCI layout QEMU gives an igb behind a pcie-root-port with 7 VFs (offset 0x80, stride 2).
pub const QEMU_PF_PCI: &str = "0000:01:00.0";
pub const QEMU_VF_PCIS: [&str; 7] = [
    "0000:01:10.0",
    "0000:01:10.2",
    "0000:01:10.4",
    "0000:01:10.6",
    "0000:01:11.0",
    "0000:01:11.2",
    "0000:01:11.4",
];

/// One VF as the test uses it.
#[derive(Debug, Clone)]
pub struct VfInfo {
    pub index: u32,
    pub pci: String,
    pub driver: String,
    /// Its netdev name in the host namespace at the start (empty for vfio-pci).
    pub netdev: String,
}

/// The PF under test.
#[derive(Debug, Clone)]
pub struct PfInfo {
    pub name: String,
    pub pci: String,
    pub driver: String,
    pub vfs: Vec<VfInfo>,
}

/// Runs `inventory --json` and checks it against sysfs (and the QEMU layout when asked).
pub fn check(opts: &Options, report: &mut Report) -> Option<PfInfo> {
    let out = Command::new(crate::bin("sriov-device-plugin"))
        .args(["inventory", "--json", "--sysfs-root"])
        .arg(&opts.sysfs)
        .output();
    let doc: Value = match out {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).unwrap_or_default(),
        Ok(o) => {
            report.check(
                "inventory.runs",
                Err(String::from_utf8_lossy(&o.stderr).into_owned()),
            );
            return None;
        }
        Err(e) => {
            report.check("inventory.runs", Err(e.to_string()));
            return None;
        }
    };
    let pf = doc["pfs"].as_array().and_then(|pfs| {
        pfs.iter().find(|p| {
            p["netdevs"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n == &opts.pf))
        })
    });
    let Some(pf) = pf else {
        report.check(
            "inventory.pf",
            Err(format!("no PF with netdev {} in {doc}", opts.pf)),
        );
        return None;
    };
    let found = PfInfo {
        name: opts.pf.clone(),
        pci: pf["pci"].as_str().unwrap_or("").to_string(),
        driver: pf["driver"].as_str().unwrap_or("").to_string(),
        vfs: pf["vfs"]
            .as_array()
            .map(|vfs| {
                vfs.iter()
                    .map(|v| VfInfo {
                        index: v["index"].as_u64().unwrap_or(u64::MAX) as u32,
                        pci: v["pci"].as_str().unwrap_or("").to_string(),
                        driver: v["driver"].as_str().unwrap_or("").to_string(),
                        netdev: v["netdevs"][0].as_str().unwrap_or("").to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    info(format!(
        "inventory: PF {} {} driver {} num_vfs {} VFs {:?}",
        found.name,
        found.pci,
        found.driver,
        pf["num_vfs"],
        found
            .vfs
            .iter()
            .map(|v| format!("{}={} {} {}", v.index, v.pci, v.driver, v.netdev))
            .collect::<Vec<_>>()
    ));
    if opts.qemu {
        report.expect(
            "inventory.pf",
            found.pci == QEMU_PF_PCI && found.driver == "igb",
            || {
                format!(
                    "PF {} driver {}, want {QEMU_PF_PCI} igb",
                    found.pci, found.driver
                )
            },
        );
        let got: Vec<&str> = found.vfs.iter().map(|v| v.pci.as_str()).collect();
        report.expect("inventory.vf_addresses", got == QEMU_VF_PCIS, || {
            format!("VFs {got:?}, want {QEMU_VF_PCIS:?}")
        });
        report.expect(
            "inventory.vf_drivers",
            found.vfs.iter().all(|v| v.driver == "igbvf"),
            || format!("{:?}", found.vfs),
        );
    } else {
        report.expect("inventory.pf", !found.pci.is_empty(), || format!("{pf}"));
        report.expect("inventory.vfs", found.vfs.len() >= 3, || {
            format!("{} VFs; the checks need at least 3", found.vfs.len())
        });
    }
    report.check(
        "inventory.vf_indexes_match_sysfs",
        sysfs_agrees(&opts.sysfs, &found),
    );
    report.expect(
        "inventory.vf_netdevs",
        found
            .vfs
            .iter()
            .filter(|v| v.driver != "vfio-pci")
            .all(|v| !v.netdev.is_empty()),
        || format!("a VF without a netdev: {:?}", found.vfs),
    );
    report.expect(
        "inventory.num_vfs",
        pf["num_vfs"].as_u64() == Some(found.vfs.len() as u64),
        || {
            format!(
                "num_vfs {} but {} VFs listed",
                pf["num_vfs"],
                found.vfs.len()
            )
        },
    );
    Some(found)
}

/// Every VF's index is the `virtfnN` link of the PF that points at its PCI address, and its
/// `physfn` points back at the PF.
fn sysfs_agrees(sysfs: &Path, pf: &PfInfo) -> Result<(), String> {
    let dev = |pci: &str| sysfs.join("bus/pci/devices").join(pci);
    for vf in &pf.vfs {
        let virtfn = std::fs::read_link(dev(&pf.pci).join(format!("virtfn{}", vf.index)))
            .map_err(|e| format!("virtfn{}: {e}", vf.index))?;
        if virtfn.file_name().and_then(|n| n.to_str()) != Some(vf.pci.as_str()) {
            return Err(format!(
                "virtfn{} -> {virtfn:?}, inventory says {}",
                vf.index, vf.pci
            ));
        }
        let physfn = std::fs::read_link(dev(&vf.pci).join("physfn"))
            .map_err(|e| format!("{} physfn: {e}", vf.pci))?;
        if physfn.file_name().and_then(|n| n.to_str()) != Some(pf.pci.as_str()) {
            return Err(format!("{} physfn -> {physfn:?}", vf.pci));
        }
    }
    Ok(())
}

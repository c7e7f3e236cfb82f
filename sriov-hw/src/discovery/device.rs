//! The attributes every PCI function has, read from its (resolved, open) sysfs directory.
//!
//! Required attributes (`vendor`, `device`) fail the read; optional ones that are absent are
//! `None` (unbound driver, no NUMA, no IOMMU, netdev in another namespace); optional ones that are
//! present but unreadable are `None` plus a warning naming the path.

use crate::sysfs::{SysfsDir, SysfsError};

/// What [`read`] found; the caller adds the PF- or VF-specific parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Common {
    pub vendor: u16,
    pub device: u16,
    pub driver: Option<String>,
    pub netdevs: Vec<String>,
    pub numa_node: Option<u32>,
    pub link_type: Option<String>,
    pub iommu_group: Option<u32>,
    pub rdma: bool,
}

/// Reads the attributes of the function whose directory is `dir`. Warnings about optional
/// attributes are pushed to `warnings`.
pub(crate) fn read(dir: &SysfsDir<'_>, warnings: &mut Vec<String>) -> Result<Common, SysfsError> {
    let vendor = dir.read_hex_u16("vendor")?;
    let device = dir.read_hex_u16("device")?;
    let driver = optional(dir.link_name("driver"), warnings);
    let netdevs = optional(dir.list_dir("net"), warnings).unwrap_or_default();
    let numa_node =
        optional(dir.read_dec::<i64>("numa_node"), warnings).and_then(|n| numa(dir, n, warnings));
    let iommu_group =
        optional(dir.link_name("iommu_group"), warnings).and_then(|g| match g.parse::<u32>() {
            Ok(g) => Some(g),
            Err(_) => {
                let path = dir.path("iommu_group").display().to_string();
                warnings.push(format!("{path}: IOMMU group {g:?} is not a number"));
                None
            }
        });
    let link_type = netdevs.first().and_then(|nd| {
        let t = dir.read_dec::<u32>(std::path::Path::new("net").join(nd).join("type"));
        optional(t, warnings).map(link_type_name)
    });
    // An RDMA-capable function lists its RDMA device(s) under `infiniband/`.
    let rdma = dir.list_dir("infiniband").is_ok_and(|d| !d.is_empty());
    Ok(Common {
        rdma,
        vendor,
        device,
        driver,
        netdevs,
        numa_node,
        link_type,
        iommu_group,
    })
}

/// `numa_node` is -1 when the platform has no NUMA information.
fn numa(dir: &SysfsDir<'_>, n: i64, warnings: &mut Vec<String>) -> Option<u32> {
    if n < 0 {
        return None;
    }
    u32::try_from(n).ok().or_else(|| {
        let path = dir.path("numa_node").display().to_string();
        warnings.push(format!("{path}: NUMA node {n} out of range"));
        None
    })
}

/// Absent → `None` silently; present but broken → `None` and a warning.
fn optional<T>(r: Result<T, SysfsError>, warnings: &mut Vec<String>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            warnings.push(e.to_string());
            None
        }
    }
}

/// The name the device plugin's `linkTypes` selector matches: `ether` (ARPHRD_ETHER, 1),
/// `infiniband` (ARPHRD_INFINIBAND, 32), otherwise the ARPHRD number itself.
pub fn link_type_name(arphrd: u32) -> String {
    match arphrd {
        1 => "ether".into(),
        32 => "infiniband".into(),
        n => n.to_string(),
    }
}

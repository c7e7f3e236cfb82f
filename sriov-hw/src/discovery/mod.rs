//! PF/VF discovery from a sysfs tree (the host's, a fixture, or the emulated NIC's).
//!
//! Two entry points with different costs:
//! - [`discover`] scans every PCI function for the agent's inventory. It never fails: whatever
//!   cannot be read becomes a warning naming the path, and the rest is still reported.
//! - [`vf`] / [`pf_netdev_of_vf`] look up one VF for the CNI on every ADD/DEL. They read only that
//!   VF's and its PF's files (no scan of the bus) and fail with a [`DiscoveryError`].
//!
//! The kernel's layout: PFs are functions with `sriov_totalvfs` > 0; `virtfn<N>` links in the PF's
//! directory name VF `N`; each VF's `physfn` links back to its PF.

mod device;
mod routes;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pci::PciAddr;
use crate::sysfs::{Sysfs, SysfsDir, SysfsError};

pub use device::link_type_name;
pub use routes::default_route_interfaces;

/// Where the PCI functions are listed, relative to the sysfs root.
const PCI_DEVICES: &str = "bus/pci/devices";

/// The proc root used when [`discover`] is not given one.
pub const DEFAULT_PROC_ROOT: &str = "/proc";

/// An SR-IOV physical function and its currently enabled VFs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pf {
    /// The PF's PCI address.
    pub pci: PciAddr,
    /// PCI vendor ID (`vendor`), e.g. 0x8086.
    pub vendor: u16,
    /// PCI device ID (`device`), e.g. 0x1593.
    pub device: u16,
    /// Bound driver (`ice`, `mlx5_core`…); `None` when unbound.
    pub driver: Option<String>,
    /// Netdev names in this network namespace, sorted; empty when unbound. VF control goes through
    /// the first one.
    pub netdevs: Vec<String>,
    /// NUMA node; `None` when the platform reports none (-1) or the file is absent.
    pub numa_node: Option<u32>,
    /// `ether`, `infiniband`, or the ARPHRD number, from the first netdev; `None` without netdev.
    pub link_type: Option<String>,
    /// `sriov_totalvfs`: how many VFs the PF can have (always > 0 for a PF).
    pub total_vfs: u32,
    /// `sriov_numvfs`: how many are enabled (falls back to the VFs found if unreadable).
    pub num_vfs: u32,
    /// Whether one of `netdevs` carries an IPv4 or IPv6 default route (the node's uplink).
    pub default_route: bool,
    /// The enabled VFs that could be read, by index.
    pub vfs: Vec<Vf>,
}

/// An SR-IOV virtual function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vf {
    /// The VF's PCI address: its stable identity (its netdev gets renamed and moved into pods).
    pub pci: PciAddr,
    /// The VF number on its PF (`virtfn<index>`), what IFLA_VF_* messages on the PF take.
    pub index: u32,
    /// The PF's PCI address.
    pub pf: PciAddr,
    /// PCI vendor ID.
    pub vendor: u16,
    /// PCI device ID (the VF's own, e.g. 0x1889 for an E810 VF).
    pub device: u16,
    /// Bound driver (`iavf`, `mlx5_core`, `vfio-pci`…); `None` when unbound.
    pub driver: Option<String>,
    /// Netdev names in this network namespace, sorted; empty for vfio-pci VFs and for VFs that
    /// are in a pod's namespace.
    pub netdevs: Vec<String>,
    /// NUMA node, as for [`Pf::numa_node`].
    pub numa_node: Option<u32>,
    /// IOMMU group number (what `/dev/vfio/<group>` is named); `None` without an IOMMU.
    pub iommu_group: Option<u32>,
    /// As [`Pf::link_type`], from the VF's own netdev.
    pub link_type: Option<String>,
    /// Has an RDMA device (`infiniband/` entries): what the pool selector `isRdma` matches.
    #[serde(default)]
    pub rdma: bool,
}

/// Everything [`discover`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// PFs sorted by PCI address.
    pub pfs: Vec<Pf>,
    /// One line per thing that could not be read, each naming its path; not fatal.
    pub warnings: Vec<String>,
    /// What sysfs failed to answer (an I/O error, not "no such file"): such a device is not
    /// known to be gone, so [`Inventory::carry_over`] keeps it as the last scan saw it.
    #[serde(default, skip_serializing_if = "Unread::is_empty")]
    pub unread: Unread,
}

/// The parts of a scan that could not be read (see [`Inventory::unread`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unread {
    /// The PCI bus could not be listed at all (e.g. out of file descriptors).
    pub bus: bool,
    /// PFs that are on the bus but could not be read.
    pub pfs: Vec<PciAddr>,
    /// VFs (PF, index) whose link is there but that could not be read.
    pub vfs: Vec<(PciAddr, u32)>,
}

impl Unread {
    /// Whether the scan read everything there was.
    pub fn is_empty(&self) -> bool {
        !self.bus && self.pfs.is_empty() && self.vfs.is_empty()
    }
}

impl Inventory {
    /// This scan with what it could not read taken from `prev`, the last inventory in force:
    /// everything when the bus could not be listed, and each PF or VF that failed to read as
    /// `prev` had it. A device is withdrawn only when sysfs says it is gone, never because one
    /// scan hit an error (an exhausted descriptor table would otherwise withdraw them all).
    pub fn carry_over(mut self, prev: &Inventory) -> Inventory {
        if self.unread.bus {
            return Inventory {
                pfs: prev.pfs.clone(),
                warnings: self.warnings,
                unread: self.unread,
            };
        }
        for pci in &self.unread.pfs {
            if self.pf(*pci).is_none()
                && let Some(old) = prev.pf(*pci)
            {
                self.pfs.push(old.clone());
            }
        }
        for (pf, index) in &self.unread.vfs {
            let old = prev
                .pf(*pf)
                .and_then(|p| p.vfs.iter().find(|v| v.index == *index));
            if let (Some(now), Some(old)) = (self.pfs.iter_mut().find(|p| p.pci == *pf), old)
                && !now.vfs.iter().any(|v| v.index == *index)
            {
                now.vfs.push(old.clone());
                now.vfs.sort_by_key(|v| v.index);
            }
        }
        self.pfs.sort_by_key(|pf| pf.pci);
        self
    }

    /// All VFs of all PFs, in PF then index order.
    pub fn vfs(&self) -> impl Iterator<Item = &Vf> {
        self.pfs.iter().flat_map(|pf| pf.vfs.iter())
    }

    /// The PF at `pci`, if discovered.
    pub fn pf(&self, pci: PciAddr) -> Option<&Pf> {
        self.pfs.iter().find(|pf| pf.pci == pci)
    }

    /// The VF at `pci`, if discovered.
    pub fn vf(&self, pci: PciAddr) -> Option<&Vf> {
        self.vfs().find(|vf| vf.pci == pci)
    }
}

/// Why a single-device lookup ([`vf`], [`pf_netdev_of_vf`]) failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// No such PCI function under the root's `bus/pci/devices`.
    #[error("no PCI device {pci} under {}", root.display())]
    NoSuchDevice {
        /// The address that was looked up.
        pci: PciAddr,
        /// The sysfs root it was looked up under (not `/sys` in tests and on the emulated NIC).
        root: PathBuf,
    },
    /// The function exists but has no `physfn` link, so it is not a VF.
    #[error("{pci} is not an SR-IOV VF (no physfn link)")]
    NotAVf {
        /// The function that was expected to be a VF.
        pci: PciAddr,
    },
    /// The function exists but has no (or zero) `sriov_totalvfs`, so it is not a PF.
    #[error("{pci} is not an SR-IOV PF (no sriov_totalvfs)")]
    NotAPf {
        /// The function that was expected to be a PF.
        pci: PciAddr,
    },
    /// `physfn` does not name a PCI address, or names one that is not there.
    #[error("VF {vf}: physfn points at {}, which is not an existing PCI function", target.display())]
    BadPhysfn {
        /// The VF whose `physfn` link is bad.
        vf: PciAddr,
        /// Where the link points, as an absolute path.
        target: PathBuf,
    },
    /// No `virtfn<N>` of the PF points back at the VF (VFs being re-created under us).
    #[error("VF {vf}: no virtfn link of its PF {pf} points to it")]
    NoVirtfn {
        /// The VF that no `virtfn<N>` names.
        vf: PciAddr,
        /// The PF its `physfn` points at.
        pf: PciAddr,
    },
    /// The PF has no netdev in this namespace (unbound, or its driver has none), so VF control
    /// through it is impossible.
    #[error("PF {pf} has no netdev (driver unbound?)")]
    NoPfNetdev {
        /// The PF's PCI address.
        pf: PciAddr,
    },
    /// A required attribute could not be read.
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
}

/// Scans every PCI function under `sysfs` and returns the PFs (with their VFs), sorted by
/// address, VFs by index. `proc_root` (default `/proc`) is where route tables are read to set
/// [`Pf::default_route`]. Never fails and never panics: unreadable parts become warnings, and a VF
/// is left out when the CNI could not use it (no readable IDs, or `physfn` not pointing back).
pub fn discover(sysfs: &Sysfs, proc_root: Option<&Path>) -> Inventory {
    let mut inv = Inventory::default();
    let listed = sysfs
        .dir(PCI_DEVICES)
        .and_then(|bus| Ok((bus.list_dir("")?, bus)));
    let (names, bus) = match listed {
        Ok(n) => n,
        Err(e) => {
            inv.unread.bus = !e.is_not_found();
            inv.warnings.push(format!("no PCI devices listed: {e}"));
            return inv;
        }
    };
    let warnings = &mut inv.warnings;
    let unread = &mut inv.unread;
    let mut found = Vec::new();
    for name in names {
        let Ok(pci) = name.parse::<PciAddr>() else {
            let path = sysfs.path(Path::new(PCI_DEVICES).join(&name));
            let path = path.display().to_string();
            warnings.push(format!("{path}: not a PCI address, ignored"));
            continue;
        };
        // One confined open per device: on a node with hundreds of VFs nearly every entry is a VF,
        // which has no `sriov_totalvfs`, so the device directory is only opened for PFs.
        let total =
            sysfs.read_dec::<u32>(Path::new(PCI_DEVICES).join(&name).join("sriov_totalvfs"));
        let total_vfs = match total {
            Ok(0) => continue,
            Ok(n) => n,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                warnings.push(format!("PF {pci} ignored: {e}"));
                unread.pfs.push(pci);
                continue;
            }
        };
        let dir = match bus.dir(&name) {
            Ok(d) => d,
            Err(e) => {
                warnings.push(format!("PCI device {pci} ignored: {e}"));
                if !e.is_not_found() {
                    unread.pfs.push(pci);
                }
                continue;
            }
        };
        found.push((pci, dir, total_vfs));
    }
    for (pci, read, pf_warnings, unread_vfs) in read_pfs(found) {
        warnings.extend(pf_warnings);
        unread.vfs.extend(unread_vfs.into_iter().map(|i| (pci, i)));
        match read {
            Ok(pf) => inv.pfs.push(pf),
            Err(e) => {
                warnings.push(format!("PF {pci} ignored: {e}"));
                if !e.is_not_found() {
                    unread.pfs.push(pci);
                }
            }
        }
    }
    inv.pfs.sort_by_key(|pf| pf.pci);

    let proc_root = proc_root.unwrap_or(Path::new(DEFAULT_PROC_ROOT));
    match default_route_interfaces(proc_root) {
        Ok(ifs) => {
            for pf in &mut inv.pfs {
                pf.default_route = pf.netdevs.iter().any(|n| ifs.contains(n));
            }
        }
        Err(e) => inv
            .warnings
            .push(format!("default routes unknown, no PF marked: {e}")),
    }
    inv
}

/// Reads one PF at its directory `dir`, with its VFs.
/// One PF's outcome: its address, what reading it gave, its warnings, and the indices of VFs
/// that are there but could not be read.
type PfRead = (PciAddr, Result<Pf, SysfsError>, Vec<String>, Vec<u32>);

/// Reads the PFs found on the bus (and all their VFs), on up to one thread per CPU: a node's PFs
/// are independent and reading them is nothing but syscalls, so 4 PFs × 256 VFs take about half
/// the time on two cores. Results come back in the order of `found`.
fn read_pfs(found: Vec<(PciAddr, SysfsDir<'_>, u32)>) -> Vec<PfRead> {
    let one = |(pci, dir, total): &(PciAddr, SysfsDir<'_>, u32)| {
        let (mut w, mut unread) = (Vec::new(), Vec::new());
        let read = read_pf(*pci, dir, *total, &mut w, &mut unread);
        (*pci, read, w, unread)
    };
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .min(found.len());
    if threads <= 1 {
        return found.iter().map(one).collect();
    }
    let chunk = found.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = found
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            // A worker that panicked (a bug, not bad input) panics the scan, as one thread would.
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

fn read_pf(
    pci: PciAddr,
    dir: &SysfsDir<'_>,
    total_vfs: u32,
    warnings: &mut Vec<String>,
    unread_vfs: &mut Vec<u32>,
) -> Result<Pf, SysfsError> {
    let c = device::read(dir, warnings)?;
    let num_vfs = match dir.read_dec::<u32>("sriov_numvfs") {
        Ok(n) => Some(n),
        Err(e) => {
            warnings.push(format!("PF {pci}: {e}"));
            None
        }
    };
    let mut vfs = Vec::new();
    for (index, link) in virtfn_names(dir)? {
        match read_vf_of(dir, pci, index, &link) {
            Ok((vf, vf_warnings)) => {
                warnings.extend(vf_warnings);
                vfs.push(vf);
            }
            Err(e) => {
                warnings.push(format!("PF {pci} VF {index} ignored: {e}"));
                if e.is_unread() {
                    unread_vfs.push(index);
                }
            }
        }
    }
    Ok(Pf {
        pci,
        vendor: c.vendor,
        device: c.device,
        driver: c.driver,
        netdevs: c.netdevs,
        numa_node: c.numa_node,
        link_type: c.link_type,
        total_vfs,
        num_vfs: num_vfs.unwrap_or(vfs.len() as u32),
        default_route: false,
        vfs,
    })
}

/// The `virtfn<N>` entries of a PF directory as (N, entry name), sorted by N.
fn virtfn_names(pf_dir: &SysfsDir<'_>) -> Result<Vec<(u32, String)>, SysfsError> {
    let mut links: Vec<(u32, String)> = pf_dir
        .list_dir("")?
        .into_iter()
        .filter_map(|name| Some((name.strip_prefix("virtfn")?.parse().ok()?, name)))
        .collect();
    links.sort_by_key(|(n, _)| *n);
    Ok(links)
}

/// The `virtfn<N>` entries of a PF directory as (N, root-relative link path), sorted by N.
fn virtfn_links(sysfs: &Sysfs, pf_dir: &Path) -> Result<Vec<(u32, PathBuf)>, SysfsError> {
    let mut links: Vec<(u32, PathBuf)> = sysfs
        .list_dir(pf_dir)?
        .into_iter()
        .filter_map(|name| {
            let n = name.strip_prefix("virtfn")?.parse().ok()?;
            Some((n, pf_dir.join(name)))
        })
        .collect();
    links.sort_by_key(|(n, _)| *n);
    Ok(links)
}

/// Why a VF found through its PF's `virtfn<N>` was left out of the inventory.
#[derive(Debug, thiserror::Error)]
enum SkipVf {
    #[error("{0}")]
    Link(SysfsError),
    #[error("{}: link target is not a PCI address", .0.display())]
    BadTarget(PathBuf),
    #[error("{vf}: physfn does not point back to its PF ({reason})")]
    Physfn { vf: PciAddr, reason: String },
    #[error("{vf}: {err}")]
    Read { vf: PciAddr, err: SysfsError },
}

impl SkipVf {
    /// An I/O error rather than sysfs saying the VF is not (or no longer) there.
    fn is_unread(&self) -> bool {
        match self {
            SkipVf::Link(e) | SkipVf::Read { err: e, .. } => !e.is_not_found(),
            SkipVf::BadTarget(_) | SkipVf::Physfn { .. } => false,
        }
    }
}

/// Reads VF `index` of `pf` through the `virtfn` entry `link` of the PF's directory.
fn read_vf_of(
    pf_dir: &SysfsDir<'_>,
    pf: PciAddr,
    index: u32,
    link: &str,
) -> Result<(Vf, Vec<String>), SkipVf> {
    let target = pf_dir.link_target(link).map_err(SkipVf::Link)?;
    let vf: PciAddr = addr_of(&target).ok_or_else(|| SkipVf::BadTarget(pf_dir.path(link)))?;
    let read_err = |err| SkipVf::Read { vf, err };
    let dir = pf_dir.dir_at_root(&target).map_err(read_err)?;
    match dir.link_name("physfn") {
        Ok(name) if name == pf.to_string() => {}
        Ok(name) => {
            let reason = format!("it names {name}");
            return Err(SkipVf::Physfn { vf, reason });
        }
        Err(e) => {
            let reason = e.to_string();
            return Err(SkipVf::Physfn { vf, reason });
        }
    }
    let mut warnings = Vec::new();
    let c = device::read(&dir, &mut warnings).map_err(read_err)?;
    Ok((vf_from(vf, index, pf, c), warnings))
}

fn vf_from(pci: PciAddr, index: u32, pf: PciAddr, c: device::Common) -> Vf {
    Vf {
        pci,
        index,
        pf,
        vendor: c.vendor,
        device: c.device,
        driver: c.driver,
        netdevs: c.netdevs,
        numa_node: c.numa_node,
        iommu_group: c.iommu_group,
        link_type: c.link_type,
        rdma: c.rdma,
    }
}

/// The PCI address a (root-relative) device path ends in.
fn addr_of(p: &Path) -> Option<PciAddr> {
    p.file_name()?.to_str()?.parse().ok()
}

/// The resolved directory of the function `pci`.
fn device_dir(sysfs: &Sysfs, pci: PciAddr) -> Result<PathBuf, DiscoveryError> {
    match sysfs.resolve(Path::new(PCI_DEVICES).join(pci.to_string())) {
        Ok(d) => Ok(d),
        Err(e) if e.is_not_found() => Err(DiscoveryError::NoSuchDevice {
            pci,
            root: sysfs.root().to_path_buf(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// The PF of the VF whose resolved directory is `dir`: its address and resolved directory.
fn parent_pf(sysfs: &Sysfs, vf: PciAddr, dir: &Path) -> Result<(PciAddr, PathBuf), DiscoveryError> {
    let target = match sysfs.link_target(dir.join("physfn")) {
        Ok(t) => t,
        Err(e) if e.is_not_found() => return Err(DiscoveryError::NotAVf { pci: vf }),
        Err(e) => return Err(e.into()),
    };
    let bad = || DiscoveryError::BadPhysfn {
        vf,
        target: sysfs.path(&target),
    };
    let pf = addr_of(&target).ok_or_else(bad)?;
    let pf_dir = sysfs.resolve(&target).map_err(|_| bad())?;
    Ok((pf, pf_dir))
}

/// The routing ID (bus << 8 | devfn) that `sriov_offset` and `sriov_stride` count in.
fn routing_id(pci: PciAddr) -> u32 {
    (u32::from(pci.bus) << 8) | (u32::from(pci.device) << 3) | u32::from(pci.function)
}

/// The index of `vf` on `pf`: first the kernel's arithmetic (`sriov_offset`, `sriov_stride`)
/// checked against one `virtfn` link, else a scan of the PF's `virtfn` links.
fn vf_index(sysfs: &Sysfs, vf: PciAddr, pf: PciAddr, pf_dir: &Path) -> Result<u32, DiscoveryError> {
    let want = vf.to_string();
    let points_here = |n: u32| {
        sysfs
            .link_name(pf_dir.join(format!("virtfn{n}")))
            .is_ok_and(|name| name == want)
    };
    let offset = sysfs.read_dec::<u32>(pf_dir.join("sriov_offset"));
    let stride = sysfs.read_dec::<u32>(pf_dir.join("sriov_stride"));
    if let (Ok(offset), Ok(stride)) = (offset, stride)
        && stride > 0
        && vf.domain == pf.domain
        && let Some(d) = routing_id(vf).checked_sub(routing_id(pf) + offset)
        && d % stride == 0
        && points_here(d / stride)
    {
        return Ok(d / stride);
    }
    for (n, link) in virtfn_links(sysfs, pf_dir)? {
        if sysfs.link_name(&link).is_ok_and(|name| name == want) {
            return Ok(n);
        }
    }
    Err(DiscoveryError::NoVirtfn { vf, pf })
}

/// Looks up one VF by PCI address: its PF, index and attributes. Reads only the VF's and its PF's
/// files, so the CNI can call it on every ADD/DEL. Unreadable optional attributes are logged and
/// left `None`; a function that is missing or not a VF is an error.
pub fn vf(sysfs: &Sysfs, pci: PciAddr) -> Result<Vf, DiscoveryError> {
    let dir = device_dir(sysfs, pci)?;
    let (pf, pf_dir) = parent_pf(sysfs, pci, &dir)?;
    let index = vf_index(sysfs, pci, pf, &pf_dir)?;
    let mut warnings = Vec::new();
    let c = device::read(&sysfs.dir(&dir)?, &mut warnings)?;
    for w in warnings {
        tracing::warn!(vf = %pci, "{w}");
    }
    Ok(vf_from(pci, index, pf, c))
}

/// The netdev names of function `pci` in this namespace (sorted; empty when it has none here):
/// how a VF that came back from a deleted pod namespace, under its pod-side name, is found again.
pub fn vf_netdevs(sysfs: &Sysfs, pci: PciAddr) -> Result<Vec<String>, DiscoveryError> {
    let dir = device_dir(sysfs, pci)?;
    match sysfs.list_dir(dir.join("net")) {
        Ok(v) => Ok(v),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The netdev of the PF whose VF is `vf`: the link the CNI sends IFLA_VF_* messages to. Fails
/// when `vf` is not a VF or the PF has no netdev in this namespace. With several netdevs (rare)
/// the first by name is used.
pub fn pf_netdev_of_vf(sysfs: &Sysfs, vf: PciAddr) -> Result<String, DiscoveryError> {
    let dir = device_dir(sysfs, vf)?;
    let (pf, pf_dir) = parent_pf(sysfs, vf, &dir)?;
    first_netdev(sysfs, pf, &pf_dir)
}

/// The netdev of the PF at `pf` (first by name); fails if `pf` is missing, not a PF, or has none.
pub fn pf_netdev(sysfs: &Sysfs, pf: PciAddr) -> Result<String, DiscoveryError> {
    let dir = device_dir(sysfs, pf)?;
    match sysfs.read_dec::<u32>(dir.join("sriov_totalvfs")) {
        Ok(n) if n > 0 => {}
        Ok(_) => return Err(DiscoveryError::NotAPf { pci: pf }),
        Err(e) if e.is_not_found() => return Err(DiscoveryError::NotAPf { pci: pf }),
        Err(e) => return Err(e.into()),
    }
    first_netdev(sysfs, pf, &dir)
}

fn first_netdev(sysfs: &Sysfs, pf: PciAddr, pf_dir: &Path) -> Result<String, DiscoveryError> {
    match sysfs.list_dir(pf_dir.join("net")) {
        Ok(names) => names
            .into_iter()
            .next()
            .ok_or(DiscoveryError::NoPfNetdev { pf }),
        Err(e) if e.is_not_found() => Err(DiscoveryError::NoPfNetdev { pf }),
        Err(e) => Err(e.into()),
    }
}

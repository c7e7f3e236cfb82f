//! The synthetic sysfs tree of an emulated PF, in the kernel's layout so generic discovery reads it
//! like `/sys`:
//!
//! ```text
//! <root>/devices/pciee00:<bb>/                       one "root complex" dir per PF (claims bus bb, bb+1)
//!   ee00:<bb>:00.0/                                  the PF
//!     vendor (0xee00) device (0x0100) class (0x020000) numa_node (-1)
//!     sriov_totalvfs (256) sriov_numvfs (N)
//!     driver -> ../../../bus/pci/drivers/sriov-emu
//!     virtfn<i> -> ../<vf addr>
//!     net/<pf>/{type (1), address, device -> ../../../ee00:<bb>:00.0}
//!     sriov_emu.json                                 metadata ([`EmulatedNic`])
//!     sriov_emu.lock                                 serialises register changes
//!     sriov_emu_vf/<i>.json                          VF registers ([`super::registers`])
//!   <vf addr>/                                       VF i (ee00:<bb>:01.0 … ee00:<bb+1>:00.7)
//!     vendor (0xee00) device (0x0101) class numa_node
//!     driver -> ../../../bus/pci/drivers/sriov-emu-vf
//!     physfn -> ../ee00:<bb>:00.0
//!     net/<pf>v<i>/{type, address, device -> ../../../<vf addr>}
//! <root>/bus/pci/devices/<addr> -> ../../../devices/pciee00:<bb>/<addr>
//! <root>/bus/pci/drivers/<driver>/<addr> -> ../../../../devices/pciee00:<bb>/<addr>
//! <root>/class/net/<ifname> -> ../../devices/pciee00:<bb>/<addr>/net/<ifname>
//! ```
//!
//! The `net/` entries name the host-side netdevs as `up` created them; like a sysfs snapshot, they
//! do not follow a VF netdev into a pod. Addresses are in the kernel's form with domain `ee00`
//! (`ee00:04:01.0`), as [`PciAddr`]'s `Display` prints them.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{
    EMU_PCI_DOMAIN, EMU_PF_DEVICE, EMU_VENDOR, EMU_VF_DEVICE, EMULATED_DRIVER, EMULATED_VF_DRIVER,
    EmulateError, EmulatedNic, MAX_VFS, pf_pci,
};
use crate::pci::PciAddr;

/// Name of the metadata file in the PF's directory.
pub const META_FILE: &str = "sriov_emu.json";

/// Ethernet's `ARPHRD_ETHER`, what `net/<if>/type` holds.
const ARPHRD_ETHER: &str = "1\n";

/// PCI class "Ethernet controller".
const CLASS_ETHERNET: &str = "0x020000\n";

/// The directory that holds PF and VF dirs of the PF on `bus`.
pub fn bus_dir(root: &Path, bus: u8) -> PathBuf {
    root.join("devices")
        .join(format!("pci{EMU_PCI_DOMAIN:04x}:{bus:02x}"))
}

/// The PF's device directory (where metadata and registers live).
pub fn pf_dir(root: &Path, bus: u8) -> PathBuf {
    bus_dir(root, bus).join(pf_pci(bus).to_string())
}

fn read_meta(path: &Path) -> Result<Option<EmulatedNic>, EmulateError> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EmulateError::io("read", path, e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| EmulateError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// The buses of every emulated PF directory under `root` (whatever state it is in).
fn claimed_buses(root: &Path) -> Result<Vec<u8>, EmulateError> {
    let devices = root.join("devices");
    let prefix = format!("pci{EMU_PCI_DOMAIN:04x}:");
    let entries = match fs::read_dir(&devices) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EmulateError::io("list", devices, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| EmulateError::io("list", &devices, e))?;
        let name = entry.file_name();
        let Some(bus) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .filter(|b| b.len() == 2)
            .and_then(|b| u8::from_str_radix(b, 16).ok())
        else {
            continue;
        };
        out.push(bus);
    }
    out.sort_unstable();
    Ok(out)
}

/// The buses whose PF directory carries PF `pf`'s `net/<pf>` entry, which `up` writes right after
/// claiming the bus, so half-built trees are found too. Normally one.
pub fn buses_of(root: &Path, pf: &str) -> Result<Vec<u8>, EmulateError> {
    Ok(claimed_buses(root)?
        .into_iter()
        .filter(|bus| pf_dir(root, *bus).join("net").join(pf).is_dir())
        .collect())
}

/// Where PF `pf` lives under `root`, if it was (even partly) emulated there: its bus and its
/// metadata (`None` if the metadata file is missing or corrupt, e.g. `up` died early).
pub fn locate(root: &Path, pf: &str) -> Result<Option<(u8, Option<EmulatedNic>)>, EmulateError> {
    if let Some(bus) = buses_of(root, pf)?.into_iter().next() {
        let dir = pf_dir(root, bus);
        let meta = match read_meta(&dir.join(META_FILE)) {
            Ok(m) => m.filter(|m| m.pf == pf && m.bus == bus),
            Err(EmulateError::Corrupt { .. }) => None,
            Err(e) => return Err(e),
        };
        return Ok(Some((bus, meta)));
    }
    Ok(None)
}

/// The metadata of PF `pf`, for VF control and revive: fast path through `class/net/<pf>/device`.
pub fn load(root: &Path, pf: &str) -> Result<EmulatedNic, EmulateError> {
    let fast = root
        .join("class/net")
        .join(pf)
        .join("device")
        .join(META_FILE);
    if let Ok(Some(m)) = read_meta(&fast)
        && m.pf == pf
    {
        return Ok(m);
    }
    match locate(root, pf)? {
        Some((_, Some(m))) => Ok(m),
        _ => Err(EmulateError::NoSuchPf {
            pf: pf.to_string(),
            root: root.to_path_buf(),
        }),
    }
}

/// Claims a free pair of buses (even `bb`, and `bb + 1`) for PF `pf` by creating its directory,
/// which is atomic, so concurrent `up`s of different PFs never share a bus, then marks it as
/// `pf`'s with the PF's `net/<pf>` entry.
pub fn allocate_bus(root: &Path, pf: &str) -> Result<u8, EmulateError> {
    let devices = root.join("devices");
    fs::create_dir_all(&devices).map_err(|e| EmulateError::io("create", &devices, e))?;
    for bus in (0..=u8::MAX).step_by(2) {
        let dir = bus_dir(root, bus);
        match fs::create_dir(&dir) {
            Ok(()) => {
                mkdir(&pf_dir(root, bus).join("net").join(pf))?;
                return Ok(bus);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(EmulateError::io("create", dir, e)),
        }
    }
    Err(EmulateError::NoFreeBus(root.to_path_buf()))
}

/// Writes `content` to `path` through a temporary file and a rename, so readers never see a
/// partial file.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<(), EmulateError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, content).map_err(|e| EmulateError::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        EmulateError::io("rename into", path, e)
    })
}

fn write(path: &Path, content: &str) -> Result<(), EmulateError> {
    fs::write(path, content).map_err(|e| EmulateError::io("write", path, e))
}

fn mkdir(path: &Path) -> Result<(), EmulateError> {
    fs::create_dir_all(path).map_err(|e| EmulateError::io("create", path, e))
}

/// Makes `link` a symlink to `target`, replacing whatever was there.
fn symlink(target: &str, link: &Path) -> Result<(), EmulateError> {
    if let Ok(current) = fs::read_link(link) {
        if current == Path::new(target) {
            return Ok(());
        }
        fs::remove_file(link).map_err(|e| EmulateError::io("remove", link, e))?;
    }
    std::os::unix::fs::symlink(target, link).map_err(|e| EmulateError::io("symlink", link, e))
}

fn remove_file(path: &Path) -> Result<(), EmulateError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(EmulateError::io("remove", path, e)),
        _ => Ok(()),
    }
}

fn remove_dir_all(path: &Path) -> Result<(), EmulateError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(EmulateError::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Writes one PCI function's directory: IDs, driver, and its netdev entry.
fn write_function(
    root: &Path,
    nic: &EmulatedNic,
    addr: PciAddr,
    (device, driver): (u16, &str),
    (ifname, mac): (&str, &str),
) -> Result<(), EmulateError> {
    let bus = bus_dir(root, nic.bus);
    let dev = bus.join(addr.to_string());
    let net = dev.join("net").join(ifname);
    mkdir(&net)?;
    write(&dev.join("vendor"), &format!("0x{EMU_VENDOR:04x}\n"))?;
    write(&dev.join("device"), &format!("0x{device:04x}\n"))?;
    write(&dev.join("class"), CLASS_ETHERNET)?;
    write(&dev.join("numa_node"), "-1\n")?;
    symlink(
        &format!("../../../bus/pci/drivers/{driver}"),
        &dev.join("driver"),
    )?;
    write(&net.join("type"), ARPHRD_ETHER)?;
    write(&net.join("address"), &format!("{mac}\n"))?;
    symlink(&format!("../../../{addr}"), &net.join("device"))?;
    Ok(())
}

/// Publishes a function in the global indexes (`bus/pci/devices`, the driver dir, `class/net`).
fn publish(
    root: &Path,
    bus: u8,
    addr: PciAddr,
    driver: &str,
    ifname: &str,
) -> Result<(), EmulateError> {
    let rel = format!("devices/pci{EMU_PCI_DOMAIN:04x}:{bus:02x}/{addr}");
    symlink(
        &format!("../../../{rel}"),
        &root.join("bus/pci/devices").join(addr.to_string()),
    )?;
    symlink(
        &format!("../../../../{rel}"),
        &root
            .join("bus/pci/drivers")
            .join(driver)
            .join(addr.to_string()),
    )?;
    symlink(
        &format!("../../{rel}/net/{ifname}"),
        &root.join("class/net").join(ifname),
    )
}

/// Withdraws a function from the global indexes.
fn unpublish(root: &Path, addr: PciAddr, driver: &str, ifname: &str) -> Result<(), EmulateError> {
    remove_file(&root.join("bus/pci/devices").join(addr.to_string()))?;
    remove_file(
        &root
            .join("bus/pci/drivers")
            .join(driver)
            .join(addr.to_string()),
    )?;
    remove_file(&root.join("class/net").join(ifname))
}

/// Writes (or reshapes) the tree of `nic`, whose bus directory already exists: the PF, its VFs,
/// and the indexes. VFs beyond `nic.vfs` left over from a larger earlier `up` are removed, with
/// their registers. Idempotent.
pub fn write_tree(root: &Path, nic: &EmulatedNic) -> Result<(), EmulateError> {
    for d in [
        root.join("bus/pci/devices"),
        root.join("bus/pci/drivers").join(EMULATED_DRIVER),
        root.join("bus/pci/drivers").join(EMULATED_VF_DRIVER),
        root.join("class/net"),
    ] {
        mkdir(&d)?;
    }
    let pf = pf_dir(root, nic.bus);
    let pf_mac = nic.mac.to_string();
    write_function(
        root,
        nic,
        nic.pci,
        (EMU_PF_DEVICE, EMULATED_DRIVER),
        (&nic.pf, &pf_mac),
    )?;
    mkdir(&pf.join(super::registers::REGISTERS_DIR))?;
    write(&pf.join("sriov_totalvfs"), &format!("{MAX_VFS}\n"))?;

    // Shrinking: withdraw the surplus VFs first, so no reader follows a link into a removed dir.
    // Every index up to MAX_VFS is checked (not just the old metadata's), so a tree whose
    // metadata was lost is reshaped correctly too.
    for i in nic.vfs.len() as u32..MAX_VFS {
        let link = pf.join(format!("virtfn{i}"));
        if fs::symlink_metadata(&link).is_err() {
            continue;
        }
        let addr = super::vf_pci(nic.bus, i);
        unpublish(
            root,
            addr,
            EMULATED_VF_DRIVER,
            &super::vf_netdev_name(&nic.pf, i),
        )?;
        remove_file(&link)?;
        remove_dir_all(&bus_dir(root, nic.bus).join(addr.to_string()))?;
        super::registers::remove(&pf, i)?;
    }
    for vf in &nic.vfs {
        let mac = vf.default_mac.to_string();
        write_function(
            root,
            nic,
            vf.pci,
            (EMU_VF_DEVICE, EMULATED_VF_DRIVER),
            (&vf.netdev, &mac),
        )?;
        let dir = bus_dir(root, nic.bus).join(vf.pci.to_string());
        symlink(&format!("../{}", nic.pci), &dir.join("physfn"))?;
        symlink(
            &format!("../{}", vf.pci),
            &pf.join(format!("virtfn{}", vf.index)),
        )?;
    }
    write(&pf.join("sriov_numvfs"), &format!("{}\n", nic.vfs.len()))?;
    let meta = serde_json::to_vec_pretty(nic).map_err(|e| EmulateError::Corrupt {
        path: pf.join(META_FILE),
        message: e.to_string(),
    })?;
    write_atomic(&pf.join(META_FILE), &meta)?;
    // Publish last: discovery only finds functions whose directories are complete.
    for vf in &nic.vfs {
        publish(root, nic.bus, vf.pci, EMULATED_VF_DRIVER, &vf.netdev)?;
    }
    publish(root, nic.bus, nic.pci, EMULATED_DRIVER, &nic.pf)
}

/// Does the index entry at `link` point into bus directory `bus_rel` (`pciee00:<bb>`)?
fn points_into(link: &Path, bus_rel: &str) -> bool {
    fs::read_link(link)
        .map(|t| {
            t.components()
                .any(|c| c.as_os_str() == std::ffi::OsStr::new(bus_rel))
        })
        .unwrap_or(false)
}

/// Removes every index entry pointing into `bus_rel` under `dir` (not recursive).
fn remove_links_into(dir: &Path, bus_rel: &str, errors: &mut Vec<EmulateError>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if points_into(&path, bus_rel)
            && let Err(e) = remove_file(&path)
        {
            errors.push(e);
        }
    }
}

/// Removes everything of the PF on `bus` (its directory and every index entry into it), then the
/// tree's own directories if they are left empty (the root included). Keeps going on errors and
/// returns them all.
pub fn remove_tree(root: &Path, bus: u8) -> Vec<EmulateError> {
    let mut errors = Vec::new();
    let bus_rel = format!("pci{EMU_PCI_DOMAIN:04x}:{bus:02x}");
    remove_links_into(&root.join("bus/pci/devices"), &bus_rel, &mut errors);
    remove_links_into(&root.join("class/net"), &bus_rel, &mut errors);
    if let Ok(drivers) = fs::read_dir(root.join("bus/pci/drivers")) {
        for d in drivers.flatten() {
            remove_links_into(&d.path(), &bus_rel, &mut errors);
        }
    }
    if let Err(e) = remove_dir_all(&bus_dir(root, bus)) {
        errors.push(e);
    }
    prune_empty(root);
    errors
}

/// Removes the tree's skeleton directories that are empty, deepest first; non-empty ones (another
/// emulated PF, or anything not ours) stay.
fn prune_empty(root: &Path) {
    let mut dirs = vec![
        root.join("bus/pci/drivers").join(EMULATED_DRIVER),
        root.join("bus/pci/drivers").join(EMULATED_VF_DRIVER),
        root.join("bus/pci/drivers"),
        root.join("bus/pci/devices"),
        root.join("bus/pci"),
        root.join("bus"),
        root.join("class/net"),
        root.join("class"),
        root.join("devices"),
    ];
    dirs.push(root.to_path_buf());
    for d in dirs {
        // remove_dir fails on non-empty dirs, which is exactly the guard we want.
        let _ = fs::remove_dir(&d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_round_trip_reshape_and_removal() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sys");
        let bus = allocate_bus(&root, "emu0").unwrap();
        assert_eq!(bus, 0);
        assert_eq!(allocate_bus(&root, "emu1").unwrap(), 2);
        let nic = EmulatedNic::describe("emu0", bus, 4);
        write_tree(&root, &nic).unwrap();
        write_tree(&root, &nic).unwrap();
        assert_eq!(load(&root, "emu0").unwrap(), nic);

        let pf = root.join("bus/pci/devices/ee00:00:00.0");
        assert_eq!(fs::read_to_string(pf.join("sriov_numvfs")).unwrap(), "4\n");
        assert_eq!(fs::read_to_string(pf.join("vendor")).unwrap(), "0xee00\n");
        let vf3 = fs::canonicalize(pf.join("virtfn3")).unwrap();
        assert!(vf3.ends_with("ee00:00:01.3"));
        assert_eq!(
            fs::canonicalize(vf3.join("physfn")).unwrap(),
            fs::canonicalize(&pf).unwrap()
        );
        assert!(vf3.join("net/emu0v3/address").is_file());
        assert_eq!(
            fs::read_link(vf3.join("driver"))
                .unwrap()
                .file_name()
                .unwrap(),
            EMULATED_VF_DRIVER
        );
        assert!(fs::canonicalize(root.join("class/net/emu0v3/device/physfn")).is_ok());

        let small = EmulatedNic::describe("emu0", bus, 2);
        write_tree(&root, &small).unwrap();
        assert!(!pf.join("virtfn2").exists());
        assert!(!root.join("bus/pci/devices/ee00:00:01.3").exists());
        assert_eq!(locate(&root, "emu0").unwrap().unwrap().0, bus);

        assert!(remove_tree(&root, bus).is_empty());
        assert!(root.exists(), "bus 2 is still claimed");
        assert_eq!(buses_of(&root, "emu1").unwrap(), vec![2]);
        assert!(remove_tree(&root, 2).is_empty());
        assert!(!root.exists());
    }
}

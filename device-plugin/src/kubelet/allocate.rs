//! What a container gets for its devices: the reference device plugin's env vars, device-info
//! spec files for the CNI (Multus reads them), `/dev/vfio` device specs for vfio-pci VFs, the
//! vhost-net/tun devices for `needVhostNet` pools, and CDI device names when enabled.
//!
//! Allocate is all-or-nothing: every ID of every container is checked before anything is
//! written, so a refused request leaves no trace.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use sriov_proto::deviceplugin::v1beta1 as api;

use super::view::PoolView;
use crate::pools::{Device, PoolDevices};

/// Default directory of device-info spec files (`/var/run/k8s.cni.cncf.io/devinfo/dp`), where
/// Multus and the CNI look for them.
pub const DEFAULT_DEVINFO_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/dp";

/// Version of the CNI device-info spec the files follow.
pub const DEVINFO_SPEC_VERSION: &str = "1.1.0";

/// The driver whose VFs are handed to containers as `/dev/vfio` devices.
const VFIO_DRIVER: &str = "vfio-pci";
/// The VFIO container device every vfio-pci user needs.
const VFIO_CONTAINER_DEV: &str = "/dev/vfio/vfio";
/// Directory of VFIO group devices (`/dev/vfio/<iommu group>`).
const VFIO_GROUP_DIR: &str = "/dev/vfio";
/// Devices a `needVhostNet` pool's containers get (DPDK virtio-user / vhost).
const VHOST_NET_DEVS: [&str; 2] = ["/dev/vhost-net", "/dev/net/tun"];
/// Permissions of every device spec we return.
const DEV_PERMISSIONS: &str = "rw";

/// Why Allocate refused a request. Unknown and unhealthy devices are the caller's error
/// (`InvalidArgument`, naming the ID); a file that cannot be written is ours (`Internal`).
#[derive(Debug, thiserror::Error)]
pub enum AllocateError {
    /// The ID is not a device of this pool.
    #[error("device {id} is not a device of resource {resource}")]
    Unknown {
        /// The device ID kubelet sent (a VF's PCI address, or not).
        id: String,
        /// The pool's resource name.
        resource: String,
    },
    /// The device exists but is currently unhealthy (PF link down, VF gone).
    #[error("device {id} of resource {resource} is unhealthy")]
    Unhealthy {
        /// The device ID kubelet sent.
        id: String,
        /// The pool's resource name.
        resource: String,
    },
    /// A device-info spec file could not be written.
    #[error("cannot write device info file {path}: {source}")]
    DevInfo {
        /// The file that could not be written.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl From<AllocateError> for tonic::Status {
    fn from(e: AllocateError) -> Self {
        match e {
            AllocateError::Unknown { .. } | AllocateError::Unhealthy { .. } => {
                tonic::Status::invalid_argument(e.to_string())
            }
            AllocateError::DevInfo { .. } => tonic::Status::internal(e.to_string()),
        }
    }
}

/// `PCIDEVICE_<PREFIX>_<NAME>`: the env var carrying the comma-separated PCI addresses, named as
/// the reference device plugin names it (upper case; anything not alphanumeric becomes `_`), so
/// `intel.com/sriov_net` gives `PCIDEVICE_INTEL_COM_SRIOV_NET`.
pub fn env_name(prefix: &str, name: &str) -> String {
    let mut s = String::from("PCIDEVICE_");
    for c in prefix
        .chars()
        .chain(std::iter::once('_'))
        .chain(name.chars())
    {
        s.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    s
}

/// `PCIDEVICE_<PREFIX>_<NAME>_INFO`: the env var carrying per-device JSON details.
pub fn info_env_name(prefix: &str, name: &str) -> String {
    env_name(prefix, name) + "_INFO"
}

/// Checks one container's IDs: each must be a known, healthy device of the pool. Returns the
/// devices in request order without duplicates.
pub(crate) fn resolve<'a>(
    view: &'a PoolView,
    ids: &[String],
) -> Result<Vec<&'a Device>, AllocateError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if !seen.insert(id.as_str()) {
            continue;
        }
        let dev = view.get(id).ok_or_else(|| AllocateError::Unknown {
            id: id.clone(),
            resource: view.pool.resource(),
        })?;
        if !dev.healthy {
            return Err(AllocateError::Unhealthy {
                id: id.clone(),
                resource: view.pool.resource(),
            });
        }
        out.push(dev);
    }
    Ok(out)
}

fn is_vfio(d: &Device) -> bool {
    d.driver.as_deref() == Some(VFIO_DRIVER)
}

fn spec(path: &str) -> api::DeviceSpec {
    api::DeviceSpec {
        container_path: path.to_string(),
        host_path: path.to_string(),
        permissions: DEV_PERMISSIONS.to_string(),
    }
}

/// The response for one container holding `devices` (already [`resolve`]d).
pub(crate) fn container_response(
    pool: &PoolDevices,
    devices: &[&Device],
    cdi: bool,
) -> api::ContainerAllocateResponse {
    let mut resp = api::ContainerAllocateResponse::default();
    if devices.is_empty() {
        return resp;
    }
    let ids: Vec<&str> = devices.iter().map(|d| d.id.as_str()).collect();
    resp.envs
        .insert(env_name(&pool.prefix, &pool.name), ids.join(","));
    resp.envs.insert(
        info_env_name(&pool.prefix, &pool.name),
        info_json(devices).to_string(),
    );

    let mut specs: Vec<String> = Vec::new();
    for d in devices.iter().filter(|d| is_vfio(d)) {
        push_unique(&mut specs, VFIO_CONTAINER_DEV.to_string());
        match d.iommu_group {
            Some(g) => push_unique(&mut specs, format!("{VFIO_GROUP_DIR}/{g}")),
            None => tracing::warn!(
                device = %d.id,
                "vfio-pci device has no IOMMU group; container gets /dev/vfio/vfio only"
            ),
        }
    }
    if pool.need_vhost_net {
        for p in VHOST_NET_DEVS {
            push_unique(&mut specs, p.to_string());
        }
    }
    resp.devices = specs.iter().map(|p| spec(p)).collect();

    if cdi {
        resp.cdi_devices = devices
            .iter()
            .map(|d| api::CdiDevice {
                name: format!("{}={}", pool.resource(), d.id),
            })
            .collect();
    }
    resp
}

fn push_unique(v: &mut Vec<String>, s: String) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// `{"<pci>": {"generic": {"deviceID": "<pci>"}, "vfio": {...}}}`, the reference plugin's
/// `_INFO` shape.
fn info_json(devices: &[&Device]) -> serde_json::Value {
    let mut m = BTreeMap::new();
    for d in devices {
        let mut entry = serde_json::Map::new();
        entry.insert("generic".into(), json!({ "deviceID": d.id }));
        if is_vfio(d) {
            let mut vfio = serde_json::Map::new();
            if let Some(g) = d.iommu_group {
                vfio.insert("dev-mount".into(), json!(format!("{VFIO_GROUP_DIR}/{g}")));
            }
            vfio.insert("mount".into(), json!(VFIO_CONTAINER_DEV));
            entry.insert("vfio".into(), serde_json::Value::Object(vfio));
        }
        m.insert(d.id.clone(), serde_json::Value::Object(entry));
    }
    json!(m)
}

/// Path of a device's device-info file: `<dir>/<prefix>-<name>-<pci>-device.json`, the name
/// Multus computes from the resource name (`/` → `-`) and the device ID.
pub(crate) fn devinfo_path(dir: &Path, pool: &PoolDevices, id: &str) -> PathBuf {
    dir.join(format!("{}-{}-{}-device.json", pool.prefix, pool.name, id))
}

/// Writes the device-info spec file of each device, atomically (temp file + rename), so a
/// reader never sees half a file. Creates `dir` if needed.
pub(crate) fn write_devinfo(
    dir: &Path,
    pool: &PoolDevices,
    devices: &[&Device],
) -> Result<(), AllocateError> {
    if devices.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| AllocateError::DevInfo {
        path: dir.to_path_buf(),
        source,
    })?;
    for d in devices {
        let path = devinfo_path(dir, pool, &d.id);
        let body = json!({
            "type": "pci",
            "version": DEVINFO_SPEC_VERSION,
            "pci": { "pci-address": d.id },
        });
        write_atomic(&path, body.to_string().as_bytes())
            .map_err(|source| AllocateError::DevInfo { path, source })?;
    }
    Ok(())
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir, path)?;
    let res = (|| {
        // No fsync: the directory is on tmpfs (`/var/run`) and only readers racing with the
        // write matter, which the rename covers.
        tmp.1.write_all(data)?;
        std::fs::rename(&tmp.0, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp.0);
    }
    res
}

/// Creates `<dir>/.<file name>.<pid>.<n>.tmp` (`n` counts calls, so two Allocates of one device
/// running at once never share a temporary file; stale ones from a crash are replaced).
fn tempfile_in(dir: &Path, path: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    Ok((tmp, file))
}

/// Whether `name` is one of [`tempfile_in`]'s temporary files (`.<…>-device.json.<pid>.<n>.tmp`).
fn is_devinfo_temp(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.').and_then(|r| r.strip_suffix(".tmp")) else {
        return false;
    };
    let mut parts = rest.rsplitn(3, '.');
    let (Some(n), Some(pid), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(n) && digits(pid) && file.ends_with("-device.json")
}

/// Deletes the temporary files a killed agent left in `dir` mid-write (the agent is the only
/// writer, so at start every one of them is stale). Returns how many it removed; a missing or
/// unreadable directory removes nothing.
pub(crate) fn remove_stale_devinfo_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(is_devinfo_temp))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pools::AllocationPolicy;

    fn dev(id: &str, driver: &str, group: Option<u32>, healthy: bool) -> Device {
        Device {
            id: id.into(),
            pci: id.parse().unwrap(),
            healthy,
            numa_node: Some(0),
            pf: "0000:3b:00.0".parse().unwrap(),
            pf_name: "ens1f0".into(),
            driver: Some(driver.into()),
            iommu_group: group,
        }
    }

    fn pool(devices: Vec<Device>, vhost: bool) -> PoolDevices {
        PoolDevices {
            prefix: "intel.com".into(),
            name: "sriov_net".into(),
            exclude_topology: false,
            need_vhost_net: vhost,
            allocation_policy: AllocationPolicy::Spread,
            devices,
        }
    }

    #[test]
    fn env_names_follow_the_reference_plugin() {
        assert_eq!(
            env_name("intel.com", "sriov_net"),
            "PCIDEVICE_INTEL_COM_SRIOV_NET"
        );
        assert_eq!(
            info_env_name("example.org", "dpdk-a"),
            "PCIDEVICE_EXAMPLE_ORG_DPDK_A_INFO"
        );
    }

    #[test]
    fn netdevice_response_has_env_and_no_specs() {
        let p = pool(
            vec![
                dev("0000:3b:02.0", "iavf", None, true),
                dev("0000:3b:02.1", "iavf", None, true),
            ],
            false,
        );
        let v = PoolView::new(p.clone());
        let ids = vec!["0000:3b:02.0".to_string(), "0000:3b:02.1".to_string()];
        let devs = resolve(&v, &ids).unwrap();
        let r = container_response(&p, &devs, false);
        assert_eq!(
            r.envs["PCIDEVICE_INTEL_COM_SRIOV_NET"],
            "0000:3b:02.0,0000:3b:02.1"
        );
        let info: serde_json::Value =
            serde_json::from_str(&r.envs["PCIDEVICE_INTEL_COM_SRIOV_NET_INFO"]).unwrap();
        assert_eq!(
            info,
            json!({
                "0000:3b:02.0": {"generic": {"deviceID": "0000:3b:02.0"}},
                "0000:3b:02.1": {"generic": {"deviceID": "0000:3b:02.1"}},
            })
        );
        assert!(r.devices.is_empty());
        assert!(r.cdi_devices.is_empty());
    }

    #[test]
    fn vfio_and_vhost_specs_are_deduplicated() {
        let p = pool(
            vec![
                dev("0000:3b:02.0", "vfio-pci", Some(71), true),
                dev("0000:3b:02.1", "vfio-pci", Some(72), true),
            ],
            true,
        );
        let v = PoolView::new(p.clone());
        let ids = vec!["0000:3b:02.0".to_string(), "0000:3b:02.1".to_string()];
        let devs = resolve(&v, &ids).unwrap();
        let r = container_response(&p, &devs, true);
        let paths: Vec<_> = r.devices.iter().map(|d| d.host_path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/dev/vfio/vfio",
                "/dev/vfio/71",
                "/dev/vfio/72",
                "/dev/vhost-net",
                "/dev/net/tun"
            ]
        );
        assert!(r.devices.iter().all(|d| d.container_path == d.host_path));
        assert_eq!(r.cdi_devices[1].name, "intel.com/sriov_net=0000:3b:02.1");
    }

    #[test]
    fn resolve_rejects_unknown_and_unhealthy() {
        let p = pool(
            vec![
                dev("0000:3b:02.0", "iavf", None, true),
                dev("0000:3b:02.1", "iavf", None, false),
            ],
            false,
        );
        let v = PoolView::new(p);
        let e = resolve(&v, &["0000:3b:09.0".to_string()]).unwrap_err();
        assert!(matches!(e, AllocateError::Unknown { ref id, .. } if id == "0000:3b:09.0"));
        let e = resolve(&v, &["0000:3b:02.0".into(), "0000:3b:02.1".into()]).unwrap_err();
        assert!(matches!(e, AllocateError::Unhealthy { ref id, .. } if id == "0000:3b:02.1"));
        assert_eq!(tonic::Status::from(e).code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn stale_temp_files_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let keep = [
            "intel.com-sriov_net-0000:3b:02.0-device.json",
            ".hidden",
            ".x-device.json.12.tmp",
            "a-device.json.1.2.tmp",
        ];
        for f in keep {
            std::fs::write(dir.path().join(f), "{}").unwrap();
        }
        std::fs::write(
            dir.path()
                .join(".intel.com-sriov_net-0000:3b:02.0-device.json.4242.7.tmp"),
            "{\"ty",
        )
        .unwrap();
        assert_eq!(remove_stale_devinfo_temps(dir.path()), 1);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want: Vec<_> = keep.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(left, want);
        assert_eq!(remove_stale_devinfo_temps(&dir.path().join("missing")), 0);
    }

    #[test]
    fn devinfo_files_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let p = pool(vec![dev("0000:3b:02.0", "iavf", None, true)], false);
        let d = p.devices[0].clone();
        write_devinfo(dir.path(), &p, &[&d]).unwrap();
        let path = dir
            .path()
            .join("intel.com-sriov_net-0000:3b:02.0-device.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:3b:02.0"}})
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

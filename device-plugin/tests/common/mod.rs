//! A test bed for the kubelet side: the manager serving pools from a snapshot channel the test
//! controls, and the kubelet stand-in, on sockets in a temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use device_plugin::health::NodeView;
use device_plugin::kubelet::{DevicePluginManager, ManagerConfig, ManagerHandle};
use device_plugin::pools::{AllocationPolicy, Device, PoolDevices};
use hw_tests::kubelet::KubeletStandIn;
use sriov_hw::PciAddr;
use tokio::sync::watch;

/// Generous bound for things that should take milliseconds.
pub const SOON: Duration = Duration::from_secs(5);

/// VF `vf` of the PF on bus `bus` (`0000:<bus>:00.0`): `0000:<bus>:<2 + vf/8>.<vf%8>`.
pub fn vf(bus: u8, vf: u8, numa: Option<u32>) -> Device {
    let pci = PciAddr::new(0, bus, 2 + vf / 8, vf % 8).expect("valid test address");
    Device {
        id: pci.to_string(),
        pci,
        healthy: true,
        numa_node: numa,
        pf: PciAddr::new(0, bus, 0, 0).expect("valid test address"),
        pf_name: format!("ens{bus}f0"),
        driver: Some("iavf".into()),
        iommu_group: None,
    }
}

/// A pool `<prefix>/<name>` with `devices`.
pub fn pool(prefix: &str, name: &str, devices: Vec<Device>) -> PoolDevices {
    PoolDevices {
        prefix: prefix.into(),
        name: name.into(),
        exclude_topology: false,
        need_vhost_net: false,
        allocation_policy: AllocationPolicy::Spread,
        devices,
    }
}

/// `n` VFs on each PF of `buses`, with NUMA node `numa(bus)`.
pub fn vfs(buses: &[u8], n: u8, numa: impl Fn(u8) -> Option<u32>) -> Vec<Device> {
    let mut v: Vec<Device> = buses
        .iter()
        .flat_map(|&b| (0..n).map(move |i| (b, i)))
        .map(|(b, i)| vf(b, i, numa(b)))
        .collect();
    v.sort_by_key(|d| d.pci);
    v
}

pub struct Bed {
    pub dir: tempfile::TempDir,
    pub devinfo: tempfile::TempDir,
    pub snapshots: watch::Sender<NodeView>,
    pub kubelet: KubeletStandIn,
    pub manager: Option<ManagerHandle>,
}

impl Bed {
    /// Kubelet stand-in first, then the manager serving `pools`.
    pub fn start(pools: Vec<PoolDevices>, cdi: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let kubelet = KubeletStandIn::start(dir.path()).expect("kubelet stand-in");
        Self::with_kubelet(dir, kubelet, pools, cdi)
    }

    pub fn with_kubelet(
        dir: tempfile::TempDir,
        kubelet: KubeletStandIn,
        pools: Vec<PoolDevices>,
        cdi: bool,
    ) -> Self {
        let devinfo = tempfile::tempdir().expect("tempdir");
        let (snapshots, rx) = watch::channel(view(pools));
        let manager = DevicePluginManager::start(config(dir.path(), devinfo.path(), cdi), rx);
        Self {
            dir,
            devinfo,
            snapshots,
            kubelet,
            manager: Some(manager),
        }
    }

    pub fn publish(&self, pools: Vec<PoolDevices>) {
        self.snapshots.send_replace(view(pools));
    }

    pub fn manager(&self) -> &ManagerHandle {
        self.manager.as_ref().expect("manager running")
    }

    pub fn socket(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Names of the files in the device-info directory (`<devinfo>/dp`), sorted.
    pub fn devinfo_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.devinfo.path().join("dp"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// What the watcher would publish for `pools` (the manager reads only the pools).
fn view(pools: Vec<PoolDevices>) -> NodeView {
    NodeView {
        pools: Arc::new(pools),
        ..NodeView::default()
    }
}

pub fn config(kubelet_dir: &Path, devinfo: &Path, cdi: bool) -> ManagerConfig {
    ManagerConfig {
        kubelet_dir: kubelet_dir.to_path_buf(),
        devinfo_dir: devinfo.join("dp"),
        cdi,
        ..ManagerConfig::default()
    }
}

/// Polls `f` every 10 ms until it holds or [`SOON`] passes; returns its last answer.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + SOON;
    while !f() {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

//! The inventory watcher on fixture trees shaped like real NICs (4 × E810 with 128 VFs each):
//! pools, NUMA, withdrawn and new VFs after rescans, config swaps, and PF link health driven by
//! link events (through `ManualLinks`: the fixture's netdevs do not exist on this machine).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use device_plugin::health::NodeView;
use device_plugin::health::{InventoryWatcher, ManualLinks, WatcherOptions};
use device_plugin::pools::{PoolConfig, PoolDevices, Snapshot};
use sriov_hw::PciAddr;
use sriov_hw::fixtures::{FixtureTree, presets, write_proc_routes};
use tempfile::TempDir;
use tokio::sync::watch;

/// Pool A takes the VFs of ens1f0 and ens2f0; pool B every other E810 VF (first match wins).
const TWO_POOLS: &str = r#"{"resourceList":[
  {"resourceName":"pool_a","resourcePrefix":"example.com","selectors":{"pfNames":["ens1f0","ens2f0"]}},
  {"resourceName":"pool_b","resourcePrefix":"example.com","excludeTopology":true,
   "allocationPolicy":"pack","selectors":{"vendors":["8086"],"devices":["1889"]}}
]}"#;

struct Host {
    _dir: TempDir,
    tree: FixtureTree,
    proc_root: std::path::PathBuf,
}

/// A 4 × 128 VF host with no default routes.
fn scale_host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let tree = presets::scale(&dir.path().join("sys"), 4, 128).unwrap();
    let proc_root = dir.path().join("proc");
    write_proc_routes(&proc_root, &[], &[], &[]).unwrap();
    Host {
        _dir: dir,
        tree,
        proc_root,
    }
}

fn opts(h: &Host, rescan: Duration) -> WatcherOptions {
    WatcherOptions {
        sysfs_root: h.tree.root().to_path_buf(),
        proc_root: Some(h.proc_root.clone()),
        rescan_interval: rescan,
    }
}

/// A watcher over `h` with the two-pool config, re-scanning every `rescan`.
async fn start(h: &Host, rescan: Duration, links: ManualLinks) -> InventoryWatcher {
    InventoryWatcher::start(opts(h, rescan), cfg(TWO_POOLS), Arc::new(links))
        .await
        .unwrap()
}

fn cfg(json: &str) -> PoolConfig {
    PoolConfig::parse(json.as_bytes()).unwrap()
}

fn pool<'a>(s: &'a Snapshot, name: &str) -> &'a PoolDevices {
    s.iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no pool {name}"))
}

fn pci(s: &str) -> PciAddr {
    s.parse().unwrap()
}

/// Waits (up to `limit`) for a published snapshot satisfying `pred`; returns it and the wait.
async fn wait_for(
    rx: &mut watch::Receiver<NodeView>,
    limit: Duration,
    pred: impl Fn(&Snapshot) -> bool,
) -> (Snapshot, Duration) {
    let start = Instant::now();
    loop {
        {
            let s = rx.borrow_and_update().pools.clone();
            if pred(&s) {
                return (s, start.elapsed());
            }
        }
        let left = limit.saturating_sub(start.elapsed());
        tokio::time::timeout(left, rx.changed())
            .await
            .unwrap_or_else(|_| panic!("no matching snapshot within {limit:?}"))
            .unwrap();
    }
}

/// The PCI address of VF `i` of scale-preset PF `p`.
fn scale_vf(p: u8, i: u32) -> PciAddr {
    let pf = PciAddr::new(0, 0x10 + 4 * p, 0, 0).unwrap();
    sriov_hw::fixtures::vf_addr(pf, 8, 1, i).unwrap()
}

/// Lowers PF `pf`'s VF count from `from` to `to` the way the kernel does: the `virtfn` links,
/// the VFs' directories and their bus links go, and `sriov_numvfs` changes.
fn lower_numvfs(tree: &FixtureTree, pf: PciAddr, vfs: &[PciAddr], from: u32, to: u32) {
    for i in to..from {
        tree.remove_attr(pf, &format!("virtfn{i}")).unwrap();
        let vf = vfs[i as usize];
        tree.remove_device_dir(vf).unwrap();
        fs::remove_file(tree.root().join("bus/pci/devices").join(vf.to_string())).unwrap();
    }
    tree.write_attr(pf, "sriov_numvfs", format!("{to}\n").as_bytes())
        .unwrap();
}

#[tokio::test]
async fn serves_512_vfs_in_the_right_pools_with_numa() {
    let h = scale_host();
    let t = Instant::now();
    let w = start(&h, Duration::from_secs(3600), ManualLinks::new()).await;
    eprintln!(
        "4x128 VFs: first snapshot after {:?} (scan {:?})",
        t.elapsed(),
        w.scan_stats().last_duration
    );
    let s = w.snapshot().pools;
    assert_eq!(s.len(), 2);
    let (a, b) = (pool(&s, "pool_a"), pool(&s, "pool_b"));
    assert_eq!((a.devices.len(), b.devices.len()), (256, 256));
    assert_eq!(a.resource(), "example.com/pool_a");
    assert!(b.exclude_topology && !a.exclude_topology);
    assert_eq!(
        b.allocation_policy,
        device_plugin::pools::AllocationPolicy::Pack
    );
    // Sorted by PCI address, ids are the PCI strings, every field filled from sysfs.
    assert!(a.devices.windows(2).all(|w| w[0].pci < w[1].pci));
    let d0 = &a.devices[0];
    assert_eq!(d0.id, "0000:10:01.0");
    assert_eq!(d0.pci, scale_vf(0, 0));
    assert_eq!(d0.pf, pci("0000:10:00.0"));
    assert_eq!(d0.pf_name, "ens1f0");
    assert_eq!(d0.driver.as_deref(), Some("iavf"));
    assert_eq!(d0.iommu_group, Some(101));
    assert!(d0.healthy);
    // NUMA follows the PF: PF p sits on node p % 2.
    for (p, pf_name) in ["ens1f0", "ens2f0", "ens3f0", "ens4f0"].iter().enumerate() {
        let pool = if p < 2 { a } else { b };
        let devs: Vec<_> = pool
            .devices
            .iter()
            .filter(|d| d.pf_name == *pf_name)
            .collect();
        assert_eq!(devs.len(), 128, "{pf_name}");
        assert!(
            devs.iter().all(|d| d.numa_node == Some(p as u32 % 2)),
            "{pf_name}"
        );
    }
    let inv = w.inventory();
    assert_eq!((inv.pfs.len(), inv.vfs().count()), (4, 512));
    let st = w.scan_stats();
    assert_eq!((st.scans, st.pfs, st.vfs, st.warnings), (1, 4, 512, 0));
}

#[tokio::test]
async fn rescan_withdraws_vanished_vfs_and_adds_new_ones() {
    let mut h = scale_host();
    let w = start(&h, Duration::from_secs(3600), ManualLinks::new()).await;
    let mut rx = w.subscribe();
    rx.borrow_and_update();

    // Nothing changed: a rescan publishes nothing.
    w.rescan_now().await.unwrap();
    assert!(!rx.has_changed().unwrap(), "identical snapshot was sent");

    // numvfs 128 → 100 on ens4f0 (pool B).
    let pf4 = pci("0000:1c:00.0");
    let vfs: Vec<PciAddr> = (0..128).map(|i| scale_vf(3, i)).collect();
    lower_numvfs(&h.tree, pf4, &vfs, 128, 100);
    let stats = w.rescan_now().await.unwrap();
    assert!(rx.has_changed().unwrap());
    let s = rx.borrow_and_update().pools.clone();
    let b = pool(&s, "pool_b");
    assert_eq!(b.devices.len(), 228);
    assert!(b.devices.iter().any(|d| d.pci == vfs[99]));
    assert!(!b.devices.iter().any(|d| vfs[100..].contains(&d.pci)));
    assert_eq!(pool(&s, "pool_a").devices.len(), 256);
    assert_eq!((stats.vfs, stats.warnings), (484, 0));
    assert_eq!(w.inventory().vfs().count(), 484);

    // A fifth PF appears with 8 VFs: they join pool B.
    let new_pf = pci("0000:40:00.0");
    h.tree
        .add_pf(&presets::intel_e810(new_pf, "ens9f0", 8, 1))
        .unwrap();
    w.rescan_now().await.unwrap();
    let s = rx.borrow_and_update().pools.clone();
    let b = pool(&s, "pool_b");
    assert_eq!(b.devices.len(), 236);
    let new: Vec<_> = b.devices.iter().filter(|d| d.pf == new_pf).collect();
    assert_eq!(new.len(), 8);
    assert!(
        new.iter()
            .all(|d| d.pf_name == "ens9f0" && d.numa_node == Some(1) && d.healthy)
    );
}

#[tokio::test]
async fn periodic_rescan_notices_changes_without_being_asked() {
    let h = scale_host();
    let w = start(&h, Duration::from_millis(100), ManualLinks::new()).await;
    let mut rx = w.subscribe();
    let pf1 = pci("0000:10:00.0");
    let vfs: Vec<PciAddr> = (0..128).map(|i| scale_vf(0, i)).collect();
    lower_numvfs(&h.tree, pf1, &vfs, 128, 0);
    let (s, took) = wait_for(&mut rx, Duration::from_secs(5), |s| {
        pool(s, "pool_a").devices.len() == 128
    })
    .await;
    eprintln!("periodic rescan (100 ms) withdrew 128 VFs after {took:?}");
    assert!(
        pool(&s, "pool_a")
            .devices
            .iter()
            .all(|d| d.pf_name == "ens2f0")
    );
    assert!(w.scan_stats().scans >= 2);
}

#[tokio::test]
async fn pf_link_events_flip_health_of_its_vfs_only() {
    let h = scale_host();
    let links = ManualLinks::new();
    let w = start(&h, Duration::from_secs(3600), links.clone()).await;
    let mut rx = w.subscribe();
    let health = |s: &Snapshot, pf_name: &str| -> (usize, usize) {
        let devs = s
            .iter()
            .flat_map(|p| &p.devices)
            .filter(|d| d.pf_name == pf_name);
        devs.fold(
            (0, 0),
            |(h, u), d| {
                if d.healthy { (h + 1, u) } else { (h, u + 1) }
            },
        )
    };

    // Carrier lost on ens2f0 (admin still up): its 128 VFs go Unhealthy, nobody else's.
    links.set("ens2f0", true, false);
    let (s, took) = wait_for(&mut rx, Duration::from_secs(1), |s| {
        health(s, "ens2f0") == (0, 128)
    })
    .await;
    eprintln!("carrier loss → 128 VFs unhealthy after {took:?}");
    for other in ["ens1f0", "ens3f0", "ens4f0"] {
        assert_eq!(health(&s, other), (128, 0), "{other}");
    }

    // Carrier back.
    links.set("ens2f0", true, true);
    wait_for(&mut rx, Duration::from_secs(1), |s| {
        health(s, "ens2f0") == (128, 0)
    })
    .await;

    // Admin down on ens3f0, then its netdev disappears altogether: unhealthy either way.
    links.set("ens3f0", false, true);
    wait_for(&mut rx, Duration::from_secs(1), |s| {
        health(s, "ens3f0") == (0, 128)
    })
    .await;
    links.set("ens3f0", true, true);
    wait_for(&mut rx, Duration::from_secs(1), |s| {
        health(s, "ens3f0") == (128, 0)
    })
    .await;
    links.remove("ens3f0");
    wait_for(&mut rx, Duration::from_secs(1), |s| {
        health(s, "ens3f0") == (0, 128)
    })
    .await;

    // Events about links that are not PF netdevs change nothing.
    rx.borrow_and_update();
    links.set("veth1234", false, false);
    links.set("ens1f0v3", false, false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!rx.has_changed().unwrap());
}

#[tokio::test]
async fn a_rescan_rereads_links_so_a_missed_event_heals() {
    let h = scale_host();
    let links = ManualLinks::new();
    let w = start(&h, Duration::from_secs(3600), links.clone()).await;
    let mut rx = w.subscribe();
    rx.borrow_and_update();
    // ens1f0 goes down but the event is lost (as in an overrun): nothing is published...
    links.set_silently("ens1f0", false, false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!rx.has_changed().unwrap());
    // ...until the next rescan, which re-reads every PF link.
    w.rescan_now().await.unwrap();
    assert!(rx.has_changed().unwrap());
    let s = w.snapshot().pools;
    let a = pool(&s, "pool_a");
    let down: Vec<_> = a.devices.iter().filter(|d| !d.healthy).collect();
    assert_eq!(down.len(), 128);
    assert!(down.iter().all(|d| d.pf_name == "ens1f0"));
}

#[tokio::test]
async fn set_config_reassigns_and_default_route_pfs_are_skipped() {
    let h = scale_host();
    // ens2f0 carries the node's IPv4 default route: never pooled.
    write_proc_routes(&h.proc_root, &["ens2f0"], &[], &[]).unwrap();
    let w = start(&h, Duration::from_secs(3600), ManualLinks::new()).await;
    let s = w.snapshot().pools;
    let a = pool(&s, "pool_a");
    assert_eq!(a.devices.len(), 128);
    assert!(a.devices.iter().all(|d| d.pf_name == "ens1f0"));
    assert_eq!(pool(&s, "pool_b").devices.len(), 256);

    let mut rx = w.subscribe();
    rx.borrow_and_update();
    w.set_config(cfg(
        r#"{"resourceList":[{"resourceName":"only","selectors":{"pfNames":["ens4f0#0-9,20"]}}]}"#,
    ))
    .await
    .unwrap();
    assert!(rx.has_changed().unwrap());
    let s = rx.borrow_and_update().pools.clone();
    assert_eq!(s.len(), 1);
    let only = pool(&s, "only");
    assert_eq!(only.resource(), "intel.com/only");
    let want: Vec<PciAddr> = (0..10).chain([20]).map(|i| scale_vf(3, i)).collect();
    assert_eq!(only.devices.iter().map(|d| d.pci).collect::<Vec<_>>(), want);

    // The same config again publishes nothing.
    w.set_config(cfg(
        r#"{"resourceList":[{"resourceName":"only","selectors":{"pfNames":["ens4f0#0-9,20"]}}]}"#,
    ))
    .await
    .unwrap();
    assert!(!rx.has_changed().unwrap());
}

#[tokio::test]
async fn a_zero_rescan_interval_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = InventoryWatcher::start(
        WatcherOptions {
            sysfs_root: dir.path().to_path_buf(),
            proc_root: Some(Path::new("/nonexistent").to_path_buf()),
            rescan_interval: Duration::ZERO,
        },
        PoolConfig::default(),
        Arc::new(ManualLinks::new()),
    )
    .await
    .err()
    .expect("zero interval accepted");
    assert!(err.to_string().contains("greater than zero"), "{err}");
}

#[tokio::test]
async fn a_quarantined_vf_is_unhealthy_in_the_one_view_until_lifted() {
    let h = scale_host();
    let w = start(&h, Duration::from_secs(3600), ManualLinks::new()).await;
    let mut rx = w.subscribe();
    rx.borrow_and_update();
    let vf = scale_vf(0, 5);
    w.quarantine(vf, "netdev not home".into()).await.unwrap();
    // One publication: kubelet's pools and the agent's quarantine say the same thing.
    assert!(rx.has_changed().unwrap());
    let v = rx.borrow_and_update().clone();
    let a = pool(&v.pools, "pool_a");
    let unhealthy: Vec<PciAddr> = a
        .devices
        .iter()
        .filter(|d| !d.healthy)
        .map(|d| d.pci)
        .collect();
    assert_eq!(unhealthy, [vf]);
    assert_eq!(
        v.quarantine.get(&vf).map(String::as_str),
        Some("netdev not home")
    );
    let (pf, _) = v.vf(vf).unwrap();
    assert!(v.unavailable(pf.pci, vf).is_some());
    // The same quarantine again publishes nothing.
    w.quarantine(vf, "netdev not home".into()).await.unwrap();
    assert!(!rx.has_changed().unwrap());
    w.lift(vf).await.unwrap();
    let v = rx.borrow_and_update().clone();
    assert!(pool(&v.pools, "pool_a").devices.iter().all(|d| d.healthy));
    assert!(v.quarantine.is_empty());
}

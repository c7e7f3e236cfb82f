//! Discovery on sysfs trees shaped like real NICs (see `sriov_hw::fixtures::presets`), including
//! damaged trees, single-VF lookups as the CNI does them, and trees at the agent's scale.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::path::Path;
use std::time::Instant;

use sriov_hw::PciAddr;
use sriov_hw::discovery::{
    self, DiscoveryError, Inventory, Pf, Vf, discover, pf_netdev, pf_netdev_of_vf,
};
use sriov_hw::fixtures::{FixtureTree, presets, write_proc_routes};
use sriov_hw::sysfs::{Sysfs, SysfsError};

fn pci(s: &str) -> PciAddr {
    s.parse().unwrap()
}

fn addrs<'a>(it: impl Iterator<Item = &'a PciAddr>) -> Vec<String> {
    it.map(|a| a.to_string()).collect()
}

/// A mixed host with its /proc, discovered.
fn mixed() -> (tempfile::TempDir, FixtureTree, Inventory) {
    let dir = tempfile::tempdir().unwrap();
    let tree = presets::mixed_host(&dir.path().join("sys")).unwrap();
    presets::mixed_host_routes(&dir.path().join("proc")).unwrap();
    let inv = discover(&tree.sysfs(), Some(&dir.path().join("proc")));
    (dir, tree, inv)
}

fn pf<'a>(inv: &'a Inventory, a: &str) -> &'a Pf {
    inv.pf(pci(a))
        .unwrap_or_else(|| panic!("PF {a} not found in {inv:#?}"))
}

#[test]
fn mixed_host_lists_exactly_the_sriov_pfs() {
    let (_d, _t, inv) = mixed();
    assert_eq!(inv.warnings, Vec::<String>::new());
    assert_eq!(
        addrs(inv.pfs.iter().map(|p| &p.pci)),
        [
            "0000:18:00.0",
            "0000:18:00.1",
            "0000:3b:00.0",
            "0000:af:00.0"
        ],
        "e1000e 0000:00:1f.6 and ahci 0000:00:17.0 have no SR-IOV and must be ignored"
    );
    assert_eq!(inv.vfs().count(), 12);
}

#[test]
fn mixed_host_e810() {
    let (_d, _t, inv) = mixed();
    let e810 = pf(&inv, "0000:3b:00.0");
    assert_eq!((e810.vendor, e810.device), (0x8086, 0x1593));
    assert_eq!(e810.driver.as_deref(), Some("ice"));
    assert_eq!(e810.netdevs, ["ens1f0"]);
    assert_eq!(e810.numa_node, Some(0));
    assert_eq!(e810.link_type.as_deref(), Some("ether"));
    assert_eq!((e810.total_vfs, e810.num_vfs), (128, 4));
    assert!(e810.default_route, "IPv4 default route is on ens1f0");
    let want: Vec<Vf> = (0..4u8)
        .map(|i| Vf {
            pci: PciAddr::new(0, 0x3b, 1, i).unwrap(),
            index: u32::from(i),
            pf: pci("0000:3b:00.0"),
            vendor: 0x8086,
            device: 0x1889,
            driver: Some("iavf".into()),
            netdevs: vec![format!("ens1f0v{i}")],
            numa_node: Some(0),
            iommu_group: Some(41 + u32::from(i)),
            link_type: Some("ether".into()),
            rdma: false,
        })
        .collect();
    assert_eq!(e810.vfs, want);
}

#[test]
fn mixed_host_x710_with_vfio_vfs_and_an_idle_port() {
    let (_d, _t, inv) = mixed();
    let x710 = pf(&inv, "0000:18:00.0");
    assert_eq!((x710.vendor, x710.device), (0x8086, 0x1572));
    assert_eq!(x710.driver.as_deref(), Some("i40e"));
    assert_eq!(x710.netdevs, ["ens2f0"]);
    assert_eq!((x710.total_vfs, x710.num_vfs), (64, 4));
    assert!(!x710.default_route, "ens2f0 has only a connected route");
    assert_eq!(
        addrs(x710.vfs.iter().map(|v| &v.pci)),
        [
            "0000:18:02.0",
            "0000:18:02.1",
            "0000:18:02.2",
            "0000:18:02.3"
        ]
    );
    let drivers: Vec<_> = x710.vfs.iter().map(|v| v.driver.as_deref()).collect();
    assert_eq!(
        drivers,
        [
            Some("iavf"),
            Some("iavf"),
            Some("vfio-pci"),
            Some("vfio-pci")
        ]
    );
    let netdevs: Vec<_> = x710.vfs.iter().map(|v| v.netdevs.clone()).collect();
    assert_eq!(
        netdevs,
        [
            vec!["ens2f0v0".to_string()],
            vec!["ens2f0v1".into()],
            vec![],
            vec![]
        ]
    );
    let groups: Vec<_> = x710.vfs.iter().map(|v| v.iommu_group).collect();
    assert_eq!(groups, [Some(61), Some(62), Some(63), Some(64)]);
    let types: Vec<_> = x710.vfs.iter().map(|v| v.link_type.as_deref()).collect();
    assert_eq!(types, [Some("ether"), Some("ether"), None, None]);
    assert!(x710.vfs.iter().all(|v| v.device == 0x154c && v.index < 4));

    let idle = pf(&inv, "0000:18:00.1");
    assert_eq!((idle.total_vfs, idle.num_vfs), (64, 0));
    assert!(idle.vfs.is_empty());
    assert_eq!(idle.netdevs, ["ens2f1"]);
}

#[test]
fn mixed_host_connectx6() {
    let (_d, _t, inv) = mixed();
    let cx = pf(&inv, "0000:af:00.0");
    assert_eq!((cx.vendor, cx.device), (0x15b3, 0x101b));
    assert_eq!(cx.driver.as_deref(), Some("mlx5_core"));
    assert_eq!(cx.numa_node, Some(1));
    assert!(cx.default_route, "IPv6 default route is on ens3f0");
    assert_eq!((cx.total_vfs, cx.num_vfs), (16, 4));
    assert_eq!(
        addrs(cx.vfs.iter().map(|v| &v.pci)),
        [
            "0000:af:00.2",
            "0000:af:00.3",
            "0000:af:00.4",
            "0000:af:00.5"
        ]
    );
    for (i, vf) in cx.vfs.iter().enumerate() {
        assert_eq!(vf.index, i as u32);
        assert_eq!((vf.vendor, vf.device), (0x15b3, 0x101c));
        assert_eq!(vf.driver.as_deref(), Some("mlx5_core"));
        assert_eq!(vf.netdevs, [format!("ens3f0v{i}")]);
        assert_eq!(vf.numa_node, Some(1));
        assert_eq!(vf.iommu_group, None);
    }
}

#[test]
fn qemu_igb_matches_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    for (n, want) in [
        (2, vec!["0000:01:10.0", "0000:01:10.2"]),
        (
            7,
            vec![
                "0000:01:10.0",
                "0000:01:10.2",
                "0000:01:10.4",
                "0000:01:10.6",
                "0000:01:11.0",
                "0000:01:11.2",
                "0000:01:11.4",
            ],
        ),
    ] {
        let root = dir.path().join(format!("igb{n}"));
        let t = presets::qemu_igb_host(&root, n).unwrap();
        write_proc_routes(&root.join("proc"), &["enp1s0"], &[], &[]).unwrap();
        let inv = discover(&t.sysfs(), Some(&root.join("proc")));
        assert_eq!(inv.warnings, Vec::<String>::new());
        assert_eq!(inv.pfs.len(), 1);
        let igb = &inv.pfs[0];
        assert_eq!(igb.pci, pci("0000:01:00.0"));
        assert_eq!((igb.vendor, igb.device), (0x8086, 0x10c9));
        assert_eq!(igb.driver.as_deref(), Some("igb"));
        assert_eq!(igb.netdevs, ["enp1s0"]);
        assert_eq!(igb.numa_node, None, "numa_node -1 means none");
        assert_eq!((igb.total_vfs, igb.num_vfs), (7, n));
        assert!(igb.default_route);
        assert_eq!(addrs(igb.vfs.iter().map(|v| &v.pci)), want);
        assert_eq!(igb.vfs[1].netdevs, ["enp1s16f2"]);
        assert_eq!(igb.vfs[0].netdevs, ["enp1s16"]);
        for vf in &igb.vfs {
            assert_eq!((vf.vendor, vf.device), (0x8086, 0x10ca));
            assert_eq!(vf.driver.as_deref(), Some("igbvf"));
            assert_eq!(vf.numa_node, None);
        }
    }
}

#[test]
fn broken_host_gives_warnings_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sys");
    let t = presets::broken_host(&root).unwrap();
    let inv = discover(&t.sysfs(), Some(&dir.path().join("no-proc")));
    assert_eq!(
        addrs(inv.pfs.iter().map(|p| &p.pci)),
        ["0000:5e:00.0", "0000:5e:00.3"]
    );
    let pf0 = &inv.pfs[0];
    assert_eq!(pf0.num_vfs, 6);
    let idx: Vec<u32> = pf0.vfs.iter().map(|v| v.index).collect();
    assert_eq!(
        idx,
        [0, 4],
        "only intact VFs (and VF 4 with unknown NUMA) are offered"
    );
    assert_eq!(pf0.vfs[1].pci, pci("0000:5e:01.4"));
    assert_eq!(pf0.vfs[1].numa_node, None);
    assert_eq!(pf0.vfs[0].numa_node, Some(1));
    let unbound = &inv.pfs[1];
    assert_eq!(unbound.driver, None);
    assert!(unbound.netdevs.is_empty() && unbound.link_type.is_none());
    assert_eq!((unbound.total_vfs, unbound.num_vfs), (128, 0));

    let w = inv.warnings.join("\n");
    let has = |needle: &str| {
        assert!(
            inv.warnings.iter().any(|l| l.contains(needle)),
            "no warning mentions {needle:?}:\n{w}"
        )
    };
    has("VF 1 ignored"); // virtfn1 dangles
    has("0000:5e:01.1: No such file"); // ...and so does its bus link (named once, by the PF's
    // VF list: the bus pass skips entries without a readable
    // sriov_totalvfs, i.e. every VF, without a second look)
    has("0000:5e:01.2: physfn does not point back"); // physfn to a missing PF
    has("0000:5e:01.3/vendor: cannot parse \"0xzzzz\""); // garbage
    has("0000:5e:01.4/numa_node: not a regular file"); // a directory
    has("0000:5e:01.5/device: content is not UTF-8");
    has("VF 6 ignored"); // absolute virtfn6 link, resolved inside the root
    has("0000:5e:00.1/sriov_totalvfs: cannot parse \"lots\"");
    has("0000:5e:00.2/device: not a regular file");
    has("not-a-pci-address: not a PCI address");
    has("default routes unknown");
    assert_eq!(inv.warnings.len(), 10, "{w}");
    // The absolute link was read under the fixture root, never the host's /sys.
    let escape = inv.warnings.iter().find(|l| l.contains("VF 6")).unwrap();
    assert!(escape.contains(&root.display().to_string()), "{escape}");
    assert!(pf0.vfs.iter().all(|v| v.pf == pf0.pci));
}

#[test]
fn host_sysfs_never_panics() {
    // Whatever this machine has (usually no SR-IOV): discovery completes on the real /sys.
    let inv = discover(&Sysfs::host(), None);
    eprintln!("host: {} PFs, warnings {:?}", inv.pfs.len(), inv.warnings);
    for vf in inv.vfs() {
        assert_eq!(&discovery::vf(&Sysfs::host(), vf.pci).unwrap(), vf);
    }
}

#[test]
fn missing_root_is_a_warning() {
    let inv = discover(&Sysfs::new("/nonexistent-sysfs-root"), None);
    assert!(inv.pfs.is_empty());
    assert_eq!(inv.warnings.len(), 1);
    assert!(
        inv.warnings[0].contains("/nonexistent-sysfs-root/bus/pci/devices"),
        "{:?}",
        inv.warnings
    );
}

#[test]
fn zero_totalvfs_is_not_a_pf() {
    let dir = tempfile::tempdir().unwrap();
    let t = presets::qemu_igb_host(dir.path(), 0).unwrap();
    t.write_attr(pci("0000:01:00.0"), "sriov_totalvfs", b"0\n")
        .unwrap();
    let inv = discover(&t.sysfs(), Some(dir.path()));
    assert!(inv.pfs.is_empty(), "{inv:?}");
}

#[test]
fn vf_lookup_returns_pf_and_index() {
    let (_d, t, inv) = mixed();
    let sys = t.sysfs();
    let vf = discovery::vf(&sys, pci("0000:3b:01.2")).unwrap();
    assert_eq!(Some(&vf), inv.vf(pci("0000:3b:01.2")));
    assert_eq!((vf.index, vf.pf), (2, pci("0000:3b:00.0")));
    assert_eq!(vf.netdevs, ["ens1f0v2"]);
    let vfio = discovery::vf(&sys, pci("0000:18:02.3")).unwrap();
    assert_eq!((vfio.index, vfio.pf), (3, pci("0000:18:00.0")));
    assert_eq!(vfio.driver.as_deref(), Some("vfio-pci"));
    assert_eq!(vfio.iommu_group, Some(64));
    let cx = discovery::vf(&sys, pci("0000:af:00.5")).unwrap();
    assert_eq!((cx.index, cx.pf), (3, pci("0000:af:00.0")));
    // Every VF the inventory lists is found the same way one by one.
    for want in inv.vfs() {
        assert_eq!(&discovery::vf(&sys, want.pci).unwrap(), want);
    }

    assert_eq!(
        pf_netdev_of_vf(&sys, pci("0000:3b:01.2")).unwrap(),
        "ens1f0"
    );
    assert_eq!(
        pf_netdev_of_vf(&sys, pci("0000:af:00.2")).unwrap(),
        "ens3f0"
    );
    assert_eq!(pf_netdev(&sys, pci("0000:18:00.1")).unwrap(), "ens2f1");
}

#[test]
fn vf_lookup_errors_are_clear() {
    let (_d, t, _inv) = mixed();
    let sys = t.sysfs();
    let e = discovery::vf(&sys, pci("0000:3b:00.0")).unwrap_err();
    assert!(matches!(e, DiscoveryError::NotAVf { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "0000:3b:00.0 is not an SR-IOV VF (no physfn link)"
    );
    let e = discovery::vf(&sys, pci("0000:00:1f.6")).unwrap_err();
    assert!(matches!(e, DiscoveryError::NotAVf { .. }), "{e}");
    let e = discovery::vf(&sys, pci("0000:99:00.0")).unwrap_err();
    assert!(matches!(e, DiscoveryError::NoSuchDevice { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("no PCI device 0000:99:00.0 under "),
        "{e}"
    );
    let e = pf_netdev_of_vf(&sys, pci("0000:3b:00.0")).unwrap_err();
    assert!(matches!(e, DiscoveryError::NotAVf { .. }), "{e}");
    let e = pf_netdev(&sys, pci("0000:00:1f.6")).unwrap_err();
    assert!(matches!(e, DiscoveryError::NotAPf { .. }), "{e}");
}

#[test]
fn vf_lookup_on_a_broken_tree() {
    let dir = tempfile::tempdir().unwrap();
    let t = presets::broken_host(dir.path()).unwrap();
    let sys = t.sysfs();
    assert_eq!(discovery::vf(&sys, pci("0000:5e:01.0")).unwrap().index, 0);
    let e = discovery::vf(&sys, pci("0000:5e:01.1")).unwrap_err();
    assert!(matches!(e, DiscoveryError::NoSuchDevice { .. }), "{e}");
    let e = discovery::vf(&sys, pci("0000:5e:01.2")).unwrap_err();
    assert!(matches!(e, DiscoveryError::BadPhysfn { .. }), "{e}");
    assert!(e.to_string().contains("0000:5e:1f.7"), "{e}");
    let e = discovery::vf(&sys, pci("0000:5e:01.3")).unwrap_err();
    assert!(
        matches!(e, DiscoveryError::Sysfs(SysfsError::Parse { .. })),
        "{e}"
    );
    // NUMA unreadable is not fatal for the CNI.
    let vf4 = discovery::vf(&sys, pci("0000:5e:01.4")).unwrap();
    assert_eq!((vf4.index, vf4.numa_node), (4, None));
}

#[test]
fn vf_index_without_offset_and_stride_scans_virtfn_links() {
    let dir = tempfile::tempdir().unwrap();
    let t = presets::qemu_igb_host(dir.path(), 7).unwrap();
    let pf = pci("0000:01:00.0");
    t.remove_attr(pf, "sriov_offset").unwrap();
    t.write_attr(pf, "sriov_stride", b"garbage\n").unwrap();
    let vf = discovery::vf(&t.sysfs(), pci("0000:01:11.2")).unwrap();
    assert_eq!(vf.index, 5);
    // A VF its PF no longer lists (being re-created) is an error, not a wrong index.
    t.remove_attr(pf, "virtfn5").unwrap();
    let e = discovery::vf(&t.sysfs(), pci("0000:01:11.2")).unwrap_err();
    assert!(matches!(e, DiscoveryError::NoVirtfn { .. }), "{e}");
}

#[test]
fn unbound_pf_has_no_netdev_for_vf_control() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = FixtureTree::new(dir.path()).unwrap();
    let mut spec = presets::intel_e810(pci("0000:3b:00.0"), "ens1f0", 2, 0);
    spec.dev.driver = None;
    spec.dev.netdevs.clear();
    t.add_pf(&spec).unwrap();
    let e = pf_netdev_of_vf(&t.sysfs(), pci("0000:3b:01.1")).unwrap_err();
    assert!(matches!(e, DiscoveryError::NoPfNetdev { .. }), "{e}");
}

#[test]
fn link_types() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = FixtureTree::new(dir.path()).unwrap();
    t.add_pf(&presets::mellanox_cx6_infiniband(
        pci("0000:af:00.0"),
        "ibp175s0f0",
        2,
        1,
    ))
    .unwrap();
    t.write_attr(pci("0000:af:00.3"), "net/ibp175s0f0v1/type", b"772\n")
        .unwrap();
    let inv = discover(&t.sysfs(), Some(dir.path()));
    let cx = &inv.pfs[0];
    assert_eq!(cx.link_type.as_deref(), Some("infiniband"));
    assert_eq!(cx.vfs[0].link_type.as_deref(), Some("infiniband"));
    assert_eq!(cx.vfs[1].link_type.as_deref(), Some("772"));
}

#[test]
fn inventory_round_trips_as_json() {
    let (_d, _t, inv) = mixed();
    let json = serde_json::to_string(&inv).unwrap();
    assert!(
        json.contains(r#""pci":"0000:3b:01.0","index":0,"pf":"0000:3b:00.0""#),
        "{json}"
    );
    let back: Inventory = serde_json::from_str(&json).unwrap();
    assert_eq!(back, inv);
}

fn scale(pfs: u32, vfs: u32) -> (tempfile::TempDir, Inventory) {
    // Tens of thousands of small files: tmpfs when there is one, a loaded ext4 takes seconds.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let t0 = Instant::now();
    let t = presets::scale(dir.path(), pfs, vfs).unwrap();
    let built = t0.elapsed();
    let t1 = Instant::now();
    let inv = discover(&t.sysfs(), Some(Path::new(dir.path())));
    eprintln!(
        "{pfs}x{vfs}: fixture built in {built:?}, discovered in {:?}",
        t1.elapsed()
    );
    (dir, inv)
}

#[test]
fn scale_4_by_128() {
    let (dir, inv) = scale(4, 128);
    assert_eq!(inv.pfs.len(), 4);
    assert_eq!(inv.vfs().count(), 512);
    // Only the missing proc route table is reported.
    assert_eq!(inv.warnings.len(), 1, "{:?}", inv.warnings);
    for (p, pf) in inv.pfs.iter().enumerate() {
        assert_eq!(pf.pci, PciAddr::new(0, 0x10 + 4 * p as u8, 0, 0).unwrap());
        assert_eq!(pf.netdevs, [format!("ens{}f0", p + 1)]);
        assert_eq!(pf.numa_node, Some(p as u32 % 2));
        let idx: Vec<u32> = pf.vfs.iter().map(|v| v.index).collect();
        assert_eq!(idx, (0..128).collect::<Vec<_>>());
        assert_eq!(pf.vfs[127].netdevs, [format!("ens{}f0v127", p + 1)]);
    }
    let mut all: Vec<PciAddr> = inv.vfs().map(|v| v.pci).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 512);
    assert_eq!(inv.pfs[0].vfs[0].pci, pci("0000:10:01.0"));
    assert_eq!(inv.pfs[0].vfs[127].pci, pci("0000:10:10.7"));
    let sys = Sysfs::new(dir.path());
    let vf = discovery::vf(&sys, pci("0000:1c:10.7")).unwrap();
    assert_eq!((vf.index, vf.pf), (127, pci("0000:1c:00.0")));
}

#[test]
fn scale_1024_vfs_spilling_over_buses() {
    let (dir, inv) = scale(4, 256);
    assert_eq!(inv.vfs().count(), 1024);
    let last = inv.pfs[3].vfs.last().unwrap();
    // 0x1c00 + 8 + 255 = 0x1d07: VFs past routing ID 0x1cff sit on the next bus.
    assert_eq!((last.index, last.pci), (255, pci("0000:1d:00.7")));
    let vf = discovery::vf(&Sysfs::new(dir.path()), last.pci).unwrap();
    assert_eq!(&vf, last);
}

/// A scan that cannot read a PF or a VF (an I/O error, not "no such file") keeps it as the last
/// inventory had it; one that cannot list the bus keeps everything; a device that sysfs says is
/// gone is withdrawn.
#[test]
fn what_a_scan_cannot_read_is_carried_over_and_only_gone_devices_leave() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sys");
    let tree = presets::scale(&root, 2, 4).unwrap();
    let sys = tree.sysfs();
    let good = discover(&sys, None);
    assert_eq!((good.pfs.len(), good.vfs().count()), (2, 8));
    assert!(good.unread.is_empty());
    let pf0 = good.pfs[0].pci;
    let (pf1, vf) = (good.pfs[1].pci, good.pfs[1].vfs[2].clone());
    let dev = |a: PciAddr| root.join("bus/pci/devices").join(a.to_string());

    // PF 0's sriov_totalvfs and one VF's vendor turn unreadable (directories, not files).
    std::fs::remove_file(dev(pf0).join("sriov_totalvfs")).unwrap();
    std::fs::create_dir(dev(pf0).join("sriov_totalvfs")).unwrap();
    std::fs::remove_file(dev(vf.pci).join("vendor")).unwrap();
    std::fs::create_dir(dev(vf.pci).join("vendor")).unwrap();
    let scan = discover(&sys, None);
    assert_eq!(scan.unread.pfs, vec![pf0]);
    assert_eq!(scan.unread.vfs, vec![(pf1, vf.index)]);
    assert_eq!(scan.vfs().count(), 3, "the raw scan misses PF 0 and one VF");
    let kept = scan.carry_over(&good);
    assert_eq!(kept.pfs, good.pfs, "carried over as last seen");

    // The bus itself cannot be listed: everything stays.
    let bus = root.join("bus/pci/devices");
    std::fs::rename(&bus, root.join("bus/pci/devices.moved")).unwrap();
    std::fs::write(&bus, "not a directory").unwrap();
    let scan = discover(&sys, None);
    assert!(scan.unread.bus, "{:?}", scan.warnings);
    assert_eq!(scan.carry_over(&kept).pfs, good.pfs);
    std::fs::remove_file(&bus).unwrap();
    std::fs::rename(root.join("bus/pci/devices.moved"), &bus).unwrap();

    // Gone for real: the VF's entry removed from the PF, PF 0 no longer SR-IOV capable.
    std::fs::remove_file(dev(pf1).join(format!("virtfn{}", vf.index))).unwrap();
    std::fs::remove_dir(dev(pf0).join("sriov_totalvfs")).unwrap();
    let scan = discover(&sys, None);
    assert!(scan.unread.is_empty(), "{:?}", scan.unread);
    let after = scan.carry_over(&kept);
    assert_eq!(after.pfs.len(), 1, "PF 0 withdrawn");
    assert_eq!(after.vfs().count(), 3, "the removed VF withdrawn");
}

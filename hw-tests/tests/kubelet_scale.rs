//! The real agent serving a 512-VF fixture tree (4 E810 PFs × 128 VFs, the layout of
//! `sriov_hw::fixtures::presets::scale`) to the kubelet stand-in: the whole inventory with NUMA
//! topology, GetPreferredAllocation keeping to one NUMA node and spreading across its PFs, and
//! one PF's link going down. The fixture PFs' netdevs are veth links in the host named uniquely,
//! so the agent's netlink health sees real links.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::process::Command;
use std::time::{Duration, Instant};

use hw_tests::kubelet::{DeviceList, KubeletStandIn};
use hw_tests::{Agent, require_root, run_ok, unique_name};
use serde_json::json;
use sriov_hw::PciAddr;
use sriov_hw::fixtures::FixtureTree;
use sriov_hw::fixtures::presets::intel_e810;
use sriov_proto::deviceplugin::v1beta1 as api;
use sriov_proto::kubelet::{HEALTHY, UNHEALTHY};

const RESOURCE: &str = "scale.io/vf";
const PFS: u32 = 4;
const VFS: u32 = 128;

/// veth pairs standing in for the PF netdevs (up, with carrier); deleted on drop.
struct PfLinks(Vec<String>);

impl Drop for PfLinks {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["link", "del", n]).output();
        }
    }
}

/// Builds the tree with PF netdevs `<prefix>f<p>` and creates those links; PF `p` is at bus
/// `0x10 + 4p`, NUMA node `p % 2`.
fn scale_bed(root: &std::path::Path, prefix: &str) -> PfLinks {
    let mut tree = FixtureTree::new(root).unwrap();
    let mut links = PfLinks(vec![]);
    for p in 0..PFS {
        let pci = PciAddr {
            domain: 0,
            bus: (0x10 + 4 * p) as u8,
            device: 0,
            function: 0,
        };
        let name = format!("{prefix}f{p}");
        tree.add_pf(&intel_e810(pci, &name, VFS, (p % 2) as i32).with_iommu_groups(100 + 1000 * p))
            .unwrap();
        let peer = format!("{name}p");
        run_ok(
            Command::new("ip").args(["link", "add", &name, "type", "veth", "peer", "name", &peer]),
        );
        links.0.push(name.clone());
        run_ok(Command::new("ip").args(["link", "set", &peer, "up"]));
        run_ok(Command::new("ip").args(["link", "set", &name, "up"]));
    }
    links
}

/// The PF index of a device ID (its bus is in `0x10 + 4p ..= 0x10 + 4p + 3`).
fn pf_of(id: &str) -> u32 {
    let pci: PciAddr = id.parse().unwrap();
    (u32::from(pci.bus) - 0x10) / 4
}

fn numa_of(d: &api::Device) -> Option<i64> {
    let nodes = &d.topology.as_ref()?.nodes;
    (nodes.len() == 1).then(|| nodes[0].id)
}

fn count(l: &DeviceList, health: &str) -> usize {
    l.devices.iter().filter(|d| d.health == health).count()
}

async fn preferred(
    plugin: &mut api::device_plugin_client::DevicePluginClient<tonic::transport::Channel>,
    available: &[String],
    must: &[String],
    size: i32,
) -> Vec<String> {
    plugin
        .get_preferred_allocation(api::PreferredAllocationRequest {
            container_requests: vec![api::ContainerPreferredAllocationRequest {
                available_device_i_ds: available.to_vec(),
                must_include_device_i_ds: must.to_vec(),
                allocation_size: size,
            }],
        })
        .await
        .expect("GetPreferredAllocation")
        .into_inner()
        .container_responses
        .remove(0)
        .device_i_ds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_512_vfs_with_numa_spread_and_per_pf_health() {
    if !require_root("serves_512_vfs_with_numa_spread_and_per_pf_health") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sys");
    let links = scale_bed(&root, &unique_name("ks"));
    let pools = dir.path().join("pools.json");
    std::fs::write(
        &pools,
        json!({"resourceList": [{"resourceName": "vf", "resourcePrefix": "scale.io",
               "selectors": {"vendors": ["8086"], "drivers": ["iavf"]}}]})
        .to_string(),
    )
    .unwrap();
    let kdir = dir.path().join("kubelet");
    std::fs::create_dir_all(&kdir).unwrap();
    let kubelet = KubeletStandIn::start(&kdir).unwrap();
    let since = Instant::now();
    let p = |x: &str| dir.path().join(x).display().to_string();
    let agent = tokio::task::block_in_place(|| {
        Agent::start_with(
            dir.path(),
            &root,
            &pools,
            None,
            &[
                "--kubelet-dir",
                &kdir.display().to_string(),
                "--pod-resources-socket",
                &p("pr.sock"),
                "--devinfo-dir",
                &p("devinfo"),
            ],
        )
    });

    let total = (PFS * VFS) as usize;
    let list = kubelet
        .wait_devices(RESOURCE, Duration::from_secs(20), |l| {
            l.devices.len() == total
        })
        .await
        .unwrap_or_else(|| panic!("no list of {total}; agent log:\n{}", agent.log()));
    eprintln!(
        "start → ListAndWatch of {total} devices: {:?}",
        list.received.duration_since(since)
    );
    assert_eq!(count(&list, HEALTHY), total);
    let mut ids: Vec<String> = list.devices.iter().map(|d| d.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "duplicate IDs");
    for d in &list.devices {
        assert_eq!(numa_of(d), Some(i64::from(pf_of(&d.id) % 2)), "{d:?}");
    }
    for p in 0..PFS {
        assert_eq!(ids.iter().filter(|i| pf_of(i) == p).count(), VFS as usize);
    }

    // Size 4 out of everything: one NUMA node, spread over that node's two PFs.
    let mut plugin = kubelet.plugin(RESOURCE).await.unwrap();
    let got = preferred(&mut plugin, &ids, &[], 4).await;
    assert_eq!(got.len(), 4, "{got:?}");
    let numa: Vec<u32> = got.iter().map(|i| pf_of(i) % 2).collect();
    assert!(
        numa.iter().all(|n| *n == numa[0]),
        "crosses NUMA nodes: {got:?}"
    );
    let mut pfs: Vec<u32> = got.iter().map(|i| pf_of(i)).collect();
    pfs.sort();
    assert_eq!(pfs, [numa[0], numa[0], numa[0] + 2, numa[0] + 2], "{got:?}");
    // Deterministic.
    assert_eq!(preferred(&mut plugin, &ids, &[], 4).await, got);
    // A must-include device on NUMA 1 pulls the rest there.
    let on1 = ids.iter().find(|i| pf_of(i) == 3).unwrap().clone();
    let got = preferred(&mut plugin, &ids, std::slice::from_ref(&on1), 4).await;
    assert_eq!(got[0], on1);
    assert!(got.iter().all(|i| pf_of(i) % 2 == 1), "{got:?}");

    // PF 2's link goes down: exactly its 128 VFs turn Unhealthy, within a second.
    let t = Instant::now();
    run_ok(Command::new("ip").args(["link", "set", &links.0[2], "down"]));
    let l = kubelet
        .wait_devices(RESOURCE, Duration::from_secs(5), |l| {
            count(l, UNHEALTHY) == VFS as usize
        })
        .await
        .expect("PF 2's VFs never Unhealthy");
    eprintln!(
        "PF down → 128 Unhealthy: {:?}",
        l.received.duration_since(t)
    );
    assert!(l.received.duration_since(t) < Duration::from_secs(1));
    assert!(
        l.devices
            .iter()
            .all(|d| (d.health == UNHEALTHY) == (pf_of(&d.id) == 2)),
        "health does not follow the PF"
    );
    // Preferred allocation skips them.
    let got = preferred(&mut plugin, &ids, &[], 8).await;
    assert_eq!(got.len(), 8);
    assert!(got.iter().all(|i| pf_of(i) != 2), "{got:?}");
    drop(agent);
}

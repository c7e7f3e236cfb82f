//! The kubelet side over time: kubelet restarts and late starts, pools added and removed by a
//! config reload, shutdown, and a 512-VF inventory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

mod common;

use std::time::{Duration, Instant};

use common::{Bed, SOON, eventually, pool, vf, vfs};
use hw_tests::kubelet::KubeletStandIn;
use sriov_proto::deviceplugin::v1beta1 as api;

const NET: &str = "intel.com/sriov_net";
const SOCK: &str = "sriov_intel_com_sriov_net.sock";

fn long_ago() -> Instant {
    Instant::now() - Duration::from_secs(60)
}

#[tokio::test]
async fn kubelet_restart_reregisters_within_one_second() {
    let mut bed = Bed::start(
        vec![pool("intel.com", "sriov_net", vfs(&[0x3b], 4, |_| Some(0)))],
        false,
    );
    bed.kubelet
        .wait_registration(NET, long_ago(), SOON)
        .await
        .expect("registered");
    bed.kubelet
        .wait_devices(NET, SOON, |_| true)
        .await
        .expect("first list");
    let before = bed.manager().stats();

    for round in 0..3 {
        let recreated = bed.kubelet.restart().expect("restart stand-in");
        assert!(!bed.socket(SOCK).exists(), "stand-in removed our socket");
        let r = bed
            .kubelet
            .wait_registration(NET, recreated, Duration::from_secs(3))
            .await
            .expect("re-registered");
        let elapsed = r.at - recreated;
        println!("kubelet restart {round}: re-registered after {elapsed:?}");
        assert!(elapsed <= Duration::from_secs(1), "took {elapsed:?}");
        assert!(bed.socket(SOCK).exists());
        // The new kubelet gets the list and can allocate through the new socket.
        bed.kubelet
            .wait_devices(NET, SOON, |_| true)
            .await
            .expect("list after restart");
        let mut plugin = bed.kubelet.plugin(NET).await.expect("dial new socket");
        plugin
            .allocate(api::AllocateRequest {
                container_requests: vec![api::ContainerAllocateRequest {
                    devices_ids: vec!["0000:3b:02.0".into()],
                }],
            })
            .await
            .expect("allocate after restart");
    }
    let after = || bed.manager().stats();
    assert!(after().server_starts >= before.server_starts + 3);
    assert!(eventually(|| after().registrations_ok >= before.registrations_ok + 3).await);
}

#[tokio::test]
async fn new_kubelet_socket_alone_triggers_registration_on_the_same_server() {
    let mut bed = Bed::start(
        vec![pool("intel.com", "sriov_net", vfs(&[0x3b], 2, |_| None))],
        false,
    );
    bed.kubelet
        .wait_registration(NET, long_ago(), SOON)
        .await
        .expect("registered");
    let starts = bed.manager().stats().server_starts;
    let recreated = bed.kubelet.recreate_socket().expect("new kubelet.sock");
    let r = bed
        .kubelet
        .wait_registration(NET, recreated, Duration::from_secs(3))
        .await
        .expect("re-registered");
    let elapsed = r.at - recreated;
    println!("new kubelet.sock: re-registered after {elapsed:?}");
    assert!(elapsed <= Duration::from_secs(1), "took {elapsed:?}");
    assert_eq!(
        bed.manager().stats().server_starts,
        starts,
        "socket was intact"
    );
}

#[tokio::test]
async fn removed_plugin_socket_is_served_again_and_registered() {
    let bed = Bed::start(
        vec![pool("intel.com", "sriov_net", vfs(&[0x3b], 2, |_| None))],
        false,
    );
    bed.kubelet
        .wait_registration(NET, long_ago(), SOON)
        .await
        .expect("registered");
    let removed = Instant::now();
    std::fs::remove_file(bed.socket(SOCK)).expect("remove our socket");
    let r = bed
        .kubelet
        .wait_registration(NET, removed, Duration::from_secs(3))
        .await
        .expect("re-registered");
    let elapsed = r.at - removed;
    println!("removed plugin socket: served and registered again after {elapsed:?}");
    assert!(elapsed <= Duration::from_secs(1), "took {elapsed:?}");
    let mut plugin = bed.kubelet.plugin(NET).await.expect("dial new socket");
    plugin
        .get_device_plugin_options(api::Empty {})
        .await
        .expect("answers");
}

#[tokio::test]
async fn kubelet_down_then_up_registers_when_it_appears() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Start the stand-in only to have a handle, then take it down before the agent starts.
    let mut kubelet = KubeletStandIn::start(dir.path()).expect("stand-in");
    kubelet.stop();
    let bed = Bed::with_kubelet(
        dir,
        kubelet,
        vec![pool("intel.com", "sriov_net", vec![vf(0x3b, 0, None)])],
        false,
    );
    let mut bed = bed;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(bed.socket(SOCK).exists(), "served even without kubelet");
    assert!(bed.kubelet.registrations().is_empty());
    assert!(bed.manager().stats().registrations_failed >= 1);

    let up = bed.kubelet.restart().expect("kubelet up");
    let r = bed
        .kubelet
        .wait_registration(NET, up, Duration::from_secs(3))
        .await
        .expect("registered once kubelet is up");
    let elapsed = r.at - up;
    println!("late kubelet: registered after {elapsed:?}");
    assert!(elapsed <= Duration::from_secs(1), "took {elapsed:?}");
}

#[tokio::test]
async fn pools_added_and_removed_by_snapshot_start_and_stop_servers() {
    let a = pool("intel.com", "sriov_net", vfs(&[0x3b], 2, |_| Some(0)));
    let b = pool("intel.com", "sriov_dpdk", vfs(&[0x3c], 2, |_| Some(0)));
    let bed = Bed::start(vec![a.clone()], false);
    bed.kubelet
        .wait_registration(NET, long_ago(), SOON)
        .await
        .expect("a registered");
    bed.kubelet
        .wait_devices(NET, SOON, |_| true)
        .await
        .expect("a listed");

    bed.publish(vec![a.clone(), b.clone()]);
    bed.kubelet
        .wait_registration("intel.com/sriov_dpdk", long_ago(), SOON)
        .await
        .expect("b registered");
    let listed = bed
        .kubelet
        .wait_devices("intel.com/sriov_dpdk", SOON, |_| true)
        .await
        .expect("b listed");
    assert_eq!(listed.devices.len(), 2);
    assert_eq!(bed.manager().stats().pools, 2);
    // Adding b did not disturb a's stream.
    assert_eq!(bed.kubelet.devices(NET).map(|l| l.seq), Some(1));

    bed.publish(vec![b]);
    let gone = bed.socket(SOCK);
    assert!(
        eventually(|| !gone.exists()).await,
        "removed pool's socket stays"
    );
    assert!(bed.socket("sriov_intel_com_sriov_dpdk.sock").exists());
    assert!(eventually(|| bed.manager().stats().pools == 1).await);
    let mut client = bed
        .kubelet
        .plugin("intel.com/sriov_dpdk")
        .await
        .expect("b still served");
    client
        .get_device_plugin_options(api::Empty {})
        .await
        .expect("b answers");
}

#[tokio::test]
async fn shutdown_ends_streams_and_removes_sockets() {
    let mut bed = Bed::start(
        vec![pool("intel.com", "sriov_net", vfs(&[0x3b], 2, |_| None))],
        false,
    );
    bed.kubelet
        .wait_devices(NET, SOON, |_| true)
        .await
        .expect("listed");
    let mut client = bed.kubelet.plugin(NET).await.expect("dial");
    let mut stream = client
        .list_and_watch(api::Empty {})
        .await
        .expect("watch")
        .into_inner();
    assert!(stream.message().await.expect("first message").is_some());

    let manager = bed.manager.take().expect("running");
    tokio::time::timeout(SOON, manager.shutdown())
        .await
        .expect("shutdown is prompt");
    assert!(!bed.socket(SOCK).exists());
    let end = tokio::time::timeout(SOON, stream.message())
        .await
        .expect("stream ends");
    assert!(!matches!(end, Ok(Some(_))), "no more lists after shutdown");
}

#[tokio::test]
async fn serves_512_vfs() {
    // 4 PFs × 128 VFs, two PFs per NUMA node.
    let devices = vfs(&[0x3b, 0x3c, 0x86, 0x87], 128, |b| {
        Some(if b < 0x80 { 0 } else { 1 })
    });
    assert_eq!(devices.len(), 512);
    let started = Instant::now();
    let bed = Bed::start(vec![pool("intel.com", "sriov_net", devices.clone())], false);
    let list = bed
        .kubelet
        .wait_devices(NET, SOON, |_| true)
        .await
        .expect("list");
    println!(
        "512 VFs: start to first ListAndWatch list {:?}",
        list.received - started
    );
    assert_eq!(list.devices.len(), 512);
    for (d, want) in list.devices.iter().zip(&devices) {
        assert_eq!(d.id, want.id);
        assert_eq!(d.health, "Healthy");
        let numa = d.topology.as_ref().map(|t| t.nodes[0].id);
        assert_eq!(numa, want.numa_node.map(i64::from));
    }

    let mut plugin = bed.kubelet.plugin(NET).await.expect("dial");
    let all: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
    let got = plugin
        .get_preferred_allocation(api::PreferredAllocationRequest {
            container_requests: vec![api::ContainerPreferredAllocationRequest {
                available_device_i_ds: all,
                must_include_device_i_ds: vec![],
                allocation_size: 8,
            }],
        })
        .await
        .expect("preferred")
        .into_inner();
    let buses: Vec<&str> = got.container_responses[0]
        .device_i_ds
        .iter()
        .map(|i| &i[5..7])
        .collect();
    assert_eq!(buses, ["3b", "3c", "3b", "3c", "3b", "3c", "3b", "3c"]);

    let mut lat = Vec::new();
    for d in devices.iter().step_by(2) {
        let t = Instant::now();
        let resp = plugin
            .allocate(api::AllocateRequest {
                container_requests: vec![api::ContainerAllocateRequest {
                    devices_ids: vec![d.id.clone()],
                }],
            })
            .await
            .expect("allocate")
            .into_inner();
        lat.push(t.elapsed());
        assert_eq!(
            resp.container_responses[0].envs["PCIDEVICE_INTEL_COM_SRIOV_NET"],
            d.id
        );
    }
    lat.sort();
    println!(
        "512 VFs: Allocate latency over {} calls p50 {:?} p99 {:?}",
        lat.len(),
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
    assert_eq!(bed.devinfo_files().len(), 256);
}

//! The device plugin API as kubelet uses it: registration, ListAndWatch, Allocate,
//! GetPreferredAllocation, through the kubelet stand-in over real Unix sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

mod common;

use std::time::{Duration, Instant};

use common::{Bed, SOON, eventually, pool, vf, vfs};
use device_plugin::pools::{AllocationPolicy, PoolDevices};
use sriov_proto::deviceplugin::v1beta1 as api;
use sriov_proto::kubelet::{HEALTHY, UNHEALTHY};

const NET: &str = "intel.com/sriov_net";

fn net_pool() -> PoolDevices {
    // Two PFs on NUMA 0, two on NUMA 1, four VFs each.
    pool(
        "intel.com",
        "sriov_net",
        vfs(&[0x3b, 0x3c, 0x86, 0x87], 4, |b| {
            Some(if b < 0x80 { 0 } else { 1 })
        }),
    )
}

fn alloc_req(containers: &[&[&str]]) -> api::AllocateRequest {
    api::AllocateRequest {
        container_requests: containers
            .iter()
            .map(|ids| api::ContainerAllocateRequest {
                devices_ids: ids.iter().map(|s| s.to_string()).collect(),
            })
            .collect(),
    }
}

#[tokio::test]
async fn registers_every_pool_with_kubelet() {
    let mut other = pool("example.org", "dpdk", vec![vf(0x5e, 0, None)]);
    other.need_vhost_net = true;
    let bed = Bed::start(vec![net_pool(), other], false);
    let t0 = Instant::now();
    for (resource, endpoint) in [
        (NET, "sriov_intel_com_sriov_net.sock"),
        ("example.org/dpdk", "sriov_example_org_dpdk.sock"),
    ] {
        let r = bed
            .kubelet
            .wait_registration(resource, t0 - Duration::from_secs(60), SOON)
            .await
            .unwrap_or_else(|| panic!("{resource} not registered"));
        assert_eq!(r.request.version, "v1beta1");
        assert_eq!(r.request.endpoint, endpoint);
        let opts = r.request.options.expect("options sent");
        assert!(!opts.pre_start_required);
        assert!(opts.get_preferred_allocation_available);
        // Kubelet dialed back and asked GetDevicePluginOptions: same answer.
        assert_eq!(r.options, opts);
        assert!(bed.socket(endpoint).exists());
    }
    // The stand-in records a registration just before the plugin sees the answer.
    assert!(eventually(|| bed.manager().stats().registrations_ok >= 2).await);
    let stats = bed.manager().stats();
    assert_eq!(stats.pools, 2);
    assert_eq!(stats.registrations_ok, 2);
    assert_eq!(stats.registrations_failed, 0);
    assert_eq!(stats.server_starts, 2);
}

#[tokio::test]
async fn list_and_watch_sends_the_list_then_pushes_health_changes() {
    let mut quiet = pool("example.org", "quiet", vec![vf(0x5e, 0, Some(1))]);
    quiet.exclude_topology = true;
    let bed = Bed::start(vec![net_pool(), quiet.clone()], false);

    let first = bed
        .kubelet
        .wait_devices(NET, SOON, |_| true)
        .await
        .expect("initial list");
    assert_eq!(first.seq, 1);
    assert_eq!(first.devices.len(), 16);
    let d = first.get("0000:86:02.1").expect("listed");
    assert_eq!(d.health, HEALTHY);
    assert_eq!(
        d.topology,
        Some(api::TopologyInfo {
            nodes: vec![api::NumaNode { id: 1 }]
        })
    );
    let q = bed
        .kubelet
        .wait_devices("example.org/quiet", SOON, |_| true)
        .await
        .expect("quiet pool list");
    assert_eq!(q.devices[0].topology, None, "excludeTopology hides NUMA");

    // A PF goes down: the health watcher publishes a snapshot with its VFs unhealthy.
    let mut changed = net_pool();
    for d in changed.devices.iter_mut().filter(|d| d.pf.bus == 0x86) {
        d.healthy = false;
    }
    let t0 = Instant::now();
    bed.publish(vec![changed.clone(), quiet.clone()]);
    let update = bed
        .kubelet
        .wait_devices(NET, SOON, |l| l.seq >= 2)
        .await
        .expect("pushed update");
    let latency = update.received - t0;
    println!("ListAndWatch update latency: {latency:?}");
    assert!(latency < Duration::from_secs(1), "update took {latency:?}");
    assert_eq!(update.seq, 2, "one change, one message");
    for d in &update.devices {
        let expect = if d.id.starts_with("0000:86:") {
            UNHEALTHY
        } else {
            HEALTHY
        };
        assert_eq!(d.health, expect, "{}", d.id);
    }
    // The other pool did not change, so its stream stayed quiet; an identical snapshot sends
    // nothing either.
    bed.publish(vec![changed, quiet]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        bed.kubelet.devices("example.org/quiet").map(|l| l.seq),
        Some(1)
    );
    assert_eq!(bed.kubelet.devices(NET).map(|l| l.seq), Some(2));
}

#[tokio::test]
async fn allocate_returns_env_info_and_device_info_files() {
    let bed = Bed::start(vec![net_pool()], true);
    bed.kubelet
        .wait_registration(NET, Instant::now() - Duration::from_secs(60), SOON)
        .await
        .expect("registered");
    let mut plugin = bed.kubelet.plugin(NET).await.expect("dial plugin");
    let resp = plugin
        .allocate(alloc_req(&[
            &["0000:3b:02.0", "0000:3b:02.1"],
            &["0000:86:02.3"],
        ]))
        .await
        .expect("allocate")
        .into_inner();
    assert_eq!(resp.container_responses.len(), 2);
    let c0 = &resp.container_responses[0];
    assert_eq!(
        c0.envs
            .get("PCIDEVICE_INTEL_COM_SRIOV_NET")
            .map(String::as_str),
        Some("0000:3b:02.0,0000:3b:02.1")
    );
    let info: serde_json::Value =
        serde_json::from_str(&c0.envs["PCIDEVICE_INTEL_COM_SRIOV_NET_INFO"]).expect("JSON");
    assert_eq!(
        info,
        serde_json::json!({
            "0000:3b:02.0": {"generic": {"deviceID": "0000:3b:02.0"}},
            "0000:3b:02.1": {"generic": {"deviceID": "0000:3b:02.1"}},
        })
    );
    assert_eq!(c0.envs.len(), 2);
    assert!(c0.devices.is_empty(), "netdevice VFs need no device nodes");
    let cdi: Vec<_> = c0.cdi_devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        cdi,
        [
            "intel.com/sriov_net=0000:3b:02.0",
            "intel.com/sriov_net=0000:3b:02.1"
        ]
    );
    assert_eq!(
        resp.container_responses[1].envs["PCIDEVICE_INTEL_COM_SRIOV_NET"],
        "0000:86:02.3"
    );

    assert_eq!(
        bed.devinfo_files(),
        [
            "intel.com-sriov_net-0000:3b:02.0-device.json",
            "intel.com-sriov_net-0000:3b:02.1-device.json",
            "intel.com-sriov_net-0000:86:02.3-device.json",
        ]
    );
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            bed.devinfo
                .path()
                .join("dp/intel.com-sriov_net-0000:86:02.3-device.json"),
        )
        .expect("read devinfo"),
    )
    .expect("devinfo JSON");
    assert_eq!(
        spec,
        serde_json::json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:86:02.3"}})
    );

    // PreStartContainer is a no-op.
    plugin
        .pre_start_container(api::PreStartContainerRequest {
            devices_ids: vec!["0000:3b:02.0".into()],
        })
        .await
        .expect("prestart");
}

#[tokio::test]
async fn allocate_vfio_and_vhost_devices() {
    let mut devices = vfs(&[0x3b], 2, |_| Some(0));
    for (i, d) in devices.iter_mut().enumerate() {
        d.driver = Some("vfio-pci".into());
        d.iommu_group = Some(70 + i as u32);
    }
    let mut dpdk = pool("intel.com", "dpdk", devices);
    dpdk.need_vhost_net = true;
    let bed = Bed::start(vec![dpdk], false);
    bed.kubelet
        .wait_registration(
            "intel.com/dpdk",
            Instant::now() - Duration::from_secs(60),
            SOON,
        )
        .await
        .expect("registered");
    let mut plugin = bed.kubelet.plugin("intel.com/dpdk").await.expect("dial");
    let resp = plugin
        .allocate(alloc_req(&[&["0000:3b:02.1", "0000:3b:02.0"]]))
        .await
        .expect("allocate")
        .into_inner();
    let c = &resp.container_responses[0];
    assert_eq!(
        c.envs["PCIDEVICE_INTEL_COM_DPDK"],
        "0000:3b:02.1,0000:3b:02.0"
    );
    let specs: Vec<(&str, &str, &str)> = c
        .devices
        .iter()
        .map(|d| {
            (
                d.host_path.as_str(),
                d.container_path.as_str(),
                d.permissions.as_str(),
            )
        })
        .collect();
    assert_eq!(
        specs,
        [
            ("/dev/vfio/vfio", "/dev/vfio/vfio", "rw"),
            ("/dev/vfio/71", "/dev/vfio/71", "rw"),
            ("/dev/vfio/70", "/dev/vfio/70", "rw"),
            ("/dev/vhost-net", "/dev/vhost-net", "rw"),
            ("/dev/net/tun", "/dev/net/tun", "rw"),
        ]
    );
    let info: serde_json::Value =
        serde_json::from_str(&c.envs["PCIDEVICE_INTEL_COM_DPDK_INFO"]).expect("JSON");
    assert_eq!(
        info["0000:3b:02.1"],
        serde_json::json!({
            "generic": {"deviceID": "0000:3b:02.1"},
            "vfio": {"dev-mount": "/dev/vfio/71", "mount": "/dev/vfio/vfio"},
        })
    );
    assert!(c.cdi_devices.is_empty(), "CDI is off");
}

#[tokio::test]
async fn allocate_refuses_unknown_and_unhealthy_ids_and_writes_nothing() {
    let mut p = net_pool();
    p.devices[1].healthy = false; // 0000:3b:02.1
    let bed = Bed::start(vec![p], false);
    bed.kubelet
        .wait_registration(NET, Instant::now() - Duration::from_secs(60), SOON)
        .await
        .expect("registered");
    let mut plugin = bed.kubelet.plugin(NET).await.expect("dial");

    for (req, bad) in [
        (
            alloc_req(&[&["0000:3b:02.0"], &["0000:3b:1f.7"]]),
            "0000:3b:1f.7",
        ),
        (
            alloc_req(&[&["0000:3b:02.0", "0000:3b:02.1"]]),
            "0000:3b:02.1",
        ),
        (alloc_req(&[&["not-a-pci-address"]]), "not-a-pci-address"),
    ] {
        let err = plugin.allocate(req).await.expect_err("must be refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains(bad), "{}", err.message());
    }
    assert!(bed.devinfo_files().is_empty(), "{:?}", bed.devinfo_files());
}

#[tokio::test]
async fn preferred_allocation_keeps_numa_and_spreads_or_packs() {
    let mut packed = net_pool();
    packed.name = "sriov_packed".into();
    packed.allocation_policy = AllocationPolicy::Pack;
    let bed = Bed::start(vec![net_pool(), packed], false);
    let since = Instant::now() - Duration::from_secs(60);
    for r in [NET, "intel.com/sriov_packed"] {
        bed.kubelet
            .wait_registration(r, since, SOON)
            .await
            .expect("registered");
    }
    let all: Vec<String> = net_pool().devices.iter().map(|d| d.id.clone()).collect();
    let ask = |must: &[&str], size: i32| api::PreferredAllocationRequest {
        container_requests: vec![api::ContainerPreferredAllocationRequest {
            available_device_i_ds: all.clone(),
            must_include_device_i_ds: must.iter().map(|s| s.to_string()).collect(),
            allocation_size: size,
        }],
    };
    let buses =
        |ids: &[String]| -> Vec<String> { ids.iter().map(|i| i[5..7].to_string()).collect() };

    let mut spread = bed.kubelet.plugin(NET).await.expect("dial");
    let got = spread
        .get_preferred_allocation(ask(&[], 4))
        .await
        .expect("preferred")
        .into_inner();
    let ids = &got.container_responses[0].device_i_ds;
    assert_eq!(buses(ids), ["3b", "3c", "3b", "3c"], "{ids:?}");

    // Must-include on NUMA 1 keeps the rest there.
    let got = spread
        .get_preferred_allocation(ask(&["0000:87:02.2"], 3))
        .await
        .expect("preferred")
        .into_inner();
    let ids = &got.container_responses[0].device_i_ds;
    assert_eq!(ids[0], "0000:87:02.2");
    assert_eq!(buses(ids), ["87", "86", "86"], "{ids:?}");

    let mut pack = bed
        .kubelet
        .plugin("intel.com/sriov_packed")
        .await
        .expect("dial");
    let got = pack
        .get_preferred_allocation(ask(&[], 4))
        .await
        .expect("preferred")
        .into_inner();
    let ids = &got.container_responses[0].device_i_ds;
    assert_eq!(buses(ids), ["3b"; 4], "{ids:?}");
    let got = pack
        .get_preferred_allocation(ask(&["0000:87:02.2"], 3))
        .await
        .expect("preferred")
        .into_inner();
    assert_eq!(buses(&got.container_responses[0].device_i_ds), ["87"; 3]);
}

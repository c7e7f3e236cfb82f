//! The kubelet side of a CNI test bed for fault tests: an emulated NIC with 4 VFs split over two
//! pools, the agent in kubelet mode, the kubelet stand-in listening before the agent starts, and
//! a wait for "recovered": every pool registered again and streaming its full Healthy list.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sriov_proto::kubelet::HEALTHY;

use crate::cni_fixture::{Bed, RESOURCE, default_pod_table};
use crate::kubelet::{DeviceList, KubeletStandIn, Registered};
use crate::{bin, run_ok};

/// The second pool of the kubelet beds (VFs 2 and 3; [`RESOURCE`] has VFs 0 and 1).
pub const RESOURCE_B: &str = "test.io/emu_b";
/// Bound for anything that involves a process start (registration, first list).
pub const START: Duration = Duration::from_secs(10);

/// A kubelet bed with 4 VFs split over two pools, the stand-in listening before the agent
/// starts. The stand-in is returned first so it outlives the agent.
pub fn two_pool_bed() -> (KubeletStandIn, Bed) {
    let mut kubelet = None;
    let bed = tokio::task::block_in_place(|| {
        Bed::with_kubelet(4, &default_pod_table(), |dir| {
            let inv = run_ok(
                Command::new(bin("sriov-device-plugin"))
                    .args(["inventory", "--json", "--sysfs-root"])
                    .arg(dir.join("sys")),
            );
            let inv: Value = serde_json::from_slice(&inv.stdout).expect("inventory JSON");
            let pf = inv["pfs"][0]["netdevs"][0]
                .as_str()
                .expect("one PF")
                .to_string();
            let pool = |name: &str, range: &str| {
                json!({"resourceName": name, "resourcePrefix": "test.io",
                       "selectors": {"pfNames": [format!("{pf}#{range}")]}})
            };
            let pools = json!({"resourceList": [pool("emu", "0-1"), pool("emu_b", "2-3")]});
            std::fs::write(dir.join("pools.json"), pools.to_string()).expect("pools");
            kubelet = Some(KubeletStandIn::start(&dir.join("kubelet")).expect("stand-in"));
        })
    });
    (kubelet.expect("stand-in started"), bed)
}

/// A one-pool bed ([`RESOURCE`], `vfs` VFs, the default pod table) in kubelet mode, once the
/// pool has registered with the stand-in: the stand-in (first, so it outlives the agent), the
/// bed and the registration. Needs a multi-thread runtime.
pub async fn registered_bed(vfs: u32) -> (KubeletStandIn, Bed, Registered) {
    let mut kubelet = None;
    let bed = tokio::task::block_in_place(|| {
        Bed::with_kubelet(vfs, &default_pod_table(), |dir| {
            kubelet = Some(KubeletStandIn::start(&dir.join("kubelet")).expect("stand-in"));
        })
    });
    let kubelet = kubelet.expect("stand-in started");
    let since = Instant::now() - Duration::from_secs(60);
    let reg = kubelet
        .wait_registration(RESOURCE, since, START)
        .await
        .expect("pool registered");
    (kubelet, bed, reg)
}

/// `(resource, device IDs)` of both pools, as the bed's inventory numbers the VFs.
pub fn pools_of(bed: &Bed) -> Vec<(String, Vec<String>)> {
    let vfs = tokio::task::block_in_place(|| bed.vf_pcis());
    assert_eq!(vfs.len(), 4, "{vfs:?}");
    vec![
        (RESOURCE.to_string(), vfs[..2].to_vec()),
        (RESOURCE_B.to_string(), vfs[2..].to_vec()),
    ]
}

/// The device IDs of a list, sorted.
pub fn ids(l: &DeviceList) -> Vec<String> {
    let mut v: Vec<String> = l.devices.iter().map(|d| d.id.clone()).collect();
    v.sort();
    v
}

/// Waits until every pool registered after `since` and its stream delivered its full device
/// list, all Healthy. Panics naming what is missing.
pub async fn wait_recovered(
    kubelet: &KubeletStandIn,
    bed: &Bed,
    pools: &[(String, Vec<String>)],
    since: Instant,
) {
    for (resource, want) in pools {
        kubelet
            .wait_registration(resource, since, START)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{resource} did not register again; log:\n{}",
                    bed.agent.log()
                )
            });
        let list = kubelet
            .wait_devices(resource, START, |l| {
                l.received >= since
                    && ids(l) == *want
                    && l.devices.iter().all(|d| d.health == HEALTHY)
            })
            .await;
        assert!(
            list.is_some(),
            "{resource}: no full Healthy list {want:?} after the fault; last: {:?}",
            kubelet.devices(resource).map(|l| l.devices)
        );
    }
}

//! The agent's kubelet side end to end: the real `sriov-device-plugin run` binary (not
//! standalone) on an emulated NIC, and the kubelet stand-in speaking kubelet's own device plugin
//! protos over real Unix sockets in the same directory. Health changes come from setting the
//! emulated PF down and up with `ip link`, as an operator or a cable would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::process::Command;
use std::time::{Duration, Instant};

use hw_tests::cni_fixture::{Bed, RESOURCE, RESOURCE_ENV, default_pod_table, pod_netns};
use hw_tests::kubelet::{DeviceList, KubeletStandIn};
use hw_tests::{require_root, run_ok};
use serde_json::json;
use sriov_proto::deviceplugin::v1beta1 as api;
use sriov_proto::kubelet::{DEVICE_PLUGIN_API_VERSION, HEALTHY, UNHEALTHY};

/// What the issue asks of health changes and re-registration.
const WITHIN: Duration = Duration::from_secs(1);
/// Generous bound for things that involve a process start (registration, first list).
const START: Duration = Duration::from_secs(10);

/// The bed in kubelet mode with the stand-in listening in its kubelet directory before the
/// agent starts. The stand-in is returned first so it outlives the agent.
fn kubelet_bed(vfs: u32) -> (KubeletStandIn, Bed) {
    let mut kubelet = None;
    let bed = tokio::task::block_in_place(|| {
        Bed::with_kubelet(vfs, &default_pod_table(), |dir| {
            kubelet = Some(KubeletStandIn::start(&dir.join("kubelet")).expect("stand-in"));
        })
    });
    (kubelet.expect("stand-in started"), bed)
}

fn ids(l: &DeviceList) -> Vec<String> {
    let mut v: Vec<String> = l.devices.iter().map(|d| d.id.clone()).collect();
    v.sort();
    v
}

fn all(l: &DeviceList, health: &str) -> bool {
    !l.devices.is_empty() && l.devices.iter().all(|d| d.health == health)
}

fn set_link(name: &str, state: &str) {
    run_ok(Command::new("ip").args(["link", "set", name, state]));
}

fn allocate_request(ids: &[&str]) -> api::AllocateRequest {
    api::AllocateRequest {
        container_requests: vec![api::ContainerAllocateRequest {
            devices_ids: ids.iter().map(|s| s.to_string()).collect(),
        }],
    }
}

fn preferred_request(
    available: &[String],
    must: &[&str],
    size: i32,
) -> api::PreferredAllocationRequest {
    api::PreferredAllocationRequest {
        container_requests: vec![api::ContainerPreferredAllocationRequest {
            available_device_i_ds: available.to_vec(),
            must_include_device_i_ds: must.iter().map(|s| s.to_string()).collect(),
            allocation_size: size,
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_health_allocate_and_preferred_allocation() {
    if !require_root("registration_health_allocate_and_preferred_allocation") {
        return;
    }
    let since = Instant::now();
    let (kubelet, bed) = kubelet_bed(4);
    let want = bed.vf_pcis();
    assert_eq!(want.len(), 4);

    // Registration: kubelet's version, our resource, and the options kubelet asked back for.
    let reg = kubelet
        .wait_registration(RESOURCE, since, START)
        .await
        .unwrap_or_else(|| {
            panic!(
                "no registration of {RESOURCE}; agent log:\n{}",
                bed.agent.log()
            )
        });
    assert_eq!(reg.request.version, DEVICE_PLUGIN_API_VERSION);
    assert_eq!(reg.request.resource_name, RESOURCE);
    assert!(reg.request.endpoint.ends_with(".sock"), "{:?}", reg.request);
    assert!(
        !reg.request.endpoint.contains('/'),
        "endpoint must be a file name in the kubelet dir: {:?}",
        reg.request.endpoint
    );
    assert!(reg.options.get_preferred_allocation_available);
    assert!(
        reg.request
            .options
            .as_ref()
            .is_some_and(|o| o.get_preferred_allocation_available),
        "{:?}",
        reg.request.options
    );

    // The initial list: exactly the NIC's VFs, all Healthy.
    let first = kubelet
        .wait_devices(RESOURCE, START, |_| true)
        .await
        .expect("initial ListAndWatch list");
    assert_eq!(ids(&first), want);
    assert!(all(&first, HEALTHY), "{:?}", first.devices);

    // PF down → one pushed update with every VF Unhealthy, within a second.
    let t = Instant::now();
    set_link(bed.pf(), "down");
    let down = kubelet
        .wait_devices(RESOURCE, Duration::from_secs(5), |l| all(l, UNHEALTHY))
        .await
        .expect("no Unhealthy update after PF down");
    let lat = down.received.duration_since(t);
    eprintln!("PF down → Unhealthy on ListAndWatch: {lat:?}");
    assert!(lat < WITHIN, "Unhealthy took {lat:?}");
    assert_eq!(ids(&down), want);
    assert!(down.seq > first.seq, "an update on the same stream");

    // Allocate refuses unhealthy devices, and nothing is written.
    let mut plugin = kubelet.plugin(RESOURCE).await.expect("dial plugin");
    let e = plugin
        .allocate(allocate_request(&[&want[0]]))
        .await
        .expect_err("Allocate of an unhealthy VF");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");

    // PF up → Healthy again.
    let t = Instant::now();
    set_link(bed.pf(), "up");
    let up = kubelet
        .wait_devices(RESOURCE, Duration::from_secs(5), |l| all(l, HEALTHY))
        .await
        .expect("no Healthy update after PF up");
    eprintln!(
        "PF up → Healthy on ListAndWatch: {:?}",
        up.received.duration_since(t)
    );
    assert!(up.received.duration_since(t) < WITHIN);
    assert!(
        !bed.devinfo_dir()
            .join(format!("test.io-emu-{}-device.json", want[0]))
            .exists(),
        "a refused Allocate wrote a device-info file"
    );

    // Allocate two VFs: the env var exactly as the reference plugin sets it, device-info files.
    let resp = plugin
        .allocate(allocate_request(&[&want[1], &want[2]]))
        .await
        .expect("Allocate")
        .into_inner();
    assert_eq!(resp.container_responses.len(), 1);
    let c = &resp.container_responses[0];
    assert_eq!(
        c.envs.get(RESOURCE_ENV).map(String::as_str),
        Some(format!("{},{}", want[1], want[2]).as_str()),
        "{:?}",
        c.envs
    );
    let info: serde_json::Value =
        serde_json::from_str(&c.envs[&format!("{RESOURCE_ENV}_INFO")]).expect("_INFO is JSON");
    assert!(
        info.get(&want[1]).is_some() && info.get(&want[2]).is_some(),
        "{info}"
    );
    assert!(c.devices.is_empty(), "netdevice VFs get no device specs");
    for pci in [&want[1], &want[2]] {
        let f = bed
            .devinfo_dir()
            .join(format!("test.io-emu-{pci}-device.json"));
        let body: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&f).unwrap_or_else(|e| panic!("device-info file {}: {e}", f.display())),
        )
        .expect("device-info JSON");
        assert_eq!(body["pci"]["pci-address"], pci.as_str(), "{body}");
    }

    // Unknown IDs: an error naming the ID.
    let e = plugin
        .allocate(allocate_request(&["0000:ff:1f.7"]))
        .await
        .expect_err("Allocate of an unknown ID");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("0000:ff:1f.7"), "{e}");

    // GetPreferredAllocation: the requested size, from the available list, must-include kept.
    let t = Instant::now();
    let pref = plugin
        .get_preferred_allocation(preferred_request(&want, &[], 2))
        .await
        .expect("GetPreferredAllocation")
        .into_inner();
    eprintln!("GetPreferredAllocation round trip: {:?}", t.elapsed());
    let got = &pref.container_responses[0].device_i_ds;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|d| want.contains(d)), "{got:?}");
    let pref = plugin
        .get_preferred_allocation(preferred_request(&want[1..], &[&want[3]], 3))
        .await
        .expect("GetPreferredAllocation with must-include")
        .into_inner();
    let got = &pref.container_responses[0].device_i_ds;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.contains(&want[3]), "must-include dropped: {got:?}");
    assert!(
        !got.contains(&want[0]),
        "chose a device not available: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_restart_and_agent_crash_both_end_in_registration() {
    if !require_root("kubelet_restart_and_agent_crash_both_end_in_registration") {
        return;
    }
    let since = Instant::now();
    let (mut kubelet, bed) = kubelet_bed(2);
    let want = bed.vf_pcis();
    let first = kubelet
        .wait_registration(RESOURCE, since, START)
        .await
        .unwrap_or_else(|| panic!("no registration; agent log:\n{}", bed.agent.log()));
    let sock = bed.kubelet_dir().join(&first.request.endpoint);

    // Kubelet restarts: every socket in the directory goes, a new kubelet.sock appears.
    let t = kubelet.restart().expect("restart stand-in");
    let again = kubelet
        .wait_registration(RESOURCE, t, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no re-registration; agent log:\n{}", bed.agent.log()));
    let lat = again.at.duration_since(t);
    eprintln!("kubelet restart → re-registration: {lat:?}");
    assert!(lat < WITHIN, "re-registration took {lat:?}");
    assert!(sock.exists(), "plugin socket not re-created");
    let list = kubelet
        .wait_devices(RESOURCE, START, |l| l.devices.len() == want.len())
        .await
        .expect("ListAndWatch after re-registration");
    assert!(all(&list, HEALTHY));

    // An attachment in the ledger (Multus-style: deviceID given), then kill -9 the agent.
    let ns = pod_netns();
    let conf = bed.conf("1.1.0", json!({"deviceID": want[1]}));
    let add = tokio::task::block_in_place(|| bed.call("ADD", "c-crash", &ns.path(), "db-0", &conf));
    assert!(add.ok, "ADD failed: {:?} {}", add.json, add.stderr);
    assert_eq!(add.json["interfaces"][0]["pciID"], want[1].as_str());
    let before = bed.attachments();
    assert_eq!(before.len(), 1);

    let t = Instant::now();
    tokio::task::block_in_place(|| bed.agent.crash_and_restart());
    let back = kubelet
        .wait_registration(RESOURCE, t, START)
        .await
        .unwrap_or_else(|| panic!("no registration after restart; log:\n{}", bed.agent.log()));
    eprintln!(
        "agent kill -9 + restart → registration: {:?}",
        back.at.duration_since(t)
    );
    let list = kubelet
        .wait_devices(RESOURCE, START, |l| {
            l.devices.len() == want.len() && all(l, HEALTHY)
        })
        .await
        .expect("ListAndWatch after agent restart");
    assert!(list.received >= back.at);

    // The ledger survived: same attachment, same VF; DEL through the new process restores.
    let after = tokio::task::block_in_place(|| bed.attachments());
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["vf_pci"], before[0]["vf_pci"]);
    assert_eq!(after[0]["key"], before[0]["key"]);
    let del = tokio::task::block_in_place(|| bed.call("DEL", "c-crash", &ns.path(), "db-0", &conf));
    assert!(del.ok, "DEL failed: {:?} {}", del.json, del.stderr);
    assert!(tokio::task::block_in_place(|| bed.attachments()).is_empty());
    tokio::task::block_in_place(|| bed.all_vfs_pristine(2)).unwrap();
}

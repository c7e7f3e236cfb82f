//! The generated messages put kubelet's field numbers on the wire. Each case encodes a small
//! message and compares the exact bytes, so a renumbered field fails here rather than as a
//! silent mismatch with a real kubelet.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use prost::Message;
use sriov_proto::deviceplugin::v1beta1 as dp;
use sriov_proto::podresources::v1 as pr;

/// Length-delimited field with a one-byte tag and a one-byte length.
fn ld(field: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![(field << 3) | 2, u8::try_from(body.len()).unwrap()];
    out.extend_from_slice(body);
    out
}

#[test]
fn container_allocate_response_fields() {
    let resp = dp::ContainerAllocateResponse {
        envs: [("K".to_owned(), "V".to_owned())].into(),
        mounts: vec![dp::Mount {
            container_path: "c".into(),
            host_path: "h".into(),
            read_only: true,
        }],
        devices: vec![dp::DeviceSpec {
            container_path: "c".into(),
            host_path: "h".into(),
            permissions: "rw".into(),
        }],
        annotations: [("a".to_owned(), "b".to_owned())].into(),
        cdi_devices: vec![dp::CdiDevice { name: "x".into() }],
    };
    let mut want = Vec::new();
    // envs = 1 (map entry: key = 1, value = 2)
    want.extend(ld(1, &[ld(1, b"K"), ld(2, b"V")].concat()));
    // mounts = 2 (container_path = 1, host_path = 2, read_only = 3)
    want.extend(ld(2, &[ld(1, b"c"), ld(2, b"h"), vec![0x18, 1]].concat()));
    // devices = 3 (container_path = 1, host_path = 2, permissions = 3)
    want.extend(ld(3, &[ld(1, b"c"), ld(2, b"h"), ld(3, b"rw")].concat()));
    // annotations = 4
    want.extend(ld(4, &[ld(1, b"a"), ld(2, b"b")].concat()));
    // cdi_devices = 5 (name = 1)
    want.extend(ld(5, &ld(1, b"x")));
    assert_eq!(resp.encode_to_vec(), want);
    assert_eq!(
        dp::ContainerAllocateResponse::decode(&want[..]).unwrap(),
        resp
    );
}

#[test]
fn allocate_request_fields() {
    let req = dp::AllocateRequest {
        container_requests: vec![dp::ContainerAllocateRequest {
            devices_ids: vec!["0000:03:02.1".into()],
        }],
    };
    let want = ld(1, &ld(1, b"0000:03:02.1"));
    assert_eq!(req.encode_to_vec(), want);
    assert_eq!(dp::AllocateRequest::decode(&want[..]).unwrap(), req);
}

#[test]
fn device_and_topology_fields() {
    let dev = dp::Device {
        id: "vf0".into(),
        health: sriov_proto::kubelet::HEALTHY.into(),
        topology: Some(dp::TopologyInfo {
            nodes: vec![dp::NumaNode { id: 1 }],
        }),
    };
    let want = [
        ld(1, b"vf0"),
        ld(2, b"Healthy"),
        // topology = 3, nodes = 1, NUMANode.ID = 1 (varint)
        ld(3, &ld(1, &[0x08, 1])),
    ]
    .concat();
    assert_eq!(dev.encode_to_vec(), want);
    let law = dp::ListAndWatchResponse { devices: vec![dev] };
    assert_eq!(law.encode_to_vec(), ld(1, &want));
}

#[test]
fn register_request_fields() {
    let req = dp::RegisterRequest {
        version: "v1beta1".into(),
        endpoint: "e.sock".into(),
        resource_name: "r".into(),
        options: Some(dp::DevicePluginOptions {
            pre_start_required: true,
            get_preferred_allocation_available: true,
        }),
    };
    let want = [
        ld(1, b"v1beta1"),
        ld(2, b"e.sock"),
        ld(3, b"r"),
        ld(4, &[0x08, 1, 0x10, 1]),
    ]
    .concat();
    assert_eq!(req.encode_to_vec(), want);
}

#[test]
fn preferred_allocation_fields() {
    let req = dp::ContainerPreferredAllocationRequest {
        available_device_i_ds: vec!["a".into()],
        must_include_device_i_ds: vec!["m".into()],
        allocation_size: 2,
    };
    let want = [ld(1, b"a"), ld(2, b"m"), vec![0x18, 2]].concat();
    assert_eq!(req.encode_to_vec(), want);
}

#[test]
fn pod_resources_fields() {
    let req = pr::GetPodResourcesRequest {
        pod_name: "p".into(),
        pod_namespace: "n".into(),
    };
    assert_eq!(req.encode_to_vec(), [ld(1, b"p"), ld(2, b"n")].concat());

    let container = pr::ContainerResources {
        name: "c".into(),
        devices: vec![pr::ContainerDevices {
            resource_name: "r".into(),
            device_ids: vec!["d".into()],
            topology: None,
        }],
        cpu_ids: vec![3],
        memory: vec![],
        dynamic_resources: vec![pr::DynamicResource {
            claim_name: "cl".into(),
            claim_namespace: "ns".into(),
            claim_resources: vec![],
        }],
    };
    let want = [
        ld(1, b"c"),
        ld(2, &[ld(1, b"r"), ld(2, b"d")].concat()),
        // cpu_ids = 3, packed repeated int64
        ld(3, &[3]),
        // dynamic_resources = 5 (claim_name = 2, claim_namespace = 3)
        ld(5, &[ld(2, b"cl"), ld(3, b"ns")].concat()),
    ]
    .concat();
    assert_eq!(container.encode_to_vec(), want);
    assert_eq!(
        pr::ContainerResources::decode(&want[..]).unwrap(),
        container
    );
}

//! Privileged: VF operations against a link without SR-IOV (a veth). The kernel refuses every
//! IFLA_VF_* write with EOPNOTSUPP, like `ip link set <veth> vf 0 …`; the errors must say which PF,
//! which VF and which operation, because that is all an operator reading a CNI error gets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

mod common;

use common::{VethGuard, privileged};
use sriov_hw::netlink::{Netlink, vf_op};
use sriov_hw::vfctl::{VfError, VfLinkState, VfVlan, VlanProto};

fn check(res: Result<(), VfError>, pf: &str, vf: u32, op: &str) {
    let e = match res {
        Ok(()) => panic!("{op} on veth {pf} unexpectedly succeeded"),
        Err(e) => e,
    };
    assert_eq!(e.errno(), Some(libc::EOPNOTSUPP), "{op}: {e}");
    assert_eq!((e.pf.as_str(), e.vf, e.op), (pf, vf, op));
    let msg = e.to_string();
    println!("{msg}");
    assert!(
        msg.contains(pf) && msg.contains(&format!("VF {vf}")) && msg.contains(op),
        "{msg}"
    );
}

#[tokio::test]
async fn every_vf_setter_on_a_veth_is_eopnotsupp_and_named() {
    if !privileged("every_vf_setter_on_a_veth_is_eopnotsupp_and_named") {
        return;
    }
    let veth = VethGuard::new();
    let pf = veth.a.as_str();
    let nl = Netlink::host().unwrap();
    let vf = 3;

    check(
        nl.set_vf_mac(pf, vf, "02:00:00:00:00:03".parse().unwrap())
            .await,
        pf,
        vf,
        vf_op::MAC,
    );
    for proto in [VlanProto::Dot1Q, VlanProto::Dot1Ad] {
        let vlan = VfVlan {
            vlan: 100,
            qos: 2,
            proto,
        };
        check(nl.set_vf_vlan(pf, vf, vlan).await, pf, vf, vf_op::VLAN);
    }
    check(nl.set_vf_rate(pf, vf, 10, 100).await, pf, vf, vf_op::RATE);
    check(
        nl.set_vf_spoofchk(pf, vf, true).await,
        pf,
        vf,
        vf_op::SPOOFCHK,
    );
    check(nl.set_vf_trust(pf, vf, true).await, pf, vf, vf_op::TRUST);
    for st in [VfLinkState::Auto, VfLinkState::Enable, VfLinkState::Disable] {
        check(
            nl.set_vf_link_state(pf, vf, st).await,
            pf,
            vf,
            vf_op::LINK_STATE,
        );
    }
}

#[tokio::test]
async fn vf_info_of_a_link_without_vfs_is_empty() {
    if !privileged("vf_info_of_a_link_without_vfs_is_empty") {
        return;
    }
    let veth = VethGuard::new();
    let nl = Netlink::host().unwrap();
    assert_eq!(nl.vf_info(&veth.a).await.unwrap(), vec![]);
    assert_eq!(nl.vf_info("lo").await.unwrap(), vec![]);
}

#[tokio::test]
async fn vf_ops_on_a_missing_pf_name_it() {
    if !privileged("vf_ops_on_a_missing_pf_name_it") {
        return;
    }
    let nl = Netlink::host().unwrap();
    let e = nl.vf_info("nosuchpf0").await.unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENODEV), "{e}");
    assert!(e.to_string().contains("nosuchpf0"), "{e}");
    let e = nl.set_vf_trust("nosuchpf0", 1, false).await.unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENODEV), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("nosuchpf0") && msg.contains("VF 1") && msg.contains(vf_op::TRUST),
        "{msg}"
    );
}

#[tokio::test]
async fn vf_info_through_a_netns_connection_uses_that_namespace() {
    if !privileged("vf_info_through_a_netns_connection_uses_that_namespace") {
        return;
    }
    // The raw side channel vf_info uses must open its socket in the connection's namespace: a
    // host-only veth is unknown there.
    let ns = common::NetnsGuard::new();
    let veth = VethGuard::new();
    let handle = sriov_hw::netns::NetnsHandle::open(ns.path()).unwrap();
    let pod = Netlink::in_netns(&handle).unwrap();
    assert_eq!(pod.vf_info("lo").await.unwrap(), vec![]);
    let e = pod.vf_info(&veth.a).await.unwrap_err();
    assert_eq!(e.errno(), Some(libc::ENODEV), "{e}");
}

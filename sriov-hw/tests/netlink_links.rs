//! Privileged: links, addresses and routes in real namespaces, checked with iproute2.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{ChildGuard, NetnsGuard, VethGuard, ip_json, ip_ok, privileged};
use sriov_hw::IpCidr;
use sriov_hw::MacAddr;
use sriov_hw::netlink::{Netlink, NetlinkError};
use sriov_hw::netns::{NetnsError, NetnsHandle};

/// The single link `name` in `ns`, as `ip -j` shows it.
fn ip_link(ns: &str, name: &str) -> serde_json::Value {
    let v = ip_json(&["-n", ns, "link", "show", "dev", name]);
    v[0].clone()
}

fn ip_addrs(ns: &str, dev: &str) -> Vec<String> {
    let v = ip_json(&["-n", ns, "addr", "show", "dev", dev]);
    v[0]["addr_info"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or("?"), i["prefixlen"]))
                .collect()
        })
        .unwrap_or_default()
}

fn default_gateway(ns: &str, family: &str) -> Option<String> {
    let v = ip_json(&["-n", ns, family, "route", "show", "default"]);
    v.as_array()?
        .first()
        .and_then(|r| r["gateway"].as_str().map(str::to_string))
}

#[tokio::test]
async fn move_rename_and_configure_a_link_in_a_netns() {
    if !privileged("move_rename_and_configure_a_link_in_a_netns") {
        return;
    }
    let ns = NetnsGuard::new();
    let mut veth = VethGuard::new();
    veth.also_in.push(ns.name.clone());
    let host = Netlink::host().unwrap();

    let a = host.link_by_name(&veth.a).await.unwrap().expect("veth end");
    assert_eq!(a.kind.as_deref(), Some("veth"));
    assert_eq!(
        host.link_by_index(a.index).await.unwrap().map(|l| l.name),
        Some(veth.a.clone())
    );
    assert_eq!(host.link_by_name("nosuchlink0").await.unwrap(), None);
    assert!(
        host.list_links()
            .await
            .unwrap()
            .iter()
            .any(|l| l.name == veth.b)
    );

    // Move + rename in one request.
    let handle = NetnsHandle::open(ns.path()).unwrap();
    host.move_to_netns(&veth.b, &handle, "net1").await.unwrap();
    assert_eq!(ip_link(&ns.name, "net1")["ifname"], "net1");
    assert_eq!(host.link_by_name(&veth.b).await.unwrap(), None);

    // Configure through a connection opened inside the namespace.
    let pod = Netlink::in_netns(&handle).unwrap();
    assert!(pod.netns().is_some_and(|n| n.is_same(&handle)));
    let mac: MacAddr = "02:00:00:aa:bb:01".parse().unwrap();
    pod.set_mac("net1", mac).await.unwrap();
    pod.set_mtu("net1", 1400).await.unwrap();
    pod.set_up("net1").await.unwrap();
    ip_ok(&["link", "set", &veth.a, "up"]);
    let shown = ip_link(&ns.name, "net1");
    assert_eq!(shown["address"], "02:00:00:aa:bb:01");
    assert_eq!(shown["mtu"], 1400);
    assert!(
        shown["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "UP")),
        "{shown}"
    );
    let info = pod.link_by_name("net1").await.unwrap().unwrap();
    assert_eq!((info.mac, info.mtu, info.up), (Some(mac), 1400, true));

    // Addresses and default routes, both families.
    let v4: IpCidr = "10.99.0.2/24".parse().unwrap();
    let v6: IpCidr = "fd00:99::2/64".parse().unwrap();
    pod.add_address("net1", v4).await.unwrap();
    pod.add_address("net1", v6).await.unwrap();
    let gw4: IpAddr = "10.99.0.1".parse().unwrap();
    let gw6: IpAddr = "fd00:99::1".parse().unwrap();
    pod.add_default_route("net1", gw4).await.unwrap();
    pod.add_default_route("net1", gw6).await.unwrap();
    pod.add_route("net1", "10.200.0.0/16".parse().unwrap(), Some(gw4))
        .await
        .unwrap();

    let addrs = ip_addrs(&ns.name, "net1");
    assert!(addrs.contains(&"10.99.0.2/24".to_string()), "{addrs:?}");
    assert!(addrs.contains(&"fd00:99::2/64".to_string()), "{addrs:?}");
    assert_eq!(
        default_gateway(&ns.name, "-4").as_deref(),
        Some("10.99.0.1")
    );
    assert_eq!(
        default_gateway(&ns.name, "-6").as_deref(),
        Some("fd00:99::1")
    );
    let r = ip_json(&["-n", &ns.name, "route", "show", "10.200.0.0/16"]);
    assert_eq!(r[0]["gateway"], "10.99.0.1", "{r}");

    let listed = pod.list_addresses("net1").await.unwrap();
    assert!(listed.contains(&v4) && listed.contains(&v6), "{listed:?}");
    let routes = pod.list_routes("net1").await.unwrap();
    assert!(
        routes
            .iter()
            .any(|r| r.destination.is_default() && r.gateway == Some(gw4)),
        "{routes:?}"
    );
    assert!(
        routes
            .iter()
            .any(|r| r.destination.is_default() && r.gateway == Some(gw6)),
        "{routes:?}"
    );

    // Adding the same address twice is the kernel's EEXIST, named.
    let dup = pod.add_address("net1", v4).await.unwrap_err();
    assert_eq!(dup.errno(), Some(libc::EEXIST), "{dup}");
    assert!(dup.to_string().contains("net1"), "{dup}");

    pod.flush_addresses("net1").await.unwrap();
    assert_eq!(ip_addrs(&ns.name, "net1"), Vec::<String>::new());
    assert_eq!(pod.list_addresses("net1").await.unwrap(), vec![]);

    // Down, rename, delete; a second delete says "not found".
    pod.set_down("net1").await.unwrap();
    pod.set_name("net1", "net2").await.unwrap();
    assert_eq!(ip_link(&ns.name, "net2")["ifname"], "net2");
    assert!(!pod.link_by_name("net2").await.unwrap().unwrap().up);
    pod.delete_link("net2").await.unwrap();
    assert_eq!(pod.link_by_name("net2").await.unwrap(), None);
    assert_eq!(
        host.link_by_name(&veth.a).await.unwrap(),
        None,
        "peer gone too"
    );
    let again = pod.delete_link("net2").await.unwrap_err();
    assert!(again.is_not_found(), "{again}");
    assert!(matches!(again, NetlinkError::NotFound { .. }), "{again:?}");
}

#[tokio::test]
async fn errors_name_the_operation_and_the_link() {
    if !privileged("errors_name_the_operation_and_the_link") {
        return;
    }
    let host = Netlink::host().unwrap();
    let e = host.set_mtu("nosuchlink0", 1400).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("set MTU") && msg.contains("nosuchlink0"),
        "{msg}"
    );

    let veth = VethGuard::new();
    let e = host.set_mtu(&veth.a, 10).await.unwrap_err();
    assert_eq!(e.errno(), Some(libc::EINVAL), "{e}");
    assert!(e.to_string().contains(&veth.a), "{e}");

    let e = host
        .add_route(
            &veth.a,
            "10.0.0.0/8".parse().unwrap(),
            Some("fd00::1".parse().unwrap()),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, NetlinkError::Invalid { .. }), "{e:?}");
}

/// Kernel behaviour the CNI's rollback must know: when the new name is taken in the target
/// namespace, the link is moved under its old name and the request still fails with EEXIST.
#[tokio::test]
async fn move_with_a_taken_name_fails_with_eexist() {
    if !privileged("move_with_a_taken_name_fails_with_eexist") {
        return;
    }
    let ns = NetnsGuard::new();
    let mut veth = VethGuard::new();
    veth.also_in.push(ns.name.clone());
    let host = Netlink::host().unwrap();
    let handle = NetnsHandle::open(ns.path()).unwrap();
    let e = host
        .move_to_netns(&veth.b, &handle, "lo")
        .await
        .unwrap_err();
    assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&veth.b) && msg.contains("lo"), "{msg}");
    let pod = Netlink::in_netns(&handle).unwrap();
    let where_now = (
        host.link_by_name(&veth.b).await.unwrap().is_some(),
        pod.link_by_name(&veth.b).await.unwrap().is_some(),
    );
    assert_eq!(where_now, (false, true), "(in host, in target ns)");
}

/// On a multi-threaded runtime too: the namespace switch happens on a helper thread only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_netns_connections_are_isolated_from_the_host() {
    if !privileged("in_netns_connections_are_isolated_from_the_host") {
        return;
    }
    let ns = NetnsGuard::new();
    let veth = VethGuard::new();
    let before = NetnsHandle::current().unwrap();
    let handle = NetnsHandle::open(ns.path()).unwrap();
    let pod = Netlink::in_netns(&handle).unwrap();
    let names: Vec<_> = pod
        .list_links()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["lo"]);
    assert_eq!(pod.link_by_name(&veth.a).await.unwrap(), None);
    // The caller's thread is still in the host namespace.
    assert!(NetnsHandle::current().unwrap().is_same(&before));
}

#[test]
fn opening_things_that_are_not_a_netns_fails_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("regular");
    std::fs::write(&file, b"x").unwrap();
    let missing = dir.path().join("missing");
    for p in [
        file.as_path(),
        dir.path(),
        missing.as_path(),
        "/proc/self/ns/mnt".as_ref(),
    ] {
        let e = NetnsHandle::open(p).unwrap_err();
        assert!(
            e.to_string().contains(&*p.to_string_lossy()),
            "{} -> {e}",
            p.display()
        );
    }
    assert!(matches!(
        NetnsHandle::open("/proc/self/ns/mnt"),
        Err(NetnsError::WrongType { kind: "mount", .. })
    ));
    assert!(matches!(
        NetnsHandle::open(&file),
        Err(NetnsError::NotNamespace { .. })
    ));
    assert_eq!(
        NetnsHandle::open(&missing).unwrap_err().errno(),
        Some(libc::ENOENT)
    );
}

#[test]
fn proc_pid_ns_net_of_a_child_opens_and_has_its_own_identity() {
    if !privileged("proc_pid_ns_net_of_a_child_opens_and_has_its_own_identity") {
        return;
    }
    let me = NetnsHandle::current().unwrap();
    let child = ChildGuard::sleeper_in_new_netns();
    let path = format!("/proc/{}/ns/net", child.pid());
    // `unshare` may not have unshared yet: wait until the child's namespace differs from ours.
    let deadline = Instant::now() + Duration::from_secs(5);
    let theirs = loop {
        let h = NetnsHandle::open(&path).unwrap();
        if !h.is_same(&me) {
            break h;
        }
        assert!(Instant::now() < deadline, "child never left our namespace");
        std::thread::sleep(Duration::from_millis(10));
    };
    // Same namespace reached through a second open: same identity.
    assert_eq!(NetnsHandle::open(&path).unwrap().id(), theirs.id());
    assert_ne!(theirs.id(), me.id());
}

#[test]
fn a_named_netns_and_its_bind_mount_paths_agree() {
    if !privileged("a_named_netns_and_its_bind_mount_paths_agree") {
        return;
    }
    let ns = NetnsGuard::new();
    let run = NetnsHandle::open(ns.path()).unwrap();
    let var_run = NetnsHandle::open(format!("/var/run/netns/{}", ns.name)).unwrap();
    assert!(run.is_same(&var_run));
    assert!(!run.is_same(&NetnsHandle::current().unwrap()));
}

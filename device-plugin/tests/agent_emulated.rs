//! The agent against an emulated NIC (root): VF choice, original state capture, concurrency,
//! fixed-IP conflicts and reclaim, GC, restart and the reconciler. Assertions read the ledger
//! (through the API) and the kernel, never logs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

mod agent_support;

use std::time::Duration;

use agent_support::{
    Netns, Nic, POOL, TestAgent, cni_add, host_link_mac, key, plan_req, require_root, standalone,
};
use sriov_proto::node::{CommitRequest, GcRequest, State, StatusRequest};
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn plan_picks_a_free_vf_and_records_its_original_state() {
    if !require_root("plan_picks_a_free_vf_and_records_its_original_state") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nic = Nic::up(4, &dir.path().join("sys")).await;
    let agent = TestAgent::start(standalone(dir.path(), &nic.root)).await;
    let ns = Netns::new();
    let mut c = agent.client().await;

    let a = c
        .plan(plan_req("c1", &ns, "db-0", "n1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.state(), State::Planned);
    assert_eq!(a.vf_index, 0, "first free VF by PCI order");
    assert_eq!(a.pf_name, nic.pf);
    assert_eq!(a.pf_driver, "sriov-emu");
    assert_eq!(a.vf_driver, "sriov-emu-vf");
    assert!(!a.vfio);
    assert_eq!(a.orig_netdev, nic.vf_netdev(0));
    assert_eq!(Some(a.orig_mac.clone()), host_link_mac(&nic.vf_netdev(0)));
    assert_eq!(a.orig_mtu, 1500);
    let orig = a.orig_vf.clone().unwrap();
    let now = nic.vf_state(0).await;
    assert_eq!(orig.to_state(0).unwrap(), now);
    assert_eq!(a.netns_ino, ns.handle().id().ino);

    // Same key again: refused, nothing changes.
    let s = c.plan(plan_req("c1", &ns, "db-0", "n1")).await.unwrap_err();
    assert_eq!(s.code(), Code::AlreadyExists, "{}", s.message());

    // The next Plan takes the next VF; Status shows both held.
    let b = c
        .plan(plan_req("c2", &ns, "db-1", "n1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.vf_index, 1);
    let st = c.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(st.attachments.len(), 2);
    assert_eq!(st.pools[0].resource, POOL);
    assert_eq!(st.pools[0].total, 4);
    assert_eq!(st.pools[0].free.len(), 2);
    assert!(!st.pools[0].free.contains(&a.vf_pci));

    // Commit stores the result; Release frees the VF (idempotently).
    let committed = c
        .commit(CommitRequest {
            key: Some(key("c1")),
            result_json: r#"{"ips":[]}"#.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(committed.state(), State::Committed);
    let f = c.fetch(key("c1")).await.unwrap().into_inner();
    assert!(f.found);
    assert_eq!(f.attachment.unwrap().result_json, r#"{"ips":[]}"#);
    c.release(key("c1")).await.unwrap();
    c.release(key("c1")).await.unwrap();
    c.abort(key("c2")).await.unwrap();
    let st = c.status(StatusRequest {}).await.unwrap().into_inner();
    assert!(st.attachments.is_empty());
    assert_eq!(st.pools[0].free.len(), 4);
    drop(c);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_plans_get_distinct_vfs_until_the_pool_is_exhausted() {
    if !require_root("concurrent_plans_get_distinct_vfs_until_the_pool_is_exhausted") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nic = Nic::up(8, &dir.path().join("sys")).await;
    let agent = TestAgent::start(standalone(dir.path(), &nic.root)).await;
    let ns = Netns::new();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut c = agent.client().await;
        let r = plan_req(&format!("c{i}"), &ns, &format!("pod-{i}"), "n1");
        tasks.push(tokio::spawn(async move { c.plan(r).await }));
    }
    let mut vfs = std::collections::BTreeSet::new();
    for t in tasks {
        let a = t.await.unwrap().unwrap().into_inner();
        assert!(vfs.insert(a.vf_pci.clone()), "{} given twice", a.vf_pci);
    }
    assert_eq!(vfs.len(), 8);
    let s = agent
        .client()
        .await
        .plan(plan_req("c9", &ns, "pod-9", "n1"))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted, "{}", s.message());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fixed_ip_is_reclaimed_only_once_its_holders_netns_is_gone() {
    if !require_root("a_fixed_ip_is_reclaimed_only_once_its_holders_netns_is_gone") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nic = Nic::up(4, &dir.path().join("sys")).await;
    let table = dir.path().join("podtable.json");
    std::fs::write(
        &table,
        r#"{"networks": {"n1": {"defaults": {"vlan": 100, "max_tx_rate": 50},
            "pods": {"default/db-0": {"ips": ["10.77.0.10/24"], "vlanQoS": 3, "mac": "02:00:00:77:00:0a"}}}}}"#,
    )
    .unwrap();
    let mut cfg = standalone(dir.path(), &nic.root);
    cfg.pod_table = Some(table);
    let agent = TestAgent::start(cfg).await;
    let mut c = agent.client().await;

    let ns1 = Netns::new();
    let mut r = plan_req("sandbox-1", &ns1, "db-0", "n1");
    r.use_pod_table = true;
    let holder = c.plan(r).await.unwrap().into_inner();
    assert_eq!(holder.reserved_ips, ["10.77.0.10/24"]);
    let d = holder.desired.clone().unwrap();
    assert!(d.from_pod_table);
    assert_eq!(d.ips, ["10.77.0.10/24"]);
    let s = holder.settings.clone().unwrap();
    assert_eq!(
        (s.vlan, s.qos, s.max_tx_rate),
        (Some(100), Some(3), Some(50))
    );
    assert_eq!(s.mac, "02:00:00:77:00:0a");
    // The CNI configures the VF and moves it into the pod.
    cni_add(&holder, &ns1).await;
    assert_eq!(nic.vf_state(holder.vf_index).await.vlan.vlan, 100);
    assert_eq!(host_link_mac(&holder.orig_netdev), None);

    // A redundant second sandbox of the same pod while the first is alive: refused, naming it.
    let ns2 = Netns::new();
    let mut r2 = plan_req("sandbox-2", &ns2, "db-0", "n1");
    r2.use_pod_table = true;
    let s = c.plan(r2.clone()).await.unwrap_err();
    assert_eq!(s.code(), Code::Unavailable);
    assert!(
        s.message().contains("default/db-0") && s.message().contains("sandbox-1"),
        "{}",
        s.message()
    );
    assert!(!c.fetch(key("sandbox-2")).await.unwrap().into_inner().found);

    // The first sandbox's netns goes away without a DEL: the next Plan reclaims.
    ns1.delete();
    let second = c.plan(r2).await.unwrap().into_inner();
    assert_eq!(second.reserved_ips, ["10.77.0.10/24"]);
    assert!(!c.fetch(key("sandbox-1")).await.unwrap().into_inner().found);
    // The holder's VF is back in the host as it was, its PF-side config restored.
    let vf = nic.vf_state(holder.vf_index).await;
    assert_eq!(
        vf,
        holder
            .orig_vf
            .clone()
            .unwrap()
            .to_state(holder.vf_index)
            .unwrap()
    );
    assert_eq!(
        host_link_mac(&holder.orig_netdev),
        Some(holder.orig_mac.clone())
    );
    drop(c);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_releases_what_the_runtime_no_longer_lists() {
    if !require_root("gc_releases_what_the_runtime_no_longer_lists") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nic = Nic::up(4, &dir.path().join("sys")).await;
    let agent = TestAgent::start(standalone(dir.path(), &nic.root)).await;
    let mut c = agent.client().await;
    let ns = Netns::new();
    let keep = c
        .plan(plan_req("keep", &ns, "a", "n1"))
        .await
        .unwrap()
        .into_inner();
    let moved = c
        .plan(plan_req("moved", &ns, "b", "n1"))
        .await
        .unwrap()
        .into_inner();
    c.plan(plan_req("planned", &ns, "c", "n1")).await.unwrap();
    c.plan(plan_req("other-net", &ns, "d", "n2")).await.unwrap();
    // One of them is in the pod, with a VLAN: GC must bring it back from the live netns.
    cni_add(&moved, &ns).await;
    assert_eq!(host_link_mac(&moved.orig_netdev), None);

    let g = c
        .gc(GcRequest {
            network: "n1".into(),
            valid: vec![key("keep")],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(g.errors.is_empty(), "{:?}", g.errors);
    let mut released: Vec<String> = g
        .released
        .iter()
        .map(|a| a.key.clone().unwrap().container_id)
        .collect();
    released.sort();
    assert_eq!(released, ["moved", "planned"]);
    let left: Vec<String> = c
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .attachments
        .iter()
        .map(|a| a.key.clone().unwrap().container_id)
        .collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&"keep".to_string()) && left.contains(&"other-net".to_string()));
    assert_eq!(
        host_link_mac(&moved.orig_netdev),
        Some(moved.orig_mac.clone())
    );
    assert_eq!(keep.vf_index, 0);
    drop(c);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_the_ledger_and_frees_what_died_meanwhile() {
    if !require_root("a_restart_keeps_the_ledger_and_frees_what_died_meanwhile") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nic = Nic::up(4, &dir.path().join("sys")).await;
    let cfg = standalone(dir.path(), &nic.root);
    let agent = TestAgent::start(cfg.clone()).await;
    let alive = Netns::new();
    let dying = Netns::new();
    let mut c = agent.client().await;
    let a = c
        .plan(plan_req("alive", &alive, "a", "n1"))
        .await
        .unwrap()
        .into_inner();
    let d = c
        .plan(plan_req("dying", &dying, "d", "n1"))
        .await
        .unwrap()
        .into_inner();
    let p = c
        .plan(plan_req("planned", &alive, "p", "n2"))
        .await
        .unwrap()
        .into_inner();
    cni_add(&a, &alive).await;
    c.commit(CommitRequest {
        key: Some(key("alive")),
        result_json: "{}".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    cni_add(&d, &dying).await;
    c.commit(CommitRequest {
        key: Some(key("dying")),
        result_json: "{}".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    drop(c);
    agent.stop().await;

    dying.delete(); // the pod died while the agent was down
    let agent = TestAgent::start(cfg).await;
    let mut c = agent.client().await;
    let f = c.fetch(key("alive")).await.unwrap().into_inner();
    assert!(
        f.found,
        "a committed attachment of a live pod survives the restart"
    );
    assert_eq!(f.attachment.unwrap().vf_pci, a.vf_pci);
    assert!(!c.fetch(key("dying")).await.unwrap().into_inner().found);
    // A PLANNED record of the earlier instance whose CNI (this process) still runs may yet
    // commit: kept, its VF still held. (One whose CNI exited is freed: hw-tests' faults.rs.)
    let planned = c.fetch(key("planned")).await.unwrap().into_inner();
    assert!(planned.found, "a PLANNED record of a running CNI was freed");
    let st = c.status(StatusRequest {}).await.unwrap().into_inner();
    assert!(
        !st.pools[0].free.contains(&p.vf_pci),
        "{:?}",
        st.pools[0].free
    );
    // The dying pod's VF was re-created and restored by the first reconcile.
    assert_eq!(host_link_mac(&d.orig_netdev), Some(d.orig_mac.clone()));
    c.abort(key("planned")).await.unwrap();
    let st = c.status(StatusRequest {}).await.unwrap().into_inner();
    assert!(st.pools[0].free.contains(&p.vf_pci));
    drop(c);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reconciler_frees_an_attachment_whose_netns_was_deleted() {
    if !require_root("the_reconciler_frees_an_attachment_whose_netns_was_deleted") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nic = Nic::up(2, &dir.path().join("sys")).await;
    let mut cfg = standalone(dir.path(), &nic.root);
    cfg.reconcile_interval = Duration::from_secs(1);
    let agent = TestAgent::start(cfg).await;
    let ns = Netns::new();
    let keep = Netns::new();
    let mut c = agent.client().await;
    let a = c
        .plan(plan_req("gone", &ns, "a", "n1"))
        .await
        .unwrap()
        .into_inner();
    c.plan(plan_req("planned-alive", &keep, "b", "n1"))
        .await
        .unwrap();
    cni_add(&a, &ns).await;
    c.commit(CommitRequest {
        key: Some(key("gone")),
        result_json: "{}".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    ns.delete();
    let mut freed = false;
    for _ in 0..100 {
        if !c.fetch(key("gone")).await.unwrap().into_inner().found {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the reconciler never freed the attachment");
    assert_eq!(host_link_mac(&a.orig_netdev), Some(a.orig_mac.clone()));
    // A PLANNED attachment whose netns is alive is left alone.
    assert!(
        c.fetch(key("planned-alive"))
            .await
            .unwrap()
            .into_inner()
            .found
    );
    let st = c.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(st.pools[0].free, vec![a.vf_pci.clone()]);
    drop(c);
    agent.stop().await;
}

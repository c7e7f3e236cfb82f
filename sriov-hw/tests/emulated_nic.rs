//! Privileged tests of the emulated SR-IOV NIC: topology, sysfs tree, VF control (VLAN isolation,
//! spoof check, rate, link state) proven with real traffic between network namespaces, revive,
//! teardown. Each test uses its own PF name, netns names and sysfs root, and cleans up on panic.
//! Skipped (loudly) when not root.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use sriov_hw::MacAddr;
use sriov_hw::emulated::{self, EmulateSpec, EmulatedNic};
use sriov_hw::netlink::Netlink;
use sriov_hw::vfctl::{Emulated, VfControl, VfErrorKind, VfLinkState, VfVlan, VlanProto};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn is_root() -> bool {
    hw_tests::require_root("emulated NIC tests (bridges, veths, netns)")
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        std::process::id() % 1000,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).unwrap()
}

/// One emulated PF with its own sysfs root; `down` on drop, even after a panic.
struct Pf {
    name: String,
    root: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Pf {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        Pf {
            name: unique("et"),
            root: tmp.path().join("sys"),
            _tmp: tmp,
        }
    }

    fn spec(&self, vfs: u32) -> EmulateSpec {
        EmulateSpec {
            pf: self.name.clone(),
            vfs,
            sysfs_root: self.root.clone(),
        }
    }

    async fn up(&self, vfs: u32) -> EmulatedNic {
        emulated::up(&self.spec(vfs)).await.unwrap()
    }

    fn ctl(&self) -> Emulated {
        Emulated::new(Netlink::host().unwrap(), &self.root)
    }

    fn vf(&self, i: u32) -> String {
        format!("{}v{i}", self.name)
    }

    fn rep(&self, i: u32) -> String {
        format!("{}r{i}", self.name)
    }

    /// The bridge of 802.1Q VLAN `vlan` (see `emulated::eswitch`).
    fn vlan_bridge(&self, vlan: u16) -> String {
        format!("{}b{vlan:03x}", self.name)
    }
}

impl Drop for Pf {
    fn drop(&mut self) {
        let (name, root) = (self.name.clone(), self.root.clone());
        // Drop may run inside a runtime: tear down on a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            if let Err(e) = rt.block_on(emulated::down(&name, &root)) {
                eprintln!("cleanup of {name}: {e}");
            }
        })
        .join();
    }
}

/// A test network namespace, deleted on drop.
struct Ns(String);

impl Ns {
    fn new() -> Self {
        let n = unique("etns");
        ok(&["ip", "netns", "add", &n]);
        ok(&["ip", "-n", &n, "link", "set", "lo", "up"]);
        Ns(n)
    }

    /// Moves host link `link` in, addresses it with `ip`/24 and brings it up.
    fn adopt(&self, link: &str, ip: &str) {
        ok(&["ip", "link", "set", link, "netns", &self.0]);
        ok(&[
            "ip",
            "-n",
            &self.0,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            link,
        ]);
        ok(&["ip", "-n", &self.0, "link", "set", link, "up"]);
    }

    fn ping(&self, ip: &str) -> bool {
        run(&["ip", "netns", "exec", &self.0, "ping", "-c1", "-W1", ip])
            .status
            .success()
    }

    /// Ping that tolerates the first ARP/port-state round trip.
    fn ping_eventually(&self, ip: &str) -> bool {
        (0..3).any(|_| self.ping(ip))
    }

    fn flush_neigh(&self) {
        ok(&["ip", "-n", &self.0, "neigh", "flush", "all"]);
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.0]);
    }
}

/// `ip -d -j link` entries whose name starts with `prefix`.
fn links_with_prefix(prefix: &str) -> Vec<Value> {
    json(&["ip", "-d", "-j", "link", "show"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["ifname"].as_str().unwrap_or("").starts_with(prefix))
        .cloned()
        .collect()
}

fn link(name: &str) -> Option<Value> {
    let out = run(&["ip", "-d", "-j", "link", "show", "dev", name]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()?
        .get(0)
        .cloned()
}

/// The static (user-added) FDB entries on bridge port `dev`, as the kernel reports them.
fn static_fdb(dev: &str) -> Vec<String> {
    let out: Value = serde_json::from_str(&ok(&["bridge", "-j", "fdb", "show", "dev", dev]))
        .unwrap_or(Value::Null);
    out.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["state"] == "static")
        .filter_map(|e| e["mac"].as_str().map(str::to_string))
        .collect()
}

/// Whether bridge port `dev` is locked (only static FDB sources pass), per `ip -d link`.
fn port_locked(dev: &str) -> bool {
    let l = json(&["ip", "-d", "-j", "link", "show", "dev", dev]);
    l[0]["linkinfo"]["info_slave_data"]["locked"] == true
}

fn has_flag(l: &Value, flag: &str) -> bool {
    l["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f.as_str() == Some(flag))
}

#[tokio::test]
async fn up_twice_reshape_and_down_leave_nothing() {
    if !is_root() {
        return;
    }
    let pf = Pf::new();
    let nic = pf.up(8).await;
    assert_eq!(nic.vfs.len(), 8);

    let bridge = link(&pf.name).expect("bridge");
    assert_eq!(bridge["linkinfo"]["info_kind"], "bridge");
    assert!(has_flag(&bridge, "UP"));
    let links = links_with_prefix(&pf.name);
    let veths: Vec<&Value> = links
        .iter()
        .filter(|l| l["linkinfo"]["info_kind"] == "veth")
        .collect();
    assert_eq!(veths.len(), 16, "{links:#?}");
    for i in 0..8 {
        let rep = link(&pf.rep(i)).unwrap();
        assert_eq!(rep["master"], pf.name.as_str());
        assert!(has_flag(&rep, "UP"));
        let vf = link(&pf.vf(i)).unwrap();
        assert_eq!(vf["address"], nic.vfs[i as usize].default_mac.to_string());
    }

    // sysfs: 8 virtfn links resolving to VF dirs whose physfn points back.
    let pf_dev = pf.root.join("bus/pci/devices").join(nic.pci.to_string());
    let pf_real = std::fs::canonicalize(&pf_dev).unwrap();
    assert_eq!(
        std::fs::read_to_string(pf_dev.join("sriov_numvfs")).unwrap(),
        "8\n"
    );
    for i in 0..8 {
        let vf_dir = std::fs::canonicalize(pf_dev.join(format!("virtfn{i}"))).unwrap();
        assert!(vf_dir.is_dir());
        assert_eq!(
            std::fs::canonicalize(vf_dir.join("physfn")).unwrap(),
            pf_real
        );
        assert!(vf_dir.join("net").join(pf.vf(i)).join("address").is_file());
        assert_eq!(
            std::fs::read_link(vf_dir.join("driver"))
                .unwrap()
                .file_name()
                .unwrap(),
            emulated::EMULATED_VF_DRIVER
        );
    }
    assert!(!pf_dev.join("virtfn8").exists());

    // Up again: same NIC, same links (same ifindexes).
    let before: Vec<Value> = links_with_prefix(&pf.name)
        .iter()
        .map(|l| l["ifindex"].clone())
        .collect();
    assert_eq!(pf.up(8).await, nic);
    let after: Vec<Value> = links_with_prefix(&pf.name)
        .iter()
        .map(|l| l["ifindex"].clone())
        .collect();
    assert_eq!(before, after);

    // Reshape down and up again.
    let small = pf.up(3).await;
    assert_eq!(small.pci, nic.pci);
    assert_eq!(links_with_prefix(&pf.name).len(), 1 + 6);
    assert!(!pf_dev.join("virtfn3").exists());
    assert_eq!(pf.up(8).await, nic);
    assert_eq!(links_with_prefix(&pf.name).len(), 1 + 16);

    emulated::down(&pf.name, &pf.root).await.unwrap();
    assert!(links_with_prefix(&pf.name).is_empty());
    assert!(!pf.root.exists(), "sysfs tree left behind");
    emulated::down(&pf.name, &pf.root).await.unwrap();
}

#[tokio::test]
async fn two_pfs_get_their_own_buses() {
    if !is_root() {
        return;
    }
    let a = Pf::new();
    let mut b = Pf::new();
    b.root = a.root.clone();
    let na = a.up(2).await;
    let nb = b.up(2).await;
    assert_ne!(na.bus, nb.bus);
    assert_eq!(a.up(2).await.bus, na.bus);
    emulated::down(&a.name, &a.root).await.unwrap();
    assert!(
        a.root
            .join("bus/pci/devices")
            .join(nb.pci.to_string())
            .exists()
    );
    assert!(
        !a.root
            .join("bus/pci/devices")
            .join(na.pci.to_string())
            .exists()
    );
}

#[tokio::test]
async fn down_cleans_nothing_and_half_built_nics() {
    if !is_root() {
        return;
    }
    let pf = Pf::new();
    emulated::down(&pf.name, &pf.root).await.unwrap();

    // Half built: a bridge, one orphan VF pair not on it, an ifb, a tree without metadata.
    ok(&["ip", "link", "add", &pf.name, "type", "bridge"]);
    ok(&[
        "ip",
        "link",
        "add",
        &pf.rep(0),
        "type",
        "veth",
        "peer",
        "name",
        &pf.vf(0),
    ]);
    ok(&[
        "ip",
        "link",
        "add",
        &format!("{}q0", pf.name),
        "type",
        "ifb",
    ]);
    std::fs::create_dir_all(
        pf.root
            .join("devices/pciee00:00/ee00:00:00.0/net")
            .join(&pf.name),
    )
    .unwrap();
    emulated::down(&pf.name, &pf.root).await.unwrap();
    assert!(links_with_prefix(&pf.name).is_empty());
    assert!(!pf.root.exists());

    // And up adopts a bridge left behind.
    ok(&["ip", "link", "add", &pf.name, "type", "bridge"]);
    pf.up(2).await;
    assert_eq!(link(&pf.rep(1)).unwrap()["master"], pf.name.as_str());
}

#[tokio::test]
async fn invalid_specs_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (pf, vfs) in [
        ("abcdefghijkl", 1),
        ("a/b", 1),
        ("", 1),
        ("ok", 0),
        ("ok", 257),
    ] {
        let spec = EmulateSpec {
            pf: pf.to_string(),
            vfs,
            sysfs_root: tmp.path().to_path_buf(),
        };
        assert!(emulated::up(&spec).await.is_err(), "{pf:?} {vfs}");
    }
}

#[tokio::test]
async fn vlan_isolation_holds_under_ping() {
    if !is_root() {
        return;
    }
    let pf = Pf::new();
    pf.up(3).await;
    let ctl = pf.ctl();
    let ns: Vec<Ns> = (0..3).map(|_| Ns::new()).collect();
    for (i, n) in ns.iter().enumerate() {
        n.adopt(&pf.vf(i as u32), &format!("10.99.0.{}", i + 1));
    }
    let v = |vlan| VfVlan {
        vlan,
        qos: 0,
        proto: VlanProto::Dot1Q,
    };
    ctl.set_vlan(&pf.name, 0, v(100)).await.unwrap();
    ctl.set_vlan(&pf.name, 1, v(100)).await.unwrap();
    ctl.set_vlan(&pf.name, 2, v(200)).await.unwrap();
    assert!(ns[0].ping_eventually("10.99.0.2"), "same VLAN must pass");
    assert!(!ns[0].ping("10.99.0.3"), "different VLANs must not");
    assert!(!ns[2].ping("10.99.0.2"), "different VLANs must not");

    ctl.set_vlan(&pf.name, 2, v(100)).await.unwrap();
    assert!(ns[0].ping_eventually("10.99.0.3"), "now the same VLAN");

    // 802.1ad 100 is not 802.1Q 100.
    ctl.set_vlan(
        &pf.name,
        2,
        VfVlan {
            vlan: 100,
            qos: 1,
            proto: VlanProto::Dot1Ad,
        },
    )
    .await
    .unwrap();
    ns[0].flush_neigh();
    assert!(!ns[0].ping("10.99.0.3"));

    let err = ctl.set_vlan(&pf.name, 3, v(100)).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&pf.name) && msg.contains("VF 3") && msg.contains("set VF VLAN"),
        "{msg}"
    );
    assert!(ctl.set_vlan(&pf.name, 0, v(4096)).await.is_err());

    // The VLAN bridges belong to the NIC: down removes them with everything else.
    assert!(link(&pf.vlan_bridge(100)).is_some());
    assert!(
        link(&format!("{}s064", pf.name)).is_some(),
        "802.1ad 100's bridge"
    );
    emulated::down(&pf.name, &pf.root).await.unwrap();
    assert!(links_with_prefix(&pf.name).is_empty());
}

#[tokio::test]
async fn max_rate_is_a_tbf_and_min_rate_is_unsupported() {
    if !is_root() {
        return;
    }
    let pf = Pf::new();
    pf.up(2).await;
    let ctl = pf.ctl();
    let ifb = format!("{}q1", pf.name);
    ctl.set_rate(&pf.name, 1, 0, 100).await.unwrap();
    let qdiscs = json(&["tc", "-j", "qdisc", "show"]);
    let tbf = qdiscs
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["dev"] == ifb.as_str() && q["kind"] == "tbf")
        .unwrap_or_else(|| panic!("no tbf on {ifb}: {qdiscs}"));
    assert_eq!(tbf["options"]["rate"], 12_500_000, "100 Mbit/s in bytes/s");
    let filters = ok(&["tc", "filter", "show", "dev", &pf.rep(1), "ingress"]);
    assert!(
        filters.contains(&format!("Redirect to device {ifb}")),
        "{filters}"
    );
    // Traffic the VF sends still reaches its peer, through the ifb.
    let ns: Vec<Ns> = (0..2).map(|_| Ns::new()).collect();
    for (i, n) in ns.iter().enumerate() {
        n.adopt(&pf.vf(i as u32), &format!("10.96.0.{}", i + 1));
    }
    assert!(
        ns[1].ping_eventually("10.96.0.1"),
        "shaped VF must still pass traffic"
    );
    let shaped = json(&["ip", "-s", "-j", "link", "show", "dev", &ifb]);
    assert!(
        shaped[0]["stats64"]["tx"]["packets"].as_u64().unwrap_or(0) > 0,
        "frames did not go through {ifb}: {shaped}"
    );
    // Re-apply with another rate.
    ctl.set_rate(&pf.name, 1, 0, 50).await.unwrap();
    assert!(ok(&["tc", "-j", "qdisc", "show", "dev", &ifb]).contains("6250000"));
    assert_eq!(ctl.vf_states(&pf.name).await.unwrap()[1].max_tx_rate, 50);

    ctl.set_rate(&pf.name, 1, 0, 0).await.unwrap();
    assert!(!ok(&["tc", "qdisc", "show", "dev", &pf.rep(1)]).contains("ingress"));
    assert!(
        !ok(&["tc", "qdisc", "show", "dev", &ifb]).contains("tbf"),
        "the idle ifb keeps no tbf"
    );
    // Unlimited again: the VF's frames no longer go through the ifb.
    let through = |l: Value| l[0]["stats64"]["tx"]["packets"].as_u64().unwrap_or(0);
    let before = through(json(&["ip", "-s", "-j", "link", "show", "dev", &ifb]));
    assert!(ns[1].ping_eventually("10.96.0.1"));
    assert_eq!(
        through(json(&["ip", "-s", "-j", "link", "show", "dev", &ifb])),
        before
    );
    ctl.set_rate(&pf.name, 1, 0, 0).await.unwrap();

    let err = ctl.set_rate(&pf.name, 1, 10, 100).await.unwrap_err();
    assert!(matches!(err.source, VfErrorKind::Unsupported(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&pf.name) && msg.contains("VF 1") && msg.contains("set VF rate"),
        "{msg}"
    );
    assert_eq!(ctl.vf_states(&pf.name).await.unwrap()[1].max_tx_rate, 0);
}

#[tokio::test]
async fn spoofchk_drops_a_spoofed_source_mac() {
    if !is_root() {
        return;
    }
    let pf = Pf::new();
    pf.up(2).await;
    let ctl = pf.ctl();
    let ns: Vec<Ns> = (0..2).map(|_| Ns::new()).collect();
    for (i, n) in ns.iter().enumerate() {
        n.adopt(&pf.vf(i as u32), &format!("10.98.0.{}", i + 1));
    }
    let mac: MacAddr = "02:aa:bb:cc:dd:01".parse().unwrap();
    ctl.set_mac(&pf.name, 0, mac).await.unwrap();
    // As the CNI does for a VF already in the pod: the effective MAC too.
    ok(&[
        "ip",
        "-n",
        &ns[0].0,
        "link",
        "set",
        &pf.vf(0),
        "address",
        &mac.to_string(),
    ]);
    assert_eq!(static_fdb(&pf.rep(0)), vec![mac.to_string()]);
    assert!(
        port_locked(&pf.rep(0)),
        "spoofchk on with an admin MAC locks the port"
    );
    assert!(ns[0].ping_eventually("10.98.0.2"));

    ok(&[
        "ip",
        "-n",
        &ns[0].0,
        "link",
        "set",
        &pf.vf(0),
        "address",
        "02:aa:bb:cc:dd:99",
    ]);
    ns[0].flush_neigh();
    ns[1].flush_neigh();
    assert!(
        !ns[0].ping("10.98.0.2"),
        "spoofed source MAC must be dropped"
    );

    ctl.set_spoofchk(&pf.name, 0, false).await.unwrap();
    assert!(!port_locked(&pf.rep(0)));
    ns[0].flush_neigh();
    ns[1].flush_neigh();
    assert!(
        ns[0].ping_eventually("10.98.0.2"),
        "spoofchk off lets it through"
    );
}

#[tokio::test]
async fn link_state_disable_takes_the_carrier_away() {
    if !is_root() {
        return;
    }
    let pf = Pf::new();
    pf.up(1).await;
    let ctl = pf.ctl();
    let vf = pf.vf(0);
    ok(&["ip", "link", "set", &vf, "up"]);
    assert!(has_flag(&link(&vf).unwrap(), "LOWER_UP"));
    ctl.set_link_state(&pf.name, 0, VfLinkState::Disable)
        .await
        .unwrap();
    let l = link(&vf).unwrap();
    assert!(has_flag(&l, "NO-CARRIER"), "{l}");
    assert_ne!(l["operstate"], "UP");
    // up keeps a disabled VF disabled.
    pf.up(1).await;
    assert!(has_flag(&link(&vf).unwrap(), "NO-CARRIER"));
    ctl.set_link_state(&pf.name, 0, VfLinkState::Auto)
        .await
        .unwrap();
    assert!(has_flag(&link(&vf).unwrap(), "LOWER_UP"));
}

#[tokio::test]
async fn a_vf_destroyed_with_its_netns_is_revived_with_its_registers() {
    if !is_root() {
        return;
    }
    let pf = Pf::new();
    pf.up(2).await;
    let ctl = pf.ctl();
    let vlan = VfVlan {
        vlan: 100,
        qos: 0,
        proto: VlanProto::Dot1Q,
    };
    ctl.set_vlan(&pf.name, 0, vlan).await.unwrap();
    ctl.set_rate(&pf.name, 0, 0, 200).await.unwrap();
    let mac: MacAddr = "02:aa:bb:cc:dd:02".parse().unwrap();
    ctl.set_mac(&pf.name, 0, mac).await.unwrap();
    let ns = Ns::new();
    ns.adopt(&pf.vf(0), "10.97.0.1");
    assert!(
        !emulated::revive_vf(&pf.name, 0, &pf.root).await.unwrap(),
        "alive in the pod"
    );

    drop(ns);
    let deadline = Instant::now() + Duration::from_secs(10);
    while link(&pf.rep(0)).is_some() {
        assert!(Instant::now() < deadline, "veth outlived its netns");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(emulated::revive_vf(&pf.name, 0, &pf.root).await.unwrap());
    let vf = link(&pf.vf(0)).expect("VF netdev back in the host");
    assert_eq!(vf["address"], mac.to_string(), "admin MAC re-applied");
    // Back on its VLAN's bridge, locked to its admin MAC.
    assert_eq!(
        link(&pf.rep(0)).unwrap()["master"],
        pf.vlan_bridge(100).as_str()
    );
    assert_eq!(static_fdb(&pf.rep(0)), vec![mac.to_string()]);
    assert!(port_locked(&pf.rep(0)));
    assert!(ok(&["tc", "qdisc", "show", "dev", &pf.rep(0)]).contains("ingress"));
    assert!(!emulated::revive_vf(&pf.name, 0, &pf.root).await.unwrap());
    assert_eq!(ctl.vf_states(&pf.name).await.unwrap()[0].vlan, vlan);
    assert!(emulated::revive_vf(&pf.name, 2, &pf.root).await.is_err());

    // up revives too.
    ok(&["ip", "link", "del", &pf.rep(1)]);
    pf.up(2).await;
    assert!(link(&pf.vf(1)).is_some());
}

#[tokio::test]
async fn vf_states_read_back_what_was_set() {
    if !is_root() {
        return;
    }
    let pf = Pf::new();
    pf.up(4).await;
    let ctl = pf.ctl();
    let states = ctl.vf_states(&pf.name).await.unwrap();
    assert_eq!(states.len(), 4);
    for (i, s) in states.iter().enumerate() {
        assert_eq!(s.index, i as u32);
        assert_eq!(s.mac, Some(MacAddr::default()));
        assert_eq!(s.spoofchk, Some(true));
        assert_eq!(s.trust, Some(false));
        assert_eq!(s.link_state, Some(VfLinkState::Auto));
    }
    let mac: MacAddr = "02:12:34:56:78:9a".parse().unwrap();
    let vlan = VfVlan {
        vlan: 42,
        qos: 3,
        proto: VlanProto::Dot1Ad,
    };
    ctl.set_mac(&pf.name, 2, mac).await.unwrap();
    ctl.set_vlan(&pf.name, 2, vlan).await.unwrap();
    ctl.set_rate(&pf.name, 2, 0, 300).await.unwrap();
    ctl.set_spoofchk(&pf.name, 2, false).await.unwrap();
    ctl.set_trust(&pf.name, 2, true).await.unwrap();
    ctl.set_link_state(&pf.name, 2, VfLinkState::Enable)
        .await
        .unwrap();
    // The VF netdev is in the host: it took the admin MAC.
    assert_eq!(link(&pf.vf(2)).unwrap()["address"], mac.to_string());

    // A fresh backend (a new CNI process) reads the same.
    let s = pf.ctl().vf_states(&pf.name).await.unwrap();
    assert_eq!(s[2].mac, Some(mac));
    assert_eq!(s[2].vlan, vlan);
    assert_eq!((s[2].min_tx_rate, s[2].max_tx_rate), (0, 300));
    assert_eq!(s[2].spoofchk, Some(false));
    assert_eq!(s[2].trust, Some(true));
    assert_eq!(s[2].link_state, Some(VfLinkState::Enable));
    assert_eq!(s[0], states[0]);
    assert_eq!(s[3], states[3]);

    // Clearing the MAC gives the netdev its stable default back.
    ctl.set_mac(&pf.name, 2, MacAddr::default()).await.unwrap();
    assert_eq!(
        link(&pf.vf(2)).unwrap()["address"],
        emulated::vf_default_mac(&pf.name, 2).to_string()
    );
    assert!(ctl.vf_states("nosuchpf").await.is_err());
}

#[tokio::test]
async fn up_256_vfs_spans_two_buses() {
    if !is_root() {
        return;
    }
    let pf = Pf::new();
    let t = Instant::now();
    let nic = pf.up(256).await;
    let took = t.elapsed();
    println!("up of 256 VFs took {took:?}");
    assert_eq!(nic.vfs[255].pci.bus, nic.bus + 1);
    let pf_dev = pf.root.join("bus/pci/devices").join(nic.pci.to_string());
    let last = std::fs::canonicalize(pf_dev.join("virtfn255")).unwrap();
    assert!(last.ends_with(nic.vfs[255].pci.to_string()));
    assert!(
        Path::new(
            &pf.root
                .join("bus/pci/devices")
                .join(nic.vfs[255].pci.to_string())
        )
        .exists()
    );
    assert_eq!(links_with_prefix(&pf.name).len(), 1 + 512);
    let t = Instant::now();
    pf.up(256).await;
    println!("re-up of 256 VFs took {:?}", t.elapsed());
    let t = Instant::now();
    emulated::down(&pf.name, &pf.root).await.unwrap();
    println!("down of 256 VFs took {:?}", t.elapsed());
    assert!(links_with_prefix(&pf.name).is_empty());
}

#[tokio::test]
async fn up_8_vfs_timing() {
    if !is_root() {
        return;
    }
    let pf = Pf::new();
    let t = Instant::now();
    pf.up(8).await;
    println!("up of 8 VFs took {:?}", t.elapsed());
}

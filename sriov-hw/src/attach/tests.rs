//! Orchestration tests against a recording double: the order of steps, rollback after a failure
//! at any step, and that restore keeps going after errors.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::Rc;

use super::*;
use crate::cidr::IpCidr;
use crate::mac::MacAddr;
use crate::netlink::{LinkInfo, NetlinkError};
use crate::vf::{VfError, VfErrorKind, VfLinkState, VfState, VfVlan};

/// Shared log of every operation, and which one (by prefix) should fail.
#[derive(Default)]
struct Rec {
    log: RefCell<Vec<String>>,
    fail: RefCell<Option<String>>,
    /// The injected failure fires every time, not once (a device that keeps refusing).
    sticky: bool,
    /// Where the VF netdev is: "host" or "pod", and under which name.
    vf_at: RefCell<(String, String)>,
    recoverable: bool,
    /// The pod's own links (not the VF), by name: `eth0`, `lo`…
    pod_links: Vec<String>,
}

impl Rec {
    fn op(&self, s: String) -> Result<(), NetlinkError> {
        // One-shot unless sticky: the injected failure fires once, so the rollback's own calls
        // succeed.
        let failing = self
            .fail
            .borrow()
            .as_ref()
            .is_some_and(|f| s.starts_with(f.as_str()));
        if failing && !self.sticky {
            self.fail.borrow_mut().take();
        }
        self.log.borrow_mut().push(s.clone());
        if failing {
            return Err(NetlinkError::Kernel {
                op: "test",
                target: s,
                errno: libc::EINVAL,
                message: "injected".into(),
            });
        }
        Ok(())
    }
}

struct Links {
    ns: &'static str,
    rec: Rc<Rec>,
}

impl LinkOps for Links {
    async fn link_by_name(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
        let (at, n) = self.rec.vf_at.borrow().clone();
        let pods_own = self.ns == "pod" && self.rec.pod_links.iter().any(|l| l == name);
        Ok(
            (pods_own || (at == self.ns && n == name)).then(|| LinkInfo {
                index: if pods_own { 2 } else { 7 },
                name: name.into(),
                mac: Some(MacAddr([2, 0, 0, 0, 0, 9])),
                mtu: 1500,
                up: true,
                lower_up: true,
                oper_up: true,
                running: true,
                kind: None,
                master: None,
                link: None,
                parent_dev: None,
                parent_bus: None,
            }),
        )
    }
    async fn set_up(&self, l: &str) -> Result<(), NetlinkError> {
        self.rec.op(format!("{} up {l}", self.ns))
    }
    async fn set_down(&self, l: &str) -> Result<(), NetlinkError> {
        self.rec.op(format!("{} down {l}", self.ns))
    }
    async fn set_name(&self, l: &str, new: &str) -> Result<(), NetlinkError> {
        self.rec.op(format!("{} rename {l} {new}", self.ns))?;
        self.rec.vf_at.borrow_mut().1 = new.into();
        Ok(())
    }
    async fn set_mac(&self, l: &str, mac: MacAddr) -> Result<(), NetlinkError> {
        self.rec.op(format!("{} mac {l} {mac}", self.ns))
    }
    async fn set_mtu(&self, l: &str, mtu: u32) -> Result<(), NetlinkError> {
        self.rec.op(format!("{} mtu {l} {mtu}", self.ns))
    }
    async fn move_to_netns(
        &self,
        l: &str,
        _ns: &NetnsHandle,
        new: &str,
    ) -> Result<(), NetlinkError> {
        self.rec.op(format!("{} move {l} {new}", self.ns))?;
        let to = if self.ns == "host" { "pod" } else { "host" };
        *self.rec.vf_at.borrow_mut() = (to.into(), new.into());
        Ok(())
    }
    async fn add_address(&self, l: &str, a: IpCidr) -> Result<(), NetlinkError> {
        self.rec.op(format!("{} addr {l} {a}", self.ns))
    }
    async fn flush_addresses(&self, l: &str) -> Result<(), NetlinkError> {
        self.rec.op(format!("{} flush {l}", self.ns))
    }
    async fn add_route(
        &self,
        l: &str,
        dst: IpCidr,
        gw: Option<IpAddr>,
    ) -> Result<(), NetlinkError> {
        self.rec.op(format!("{} route {l} {dst} {gw:?}", self.ns))
    }
}

struct Vfs(Rc<Rec>);

impl Vfs {
    fn op(&self, s: String) -> Result<(), VfError> {
        self.0
            .op(format!("vf {s}"))
            .map_err(|e| VfError::new("pf0", 3, "test", VfErrorKind::Netlink(e)))
    }
}

impl VfControl for Vfs {
    async fn vf_states(&self, _pf: &str) -> Result<Vec<VfState>, VfError> {
        Ok(vec![])
    }
    async fn set_mac(&self, _pf: &str, vf: u32, mac: MacAddr) -> Result<(), VfError> {
        self.op(format!("{vf} mac {mac}"))
    }
    async fn set_vlan(&self, _pf: &str, vf: u32, v: VfVlan) -> Result<(), VfError> {
        self.op(format!("{vf} vlan {} {}", v.vlan, v.qos))
    }
    async fn set_rate(&self, _pf: &str, vf: u32, min: u32, max: u32) -> Result<(), VfError> {
        self.op(format!("{vf} rate {min} {max}"))
    }
    async fn set_spoofchk(&self, _pf: &str, vf: u32, on: bool) -> Result<(), VfError> {
        self.op(format!("{vf} spoofchk {on}"))
    }
    async fn set_trust(&self, _pf: &str, vf: u32, on: bool) -> Result<(), VfError> {
        self.op(format!("{vf} trust {on}"))
    }
    async fn set_link_state(&self, _pf: &str, vf: u32, s: VfLinkState) -> Result<(), VfError> {
        self.op(format!("{vf} link_state {s:?}"))
    }
}

struct M {
    rec: Rc<Rec>,
    host: Links,
    vfs: Vfs,
    ns: NetnsHandle,
}

impl M {
    fn new(rec: Rec) -> Self {
        let rec = Rc::new(rec);
        M {
            host: Links {
                ns: "host",
                rec: rec.clone(),
            },
            vfs: Vfs(rec.clone()),
            rec,
            ns: NetnsHandle::current().expect("own netns"),
        }
    }
    fn log(&self) -> Vec<String> {
        self.rec.log.borrow().clone()
    }
}

impl Machine for M {
    type Links = Links;
    type Vfs = Vfs;
    fn host(&self) -> &Links {
        &self.host
    }
    fn vfs(&self) -> &Vfs {
        &self.vfs
    }
    fn host_ns(&self) -> &NetnsHandle {
        &self.ns
    }
    fn enter(&self, _ns: &NetnsHandle) -> Result<Links, NetlinkError> {
        Ok(Links {
            ns: "pod",
            rec: self.rec.clone(),
        })
    }
    async fn find_in_host(&self, _t: &VfTarget, _o: &Original) -> Option<String> {
        let (at, n) = self.rec.vf_at.borrow().clone();
        (at == "host").then_some(n)
    }
    async fn find_in_pod(
        &self,
        _inside: &Links,
        _t: &VfTarget,
        _o: &Original,
    ) -> Result<Option<String>, NetlinkError> {
        // The recorder knows where the VF is: its identity, whatever other links are called.
        let (at, n) = self.rec.vf_at.borrow().clone();
        Ok((at == "pod").then_some(n))
    }
    async fn recover(&self, _t: &VfTarget, o: &Original) -> Result<Option<String>, VfError> {
        self.rec.log.borrow_mut().push("recover".into());
        if self.rec.recoverable {
            *self.rec.vf_at.borrow_mut() = ("host".into(), o.netdev.clone());
            return Ok(Some(o.netdev.clone()));
        }
        Ok(None)
    }
}

fn target() -> VfTarget {
    VfTarget {
        pci: "ee00:01:00.3".parse().unwrap(),
        pf: "pf0".into(),
        index: 3,
        vfio: false,
    }
}

fn orig() -> Original {
    Original {
        netdev: "pf0v3".into(),
        mac: Some(MacAddr([2, 0, 0, 0, 0, 3])),
        mtu: 1500,
        vf: VfState {
            index: 3,
            mac: Some(MacAddr::default()),
            spoofchk: Some(true),
            trust: Some(false),
            link_state: Some(VfLinkState::Auto),
            ..Default::default()
        },
    }
}

fn settings() -> VfSettings {
    VfSettings {
        mac: Some(MacAddr([2, 0, 0, 0, 0, 0x10])),
        vlan: Some(VfVlan {
            vlan: 100,
            qos: 3,
            ..Default::default()
        }),
        max_tx_rate: Some(100),
        trust: Some(true),
        ..Default::default()
    }
}

fn pod() -> PodConfig {
    PodConfig {
        ifname: "net1".into(),
        mtu: Some(1400),
        addresses: vec!["10.0.0.5/24".parse().unwrap()],
        routes: vec![Route {
            dst: "0.0.0.0/0".parse().unwrap(),
            gw: Some("10.0.0.1".parse().unwrap()),
        }],
    }
}

fn rec_in_host() -> Rec {
    Rec {
        vf_at: RefCell::new(("host".into(), "pf0v3".into())),
        ..Default::default()
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn apply_runs_steps_in_order() {
    let m = M::new(rec_in_host());
    let a = block(apply(
        &m,
        &target(),
        &orig(),
        &settings(),
        &m.ns.clone(),
        &pod(),
    ))
    .unwrap();
    assert_eq!(a.ifname, "net1");
    assert_eq!(
        m.log(),
        [
            "host down pf0v3",
            "host mac pf0v3 02:00:00:00:00:10",
            "vf 3 mac 02:00:00:00:00:10",
            "vf 3 vlan 100 3",
            "vf 3 rate 0 100",
            "vf 3 trust true",
            "host mtu pf0v3 1400",
            "host move pf0v3 net1",
            "pod addr net1 10.0.0.5/24",
            "pod up net1",
            "pod route net1 0.0.0.0/0 Some(10.0.0.1)",
        ]
    );
}

#[test]
fn failure_at_any_step_rolls_back_everything_touched() {
    for fail in [
        "vf 3 rate",
        "host mac",
        "host move",
        "pod addr",
        "pod route",
    ] {
        let rec = rec_in_host();
        *rec.fail.borrow_mut() = Some(fail.into());
        let m = M::new(rec);
        let e = block(apply(
            &m,
            &target(),
            &orig(),
            &settings(),
            &m.ns.clone(),
            &pod(),
        ))
        .unwrap_err();
        assert!(
            e.rollback.is_empty(),
            "{fail}: rollback left {:?}",
            e.rollback
        );
        // Only the failing op itself is excluded from the "done" set; the restore must put back
        // the VF VLAN, rate, trust and MAC, and leave the netdev in the host under its own name.
        let log = m.log();
        let after = log.iter().position(|l| l.starts_with(fail)).unwrap() + 1;
        let undo = &log[after..];
        assert!(
            undo.contains(&"vf 3 vlan 0 0".to_string()),
            "{fail}: {undo:?}"
        );
        assert!(
            undo.contains(&"vf 3 rate 0 0".to_string()),
            "{fail}: {undo:?}"
        );
        assert!(
            undo.contains(&"vf 3 trust false".to_string()),
            "{fail}: {undo:?}"
        );
        assert!(
            undo.contains(&"vf 3 mac 00:00:00:00:00:00".to_string()),
            "{fail}: {undo:?}"
        );
        assert!(
            !undo
                .iter()
                .any(|l| l.contains("spoofchk") || l.contains("link_state")),
            "{fail}: touched untouched attrs {undo:?}"
        );
        assert_eq!(
            *m.rec.vf_at.borrow(),
            ("host".to_string(), "pf0v3".to_string()),
            "{fail}"
        );
        assert!(
            undo.contains(&"host mac pf0v3 02:00:00:00:00:03".to_string()),
            "{fail}: {undo:?}"
        );
    }
}

#[test]
fn restore_brings_the_vf_out_of_a_live_pod_namespace() {
    let rec = Rec {
        vf_at: RefCell::new(("pod".into(), "net1".into())),
        ..Default::default()
    };
    let m = M::new(rec);
    block(restore(
        &m,
        &target(),
        &orig(),
        &settings(),
        Some(&m.ns.clone()),
        "net1",
    ))
    .unwrap();
    let log = m.log();
    // The PF side comes first (igb: the admin MAC must go before the netdev's MAC can).
    let first_netdev = log.iter().position(|l| !l.starts_with("vf ")).unwrap();
    assert!(log[..first_netdev].contains(&"vf 3 mac 00:00:00:00:00:00".to_string()));
    // Moved out down, and a move drops its addresses: no second down, no flush.
    assert_eq!(
        &log[first_netdev..first_netdev + 3],
        [
            "pod down net1",
            "pod move net1 pf0v3",
            "host mac pf0v3 02:00:00:00:00:03"
        ]
    );
}

#[test]
fn restore_renames_a_vf_that_came_back_under_its_pod_name() {
    let rec = Rec {
        vf_at: RefCell::new(("host".into(), "net1".into())),
        ..Default::default()
    };
    let m = M::new(rec);
    block(restore(&m, &target(), &orig(), &settings(), None, "net1")).unwrap();
    assert!(
        m.log().contains(&"host rename net1 pf0v3".to_string()),
        "{:?}",
        m.log()
    );
}

#[test]
fn restore_without_namespace_recovers_and_keeps_going_after_errors() {
    let rec = Rec {
        vf_at: RefCell::new(("gone".into(), String::new())),
        recoverable: false,
        sticky: true,
        ..Default::default()
    };
    *rec.fail.borrow_mut() = Some("vf 3 vlan".into());
    let m = M::new(rec);
    let errs = block(restore(&m, &target(), &orig(), &settings(), None, "net1")).unwrap_err();
    let log = m.log();
    assert!(log.contains(&"recover".to_string()));
    // The netdev could not be found and the VLAN restore failed, yet rate and trust were restored.
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(log.contains(&"vf 3 rate 0 0".to_string()), "{log:?}");
    assert!(log.contains(&"vf 3 trust false".to_string()), "{log:?}");
}

#[test]
fn vfio_vf_only_gets_pf_side_configuration() {
    let m = M::new(rec_in_host());
    let mut t = target();
    t.vfio = true;
    block(apply(&m, &t, &orig(), &settings(), &m.ns.clone(), &pod())).unwrap();
    assert!(
        m.log().iter().all(|l| l.starts_with("vf ")),
        "{:?}",
        m.log()
    );
}

#[test]
fn restore_clears_the_admin_mac_before_the_netdev_mac_and_keeps_a_self_registered_one_unlocked() {
    // igb reports the MAC an active VF registered itself as the VF's MAC: not an admin MAC.
    let mut o = orig();
    o.vf.mac = o.mac;
    let m = M::new(rec_in_host());
    block(restore(&m, &target(), &o, &settings(), None, "net1")).unwrap();
    let log = m.log();
    let clear = log.iter().position(|l| l == "vf 3 mac 00:00:00:00:00:00");
    let netdev = log
        .iter()
        .position(|l| l == "host mac pf0v3 02:00:00:00:00:03");
    assert!(clear.is_some() && clear < netdev, "{log:?}");
    assert_eq!(
        log.iter().filter(|l| l.starts_with("vf 3 mac")).count(),
        1,
        "the VF's own MAC must not become an admin MAC: {log:?}"
    );
}

#[test]
fn restore_puts_a_real_admin_mac_back_after_the_netdev() {
    let mut o = orig();
    o.vf.mac = Some(MacAddr([2, 0, 0, 0, 0, 0x77]));
    let m = M::new(rec_in_host());
    block(restore(&m, &target(), &o, &settings(), None, "net1")).unwrap();
    let log = m.log();
    assert_eq!(
        log.last().map(String::as_str),
        Some("vf 3 mac 02:00:00:00:00:77"),
        "{log:?}"
    );
}

#[test]
fn apply_refuses_a_pod_interface_name_already_taken_before_changing_anything() {
    for taken in ["net1", "lo"] {
        let rec = Rec {
            pod_links: vec!["lo".into(), taken.into()],
            ..rec_in_host()
        };
        let m = M::new(rec);
        let mut p = pod();
        p.ifname = taken.into();
        let e = block(apply(
            &m,
            &target(),
            &orig(),
            &settings(),
            &m.ns.clone(),
            &p,
        ))
        .unwrap_err();
        assert_eq!(e.step, Step::IfnameFree, "{e}");
        assert!(e.to_string().contains(&format!("\"{taken}\"")), "{e}");
        assert!(e.rollback.is_empty(), "{:?}", e.rollback);
        let log = m.log();
        assert!(!log.iter().any(|l| l.contains("move")), "{taken}: {log:?}");
        assert!(!log.contains(&"vf 3 vlan 100 3".to_string()), "{log:?}");
        assert_eq!(
            *m.rec.vf_at.borrow(),
            ("host".to_string(), "pf0v3".to_string())
        );
    }
}

#[test]
fn restore_moves_the_vf_out_by_identity_never_a_pod_link_of_the_same_name() {
    // ADD raced a pod creating `net1`: the VF went in under its host name and the rename failed.
    let rec = Rec {
        vf_at: RefCell::new(("pod".into(), "pf0v3".into())),
        pod_links: vec!["lo".into(), "net1".into()],
        ..Default::default()
    };
    let m = M::new(rec);
    block(restore(
        &m,
        &target(),
        &orig(),
        &settings(),
        Some(&m.ns.clone()),
        "net1",
    ))
    .unwrap();
    let log = m.log();
    assert!(log.contains(&"pod move pf0v3 pf0v3".to_string()), "{log:?}");
    assert!(
        !log.iter()
            .any(|l| l.contains("pod down net1") || l.contains("pod move net1")),
        "the pod's own net1 was touched: {log:?}"
    );
}

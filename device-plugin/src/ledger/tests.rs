use super::*;

fn key(c: &str) -> AttachmentKey {
    AttachmentKey {
        container_id: c.into(),
        ifname: "net1".into(),
    }
}

fn att(c: &str, vf: &str, ips: &[&str]) -> Attachment {
    let mut a = Attachment {
        key: Some(key(c)),
        network: "db-net".into(),
        vf_pci: vf.into(),
        reserved_ips: ips.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    a.set_state(State::Planned);
    a
}

#[test]
fn plan_commit_remove_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path()).unwrap();
    l.plan(&att("c1", "ee00:01:00.1", &["10.0.0.5/24"]))
        .unwrap();
    assert_eq!(l.vf_holder("ee00:01:00.1").unwrap(), Some(key("c1")));
    assert_eq!(l.ip_holder("db-net", "10.0.0.5").unwrap(), Some(key("c1")));
    let c = l.commit(&key("c1"), "{\"x\":1}").unwrap();
    assert_eq!(c.state(), State::Committed);
    assert_eq!(l.get(&key("c1")).unwrap().unwrap().result_json, "{\"x\":1}");
    let r = l.remove(&key("c1")).unwrap().unwrap();
    assert_eq!(r.vf_pci, "ee00:01:00.1");
    assert!(
        l.remove(&key("c1")).unwrap().is_none(),
        "second remove is a no-op"
    );
    assert_eq!(l.vf_holder("ee00:01:00.1").unwrap(), None);
    assert_eq!(l.ip_holder("db-net", "10.0.0.5/24").unwrap(), None);
    assert!(l.list().unwrap().is_empty());
}

#[test]
fn busy_vf_or_ip_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path()).unwrap();
    l.plan(&att("c1", "ee00:01:00.1", &["10.0.0.5/24", "fd00::5/64"]))
        .unwrap();
    let e = l.plan(&att("c2", "ee00:01:00.1", &[])).unwrap_err();
    assert!(
        matches!(e, LedgerError::VfBusy { ref holder, .. } if holder == "c1/net1"),
        "{e}"
    );
    let e = l
        .plan(&att(
            "c2",
            "ee00:01:00.2",
            &["10.0.0.9/24", "fd00::0005/64"],
        ))
        .unwrap_err();
    assert!(e.to_string().contains("fd00::0005/64"), "{e}");
    assert!(e.to_string().contains("c1/net1"), "{e}");
    // Nothing of c2 was recorded, not even the first, free IP.
    assert_eq!(l.ip_holder("db-net", "10.0.0.9").unwrap(), None);
    assert_eq!(l.vf_holder("ee00:01:00.2").unwrap(), None);
    // The same IP in another network is a different address space.
    let mut other = att("c3", "ee00:01:00.3", &["10.0.0.5/24"]);
    other.network = "other".into();
    l.plan(&other).unwrap();
    let e = l.plan(&att("c1", "ee00:01:00.4", &[])).unwrap_err();
    assert!(matches!(e, LedgerError::Exists { .. }), "{e}");
}

#[test]
fn survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let l = Ledger::open(dir.path()).unwrap();
        l.plan(&att("c1", "ee00:01:00.1", &["10.0.0.5/24"]))
            .unwrap();
    }
    let l = Ledger::open(dir.path()).unwrap();
    let a = l.get(&key("c1")).unwrap().unwrap();
    assert_eq!(a.state(), State::Planned);
    assert_eq!(l.ip_holder("db-net", "10.0.0.5").unwrap(), Some(key("c1")));
}

#[test]
fn concurrent_plans_never_share_a_vf() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path()).unwrap();
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let l = l.clone();
            std::thread::spawn(move || {
                // 16 attachments race for 4 VFs and 4 IPs.
                let vf = format!("ee00:01:00.{}", i % 4);
                let ip = format!("10.0.0.{}/24", 10 + i % 4);
                l.plan(&att(&format!("c{i}"), &vf, &[&ip])).is_ok()
            })
        })
        .collect();
    let won = handles
        .into_iter()
        .filter(|_| true)
        .map(|h| h.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(won, 4);
    assert_eq!(l.list().unwrap().len(), 4);
}

#[test]
fn reopen_keeps_what_was_flushed_and_releases_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(dir.path()).unwrap();
    l.plan(&att("c1", "ee00:01:00.1", &[])).unwrap();
    // A second open of the same directory is refused while the first holds the store.
    let e = Ledger::open(dir.path()).err().expect("second open refused");
    assert!(
        e.to_string().contains(&dir.path().display().to_string()),
        "{e}"
    );
    l.reopen(Some(0)).unwrap();
    assert_eq!(l.vf_holder("ee00:01:00.1").unwrap(), Some(key("c1")));
    l.reopen(Some(0)).unwrap(); // a stale generation: no second reopen
    assert_eq!(l.slot.read().unwrap().generation, 1);
}

#[test]
fn storage_causes_read_plainly() {
    let copied = std::io::Error::new(
        std::io::ErrorKind::StorageFull,
        format!("{:?}", std::io::Error::from_raw_os_error(28)),
    );
    assert_eq!(
        cause(&sled::Error::Io(copied)),
        "No space left on device (os error 28)"
    );
    let direct = std::io::Error::from_raw_os_error(30);
    assert_eq!(
        cause(&sled::Error::Io(direct)),
        "Read-only file system (os error 30)"
    );
}

//! Privileged: the inventory watcher on a real (veth-emulated) NIC, following real netlink link
//! events. `ip link set <pf> down` must turn every VF of the PF Unhealthy within 1 s; up must
//! bring them back; shrinking the NIC must withdraw VFs. Skipped loudly when not root.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use device_plugin::health::{InventoryWatcher, NetlinkLinks, NodeView, WatcherOptions};
use device_plugin::pools::{PoolConfig, Snapshot};
use sriov_hw::emulated::{self, EmulateSpec};
use tokio::sync::watch;

/// One emulated PF with its own sysfs root; torn down on drop, even after a panic.
struct EmuNic {
    pf: String,
    root: PathBuf,
    _tmp: tempfile::TempDir,
}

impl EmuNic {
    async fn up(vfs: u32) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let nic = EmuNic {
            pf: hw_tests::unique_name("hp"),
            root: tmp.path().join("sys"),
            _tmp: tmp,
        };
        assert!(nic.pf.len() <= 8, "{}", nic.pf);
        nic.reshape(vfs).await;
        nic
    }

    async fn reshape(&self, vfs: u32) {
        emulated::up(&EmulateSpec {
            pf: self.pf.clone(),
            vfs,
            sysfs_root: self.root.clone(),
        })
        .await
        .unwrap();
    }
}

impl Drop for EmuNic {
    fn drop(&mut self) {
        let (pf, root) = (self.pf.clone(), self.root.clone());
        // Drop runs inside the test's runtime: tear down on a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            if let Err(e) = rt.block_on(emulated::down(&pf, &root)) {
                eprintln!("cleanup of {pf}: {e}");
            }
        })
        .join();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (healthy, unhealthy) devices of the single pool.
fn counts(s: &Snapshot) -> (usize, usize) {
    let devs = &s[0].devices;
    let healthy = devs.iter().filter(|d| d.healthy).count();
    (healthy, devs.len() - healthy)
}

async fn wait_for(
    rx: &mut watch::Receiver<NodeView>,
    limit: Duration,
    pred: impl Fn(&Snapshot) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if pred(&rx.borrow_and_update().pools) {
            return start.elapsed();
        }
        let left = limit.saturating_sub(start.elapsed());
        tokio::time::timeout(left, rx.changed())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no matching snapshot within {limit:?}; last {:?}",
                    counts(&rx.borrow().pools)
                )
            })
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pf_link_down_turns_its_vfs_unhealthy_within_a_second() {
    if !hw_tests::require_root("pf_link_down_turns_its_vfs_unhealthy_within_a_second") {
        return;
    }
    let nic = EmuNic::up(8).await;
    let cfg = PoolConfig::parse(
        format!(
            r#"{{"resourceList":[{{"resourceName":"emu","resourcePrefix":"example.com","selectors":{{"pfNames":["{}"]}}}}]}}"#,
            nic.pf
        )
        .as_bytes(),
    )
    .unwrap();
    let w = InventoryWatcher::start(
        WatcherOptions {
            sysfs_root: nic.root.clone(),
            proc_root: None,
            rescan_interval: Duration::from_secs(3600),
        },
        cfg,
        Arc::new(NetlinkLinks::host().unwrap()),
    )
    .await
    .unwrap();
    let mut rx = w.subscribe();
    let s = w.snapshot().pools;
    assert_eq!(counts(&s), (8, 0), "{s:?}");
    assert!(s[0].devices.iter().all(|d| d.pf_name == nic.pf));

    let t = Instant::now();
    ip(&["link", "set", &nic.pf, "down"]);
    let down_after = wait_for(&mut rx, Duration::from_secs(1), |s| counts(s) == (0, 8)).await;
    eprintln!(
        "ip link set {} down → 8 VFs Unhealthy after {:?} (since the command started: {:?})",
        nic.pf,
        down_after,
        t.elapsed()
    );

    let t = Instant::now();
    ip(&["link", "set", &nic.pf, "up"]);
    let up_after = wait_for(&mut rx, Duration::from_secs(1), |s| counts(s) == (8, 0)).await;
    eprintln!(
        "ip link set {} up → 8 VFs Healthy after {:?} (since the command started: {:?})",
        nic.pf,
        up_after,
        t.elapsed()
    );

    // numvfs 8 → 3: the rescan withdraws five VFs.
    nic.reshape(3).await;
    w.rescan_now().await.unwrap();
    assert_eq!(counts(&w.snapshot().pools), (3, 0));

    // The PF bridge deleted: its netdev is gone, the VFs cannot be used.
    ip(&["link", "del", &nic.pf]);
    wait_for(&mut rx, Duration::from_secs(1), |s| counts(s) == (0, 3)).await;
}

//! The real SR-IOV path on an emulated Intel 82576 (igb) in a QEMU guest: runs
//! `hw-tests/qemu/run.sh` (two boots, plain and with a vIOMMU), which fails on any failed guest
//! check or a guest without a SUMMARY. Where QEMU cannot run (no root, no apt, no igb device) the
//! runner says `skipped: <why>`; with `SRIOV_REQUIRE_PRIVILEGED=1` (CI) that is a failure.
//! `SRIOV_QEMU=0` skips it on purpose (it takes a few minutes).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

use std::path::Path;
use std::process::Command;

/// The runner's exit status for "could not run here".
const SKIPPED: i32 = 77;

fn skip(why: &str) {
    let why = format!("skipped: qemu_igb: {why}");
    if std::env::var("SRIOV_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{why}, and SRIOV_REQUIRE_PRIVILEGED=1");
    }
    eprintln!("{why}");
}

#[test]
fn igb_guest_passes_every_check() {
    if std::env::var("SRIOV_QEMU").as_deref() == Ok("0") {
        return skip("disabled by SRIOV_QEMU=0");
    }
    if !hw_tests::require_root("qemu_igb") {
        return;
    }
    let runner = Path::new(env!("CARGO_MANIFEST_DIR")).join("qemu/run.sh");
    // The runner prints the guest's failed checks, INFO lines and SUMMARY lines; cargo shows
    // them when the test fails (or with --nocapture).
    let out = Command::new("bash")
        .arg(&runner)
        .output()
        .expect("spawn hw-tests/qemu/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    match out.status.code() {
        Some(0) => {
            assert!(
                stdout.matches("SUMMARY {").count() >= 2,
                "two guest SUMMARY lines expected"
            );
        }
        Some(SKIPPED) => {
            let why = stdout
                .lines()
                .find_map(|l| l.strip_prefix("skipped: "))
                .unwrap_or("runner skipped");
            skip(why);
        }
        _ => panic!(
            "QEMU igb suite failed ({}); see the output above",
            out.status
        ),
    }
}

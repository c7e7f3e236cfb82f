//! `sriov-hwcheck --pf <netdev> [--qemu] [--vfio] [--iterations N]`: the SR-IOV checks against a
//! real PF driver (see `hw_tests::hwcheck`). Prints `CHECK` lines and a final `SUMMARY {json}`;
//! exits 0 iff every check passed. The QEMU igb guest runs it from its `/init`; on a real host
//! run it as root with a PF that is up, has carrier and has at least 3 VFs enabled. It finds
//! `sriov` and `sriov-device-plugin` in `SRIOV_BIN_DIR` (else the workspace's target dir).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed expectation fails the test

use hw_tests::hwcheck::{self, Options};

fn main() {
    let mut opts = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--pf" => opts.pf = args.next().unwrap_or_default(),
            "--qemu" => opts.qemu = true,
            "--vfio" => opts.vfio = true,
            "--iterations" => {
                opts.iterations = args.next().and_then(|n| n.parse().ok()).unwrap_or(7)
            }
            "--sysfs-root" => opts.sysfs = args.next().unwrap_or_default().into(),
            _ => {
                eprintln!(
                    "usage: sriov-hwcheck --pf <netdev> [--qemu] [--vfio] [--iterations N] [--sysfs-root DIR]"
                );
                std::process::exit(2);
            }
        }
    }
    if opts.pf.is_empty() {
        eprintln!("sriov-hwcheck: --pf is required");
        std::process::exit(2);
    }
    let report = hwcheck::run(&opts);
    report.print_summary();
    std::process::exit(if report.all_ok() { 0 } else { 1 });
}

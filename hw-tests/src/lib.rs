//! Helpers for the end-to-end tests: locating the built binaries, skipping loudly without
//! privileges, unique names, guards that tear down what a test created even when it panics, and
//! reading kernel state as JSON (`ip -j`, `nft -j`, `tc -j`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether privileged tests may run. Prints `skipped: <why>` when not; with
/// `SRIOV_REQUIRE_PRIVILEGED=1` (CI) a missing privilege is a failure instead of a skip.
pub fn require_root(test: &str) -> bool {
    if nix_is_root() {
        return true;
    }
    let why = format!("skipped: {test} needs root (netns, links, nftables)");
    if std::env::var("SRIOV_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{why}, and SRIOV_REQUIRE_PRIVILEGED=1");
    }
    eprintln!("{why}");
    false
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A name unique to this process and call, at most 15 bytes with a short prefix.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{}{n}", std::process::id() % 10000);
    assert!(name.len() <= 11, "name {name} too long for VF suffixes");
    name
}

/// The directory holding the built binaries: `SRIOV_BIN_DIR`, else the workspace's
/// `target/release`, else `target/debug` (whichever has them).
pub fn bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("SRIOV_BIN_DIR") {
        return Path::new(&dir).join(name);
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| ws.join("target"));
    for profile in ["release", "debug"] {
        let p = target.join(profile).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("binary {name} not built: run `cargo build --workspace --release --bins` first")
}

/// Runs a command, returning its output; panics with stderr if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ip -j <args>` parsed (empty output → empty array).
pub fn ip_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new("ip")
        .arg("-j")
        .args(args)
        .output()
        .expect("spawn ip");
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return serde_json::Value::Array(vec![]);
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {text}"))
}

/// Names of all links in the host namespace.
pub fn link_names() -> Vec<String> {
    ip_json(&["link", "show"])
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Names of all nftables tables (`family name`).
pub fn nft_tables() -> Vec<String> {
    let out = Command::new("nft")
        .args(["-j", "list", "tables"])
        .output()
        .expect("spawn nft");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["nftables"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    let t = e.get("table")?;
                    Some(format!("{} {}", t["family"].as_str()?, t["name"].as_str()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Tears down an emulated NIC with the real binary on drop, so a panicking test leaves nothing.
pub struct EmulatedNic {
    pub pf: String,
    pub sysfs_root: PathBuf,
}

impl EmulatedNic {
    /// `sriov-device-plugin emulate up --pf <pf> --vfs <n> --sysfs-root <root>`.
    pub fn up(pf: &str, vfs: u32, sysfs_root: &Path) -> Self {
        let guard = EmulatedNic {
            pf: pf.to_string(),
            sysfs_root: sysfs_root.to_path_buf(),
        };
        guard.up_again(vfs);
        guard
    }

    /// Runs `emulate up` again on the same PF (idempotence and reshaping checks).
    pub fn up_again(&self, vfs: u32) {
        run_ok(Command::new(bin("sriov-device-plugin")).args([
            "emulate",
            "up",
            "--pf",
            &self.pf,
            "--vfs",
            &vfs.to_string(),
            "--sysfs-root",
            &self.sysfs_root.to_string_lossy(),
        ]));
    }

    /// Runs `emulate down`, returning its output (the guard still runs it again on drop).
    pub fn down(&self) -> Output {
        Command::new(bin("sriov-device-plugin"))
            .args(["emulate", "down", "--pf", &self.pf, "--sysfs-root"])
            .arg(&self.sysfs_root)
            .output()
            .expect("spawn sriov-device-plugin")
    }
}

impl Drop for EmulatedNic {
    fn drop(&mut self) {
        let _ = self.down();
    }
}

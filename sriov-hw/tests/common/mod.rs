//! Guards for privileged netlink tests: unique names, namespaces and links that are removed when
//! the test ends, panicking or not, and a loud skip when not root.
#![allow(dead_code)]

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// True when the test may touch the kernel's network configuration; otherwise prints
/// `skipped: <why>` and the caller returns.
pub fn privileged(test: &str) -> bool {
    if !hw_tests::require_root(test) {
        return false;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        println!("skipped: {test}: iproute2 `ip` not found");
        return false;
    }
    true
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name no other test (in this or a concurrent process) uses: `<prefix><pid><n>`, at most 15
/// bytes (IFNAMSIZ - 1). `prefix` should be 2-3 characters.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}{}x{n}", std::process::id() % 1_000_000);
    assert!(name.len() <= 15, "test name {name} too long");
    name
}

/// Runs `ip <args>`.
pub fn ip(args: &[&str]) -> Output {
    match Command::new("ip").args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("running ip {args:?}: {e}"),
    }
}

/// Runs `ip <args>` and fails the test, with ip's stderr, if it fails.
pub fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip -j <args>` and parses its JSON output.
pub fn ip_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    let out = ip(&all);
    assert!(
        out.status.success(),
        "ip {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ip {all:?}: bad JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct NetnsGuard {
    pub name: String,
}

impl NetnsGuard {
    pub fn new() -> Self {
        let name = unique("nt");
        ip_ok(&["netns", "add", &name]);
        NetnsGuard { name }
    }

    /// The bind mount runtimes like podman hand to CNI plugins.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A veth pair created in the host namespace; deletes whatever is left of it on drop (in the host
/// and in `also_in`, wherever an end may have been moved).
pub struct VethGuard {
    pub a: String,
    pub b: String,
    pub also_in: Vec<String>,
}

impl VethGuard {
    pub fn new() -> Self {
        let a = unique("va");
        let b = unique("vb");
        ip_ok(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        VethGuard {
            a,
            b,
            also_in: Vec::new(),
        }
    }
}

impl Drop for VethGuard {
    fn drop(&mut self) {
        for n in [&self.a, &self.b] {
            let _ = ip(&["link", "del", n]);
        }
        for ns in &self.also_in {
            for n in [&self.a, &self.b] {
                let _ = ip(&["-n", ns, "link", "del", n]);
            }
        }
    }
}

/// A child process, killed and reaped on drop.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// `unshare -n sleep 60`: a process alone in a fresh network namespace, with no name.
    pub fn sleeper_in_new_netns() -> Self {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning unshare: {e}"));
        ChildGuard(child)
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

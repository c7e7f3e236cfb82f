//! Helpers for the end-to-end tests: locating the built binaries, skipping loudly without
//! privileges, unique names, guards that tear down what a test created even when it panics, and
//! reading kernel state as JSON (`ip -j`, `bridge -j`, `tc -j`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed expectation fails the test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether privileged tests may run. Prints `skipped: <why>` when not; with
/// `SRIOV_REQUIRE_PRIVILEGED=1` (CI) a missing privilege is a failure instead of a skip.
pub fn require_root(test: &str) -> bool {
    if nix_is_root() {
        return true;
    }
    let why = format!("skipped: {test} needs root (netns, links, qdiscs)");
    if std::env::var("SRIOV_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{why}, and SRIOV_REQUIRE_PRIVILEGED=1");
    }
    eprintln!("{why}");
    false
}

/// Reports that `test` cannot run here because `why` (a tool or service is missing): prints
/// `skipped: <test>: <why>`, or panics when `SRIOV_REQUIRE_PRIVILEGED=1` (CI), where a skip
/// must not pass as success.
pub fn skip(test: &str, why: &str) {
    let why = format!("skipped: {test}: {why}");
    if std::env::var("SRIOV_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{why}, and SRIOV_REQUIRE_PRIVILEGED=1");
    }
    eprintln!("{why}");
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

/// A built binary: in `SRIOV_BIN_DIR`, else the workspace's `target/debug` (what
/// `scripts/test.sh` builds, with the test-only `fault-injection` feature), else `target/release`.
pub fn bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("SRIOV_BIN_DIR") {
        return Path::new(&dir).join(name);
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| ws.join("target"));
    for profile in ["debug", "release"] {
        let p = target.join(profile).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("binary {name} not built: run `cargo build --workspace --all-features --bins` first")
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

/// The kernel's view of a VF's eswitch port: its bridge (the VLAN group) and the tbf rate on
/// its shaper, if any.
pub fn eswitch_port(pf: &str, vf: u64) -> (String, Option<u64>) {
    let link = ip_json(&["-d", "link", "show", "dev", &format!("{pf}r{vf}")]);
    let bridge = link[0]["master"].as_str().unwrap_or("").to_string();
    let tc = run_ok(Command::new("tc").args(["-j", "qdisc", "show", "dev", &format!("{pf}q{vf}")]));
    let tc: serde_json::Value = serde_json::from_slice(&tc.stdout).unwrap_or_default();
    let rate = tc.as_array().into_iter().flatten().find_map(|q| {
        (q["kind"] == "tbf")
            .then(|| q["options"]["rate"].as_u64())
            .flatten()
    });
    (bridge, rate)
}

/// Tears down an emulated NIC with the real binary on drop, so a panicking test leaves nothing.
pub struct EmulatedNic {
    /// The PF's name (the bridge acting as the NIC's switch).
    pub pf: String,
    /// The synthetic sysfs tree the NIC was created in.
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

pub mod api_bed;
pub mod cni_fixture;
pub mod hwcheck;
pub mod kube;
pub mod kube_deploy;
pub mod kubelet;
pub mod kubelet_bed;
pub mod load;
pub mod mounts;
pub mod podresources;
pub mod tcp_proxy;

/// A network namespace made with `ip netns add`, deleted on drop (unless already gone).
pub struct Netns {
    /// The name under `/run/netns`.
    pub name: String,
}

impl Netns {
    /// Creates `/run/netns/<name>`.
    pub fn new(name: &str) -> Self {
        run_ok(Command::new("ip").args(["netns", "add", name]));
        Netns {
            name: name.to_string(),
        }
    }

    /// The path runtimes pass as CNI_NETNS.
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -n <ns> -j <args>` parsed.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        ip_json(&a)
    }

    /// Whether the namespace holds a link named `name` (e.g. the pod side of an attachment).
    pub fn has_link(&self, name: &str) -> bool {
        self.ip_json(&["link", "show", name])
            .as_array()
            .is_some_and(|a| !a.is_empty())
    }

    /// Deletes the namespace now (a pod sandbox torn down before DEL).
    pub fn delete(&self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.delete();
    }
}

/// The agent (`sriov-device-plugin run`) as a child process, killed on drop: standalone
/// ([`Agent::start`]) or serving kubelet ([`Agent::start_with`] without `--standalone`).
pub struct Agent {
    /// Behind a lock so a test can crash and restart the agent while other threads use it.
    pub child: std::sync::Mutex<std::process::Child>,
    /// The node API socket, `<dir>/agent.sock`.
    pub socket: PathBuf,
    /// The ledger directory, `<dir>/state`.
    pub state_dir: PathBuf,
    args: Vec<String>,
}

impl Agent {
    /// Starts the agent in standalone mode and waits (up to 10 s) for its socket.
    pub fn start(dir: &Path, sysfs_root: &Path, pools: &Path, pod_table: Option<&Path>) -> Self {
        Self::start_with(dir, sysfs_root, pools, pod_table, &["--standalone"])
    }

    /// Starts `run` with the test defaults (node socket `<dir>/agent.sock`, ledger in
    /// `<dir>/state`, reconcile every second, no metrics) plus `extra` flags, and waits (up to
    /// 10 s) for the node socket. Without `--standalone` in `extra`, pass `--kubelet-dir`,
    /// `--pod-resources-socket` and `--devinfo-dir` so nothing touches the host's kubelet paths.
    pub fn start_with(
        dir: &Path,
        sysfs_root: &Path,
        pools: &Path,
        pod_table: Option<&Path>,
        extra: &[&str],
    ) -> Self {
        let socket = dir.join("agent.sock");
        let state_dir = dir.join("state");
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.splice(
            0..0,
            [
                "run".into(),
                "--socket".into(),
                socket.display().to_string(),
                "--state-dir".into(),
                state_dir.display().to_string(),
                "--sysfs-root".into(),
                sysfs_root.display().to_string(),
                "--config".into(),
                pools.display().to_string(),
                "--reconcile-interval".into(),
                "1".into(),
                "--no-metrics".into(),
            ],
        );
        if let Some(t) = pod_table {
            args.push("--pod-table".into());
            args.push(t.display().to_string());
        }
        let child = std::sync::Mutex::new(Self::spawn(&args, &socket));
        Agent {
            child,
            socket,
            state_dir,
            args,
        }
    }

    fn spawn(args: &[String], socket: &Path) -> std::process::Child {
        let _ = std::fs::remove_file(socket);
        // The agent's log goes next to its socket, so test output stays readable.
        let log = std::fs::File::create(socket.with_extension("log")).expect("agent log file");
        let mut child = Command::new(bin("sriov-device-plugin"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn agent");
        for _ in 0..200 {
            if socket.exists() {
                return child;
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("agent exited early: {st}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("agent socket {} did not appear", socket.display());
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    /// The agent's log so far (stderr, written next to its socket).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.socket.with_extension("log")).unwrap_or_default()
    }

    /// kill -9 the agent and start it again on the same state (a crash and a restart).
    pub fn crash_and_restart(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        *child = Self::spawn(&self.args, &self.socket);
    }

    /// `sriov-device-plugin status --json` against this agent.
    pub fn status(&self) -> serde_json::Value {
        let out = run_ok(
            Command::new(bin("sriov-device-plugin"))
                .args(["status", "--json", "--socket"])
                .arg(&self.socket),
        );
        serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The outcome of one `sriov` call: exit success and stdout parsed as JSON (Null when empty).
#[derive(Debug)]
pub struct CniOutcome {
    /// Whether `sriov` exited with status 0.
    pub ok: bool,
    /// stdout as JSON (the result or the error object); `Null` when empty.
    pub json: serde_json::Value,
    /// stderr, lossily decoded, for assertion messages.
    pub stderr: String,
}

impl CniOutcome {
    /// The CNI error code (0 when the call succeeded).
    pub fn code(&self) -> u64 {
        self.json["code"].as_u64().unwrap_or(0)
    }
}

/// Runs the `sriov` binary with `CNI_*` variables and a netconf on stdin.
pub fn cni(env: &[(&str, &str)], conf: &serde_json::Value) -> CniOutcome {
    cni_with(bin("sriov"), env, conf)
}

/// As [`cni`], with another plugin binary.
pub fn cni_with(plugin: PathBuf, env: &[(&str, &str)], conf: &serde_json::Value) -> CniOutcome {
    cni_collect(cni_spawn_with(plugin, env, conf))
}

/// Starts the `sriov` plugin with `conf` on stdin and returns at once (for a test that acts on
/// the plugin while it runs); [`cni_collect`] waits for its outcome.
pub fn cni_spawn(env: &[(&str, &str)], conf: &serde_json::Value) -> std::process::Child {
    cni_spawn_with(bin("sriov"), env, conf)
}

fn cni_spawn_with(
    plugin: PathBuf,
    env: &[(&str, &str)],
    conf: &serde_json::Value,
) -> std::process::Child {
    use std::io::Write;
    let mut child = Command::new(plugin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn CNI plugin");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(conf.to_string().as_bytes());
    }
    child
}

/// Waits for a plugin started by [`cni_spawn`] and parses what it printed.
pub fn cni_collect(child: std::process::Child) -> CniOutcome {
    let out = child.wait_with_output().expect("wait CNI plugin");
    let text = String::from_utf8_lossy(&out.stdout);
    let json = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text:?}"))
    };
    CniOutcome {
        ok: out.status.success(),
        json,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

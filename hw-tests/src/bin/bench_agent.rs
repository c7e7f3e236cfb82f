//! Benchmark of the agent's kubelet side at scale (a benchmark, not a test): the release
//! `sriov-device-plugin run` on a fixture sysfs tree of `--pfs` E810 PFs × `--vfs-per-pf` VFs
//! (default 4 × 128 = 512), with the kubelet stand-in already listening. Prints:
//!
//! - time from process spawn to the first ListAndWatch message (measured by the stand-in), and
//!   to the registration before it;
//! - Allocate latency p50/p99 over `--iterations` single-device calls;
//! - GetPreferredAllocation p50/p99 over `--iterations` calls (size 4 out of all devices);
//! - the agent's VmRSS and VmHWM after the runs;
//! - peers measured in the same run: a bare `/bin/true` spawn, and `sriov-device-plugin
//!   inventory --json` on the same tree (a whole process: start, discovery, pools, JSON).
//!
//! The fixture PFs' netdevs do not exist on the host, and the agent's health rule marks the VFs
//! of a PF whose netdev is missing Unhealthy (Allocate then refuses them). So the bench names the
//! PF netdevs uniquely (`sbk<pid>f<p>`, same PCI layout as `sriov_hw::fixtures::presets::scale`)
//! and creates links of those names in the host (veth pairs, up), deleting them on exit. Needs
//! root.
//!
//! Usage: `bench_agent [--pfs 4] [--vfs-per-pf 128] [--iterations 1000] [--agent PATH]`; the
//! agent defaults to `sriov-device-plugin` next to this binary. See `scripts/bench-agent.sh`.
//! `--tree-only DIR` writes the tree to `DIR/sys` (PF netdevs named `sbkf<p>`, no host links)
//! and `DIR/pools.json`, then exits: a fixed tree to profile `inventory` or `run` on by hand.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed expectation fails the test

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hw_tests::kubelet::KubeletStandIn;
use serde_json::json;
use sriov_hw::PciAddr;
use sriov_hw::fixtures::FixtureTree;
use sriov_hw::fixtures::presets::intel_e810;
use sriov_proto::deviceplugin::v1beta1 as api;

const RESOURCE: &str = "bench.io/vf";

struct Opts {
    pfs: u32,
    vfs_per_pf: u32,
    iterations: usize,
    agent: PathBuf,
    /// Only write the fixture tree (and pools.json) under this directory, then exit (for
    /// profiling the agent by hand).
    tree_only: Option<PathBuf>,
}

fn parse() -> Result<Opts, String> {
    let here = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut o = Opts {
        pfs: 4,
        vfs_per_pf: 128,
        iterations: 1000,
        agent: here.with_file_name("sriov-device-plugin"),
        tree_only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--pfs" => o.pfs = val()?.parse().map_err(|e| format!("--pfs: {e}"))?,
            "--vfs-per-pf" => {
                o.vfs_per_pf = val()?.parse().map_err(|e| format!("--vfs-per-pf: {e}"))?
            }
            "--iterations" => {
                o.iterations = val()?.parse().map_err(|e| format!("--iterations: {e}"))?
            }
            "--agent" => o.agent = val()?.into(),
            "--tree-only" => o.tree_only = Some(val()?.into()),
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if o.iterations == 0 {
        return Err("--iterations must be at least 1".into());
    }
    Ok(o)
}

/// Links in the host namespace standing in for the fixture PFs' netdevs: one veth pair per PF
/// (`<name>` and peer `<name>p`, both up, so `<name>` is up with carrier as a cabled PF is).
/// veth rather than dummy because containers' kernels often lack the dummy module. Deleting
/// one end deletes the pair; done on drop.
struct PfLinks(Vec<String>);

impl PfLinks {
    fn create(names: &[String]) -> Result<Self, String> {
        let mut me = PfLinks(Vec::new());
        for n in names {
            let peer = format!("{n}p");
            ip(&["link", "add", n, "type", "veth", "peer", "name", &peer])?;
            me.0.push(n.clone());
            ip(&["link", "set", &peer, "up"])?;
            ip(&["link", "set", n, "up"])?;
        }
        Ok(me)
    }
}

impl Drop for PfLinks {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = ip(&["link", "del", n]);
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The agent process; SIGTERM then wait on drop (SIGKILL if it lingers).
struct AgentProc(Child);

impl Drop for AgentProc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid, no memory involved.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..50 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tree of [`sriov_hw::fixtures::presets::scale`] (same PCI addresses, NUMA, IOMMU groups),
/// with PF netdevs named `<prefix>f<p>` so they cannot clash with the host's links.
fn build_tree(root: &Path, pfs: u32, vfs_per_pf: u32, prefix: &str) -> Result<Vec<String>, String> {
    let mut t = FixtureTree::new(root).map_err(|e| format!("fixture tree: {e}"))?;
    let mut names = Vec::new();
    for p in 0..pfs {
        let bus = u8::try_from(0x10 + 4 * p).map_err(|_| "too many PFs for the bus space")?;
        let pci = PciAddr {
            domain: 0,
            bus,
            device: 0,
            function: 0,
        };
        let name = format!("{prefix}f{p}");
        let spec =
            intel_e810(pci, &name, vfs_per_pf, (p % 2) as i32).with_iommu_groups(100 + 1000 * p);
        t.add_pf(&spec)
            .map_err(|e| format!("fixture PF {p}: {e}"))?;
        names.push(name);
    }
    Ok(names)
}

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[Duration], p: usize) -> Duration {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    println!(
        "{name:<34} p50 {:>9.1?}  p99 {:>9.1?}  mean {:>9.1?}  max {:>9.1?}  (n={})",
        pct(&v, 50),
        pct(&v, 99),
        mean,
        v[v.len() - 1],
        v.len()
    );
}

fn proc_status(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// Median wall time of `n` runs of `cmd` (each must succeed).
fn median_run(n: usize, mut cmd: impl FnMut() -> Command) -> Result<Duration, String> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = cmd();
        let t = Instant::now();
        let st = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("{c:?}: {e}"))?;
        v.push(t.elapsed());
        if !st.success() {
            return Err(format!("{c:?}: {st}"));
        }
    }
    v.sort();
    Ok(v[n / 2])
}

/// `--tree-only`: the bench's tree and pool config under `dir`, nothing else.
fn tree_only(o: &Opts, dir: &Path) -> Result<(), String> {
    build_tree(&dir.join("sys"), o.pfs, o.vfs_per_pf, "sbk")?;
    std::fs::write(dir.join("pools.json"), pools_json().to_string())
        .map_err(|e| format!("pools: {e}"))?;
    println!("{}", dir.display());
    Ok(())
}

/// One pool of every iavf VF.
fn pools_json() -> serde_json::Value {
    json!({"resourceList": [{"resourceName": "vf", "resourcePrefix": "bench.io",
           "selectors": {"drivers": ["iavf"]}}]})
}

async fn bench(o: &Opts) -> Result<(), String> {
    if !o.agent.exists() {
        return Err(format!(
            "agent binary {} not found (build with `cargo build --release --bins`)",
            o.agent.display()
        ));
    }
    let total = (o.pfs * o.vfs_per_pf) as usize;
    let tmp = tempfile::Builder::new()
        .prefix("sriov-bench-")
        .tempdir_in("/dev/shm")
        .map_err(|e| format!("tempdir in /dev/shm: {e}"))?;
    let dir = tmp.path();
    let sys = dir.join("sys");
    let prefix = format!("sbk{}", std::process::id() % 10000);
    let t = Instant::now();
    let names = build_tree(&sys, o.pfs, o.vfs_per_pf, &prefix)?;
    println!(
        "fixture: {} PFs × {} VFs = {total} VFs under {} (built in {:?})",
        o.pfs,
        o.vfs_per_pf,
        sys.display(),
        t.elapsed()
    );
    let _links = PfLinks::create(&names)?;
    let pools = dir.join("pools.json");
    std::fs::write(&pools, pools_json().to_string()).map_err(|e| format!("pools: {e}"))?;
    let kdir = dir.join("kubelet");
    std::fs::create_dir_all(&kdir).map_err(|e| format!("{}: {e}", kdir.display()))?;
    let kubelet = KubeletStandIn::start(&kdir).map_err(|e| format!("stand-in: {e}"))?;

    let log_path = dir.join("agent.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("agent log: {e}"))?;
    let p = |x: PathBuf| x.display().to_string();
    let spawned = Instant::now();
    let child = Command::new(&o.agent)
        .args(["run", "--no-metrics", "--sysfs-root", &p(sys.clone())])
        .args(["--socket", &p(dir.join("agent.sock"))])
        .args(["--state-dir", &p(dir.join("state"))])
        .args(["--config", &p(pools.clone())])
        .args(["--kubelet-dir", &p(kdir.clone())])
        .args(["--pod-resources-socket", &p(dir.join("pr.sock"))])
        .args(["--devinfo-dir", &p(dir.join("devinfo"))])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", o.agent.display()))?;
    let agent = AgentProc(child);
    let pid = agent.0.id();
    let fail = |what: &str| {
        format!(
            "{what}; agent log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        )
    };
    let reg = kubelet
        .wait_registration(RESOURCE, spawned, Duration::from_secs(60))
        .await
        .ok_or_else(|| fail("no registration within 60 s"))?;
    let first = kubelet
        .wait_devices(RESOURCE, Duration::from_secs(60), |_| true)
        .await
        .ok_or_else(|| fail("no ListAndWatch message within 60 s"))?;
    println!(
        "spawn → registration                {:>9.1?}",
        reg.at.duration_since(spawned)
    );
    println!(
        "spawn → first ListAndWatch message  {:>9.1?}  ({} devices, {} healthy)",
        first.received.duration_since(spawned),
        first.devices.len(),
        first
            .devices
            .iter()
            .filter(|d| d.health == "Healthy")
            .count()
    );
    if first.devices.len() != total {
        return Err(fail(&format!(
            "first list has {} devices, expected {total}",
            first.devices.len()
        )));
    }
    let list = kubelet
        .wait_devices(RESOURCE, Duration::from_secs(10), |l| {
            l.devices.len() == total && l.devices.iter().all(|d| d.health == "Healthy")
        })
        .await
        .ok_or_else(|| fail("devices never all Healthy"))?;
    let ids: Vec<String> = list.devices.iter().map(|d| d.id.clone()).collect();
    let rss_start = proc_status(pid, "VmRSS");

    let mut plugin = kubelet.plugin(RESOURCE).await?;
    let mut alloc = Vec::with_capacity(o.iterations);
    for i in 0..o.iterations {
        let req = api::AllocateRequest {
            container_requests: vec![api::ContainerAllocateRequest {
                devices_ids: vec![ids[i % ids.len()].clone()],
            }],
        };
        let t = Instant::now();
        plugin
            .allocate(req)
            .await
            .map_err(|e| format!("Allocate {i}: {e}"))?;
        alloc.push(t.elapsed());
    }
    let mut pref = Vec::with_capacity(o.iterations);
    for i in 0..o.iterations {
        let req = api::PreferredAllocationRequest {
            container_requests: vec![api::ContainerPreferredAllocationRequest {
                available_device_i_ds: ids.clone(),
                must_include_device_i_ds: vec![],
                allocation_size: 4,
            }],
        };
        let t = Instant::now();
        let r = plugin
            .get_preferred_allocation(req)
            .await
            .map_err(|e| format!("GetPreferredAllocation {i}: {e}"))?
            .into_inner();
        pref.push(t.elapsed());
        let n = r
            .container_responses
            .first()
            .map_or(0, |c| c.device_i_ds.len());
        if n != 4 {
            return Err(format!("GetPreferredAllocation {i} returned {n} devices"));
        }
    }
    summary("Allocate (1 device)", alloc);
    summary(&format!("GetPreferredAllocation (4 of {total})"), pref);
    println!(
        "agent RSS: VmRSS {} (at first full list: {rss_start}), VmHWM {}",
        proc_status(pid, "VmRSS"),
        proc_status(pid, "VmHWM")
    );

    let spawn_true = median_run(21, || Command::new("/bin/true"))?;
    let inventory = median_run(5, || {
        let mut c = Command::new(&o.agent);
        c.args(["inventory", "--json", "--sysfs-root"])
            .arg(&sys)
            .arg("--config")
            .arg(&pools);
        c
    })?;
    println!("peer: /bin/true spawn (median of 21)  {spawn_true:>9.1?}");
    println!("peer: inventory --json, whole process (median of 5) {inventory:>9.1?}");
    drop(agent);
    Ok(())
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench_agent: {e}");
            std::process::exit(2);
        }
    };
    if let Some(dir) = &o.tree_only {
        if let Err(e) = tree_only(&o, dir) {
            eprintln!("bench_agent: {e}");
            std::process::exit(1);
        }
        return;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench_agent: needs root (creates host links for the fixture PFs)");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(bench(&o)) {
        eprintln!("bench_agent: {e}");
        std::process::exit(1);
    }
}

//! The SR-IOV checks against a real PF driver: the QEMU igb guest runs them from its `/init`,
//! and `sriov-hwcheck --pf <name>` runs them on a real host. They drive the release binaries
//! (`sriov`, `sriov-device-plugin`) as a node would: the agent in kubelet mode registers with
//! the kubelet stand-in, the stand-in allocates VFs, and the CNI gets the allocated `deviceID`
//! (what Multus injects). Every outcome is a `CHECK` line; the run ends with `SUMMARY {json}`.

mod agent;
mod batch;
mod cni_flow;
mod inventory;
mod kubelet_side;
mod pfview;
mod refusals;
pub mod report;
mod vfio;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use crate::kubelet::KubeletStandIn;
use agent::AgentProc;
use inventory::{PfInfo, VfInfo};
use report::{Report, info};

/// The pod table network and netconf `name`.
pub const NET: &str = "hw-net";
/// The pool of netdev VFs.
pub const VF_POOL: &str = "hwcheck.io/vf";
/// The pool of vfio-pci VFs (with `--vfio`).
pub const VFIO_POOL: &str = "hwcheck.io/vfio";

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The PF netdev, already up with carrier and with VFs enabled.
    pub pf: String,
    /// Bind the last VF to vfio-pci and check the DPDK path (needs an IOMMU).
    pub vfio: bool,
    /// Expect the QEMU igb layout (PCI addresses, igb/igbvf drivers, 7 VFs).
    pub qemu: bool,
    /// ADD/DEL cycles for the latency figures.
    pub iterations: usize,
    /// sysfs root (the host's `/sys`).
    pub sysfs: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pf: String::new(),
            vfio: false,
            qemu: false,
            iterations: 7,
            sysfs: PathBuf::from("/sys"),
        }
    }
}

/// The pod table: fixed IP and MAC per pod; db-1 also takes VLAN, QoS and rate from it.
pub fn pod_table() -> Value {
    json!({"networks": {NET: {
        "pods": {
            "default/db-0": {"ips": ["10.99.0.10/24"], "mac": "02:99:00:00:00:10"},
            "default/db-1": {"ips": ["10.99.0.11/24"], "mac": "02:99:00:00:00:11",
                             "vlan": 200, "vlanQoS": 5, "max_tx_rate": 200},
            "default/bad-0": {"ips": ["10.99.0.30/24"], "mac": "02:99:00:00:00:30"},
            "default/dpdk-0": {"ips": ["10.99.0.40/24"], "mac": "02:99:00:00:00:40"},
            "default/lat-0": {"ips": ["10.99.0.50/24"], "mac": "02:99:00:00:00:50"},
        }
    }}})
}

/// The pool config (reference device plugin format): netdev VFs of this PF by driver, and with
/// `--vfio` the vfio-pci ones.
fn pool_config(pf: &PfInfo, vf_driver: &str, vfio: bool) -> Value {
    let mut list = vec![json!({"resourceName": "vf", "resourcePrefix": "hwcheck.io",
        "selectors": {"pfNames": [pf.name], "drivers": [vf_driver]}})];
    if vfio {
        list.push(
            json!({"resourceName": "vfio", "resourcePrefix": "hwcheck.io",
            "selectors": {"pfNames": [pf.name], "drivers": ["vfio-pci"]}}),
        );
    }
    json!({"resourceList": list})
}

/// Everything the flows share.
pub struct Ctx<'a> {
    /// The command-line options of this run.
    pub opts: &'a Options,
    /// Where each check's outcome goes.
    pub report: &'a mut Report,
    /// The tokio runtime the kubelet-side gRPC calls are blocked on.
    pub rt: &'a tokio::runtime::Runtime,
    /// The PF under test, as inventory found it.
    pub pf: &'a PfInfo,
    /// The agent under test (kubelet mode).
    pub agent: &'a AgentProc,
    /// The kubelet stand-in the agent registers with.
    pub kubelet: &'a KubeletStandIn,
    /// The PF's VF table before anything ran.
    pub original: Vec<pfview::VfRow>,
    /// Each netdev VF's MAC before anything ran, by PCI address.
    pub netdev_macs: HashMap<String, String>,
}

impl Ctx<'_> {
    /// The netconf for one call, with `extra` merged in.
    pub fn conf(&self, device: &str, resource: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0",
            "name": NET,
            "type": "sriov",
            "agentSocket": self.agent.socket.display().to_string(),
            "resourceName": resource,
            "deviceID": device,
        });
        if let (Some(o), Value::Object(e)) = (c.as_object_mut(), extra) {
            o.extend(e);
        }
        c
    }

    /// Runs `sriov` for pod `default/<pod>`.
    pub fn cni(
        &self,
        cmd: &str,
        cid: &str,
        netns: &str,
        pod: &str,
        conf: &Value,
    ) -> crate::CniOutcome {
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};\
             K8S_POD_INFRA_CONTAINER_ID={cid};K8S_POD_UID=uid-{pod}"
        );
        crate::cni(
            &[
                ("CNI_COMMAND", cmd),
                ("CNI_CONTAINERID", cid),
                ("CNI_NETNS", netns),
                ("CNI_IFNAME", "net1"),
                ("CNI_ARGS", &args),
                ("CNI_PATH", "/usr/lib/cni:/opt/cni/bin"),
            ],
            conf,
        )
    }

    /// The original PF-side row of `vf`.
    pub fn original_row(&self, vf: u32) -> Option<&pfview::VfRow> {
        self.original.iter().find(|r| r.vf == u64::from(vf))
    }

    /// The VF is as before the test: PF-side row equal to the original, netdev back in the host
    /// under its original name (when it has one).
    pub fn restored(&self, vf: &VfInfo) -> Result<(), String> {
        let now = pfview::vf_row(&self.pf.name, vf.index)?;
        let orig = self
            .original_row(vf.index)
            .ok_or_else(|| format!("no original row for VF {}", vf.index))?;
        // igb reports the MAC an active VF registered itself where it reports an admin MAC: a VF
        // that had none and has been up since shows its netdev's own (original) MAC.
        let own = self.netdev_macs.get(&vf.pci);
        let mac_ok = now.mac == orig.mac || (orig.mac == ZERO_MAC && Some(&now.mac) == own);
        let rest = pfview::VfRow {
            mac: orig.mac.clone(),
            ..now.clone()
        };
        if !mac_ok || &rest != orig {
            return Err(format!(
                "PF row now [{}], was [{}] (netdev MAC was {own:?})",
                now.brief(),
                orig.brief()
            ));
        }
        if !vf.netdev.is_empty() {
            let names = pfview::host_netdevs(&self.opts.sysfs, &vf.pci);
            if names != [vf.netdev.clone()] {
                return Err(format!(
                    "VF {} netdev in host {names:?}, want [{}]",
                    vf.pci, vf.netdev
                ));
            }
            let mac = netdev_mac(&vf.netdev);
            if own.is_some() && mac.as_ref() != own {
                return Err(format!("{} MAC {mac:?}, was {own:?}", vf.netdev));
            }
        }
        Ok(())
    }
}

/// Runs every check; returns the report (the caller prints the SUMMARY).
pub fn run(opts: &Options) -> Report {
    let started = Instant::now();
    let mut report = Report::default();
    report.metric("pf", json!(opts.pf));
    report.metric("mode", json!(if opts.qemu { "qemu" } else { "host" }));
    report.metric("iommu", json!(opts.vfio));
    report.metric("kernel", json!(uname_r()));
    if let Err(e) = flow(opts, &mut report) {
        report.check("setup", Err(e));
    }
    report.metric("elapsed_s", json!(started.elapsed().as_secs_f64().round()));
    report
}

fn flow(opts: &Options, report: &mut Report) -> Result<(), String> {
    let Some(mut pf) = inventory::check(opts, report) else {
        return Err("no PF to test".into());
    };
    let netdev_vfs: Vec<VfInfo> = pf
        .vfs
        .iter()
        .filter(|v| !v.netdev.is_empty())
        .cloned()
        .collect();
    let vf_driver = netdev_vfs
        .first()
        .map(|v| v.driver.clone())
        .ok_or("no VF with a netdev")?;
    let original = pfview::vf_table(&pf.name)?;
    let netdev_macs: HashMap<String, String> = netdev_vfs
        .iter()
        .filter_map(|v| Some((v.pci.clone(), netdev_mac(&v.netdev)?)))
        .collect();
    info(format!(
        "PF VF table at start: {:?}",
        original.iter().map(|r| r.brief()).collect::<Vec<_>>()
    ));
    report.expect(
        "pf.vf_table_lists_every_vf",
        original.len() == pf.vfs.len(),
        || format!("{} rows for {} VFs", original.len(), pf.vfs.len()),
    );
    // The vfio VF is the last one; it leaves the netdev pool.
    let vfio_vf = if opts.vfio {
        let vf = pf.vfs.last().cloned().ok_or("no VF")?;
        let ok = report.check("vfio.bind", vfio::bind(&opts.sysfs, &vf.pci));
        if ok {
            for v in pf.vfs.iter_mut().filter(|v| v.pci == vf.pci) {
                v.driver = "vfio-pci".into();
            }
        }
        ok.then_some(vf)
    } else {
        None
    };
    let pool_vfs: Vec<VfInfo> = pf
        .vfs
        .iter()
        .filter(|v| v.driver == vf_driver)
        .cloned()
        .collect();

    let dir = tempfile::Builder::new()
        .prefix("sriov-hwcheck")
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?;
    let kdir = dir.path().join("device-plugins");
    std::fs::create_dir_all(&kdir).map_err(|e| e.to_string())?;
    let pools = dir.path().join("pools.json");
    let table = dir.path().join("podtable.json");
    write(&pools, &pool_config(&pf, &vf_driver, vfio_vf.is_some()))?;
    write(&table, &pod_table())?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let since = Instant::now();
    let kubelet = rt
        .block_on(async { KubeletStandIn::start(&kdir) })
        .map_err(|e| format!("kubelet stand-in: {e}"))?;
    let agent = AgentProc::start(dir.path(), &kdir, &pools, &table)?;
    let list = rt.block_on(kubelet_side::registered_list(
        &kubelet,
        VF_POOL,
        pool_vfs.len(),
        since,
    ));
    let listed = report.check(
        "kubelet.register_and_list",
        list.as_ref().map(|_| ()).map_err(Clone::clone),
    );
    if listed && let Ok(l) = &list {
        let mut ids: Vec<&str> = l.devices.iter().map(|d| d.id.as_str()).collect();
        ids.sort();
        let mut want: Vec<&str> = pool_vfs.iter().map(|v| v.pci.as_str()).collect();
        want.sort();
        report.expect("kubelet.list_is_the_pool", ids == want, || {
            format!("listed {ids:?}, pool {want:?}")
        });
    }
    let mut ctx = Ctx {
        opts,
        report,
        rt: &rt,
        pf: &pf,
        agent: &agent,
        kubelet: &kubelet,
        original,
        netdev_macs,
    };
    cni_flow::run(&mut ctx, &pool_vfs);
    if let Some(vf) = pool_vfs.first() {
        batch::run(&mut ctx, vf);
    }
    if let Some(vf) = &vfio_vf {
        vfio::run(&mut ctx, vf);
    }
    let atts = agent.attachments();
    ctx.report.check(
        "ledger.empty_at_end",
        match atts {
            Ok(a) if a.is_empty() => Ok(()),
            Ok(a) => Err(format!("{} attachments left: {a:?}", a.len())),
            Err(e) => Err(e),
        },
    );
    let errors: Vec<String> = pf
        .vfs
        .iter()
        .map(|v| VfInfo {
            netdev: if v.driver == "vfio-pci" {
                String::new()
            } else {
                v.netdev.clone()
            },
            ..v.clone()
        })
        .filter_map(|v| ctx.restored(&v).err())
        .collect();
    ctx.report
        .expect("pf.every_vf_restored_at_end", errors.is_empty(), || {
            errors.join("; ")
        });
    if !ctx.report.all_ok() {
        info(format!("agent log tail: {}", agent.log_tail()));
    }
    if let Some(vf) = &vfio_vf
        && !opts.qemu
    {
        // On a real host, give the VF back to its netdev driver.
        let _ = vfio::unbind(&opts.sysfs, &vf.pci, &vf.driver);
    }
    Ok(())
}

/// The all-zero MAC: no admin MAC set.
const ZERO_MAC: &str = "00:00:00:00:00:00";

/// A host netdev's MAC.
fn netdev_mac(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
        .ok()
        .map(|s| s.trim().to_string())
}

fn write(path: &Path, v: &Value) -> Result<(), String> {
    std::fs::write(path, v.to_string()).map_err(|e| format!("{}: {e}", path.display()))
}

fn uname_r() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

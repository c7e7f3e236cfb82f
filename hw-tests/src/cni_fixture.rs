//! A complete CNI test bed on the emulated NIC: a NIC with N VFs in its own sysfs root, a pool
//! config, a pod table, the agent in standalone mode, and helpers to call `sriov` for a pod.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{Agent, CniOutcome, EmulatedNic, Netns, cni, unique_name};

/// The network name the pod table and netconfs use.
pub const NET: &str = "db-net";

/// The pool's resource name (`<resourcePrefix>/<resourceName>` of the bed's pool config).
pub const RESOURCE: &str = "test.io/emu";
/// The env var Allocate sets for [`RESOURCE`].
pub const RESOURCE_ENV: &str = "PCIDEVICE_TEST_IO_EMU";
const KUBELET_DIR: &str = "kubelet";
const POD_RESOURCES_SOCK: &str = "pr.sock";
const DEVINFO_DIR: &str = "devinfo";

/// The default pod table: db-0/db-1 on VLAN 100 (defaults), web-0 on VLAN 200.
pub fn default_pod_table() -> Value {
    json!({"networks": {NET: {
        "defaults": {"gateway": "10.77.0.1", "vlan": 100, "max_tx_rate": 100},
        "pods": {
            "default/db-0": {"ips": ["10.77.0.10/24"]},
            "default/db-1": {"ips": ["10.77.0.11/24"], "mac": "02:aa:00:00:00:11"},
            "default/web-0": {"ips": ["10.77.0.20/24"], "vlan": 200},
        }
    }}})
}

/// Writes `<dir>/pools.json`: one pool, [`RESOURCE`], of every emulated VF.
pub fn write_pools(dir: &Path) -> PathBuf {
    let pools = dir.join("pools.json");
    std::fs::write(
        &pools,
        json!({"resourceList": [{"resourceName": "emu", "resourcePrefix": "test.io",
               "selectors": {"drivers": ["sriov-emu-vf"]}}]})
        .to_string(),
    )
    .expect("write pools");
    pools
}

/// Everything one test needs; dropped in reverse order (agent, NIC, files).
pub struct Bed {
    /// The agent; dropped first, so it is gone before the NIC.
    pub agent: Agent,
    /// The emulated NIC, under `<dir>/sys`.
    pub nic: EmulatedNic,
    /// Everything on disk (sysfs tree, pools, pod table, agent state); removed last.
    pub dir: tempfile::TempDir,
    /// `<dir>/podtable.json`, the agent's `--pod-table`; tests rewrite it to trigger reloads.
    pub pod_table: PathBuf,
}

impl Bed {
    /// An emulated NIC with `vfs` VFs, the agent in standalone mode, and `table` as the pod
    /// table.
    pub fn new(vfs: u32, table: &Value) -> Self {
        Self::build(vfs, table, &["--standalone"], |_| Vec::new())
    }

    /// As [`Bed::new`], running `before_agent` with the bed's directory just before the agent
    /// starts (e.g. to put `<dir>/state` on storage of the test's choosing).
    pub fn standalone_with(vfs: u32, table: &Value, before_agent: impl FnOnce(&Path)) -> Self {
        Self::build(vfs, table, &["--standalone"], |dir| {
            before_agent(dir);
            Vec::new()
        })
    }

    /// As [`Bed::new`], with the agent serving kubelet instead: its device plugin sockets in
    /// [`Bed::kubelet_dir`], PodResources asked on [`Bed::pod_resources_socket`], device-info
    /// files in [`Bed::devinfo_dir`], sysfs rescanned every second. `before_agent` gets the
    /// bed's directory once the kubelet directory exists and before the agent starts (where a
    /// test starts its kubelet stand-ins).
    pub fn with_kubelet(vfs: u32, table: &Value, before_agent: impl FnOnce(&Path)) -> Self {
        Self::build(vfs, table, &[], |dir| {
            let kdir = dir.join(KUBELET_DIR);
            std::fs::create_dir_all(&kdir).expect("kubelet dir");
            before_agent(dir);
            vec![
                "--kubelet-dir".into(),
                kdir.display().to_string(),
                "--pod-resources-socket".into(),
                dir.join(POD_RESOURCES_SOCK).display().to_string(),
                "--devinfo-dir".into(),
                dir.join(DEVINFO_DIR).display().to_string(),
                "--rescan-interval".into(),
                "1".into(),
            ]
        })
    }

    /// `prepare` runs before the agent starts and returns more flags for it.
    fn build(
        vfs: u32,
        table: &Value,
        flags: &[&str],
        prepare: impl FnOnce(&Path) -> Vec<String>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("sys");
        let pf = unique_name("ce");
        let nic = EmulatedNic::up(&pf, vfs, &root);
        let pools = write_pools(dir.path());
        let pod_table = dir.path().join("podtable.json");
        std::fs::write(&pod_table, table.to_string()).expect("write pod table");
        let more = prepare(dir.path());
        let mut flags: Vec<&str> = flags.to_vec();
        flags.extend(more.iter().map(String::as_str));
        let agent = Agent::start_with(dir.path(), &root, &pools, Some(&pod_table), &flags);
        Bed {
            agent,
            nic,
            dir,
            pod_table,
        }
    }

    /// Kubelet's device plugin directory in kubelet mode.
    pub fn kubelet_dir(&self) -> PathBuf {
        self.dir.path().join(KUBELET_DIR)
    }

    /// Where the agent asks PodResources in kubelet mode.
    pub fn pod_resources_socket(&self) -> PathBuf {
        self.dir.path().join(POD_RESOURCES_SOCK)
    }

    /// Where Allocate writes device-info files in kubelet mode.
    pub fn devinfo_dir(&self) -> PathBuf {
        self.dir.path().join(DEVINFO_DIR)
    }

    /// The VFs' PCI addresses in VF index order, as `inventory --json` reports them.
    pub fn vf_pcis(&self) -> Vec<String> {
        let out = crate::run_ok(
            std::process::Command::new(crate::bin("sriov-device-plugin"))
                .args(["inventory", "--json", "--sysfs-root"])
                .arg(self.sysfs_root()),
        );
        let inv: Value = serde_json::from_slice(&out.stdout).expect("inventory --json");
        let mut vfs: Vec<(u64, String)> = inv["pfs"][0]["vfs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|v| {
                (
                    v["index"].as_u64().unwrap_or_default(),
                    v["pci"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        vfs.sort();
        vfs.into_iter().map(|(_, p)| p).collect()
    }

    /// The PF (bridge) name.
    pub fn pf(&self) -> &str {
        &self.nic.pf
    }

    /// The netconf for `version`, with `extra` fields merged in.
    pub fn conf(&self, version: &str, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": version,
            "name": NET,
            "type": "sriov",
            "resourceName": RESOURCE,
            "agentSocket": self.agent.socket.display().to_string(),
            "spoofchk": "on",
        });
        if let (Some(o), Value::Object(e)) = (c.as_object_mut(), extra) {
            o.extend(e);
        }
        c
    }

    /// Calls `sriov` with `cmd` for pod `default/<pod>` in container `cid`, as `net1`.
    pub fn call(&self, cmd: &str, cid: &str, netns: &str, pod: &str, conf: &Value) -> CniOutcome {
        self.call_as(cmd, cid, netns, "net1", pod, conf)
    }

    /// As [`Bed::call`], with `ifname` as `CNI_IFNAME` (e.g. a name the pod already has).
    pub fn call_as(
        &self,
        cmd: &str,
        cid: &str,
        netns: &str,
        ifname: &str,
        pod: &str,
        conf: &Value,
    ) -> CniOutcome {
        let args = pod_args(pod);
        cni(&cni_env(cmd, cid, netns, ifname, &args, &[]), conf)
    }

    /// As [`Bed::call`], with `extra` in the environment (e.g. a fault-injection step).
    pub fn call_with(
        &self,
        cmd: &str,
        cid: &str,
        netns: &str,
        pod: &str,
        conf: &Value,
        extra: &[(&str, &str)],
    ) -> CniOutcome {
        let args = pod_args(pod);
        cni(&cni_env(cmd, cid, netns, "net1", &args, extra), conf)
    }

    /// As [`Bed::call_with`], but returns the running plugin at once (for a test that acts on
    /// it while it runs); [`crate::cni_collect`] waits for its outcome.
    pub fn spawn_with(
        &self,
        cmd: &str,
        cid: &str,
        netns: &str,
        pod: &str,
        conf: &Value,
        extra: &[(&str, &str)],
    ) -> std::process::Child {
        let args = pod_args(pod);
        crate::cni_spawn(&cni_env(cmd, cid, netns, "net1", &args, extra), conf)
    }

    /// The agent's attachments (from `status --json`).
    pub fn attachments(&self) -> Vec<Value> {
        self.agent.status()["attachments"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The VF netdev names of this NIC present in the host namespace.
    pub fn host_vf_netdevs(&self) -> Vec<String> {
        let pfv = format!("{}v", self.pf());
        crate::link_names()
            .into_iter()
            .filter(|l| l.starts_with(&pfv))
            .collect()
    }

    /// VF `i`'s port on the emulated eswitch as the kernel reports it: the bridge its
    /// representor is on (`<pf>` untagged, `<pf>b<hhh>` for 802.1Q VLAN 0xhhh), whether the port
    /// is locked (spoof check), and the static FDB entries (admin MAC) on it.
    pub fn eswitch_port(&self, i: u32) -> EswitchPort {
        let rep = format!("{}r{i}", self.pf());
        let link = crate::ip_json(&["-d", "link", "show", "dev", &rep]);
        let fdb = std::process::Command::new("bridge")
            .args(["-j", "fdb", "show", "dev", &rep])
            .output()
            .expect("spawn bridge");
        let fdb: Value = serde_json::from_slice(&fdb.stdout).unwrap_or(Value::Null);
        EswitchPort {
            bridge: link[0]["master"].as_str().unwrap_or("").to_string(),
            locked: link[0]["linkinfo"]["info_slave_data"]["locked"] == true,
            static_macs: fdb
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["state"] == "static")
                .filter_map(|e| e["mac"].as_str().map(str::to_string))
                .collect(),
        }
    }

    /// Root of the emulated NIC's sysfs tree.
    pub fn sysfs_root(&self) -> &Path {
        &self.nic.sysfs_root
    }
}

/// A test netns with a unique name.
pub fn pod_netns() -> Netns {
    Netns::new(&unique_name("cp"))
}

impl Bed {
    /// VF states as the PF reports them (`sriov-device-plugin vfs --json`).
    pub fn vf_states(&self) -> Vec<Value> {
        let out = crate::run_ok(
            std::process::Command::new(crate::bin("sriov-device-plugin"))
                .args(["vfs", "--pf", self.pf(), "--sysfs-root"])
                .arg(self.sysfs_root()),
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// True when every VF is as `emulate up` made it: no VLAN, no rate, no admin MAC, default
    /// spoof check/trust/link state, and its netdev is in the host under its own name.
    pub fn all_vfs_pristine(&self, vfs: u32) -> Result<(), String> {
        self.vfs_pristine_except(vfs, &[])
    }

    /// As [`Bed::all_vfs_pristine`] for every VF whose index is not in `held` (VFs a test
    /// still has attached).
    pub fn vfs_pristine_except(&self, vfs: u32, held: &[u32]) -> Result<(), String> {
        let held = |i: &u32| held.contains(i);
        let states = self.vf_states();
        for s in states
            .iter()
            .filter(|s| !s["index"].as_u64().is_some_and(|i| held(&(i as u32))))
        {
            let clean = s["vlan"]["vlan"] == 0
                && s["max_tx_rate"] == 0
                && s["min_tx_rate"] == 0
                && s["mac"] == "00:00:00:00:00:00"
                && s["spoofchk"] == true
                && s["trust"] == false
                && s["link_state"] == "auto";
            if !clean {
                return Err(format!("VF not restored: {s}"));
            }
        }
        for i in (0..vfs).filter(|i| !held(i)) {
            let port = self.eswitch_port(i);
            if port.bridge != self.pf() || port.locked || !port.static_macs.is_empty() {
                return Err(format!("VF {i}'s eswitch port not restored: {port:?}"));
            }
        }
        let mut names = self.host_vf_netdevs();
        names.sort();
        names.retain(|n| {
            let i = n.rsplit('v').next().and_then(|i| i.parse().ok());
            !i.is_some_and(|i: u32| held(&i))
        });
        let mut want: Vec<String> = (0..vfs)
            .filter(|i| !held(i))
            .map(|i| format!("{}v{i}", self.pf()))
            .collect();
        want.sort();
        if names != want {
            return Err(format!("VF netdevs in host {names:?}, expected {want:?}"));
        }
        Ok(())
    }

    /// Checks the ledger holds exactly `want` (container IDs, each once, committed, on its VF),
    /// besides attachments whose container ID starts with `transient`, and that each pool's free
    /// list leaves out exactly the attached VFs (every VF of the bed is in one pool).
    pub fn assert_ledger(&self, want: &[(&str, &str)], transient: &str) {
        let status = self.agent.status();
        let atts = status["attachments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut vfs: Vec<&str> = atts.iter().filter_map(|a| a["vf_pci"].as_str()).collect();
        vfs.sort();
        vfs.dedup();
        assert_eq!(vfs.len(), atts.len(), "a VF recorded twice: {status}");
        for (cid, vf) in want {
            let mine: Vec<&Value> = atts.iter().filter(|a| a["container_id"] == *cid).collect();
            assert_eq!(
                mine.len(),
                1,
                "attachment {cid} lost or duplicated: {status}"
            );
            assert_eq!(mine[0]["vf_pci"], *vf, "{status}");
            assert_eq!(mine[0]["state"], "committed", "{status}");
        }
        for a in &atts {
            let cid = a["container_id"].as_str().unwrap_or("");
            assert!(
                want.iter().any(|(w, _)| *w == cid) || cid.starts_with(transient),
                "phantom attachment {cid}: {status}"
            );
        }
        let mut held = 0;
        for p in status["pools"].as_array().cloned().unwrap_or_default() {
            let free: Vec<&str> = p["free"]
                .as_array()
                .map(|f| f.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert!(
                !free.iter().any(|f| vfs.contains(f)),
                "a VF both free and attached: {status}"
            );
            held += p["total"].as_u64().unwrap_or(0) as usize - free.len();
        }
        assert_eq!(held, atts.len(), "VFs neither free nor attached: {status}");
    }
}

/// A VF's representor port on the emulated eswitch (see [`Bed::eswitch_port`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EswitchPort {
    /// The bridge the representor is a port of: the VF's VLAN group.
    pub bridge: String,
    /// Locked: only static FDB sources may send (spoof check on with an admin MAC).
    pub locked: bool,
    /// Static FDB entries on the port (the admin MAC).
    pub static_macs: Vec<String>,
}

/// `CNI_ARGS` for pod `default/<pod>` (with a UID derived from the name).
fn pod_args(pod: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_UID=uid-{pod}")
}

/// The environment a runtime gives the plugin, plus `extra`.
fn cni_env<'a>(
    cmd: &'a str,
    cid: &'a str,
    netns: &'a str,
    ifname: &'a str,
    args: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("CNI_COMMAND", cmd),
        ("CNI_CONTAINERID", cid),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_ARGS", args),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    env.extend_from_slice(extra);
    env
}

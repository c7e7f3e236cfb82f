//! The node agent as a child process in kubelet mode (not standalone): it registers its pools
//! with the kubelet stand-in, serves Allocate, and answers the CNI on its node socket. The CNI
//! calls carry the `deviceID` kubelet allocated (what Multus injects), so the agent never needs
//! kubelet's PodResources API here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A running `sriov-device-plugin run`, killed on drop.
pub struct AgentProc {
    child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl AgentProc {
    /// Starts the agent with its state, sockets and devinfo files under `dir`, the pool config
    /// `pools`, the pod table `pod_table`, kubelet's directory `kubelet_dir`. Waits up to 20 s
    /// for the node socket.
    pub fn start(
        dir: &Path,
        kubelet_dir: &Path,
        pools: &Path,
        pod_table: &Path,
    ) -> Result<Self, String> {
        let socket = dir.join("agent.sock");
        let log = dir.join("agent.log");
        let logf = std::fs::File::create(&log).map_err(|e| format!("agent log: {e}"))?;
        let mut child = Command::new(crate::bin("sriov-device-plugin"))
            .arg("run")
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--config")
            .arg(pools)
            .arg("--pod-table")
            .arg(pod_table)
            .arg("--kubelet-dir")
            .arg(kubelet_dir)
            .arg("--devinfo-dir")
            .arg(dir.join("devinfo"))
            .arg("--pod-resources-socket")
            .arg(dir.join("no-pod-resources.sock"))
            // The DEL paths are what is checked: the reconciler must not free an attachment
            // whose namespace is gone before the DEL under test arrives.
            .args(["--reconcile-interval", "3600", "--rescan-interval", "2"])
            .arg("--no-metrics")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .map_err(|e| format!("spawn agent: {e}"))?;
        for _ in 0..400 {
            if socket.exists() {
                return Ok(AgentProc { child, socket, log });
            }
            if let Ok(Some(st)) = child.try_wait() {
                return Err(format!("agent exited early: {st}: {}", tail(&log)));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        Err(format!("agent socket did not appear: {}", tail(&log)))
    }

    /// `sriov-device-plugin status --json`.
    pub fn status(&self) -> Result<Value, String> {
        let out = Command::new(crate::bin("sriov-device-plugin"))
            .args(["status", "--json", "--socket"])
            .arg(&self.socket)
            .output()
            .map_err(|e| format!("spawn status: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "status failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("status --json: {e}"))
    }

    /// The attachments the ledger holds.
    pub fn attachments(&self) -> Result<Vec<Value>, String> {
        Ok(self.status()?["attachments"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The last lines of the agent's log.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        // SIGTERM first so the agent removes its sockets; then make sure.
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..40 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Delegating addresses to the netconf's IPAM plugin (host-local, static, whereabouts…), executed
//! from `CNI_PATH` as the spec describes: same environment, the whole netconf on stdin.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{CniError, Failure, code};
use crate::netconf::NetConf;
use crate::request::Request;
use crate::result::CniResult;

/// Runs the IPAM plugin with `verb` (ADD, DEL, CHECK). ADD returns its result; the plugin's own
/// error JSON is passed on with its code.
pub fn exec(req: &Request, conf: &NetConf, verb: &str) -> Result<Option<CniResult>, CniError> {
    let Some(plugin) = conf.ipam_type() else {
        return Ok(None);
    };
    let path = req.find_plugin(plugin)?;
    let stdin = serde_json::to_vec(&conf.raw)
        .map_err(|e| CniError::new(code::INTERNAL, format!("encode netconf for IPAM: {e}")))?;
    let io_err = |source| Failure::IpamExec {
        plugin: plugin.to_string(),
        source,
    };
    let mut child = Command::new(&path)
        .env("CNI_COMMAND", verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(io_err)?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(&stdin).map_err(io_err)?;
    }
    let out = child.wait_with_output().map_err(io_err)?;
    if !out.status.success() {
        return Err(plugin_error(plugin, &out.stdout));
    }
    if verb != "ADD" {
        return Ok(None);
    }
    CniResult::parse_bytes(&out.stdout, &conf.cni_version)
        .map(Some)
        .map_err(|e| CniError::new(e.code, format!("IPAM plugin {plugin} result: {}", e.msg)))
}

/// The delegated plugin's error, keeping its code when it printed the spec's error JSON.
fn plugin_error(plugin: &str, stdout: &[u8]) -> CniError {
    let v: serde_json::Value = serde_json::from_slice(stdout).unwrap_or_default();
    let c = v["code"]
        .as_u64()
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(code::INTERNAL);
    let msg = v["msg"]
        .as_str()
        .unwrap_or("failed without an error message");
    let mut e = CniError::new(c, format!("IPAM plugin {plugin}: {msg}"));
    if let Some(d) = v["details"].as_str() {
        e = e.with_details(d);
    }
    e
}

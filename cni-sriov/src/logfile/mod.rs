//! `logFile` / `logLevel`: what one CNI call did, appended to the file the netconf names, as
//! sriov-cni users expect. Every line names the verb, the container, the ifname, the netns and
//! (once known) the VF. At `info` a call writes its outcome (ok, or the CNI code and message);
//! `error` keeps only failures, rollback steps that failed among them; `debug` adds the steps.
//! `panic` writes nothing (this plugin does not panic on input).
//!
//! Never stdout (it carries only the result or the error JSON). No `logFile`: nothing is
//! installed and the call pays nothing. A file that cannot be opened is not the call's error:
//! one note on stderr, and the call proceeds as if no `logFile` were set.

mod line;
mod sink;

use std::fmt::Display;
use std::path::PathBuf;
use std::sync::OnceLock;

use tracing::level_filters::LevelFilter;

use crate::env::Command;
use crate::error::CniError;
use crate::netconf::LogLevel;

/// The VF of this call, once the agent named it (one CNI process handles one call).
static VF: OnceLock<String> = OnceLock::new();

/// The VF recorded with [`set_vf`], for the lines written after it.
fn vf() -> Option<&'static str> {
    VF.get().map(String::as_str)
}

/// Records the call's VF (PCI address) so every following line names it. Cheap when nothing
/// logs; the first VF set wins.
pub fn set_vf(pci: &str) {
    let _ = VF.set(pci.to_string());
}

/// The call as the runtime made it: the verb and its `CNI_*` variables as given, so that even a
/// call refused for one of them is logged with it.
pub struct Call {
    /// `CNI_COMMAND`.
    pub verb: Command,
    /// `CNI_CONTAINERID` as given, even if invalid.
    pub container: Option<String>,
    /// `CNI_IFNAME` as given, even if invalid.
    pub ifname: Option<String>,
    /// `CNI_NETNS` as given, even if invalid.
    pub netns: Option<String>,
}

impl Call {
    /// Reads the variables from the environment lookup.
    pub fn from_env(verb: Command, get_env: impl Fn(&str) -> Option<String>) -> Self {
        Call {
            verb,
            container: get_env("CNI_CONTAINERID"),
            ifname: get_env("CNI_IFNAME"),
            netns: get_env("CNI_NETNS"),
        }
    }

    /// The context every line of this call carries.
    fn context(&self) -> String {
        let mut s = self.verb.as_str().to_string();
        for (k, v) in [
            ("container", &self.container),
            ("ifname", &self.ifname),
            ("netns", &self.netns),
        ] {
            if let Some(v) = v {
                line::push_field(&mut s, k, v);
            }
        }
        line::push_field(&mut s, "pid", &std::process::id().to_string());
        s
    }
}

/// The most verbose `tracing` level `level` lets through.
fn max_level(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Panic => LevelFilter::OFF,
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warning => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
    }
}

/// Starts logging this call to `file` at `level` (sriov-cni's default, `info`, when unset).
/// Nothing happens without a file, for a relative path (it would depend on the runtime's
/// working directory; noted on stderr) or at `panic`.
pub fn install(file: Option<&str>, level: Option<LogLevel>, call: &Call) {
    let Some(file) = file else {
        return;
    };
    let path = PathBuf::from(file);
    if !path.is_absolute() {
        eprintln!("sriov: logFile {file:?} is not an absolute path; not logging this call");
        return;
    }
    let max = max_level(level.unwrap_or_default());
    if max == LevelFilter::OFF {
        return;
    }
    let sink = sink::FileSink::new(path, max, call.context());
    // Fails only if a subscriber is already set (a second call in one process, i.e. tests).
    let _ = tracing::subscriber::set_global_default(sink);
}

/// Logs the call's outcome: `ok` at info, or the CNI error at error.
pub fn outcome<T>(r: &Result<T, CniError>) {
    match r {
        Ok(_) => tracing::info!("ok"),
        Err(e) if e.details.is_empty() => tracing::error!(code = e.code, msg = %e.msg, "failed"),
        Err(e) => {
            tracing::error!(code = e.code, msg = %e.msg, details = %e.details, "failed")
        }
    }
}

/// Logs a rollback step that failed. The call's own error is what the runtime gets; this is
/// how an operator learns what was left behind for DEL or the agent's reconciler to clean.
pub fn rollback_failed(step: &str, error: &dyn Display) {
    tracing::error!(step, error = %error, "rollback step failed");
}

//! The `sriov` CNI plugin as a library: the binary in `main.rs` is a thin shell around [`run`], so
//! the verbs can be tested in-process.

pub mod agent;
pub mod cmd;
pub mod cni_args;
pub mod env;
pub mod error;
pub mod ipam;
pub mod logfile;
pub mod netconf;
pub mod request;
pub mod result;
pub mod version;

use error::{CniError, code};

/// The largest netconf read from stdin. Real ones are a few KiB (a conflist entry with IPAM);
/// anything near this is an attack or an accident, and reading it whole would cost memory
/// for nothing.
pub const MAX_NETCONF_BYTES: u64 = 4 << 20;

/// Reads the netconf from `input`: `Ok(None)` when reading failed (VERSION still works),
/// error 6 when it is larger than [`MAX_NETCONF_BYTES`] (nothing past the limit is read).
pub fn read_netconf(input: impl std::io::Read) -> Result<Option<Vec<u8>>, CniError> {
    use std::io::Read;
    let mut buf = Vec::new();
    if input
        .take(MAX_NETCONF_BYTES + 1)
        .read_to_end(&mut buf)
        .is_err()
    {
        return Ok(None);
    }
    if buf.len() as u64 > MAX_NETCONF_BYTES {
        return Err(CniError::new(
            code::DECODE,
            format!(
                "the network configuration on stdin is larger than {} MiB",
                MAX_NETCONF_BYTES >> 20
            ),
        ));
    }
    Ok(Some(buf))
}

/// Executes one CNI call given the environment lookup and stdin; returns the JSON to print.
///
/// `stdin` is `None` when reading it failed; VERSION does not need it (and logs nothing, so its
/// start-up stays as cheap as it was). Every other verb logs to the netconf's `logFile`, if any
/// (see [`logfile`]), including a refusal of the netconf itself.
pub fn run(
    get_env: impl Fn(&str) -> Option<String>,
    stdin: Option<&[u8]>,
) -> Result<String, CniError> {
    let cmd = env::command(&get_env)?;
    if cmd == env::Command::Version {
        return Ok(version::version_reply(stdin.unwrap_or_default()));
    }
    let stdin = stdin.ok_or_else(|| {
        CniError::new(
            code::IO_FAILURE,
            "cannot read the network configuration from stdin",
        )
    })?;
    let conf = netconf::NetConf::parse(stdin);
    let call = logfile::Call::from_env(cmd, &get_env);
    match &conf {
        Ok(c) => logfile::install(c.log_file.as_deref(), c.log_level, &call),
        Err(_) => {
            let (file, level) = netconf::NetConf::log_settings_lenient(stdin);
            logfile::install(file.as_deref(), level, &call);
        }
    }
    let out = conf.and_then(|conf| dispatch(cmd, &get_env, &conf));
    logfile::outcome(&out);
    out
}

/// Runs verb `cmd` (not VERSION) on a validated netconf.
fn dispatch(
    cmd: env::Command,
    get_env: impl Fn(&str) -> Option<String>,
    conf: &netconf::NetConf,
) -> Result<String, CniError> {
    let req = request::Request::from_env(cmd, &get_env)?;
    if let Some(e) = &req.args_error {
        tracing::warn!(error = %e, "CNI_ARGS set aside: DEL does not need it");
    }
    tracing::debug!(
        network = %conf.name,
        cni_version = %conf.cni_version,
        device_id = conf.device_id().map(|d| d.to_string()),
        resource = conf.resource_name.as_deref(),
        "start"
    );
    match cmd {
        env::Command::Add => cmd::add(&req, conf),
        env::Command::Del => cmd::del(&req, conf),
        env::Command::Check => cmd::check(&req, conf),
        env::Command::Gc => cmd::gc(conf),
        env::Command::Status => cmd::status(conf),
        // Answered before any of this by `run`; kept total for the match.
        env::Command::Version => Ok(version::version_reply(conf.raw.to_string().as_bytes())),
    }
}

/// The `cniVersion` the runtime sent, for shaping the error reply; the newest when unknown.
pub fn requested_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| version::SUPPORTED.contains(&v.as_str()))
        .unwrap_or_else(|| version::LATEST.to_string())
}

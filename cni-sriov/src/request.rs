//! Everything a verb takes from the environment besides `CNI_COMMAND`, read once and validated.
//!
//! | variable          | ADD      | CHECK    | DEL                | GC, STATUS |
//! |-------------------|----------|----------|--------------------|------------|
//! | `CNI_CONTAINERID` | required | required | required           | ignored    |
//! | `CNI_NETNS`       | required | required | may be empty/unset | ignored    |
//! | `CNI_IFNAME`      | required | required | required           | ignored    |
//! | `CNI_ARGS`        | parsed   | parsed   | parsed, lenient    | ignored    |
//! | `CNI_PATH`        | split    | split    | split              | split      |
//!
//! DEL takes an empty netns because containerd and kubelet send DEL after the sandbox is gone,
//! and takes a malformed `CNI_ARGS` without failing (the error is kept in
//! [`Request::args_error`]): the attachment is keyed by (container ID, ifname), and a DEL that
//! fails on an argument it does not need would stop the pod from ever being torn down.
//! Every failure is error 4 and names the variable.

use std::path::{Path, PathBuf};

use crate::cni_args::{CniArgs, is_container_style};
use crate::env::Command;
use crate::error::{CniError, code};

/// Longest container ID accepted.
pub const MAX_CONTAINER_ID_LEN: usize = 256;
/// Longest interface name: the kernel's IFNAMSIZ (16) minus the NUL.
pub const MAX_IFNAME_LEN: usize = 15;
/// Longest netns path (PATH_MAX minus the NUL).
const MAX_PATH_LEN: usize = 4095;

/// The environment of one ADD/DEL/CHECK/GC/STATUS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// Empty for GC and STATUS.
    pub container_id: String,
    /// `None` for an empty DEL netns, and for GC and STATUS.
    pub netns: Option<PathBuf>,
    /// Empty for GC and STATUS.
    pub ifname: String,
    /// `CNI_ARGS`, parsed (default for a DEL whose `CNI_ARGS` was unusable; see `args_error`).
    pub args: CniArgs,
    /// DEL only: why `CNI_ARGS` was set aside (to be logged).
    pub args_error: Option<CniError>,
    /// `CNI_PATH` split on `:`, empty entries dropped.
    pub path: Vec<PathBuf>,
}

fn bad_env(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_ENV, msg)
}

impl Request {
    /// Reads and validates the variables `cmd` needs (see the module table). VERSION needs none
    /// of them and gets an empty request.
    pub fn from_env(
        cmd: Command,
        get_env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, CniError> {
        let path = get_env("CNI_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        let mut req = Request {
            command: cmd,
            container_id: String::new(),
            netns: None,
            ifname: String::new(),
            args: CniArgs::default(),
            args_error: None,
            path,
        };
        if !matches!(cmd, Command::Add | Command::Del | Command::Check) {
            return Ok(req);
        }
        req.container_id = container_id(get_env("CNI_CONTAINERID"))?;
        req.ifname = ifname(get_env("CNI_IFNAME"))?;
        req.netns = netns(get_env("CNI_NETNS"), cmd != Command::Del)?;
        match CniArgs::parse(get_env("CNI_ARGS").as_deref()) {
            Ok(a) => req.args = a,
            Err(e) if cmd == Command::Del => req.args_error = Some(e),
            Err(e) => return Err(e),
        }
        Ok(req)
    }

    /// The netns path (always set for ADD and CHECK).
    pub fn netns(&self) -> Option<&Path> {
        self.netns.as_deref()
    }

    /// `CNI_PATH`, or error 4 when it is empty: for callers that must run a delegated plugin.
    pub fn require_path(&self) -> Result<&[PathBuf], CniError> {
        if self.path.is_empty() {
            Err(bad_env(
                "CNI_PATH is not set: it is needed to find the IPAM plugin",
            ))
        } else {
            Ok(&self.path)
        }
    }

    /// The first regular, executable file named `plugin` in `CNI_PATH` (error 4 when the path
    /// is empty; error 7 when no directory holds it, since the netconf named it).
    pub fn find_plugin(&self, plugin: &str) -> Result<PathBuf, CniError> {
        use std::os::unix::fs::PermissionsExt;
        let dirs = self.require_path()?;
        dirs.iter()
            .map(|d| d.join(plugin))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| {
                let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                CniError::new(
                    code::INVALID_CONFIG,
                    format!(
                        "plugin {plugin:?} not found in CNI_PATH ({})",
                        searched.join(":")
                    ),
                )
            })
    }
}

fn container_id(v: Option<String>) -> Result<String, CniError> {
    let v = v
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad_env("CNI_CONTAINERID is not set"))?;
    if !is_container_style(&v, MAX_CONTAINER_ID_LEN) {
        return Err(bad_env(format!(
            "CNI_CONTAINERID {:?} is invalid: must start with a letter or digit, then letters, \
             digits, '_', '.' or '-', at most {MAX_CONTAINER_ID_LEN}",
            cut(&v)
        )));
    }
    Ok(v)
}

fn ifname(v: Option<String>) -> Result<String, CniError> {
    let v = v
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad_env("CNI_IFNAME is not set"))?;
    let why = if v.len() > MAX_IFNAME_LEN {
        Some("longer than 15 bytes")
    } else if v == "." || v == ".." {
        Some("'.' and '..' are not interface names")
    } else if v.contains('/') {
        Some("contains '/'")
    } else if v.contains(':') {
        Some("contains ':'")
    } else if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace or a control character")
    } else {
        None
    };
    match why {
        Some(why) => Err(bad_env(format!(
            "CNI_IFNAME {:?} is invalid: {why}",
            cut(&v)
        ))),
        None => Ok(v),
    }
}

fn netns(v: Option<String>, required: bool) -> Result<Option<PathBuf>, CniError> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return if required {
            Err(bad_env("CNI_NETNS is not set"))
        } else {
            Ok(None)
        };
    };
    if !v.starts_with('/') {
        return Err(bad_env(format!(
            "CNI_NETNS {:?} is invalid: not an absolute path",
            cut(&v)
        )));
    }
    if v.len() > MAX_PATH_LEN || v.chars().any(char::is_control) {
        return Err(bad_env(format!(
            "CNI_NETNS {:?} is invalid: too long or contains a control character",
            cut(&v)
        )));
    }
    Ok(Some(PathBuf::from(v)))
}

/// A value for a message, cut to 80 characters.
fn cut(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const CONTAINERD: &[(&str, &str)] = &[
        ("CNI_CONTAINERID", "3f1e0c9a5b7d"),
        (
            "CNI_NETNS",
            "/var/run/netns/cni-5b1c2d3e-0000-1111-2222-333344445555",
        ),
        ("CNI_IFNAME", "net1"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=db-0;K8S_POD_UID=u-1",
        ),
        ("CNI_PATH", "/opt/cni/bin::/usr/lib/cni"),
    ];

    fn env_with(over: &[(&str, Option<&str>)]) -> impl Fn(&str) -> Option<String> {
        let mut m: HashMap<String, String> = CONTAINERD
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in over {
            match v {
                Some(v) => m.insert(k.to_string(), v.to_string()),
                None => m.remove(*k),
            };
        }
        move |k| m.get(k).cloned()
    }

    fn err(cmd: Command, over: &[(&str, Option<&str>)], frags: &[&str]) {
        let e = Request::from_env(cmd, env_with(over)).unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV, "{over:?}: {e:?}");
        for f in frags {
            assert!(e.msg.contains(f), "{over:?}: {:?} lacks {f:?}", e.msg);
        }
    }

    #[test]
    fn containerd_add() {
        let r = Request::from_env(Command::Add, env_with(&[])).unwrap();
        assert_eq!(r.container_id, "3f1e0c9a5b7d");
        assert_eq!(r.ifname, "net1");
        assert!(r.netns().unwrap().starts_with("/var/run/netns"));
        assert_eq!(r.args.pod_key().as_deref(), Some("default/db-0"));
        assert_eq!(
            r.path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        assert_eq!(r.require_path().unwrap().len(), 2);
        let r = Request::from_env(
            Command::Check,
            env_with(&[("CNI_NETNS", Some("/proc/42/ns/net"))]),
        );
        assert_eq!(r.unwrap().netns.unwrap(), PathBuf::from("/proc/42/ns/net"));
    }

    #[test]
    fn required_variables_are_named() {
        for cmd in [Command::Add, Command::Check, Command::Del] {
            err(
                cmd,
                &[("CNI_CONTAINERID", None)],
                &["CNI_CONTAINERID is not set"],
            );
            err(
                cmd,
                &[("CNI_CONTAINERID", Some(""))],
                &["CNI_CONTAINERID is not set"],
            );
            err(cmd, &[("CNI_IFNAME", None)], &["CNI_IFNAME is not set"]);
        }
        for cmd in [Command::Add, Command::Check] {
            err(cmd, &[("CNI_NETNS", None)], &["CNI_NETNS is not set"]);
            err(cmd, &[("CNI_NETNS", Some(""))], &["CNI_NETNS is not set"]);
        }
    }

    #[test]
    fn del_takes_an_empty_netns_and_bad_args() {
        let r = Request::from_env(Command::Del, env_with(&[("CNI_NETNS", Some(""))])).unwrap();
        assert_eq!(r.netns(), None);
        let r = Request::from_env(
            Command::Del,
            env_with(&[("CNI_NETNS", None), ("CNI_ARGS", Some("X=1"))]),
        )
        .unwrap();
        assert_eq!(r.args, CniArgs::default());
        assert_eq!(r.args_error.unwrap().code, code::INVALID_ENV);
        // ADD does not.
        err(
            Command::Add,
            &[("CNI_ARGS", Some("X=1"))],
            &["CNI_ARGS", "\"X\""],
        );
        // A relative netns is still wrong on DEL.
        err(
            Command::Del,
            &[("CNI_NETNS", Some("netns/x"))],
            &["CNI_NETNS \"netns/x\"", "absolute"],
        );
    }

    #[test]
    fn container_ids() {
        for bad in ["-abc", "a b", "a/b", "../x", "ä"] {
            err(
                Command::Add,
                &[("CNI_CONTAINERID", Some(bad))],
                &["CNI_CONTAINERID", "is invalid"],
            );
        }
        let long = "a".repeat(257);
        err(
            Command::Add,
            &[("CNI_CONTAINERID", Some(&long))],
            &["CNI_CONTAINERID", "at most 256"],
        );
        let ok = "a".repeat(256);
        let r = Request::from_env(Command::Add, env_with(&[("CNI_CONTAINERID", Some(&ok))]));
        assert!(r.is_ok());
        let r = Request::from_env(
            Command::Add,
            env_with(&[("CNI_CONTAINERID", Some("cnitool-7f3b_a.b-c"))]),
        );
        assert_eq!(r.unwrap().container_id, "cnitool-7f3b_a.b-c");
    }

    #[test]
    fn interface_names() {
        let cases = [
            ("net1234567890123", "longer than 15"),
            (".", "'.' and '..'"),
            ("..", "'.' and '..'"),
            ("net/1", "contains '/'"),
            ("net:1", "contains ':'"),
            ("net 1", "whitespace"),
            ("net\t1", "whitespace"),
        ];
        for (bad, why) in cases {
            err(
                Command::Add,
                &[("CNI_IFNAME", Some(bad))],
                &["CNI_IFNAME", why],
            );
        }
        let r = Request::from_env(
            Command::Add,
            env_with(&[("CNI_IFNAME", Some("net12345678901"))]),
        );
        assert_eq!(r.unwrap().ifname.len(), 14);
        let r = Request::from_env(
            Command::Add,
            env_with(&[("CNI_IFNAME", Some("eth_0.a-b123456"))]),
        );
        assert_eq!(r.unwrap().ifname.len(), 15);
    }

    #[test]
    fn gc_and_status_need_only_cni_path() {
        let none = |k: &str| (k == "CNI_PATH").then(|| "/opt/cni/bin".to_string());
        for cmd in [Command::Gc, Command::Status] {
            let r = Request::from_env(cmd, none).unwrap();
            assert!(r.container_id.is_empty() && r.ifname.is_empty() && r.netns.is_none());
            assert_eq!(r.path.len(), 1);
        }
        // Stray variables with bad values do not matter to them.
        let r = Request::from_env(Command::Gc, env_with(&[("CNI_IFNAME", Some("a/b"))]));
        assert!(r.is_ok());
    }

    #[test]
    fn cni_path_is_only_needed_for_delegation() {
        let r = Request::from_env(Command::Add, env_with(&[("CNI_PATH", None)])).unwrap();
        assert!(r.path.is_empty());
        let e = r.require_path().unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(e.msg.contains("CNI_PATH is not set"));
        assert_eq!(
            r.find_plugin("host-local").unwrap_err().code,
            code::INVALID_ENV
        );
    }

    #[test]
    fn finds_executable_plugins_in_order() {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("cni-sriov-request-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("static"), "").unwrap(); // not executable: skipped
        for d in [&a, &b] {
            std::fs::write(d.join("host-local"), "").unwrap();
            std::fs::set_permissions(d.join("host-local"), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let cni_path = format!("{}:{}", a.display(), b.display());
        let r =
            Request::from_env(Command::Add, env_with(&[("CNI_PATH", Some(&cni_path))])).unwrap();
        assert_eq!(r.find_plugin("host-local").unwrap(), a.join("host-local"));
        let e = r.find_plugin("static").unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        assert!(
            e.msg.contains("plugin \"static\" not found in CNI_PATH"),
            "{}",
            e.msg
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}

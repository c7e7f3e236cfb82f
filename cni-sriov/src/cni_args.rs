//! `CNI_ARGS`: the runtime's `KEY=VALUE;KEY=VALUE` extras (pod identity, podman's `MAC=`/`IP=`).
//!
//! Rules, as libcni applies them: pairs are separated by `;` and hold exactly one `=`; keys are
//! case-sensitive; a key we do not know is an error unless `IgnoreUnknown` is `1`/`true` (in any
//! position of the string). Order does not matter; empty segments (`A=1;;B=2`, a trailing `;`)
//! are skipped, and an empty or unset `CNI_ARGS` means no arguments.
//!
//! Every failure is error 4 (invalid environment variable) with a message that starts with
//! `CNI_ARGS` and names the key: the spec's code 4 requires the variable's name, and this is an
//! environment variable, not the network configuration (code 7).

use std::net::IpAddr;

use sriov_hw::MacAddr;

use crate::error::{CniError, code};

/// The namespace assumed when `K8S_POD_NAMESPACE` is absent (podman never sends it).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Longest value accepted for ID-like keys (`K8S_POD_UID`, `K8S_POD_INFRA_CONTAINER_ID`).
const MAX_ID_LEN: usize = 256;

/// An address requested with `IP=`: host-local sends a bare address, static a CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedIp {
    /// The requested address (host bits included).
    pub addr: IpAddr,
    /// The prefix length when the value was `address/prefix`.
    pub prefix: Option<u8>,
}

/// `CNI_ARGS`, parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CniArgs {
    /// `IgnoreUnknown=1`/`true`: unknown keys are kept instead of refused (Multus and runtimes add
    /// their own).
    pub ignore_unknown: bool,
    /// `K8S_POD_NAMESPACE`; see [`CniArgs::namespace`] for the defaulted value.
    pub pod_namespace: Option<String>,
    /// `K8S_POD_NAME`: with the namespace, the key into the agent's pod table.
    pub pod_name: Option<String>,
    /// `K8S_POD_UID`: recorded with the attachment in the agent's ledger.
    pub pod_uid: Option<String>,
    /// `K8S_POD_INFRA_CONTAINER_ID`: the sandbox container's ID, as the runtime sends it;
    /// validated, not used.
    pub infra_container_id: Option<String>,
    /// `MAC=`: a unicast, non-zero address.
    pub mac: Option<MacAddr>,
    /// `IP=`: comma-separated addresses, bare or CIDR; handed to IPAM, not applied by us.
    pub ips: Vec<RequestedIp>,
    /// Keys we do not know, kept (in order) when `IgnoreUnknown` allowed them.
    pub unknown: Vec<(String, String)>,
}

fn bad(msg: impl std::fmt::Display) -> CniError {
    CniError::new(code::INVALID_ENV, format!("CNI_ARGS: {msg}"))
}

impl CniArgs {
    /// Parses the value of `CNI_ARGS` (`None` or empty: no arguments).
    pub fn parse(raw: Option<&str>) -> Result<Self, CniError> {
        let mut out = CniArgs::default();
        let mut seen: Vec<&str> = Vec::new();
        let mut unknown: Vec<(&str, &str)> = Vec::new();
        for pair in raw.unwrap_or_default().split(';').filter(|p| !p.is_empty()) {
            let mut kv = pair.split('=');
            let (Some(key), Some(value), None) = (kv.next(), kv.next(), kv.next()) else {
                return Err(bad(format_args!(
                    "invalid pair {pair:?}: expected KEY=VALUE"
                )));
            };
            if key.is_empty() {
                return Err(bad(format_args!("invalid pair {pair:?}: empty key")));
            }
            if let Some(c) = key.chars().chain(value.chars()).find(|c| c.is_control()) {
                return Err(bad(format_args!(
                    "{key}: control character {c:?} in {pair:?}"
                )));
            }
            if seen.contains(&key) {
                return Err(bad(format_args!("{key} is given twice")));
            }
            seen.push(key);
            match key {
                "IgnoreUnknown" => out.ignore_unknown = parse_bool(key, value)?,
                "K8S_POD_NAMESPACE" => out.pod_namespace = Some(check_namespace(value)?),
                "K8S_POD_NAME" => out.pod_name = Some(value.to_string()),
                "K8S_POD_UID" => out.pod_uid = Some(check_id(key, value)?),
                "K8S_POD_INFRA_CONTAINER_ID" => {
                    out.infra_container_id = Some(check_id(key, value)?)
                }
                "MAC" => out.mac = Some(parse_mac(value)?),
                "IP" => out.ips = parse_ips(value)?,
                _ => unknown.push((key, value)),
            }
        }
        // The name's rules depend on whether a namespace came with it, in any order.
        if let Some(name) = &out.pod_name {
            check_pod_name(name, out.pod_namespace.is_some())?;
        }
        if let Some((key, _)) = unknown.first().filter(|_| !out.ignore_unknown) {
            return Err(bad(format_args!(
                "unknown key {key:?} (set IgnoreUnknown=1 to allow unknown keys)"
            )));
        }
        out.unknown = unknown
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(out)
    }

    /// The pod namespace, [`DEFAULT_NAMESPACE`] when the runtime sent none.
    pub fn namespace(&self) -> &str {
        self.pod_namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    /// `namespace/name`, the pod table's key; `None` without `K8S_POD_NAME`.
    pub fn pod_key(&self) -> Option<String> {
        self.pod_name
            .as_ref()
            .map(|n| format!("{}/{n}", self.namespace()))
    }
}

/// libcni's boolean: `1`/`true` and `0`/`false`, any case.
fn parse_bool(key: &str, value: &str) -> Result<bool, CniError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(bad(format_args!(
            "{key}={value:?}: expected 1, 0, true or false"
        ))),
    }
}

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A DNS-1123 subdomain (Kubernetes object names): dot-separated labels, ≤ 253 bytes.
fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label)
}

/// Namespaces are DNS-1123 labels.
fn check_namespace(value: &str) -> Result<String, CniError> {
    if is_label(value) {
        Ok(value.to_string())
    } else {
        Err(bad(format_args!(
            "K8S_POD_NAMESPACE {value:?} is not a valid namespace (DNS-1123 label: lowercase \
             letters, digits and '-', at most 63)"
        )))
    }
}

/// With a namespace (Kubernetes) the name is a DNS-1123 subdomain. Without one the caller is
/// podman, whose container names also allow upper case and `_` (`[A-Za-z0-9][A-Za-z0-9_.-]*`).
fn check_pod_name(name: &str, kubernetes: bool) -> Result<(), CniError> {
    let ok = if kubernetes {
        is_dns1123_subdomain(name)
    } else {
        is_container_style(name, 253)
    };
    if ok {
        Ok(())
    } else if kubernetes {
        Err(bad(format_args!(
            "K8S_POD_NAME {name:?} is not a valid pod name (DNS-1123 subdomain: lowercase \
             letters, digits, '-' and '.', at most 253)"
        )))
    } else {
        Err(bad(format_args!(
            "K8S_POD_NAME {name:?} is not a valid name (letters, digits, '_', '.', '-', \
             starting with a letter or digit, at most 253)"
        )))
    }
}

/// `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most `max` bytes: container IDs and podman names.
pub(crate) fn is_container_style(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn check_id(key: &str, value: &str) -> Result<String, CniError> {
    if is_container_style(value, MAX_ID_LEN) {
        Ok(value.to_string())
    } else {
        Err(bad(format_args!(
            "{key} {value:?} is not a valid ID (letters, digits, '_', '.', '-', at most {MAX_ID_LEN})"
        )))
    }
}

fn parse_mac(value: &str) -> Result<MacAddr, CniError> {
    let mac: MacAddr = value.parse().map_err(|e| bad(format_args!("MAC: {e}")))?;
    if mac.is_zero() || mac.is_multicast() {
        return Err(bad(format_args!(
            "MAC {value:?} cannot be assigned to an interface (zero or multicast)"
        )));
    }
    Ok(mac)
}

fn parse_ips(value: &str) -> Result<Vec<RequestedIp>, CniError> {
    value
        .split(',')
        .map(|item| {
            let err = || bad(format_args!("IP {item:?} is not an IP address or CIDR"));
            match item.split_once('/') {
                None => Ok(RequestedIp {
                    addr: item.parse().map_err(|_| err())?,
                    prefix: None,
                }),
                Some(_) => {
                    let c: crate::result::IpCidr = item.parse().map_err(|_| err())?;
                    Ok(RequestedIp {
                        addr: c.addr,
                        prefix: Some(c.prefix),
                    })
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<CniArgs, CniError> {
        CniArgs::parse(Some(s))
    }

    fn err(s: &str) -> CniError {
        let e = parse(s).unwrap_err();
        assert_eq!(e.code, code::INVALID_ENV, "{s:?}: {e:?}");
        assert!(e.msg.starts_with("CNI_ARGS: "), "{}", e.msg);
        e
    }

    #[test]
    fn containerd_args_in_any_order() {
        let a = parse(
            "K8S_POD_UID=1f3c5e0a-8b2d-4c1e-9f00-123456789abc;IgnoreUnknown=1;K8S_POD_NAMESPACE=db;\
             K8S_POD_INFRA_CONTAINER_ID=4f1e2d;K8S_POD_NAME=mysql-0",
        )
        .unwrap();
        assert!(a.ignore_unknown);
        assert_eq!(a.namespace(), "db");
        assert_eq!(a.pod_key().as_deref(), Some("db/mysql-0"));
        assert_eq!(
            a.pod_uid.as_deref(),
            Some("1f3c5e0a-8b2d-4c1e-9f00-123456789abc")
        );
        assert_eq!(a.infra_container_id.as_deref(), Some("4f1e2d"));
        assert!(a.unknown.is_empty());
    }

    #[test]
    fn podman_args_default_namespace_mac_and_ips() {
        let a = parse("IgnoreUnknown=1;K8S_POD_NAME=My_Container.1;MAC=02:00:00:aa:bb:cc;IP=10.88.0.5,fd00::5/64")
            .unwrap();
        assert_eq!(a.namespace(), DEFAULT_NAMESPACE);
        assert_eq!(a.pod_key().as_deref(), Some("default/My_Container.1"));
        assert_eq!(a.mac, Some("02:00:00:aa:bb:cc".parse().unwrap()));
        assert_eq!(a.ips.len(), 2);
        assert_eq!(a.ips[0].prefix, None);
        assert_eq!(a.ips[1].prefix, Some(64));
    }

    #[test]
    fn empty_and_unset_mean_nothing() {
        assert_eq!(CniArgs::parse(None).unwrap(), CniArgs::default());
        assert_eq!(parse("").unwrap(), CniArgs::default());
        assert_eq!(
            parse("K8S_POD_NAME=a;;").unwrap().pod_name.as_deref(),
            Some("a")
        );
        assert_eq!(CniArgs::default().pod_key(), None);
    }

    #[test]
    fn unknown_keys_need_ignore_unknown_anywhere() {
        let e = err("FOO=bar;K8S_POD_NAME=a");
        assert!(e.msg.contains("unknown key \"FOO\""), "{}", e.msg);
        let a = parse("FOO=bar;IgnoreUnknown=true").unwrap();
        assert_eq!(a.unknown, vec![("FOO".to_string(), "bar".to_string())]);
        err("FOO=bar;IgnoreUnknown=0");
        // Keys are case-sensitive, as in libcni.
        assert!(err("mac=02:00:00:00:00:01").msg.contains("\"mac\""));
        assert!(err("IgnoreUnknown=yes").msg.contains("IgnoreUnknown"));
    }

    #[test]
    fn malformed_pairs_and_control_characters() {
        assert!(
            err("K8S_POD_NAME")
                .msg
                .contains("invalid pair \"K8S_POD_NAME\"")
        );
        assert!(err("A=b=c").msg.contains("invalid pair"));
        assert!(err("=x").msg.contains("empty key"));
        assert!(err("K8S_POD_NAME=a\nb").msg.contains("control character"));
        assert!(
            err("K8S_POD_NAME=a\u{7f}")
                .msg
                .contains("control character")
        );
        assert!(
            err("K8S_POD_NAME=a;K8S_POD_NAME=b")
                .msg
                .contains("K8S_POD_NAME is given twice")
        );
    }

    #[test]
    fn pod_names_and_namespaces() {
        for bad in ["Mysql-0", "mysql_0", "-a", "a-", "a..b", ""] {
            let e = err(&format!("K8S_POD_NAMESPACE=db;K8S_POD_NAME={bad}"));
            assert!(
                e.msg.contains("K8S_POD_NAME") && e.msg.contains("DNS-1123"),
                "{}",
                e.msg
            );
        }
        let long = format!("K8S_POD_NAMESPACE=db;K8S_POD_NAME={}", "a".repeat(254));
        assert!(err(&long).msg.contains("K8S_POD_NAME"));
        let labels = |n: usize| vec!["a".repeat(63); 4].join(".")[..n].to_string();
        assert!(
            parse(&format!(
                "K8S_POD_NAMESPACE=db;K8S_POD_NAME={}",
                labels(253)
            ))
            .is_ok()
        );
        assert!(
            err(&format!(
                "K8S_POD_NAMESPACE=db;K8S_POD_NAME={}",
                labels(255)
            ))
            .msg
            .contains("253")
        );
        assert!(parse("K8S_POD_NAMESPACE=db;K8S_POD_NAME=web-1.a").is_ok());
        // Podman (no namespace): container-style names, still no '/' or spaces.
        assert!(err("K8S_POD_NAME=a/b").msg.contains("not a valid name"));
        assert!(err("K8S_POD_NAME=_a").msg.contains("not a valid name"));
        for bad in ["Default", "a.b", "-x", ""] {
            let e = err(&format!("K8S_POD_NAMESPACE={bad}"));
            assert!(e.msg.contains("K8S_POD_NAMESPACE"), "{}", e.msg);
        }
        assert!(
            err(&format!("K8S_POD_NAMESPACE={}", "a".repeat(64)))
                .msg
                .contains("at most 63")
        );
        assert!(err("K8S_POD_UID=a b").msg.contains("K8S_POD_UID"));
        assert!(
            err("K8S_POD_INFRA_CONTAINER_ID=../x")
                .msg
                .contains("K8S_POD_INFRA_CONTAINER_ID")
        );
    }

    #[test]
    fn bad_mac_and_ip() {
        assert!(err("MAC=02:00:00:00:00").msg.contains("MAC"));
        assert!(err("MAC=01:00:5e:00:00:01").msg.contains("multicast"));
        assert!(err("MAC=00:00:00:00:00:00").msg.contains("zero"));
        assert!(err("IP=10.0.0.300").msg.contains("IP \"10.0.0.300\""));
        assert!(err("IP=10.0.0.1,").msg.contains("IP \"\""));
        assert!(err("IP=10.0.0.1/40").msg.contains("IP"));
    }
}

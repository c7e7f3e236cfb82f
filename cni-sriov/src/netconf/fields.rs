//! Typed access to the netconf's known keys and the parsers of its field groups, with the
//! messages and error codes the module documentation promises.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value};
use sriov_hw::vfctl::{VfLinkState, VlanProto};
use sriov_hw::{MacAddr, PciAddr};

use super::*;
use crate::error::{CniError, code};
use crate::result::Dns;
pub(super) fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

pub(super) fn unsupported(msg: impl Into<String>) -> CniError {
    CniError::new(code::UNSUPPORTED_FIELD, msg)
}

/// A JSON value for a message, cut short so a huge value cannot flood the runtime's log.
pub(super) fn show(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// Typed access to one JSON object's known keys; `path` prefixes field names in messages.
pub(super) struct Fields<'a> {
    pub(super) obj: &'a Map<String, Value>,
    pub(super) path: &'static str,
}

impl<'a> Fields<'a> {
    pub(super) fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Exact key first, then the first ASCII-case-insensitive match; `null` is absent.
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        let v = self.obj.get(key).or_else(|| {
            self.obj
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        });
        v.filter(|v| !v.is_null())
    }

    pub(super) fn wrong_type(&self, key: &str, want: &str, v: &Value) -> CniError {
        invalid(format!(
            "{}: expected {want}, got {}",
            self.name(key),
            show(v)
        ))
    }

    pub(super) fn str(&self, key: &str) -> Result<Option<&'a str>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong_type(key, "a string", v)),
        }
    }

    /// A string where `""` means unset, as for Go's `omitempty` strings.
    pub(super) fn nonempty_str(&self, key: &str) -> Result<Option<&'a str>, CniError> {
        Ok(self.str(key)?.filter(|s| !s.is_empty()))
    }

    /// A JSON integer (no fraction, no exponent), as Go's `*int` takes it.
    pub(super) fn int(&self, key: &str) -> Result<Option<i64>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
            Some(Value::Number(n)) if n.is_u64() => Ok(Some(i64::MAX)),
            Some(v) => Err(self.wrong_type(key, "an integer", v)),
        }
    }

    /// An integer within `lo..=hi`.
    pub(super) fn int_in(
        &self,
        key: &str,
        lo: i64,
        hi: i64,
        unit: &str,
    ) -> Result<Option<i64>, CniError> {
        match self.int(key)? {
            Some(n) if n < lo || n > hi => {
                let shown = self.get(key).map(show).unwrap_or_default();
                Err(invalid(format!(
                    "invalid {} {shown}: must be between {lo} and {hi}{unit}",
                    self.name(key)
                )))
            }
            n => Ok(n),
        }
    }

    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, "true or false", v)),
        }
    }

    pub(super) fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(self.wrong_type(key, "an object", v)),
        }
    }

    pub(super) fn array(&self, key: &str) -> Result<&'a [Value], CniError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(v) => Err(self.wrong_type(key, "a list", v)),
        }
    }

    /// One of a fixed set of words (any case); another word is error 2.
    pub(super) fn word<T: Copy>(
        &self,
        key: &str,
        words: &[(&str, T)],
    ) -> Result<Option<T>, CniError> {
        let Some(s) = self.nonempty_str(key)? else {
            return Ok(None);
        };
        words
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(s))
            .map(|(_, t)| Some(*t))
            .ok_or_else(|| {
                let allowed: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
                unsupported(format!(
                    "unsupported {} {s:?}: expected one of {}",
                    self.name(key),
                    allowed.join(", ")
                ))
            })
    }

    pub(super) fn mac(&self, key: &str) -> Result<Option<MacAddr>, CniError> {
        let Some(s) = self.nonempty_str(key)? else {
            return Ok(None);
        };
        let name = self.name(key);
        let mac: MacAddr = s
            .parse()
            .map_err(|e| invalid(format!("invalid {name}: {e}")))?;
        if mac.is_zero() {
            return Err(invalid(format!(
                "invalid {name} {s:?}: the all-zero address"
            )));
        }
        if mac.is_multicast() {
            return Err(invalid(format!(
                "invalid {name} {s:?}: a multicast address cannot be assigned to an interface"
            )));
        }
        Ok(Some(mac))
    }

    pub(super) fn pci(&self, key: &str) -> Result<Option<PciAddr>, CniError> {
        let Some(s) = self.nonempty_str(key)? else {
            return Ok(None);
        };
        s.parse()
            .map(Some)
            .map_err(|e| invalid(format!("invalid {}: {e}", self.name(key))))
    }

    pub(super) fn strings(&self, key: &str) -> Result<Vec<String>, CniError> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                v => Err(invalid(format!(
                    "{}[{i}]: expected a string, got {}",
                    self.name(key),
                    show(v)
                ))),
            })
            .collect()
    }
}

/// The spec's rule for network names and container IDs: `[A-Za-z0-9][A-Za-z0-9_.-]*`.
pub(super) fn valid_name(s: &str) -> bool {
    crate::cni_args::is_container_style(s, usize::MAX)
}

/// An IPAM plugin is a file name looked up in `CNI_PATH`: no path, no `.`/`..`.
pub(super) fn valid_plugin_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.chars().any(char::is_control)
}

pub(super) const LINK_STATES: &[(&str, VfLinkState)] = &[
    ("auto", VfLinkState::Auto),
    ("enable", VfLinkState::Enable),
    ("disable", VfLinkState::Disable),
];

pub(super) const LOG_LEVELS: &[(&str, LogLevel)] = &[
    ("panic", LogLevel::Panic),
    ("error", LogLevel::Error),
    ("warning", LogLevel::Warning),
    ("info", LogLevel::Info),
    ("debug", LogLevel::Debug),
];

/// `cniVersion` (required, supported) and `name` (required, the spec's charset).
pub(super) fn identity(f: &Fields) -> Result<(String, String), CniError> {
    let version = f
        .nonempty_str("cniVersion")?
        .ok_or_else(|| invalid("cniVersion is missing"))?;
    version::check(version)?;
    let name = f
        .nonempty_str("name")?
        .ok_or_else(|| invalid("name is missing"))?;
    if !valid_name(name) {
        return Err(invalid(format!(
            "invalid name {name:?}: must start with a letter or digit, then letters, digits, \
             '_', '.' or '-'"
        )));
    }
    Ok((version.to_string(), name.to_string()))
}

/// `vlan`, `vlanQoS`, `vlanProto` as set (or not) in the netconf.
type VlanFields = (Option<u16>, Option<u8>, Option<VlanProto>);

/// `vlan`, `vlanQoS`, `vlanProto`: QoS ≠ 0 and 802.1ad need a VLAN ≠ 0.
pub(super) fn vlan(f: &Fields) -> Result<VlanFields, CniError> {
    let vlan = f.int_in("vlan", 0, MAX_VLAN.into(), "")?.map(|n| n as u16);
    let qos = f
        .int_in("vlanQoS", 0, MAX_VLAN_QOS.into(), "")?
        .map(|n| n as u8);
    if f.get("vlanProto").is_some_and(|v| v.as_str() == Some("")) {
        return Err(unsupported(
            "unsupported vlanProto \"\": expected one of 802.1q, 802.1ad",
        ));
    }
    let proto = f.word(
        "vlanProto",
        &[("802.1q", VlanProto::Dot1Q), ("802.1ad", VlanProto::Dot1Ad)],
    )?;
    let tagged = vlan.is_some_and(|v| v != 0);
    if let Some(q) = qos.filter(|q| *q != 0 && !tagged) {
        return Err(invalid(format!(
            "vlanQoS {q} requires a non-zero vlan (vlan is {})",
            vlan.map_or("not set".to_string(), |v| v.to_string())
        )));
    }
    if proto == Some(VlanProto::Dot1Ad) && !tagged {
        return Err(invalid("vlanProto 802.1ad requires a non-zero vlan"));
    }
    Ok((vlan, qos, proto))
}

/// `min_tx_rate`, `max_tx_rate`: 0..=[`MAX_TX_RATE_MBPS`], min ≤ max unless max is 0 (unlimited).
pub(super) fn rates(f: &Fields) -> Result<(Option<u32>, Option<u32>), CniError> {
    let rate = |key: &str| -> Result<Option<u32>, CniError> {
        match f.int(key)? {
            Some(n) if n < 0 => Err(invalid(format!("invalid {key} {n}: must not be negative"))),
            Some(n) if n > MAX_TX_RATE_MBPS.into() => Err(invalid(format!(
                "invalid {key} {}: above the {MAX_TX_RATE_MBPS} Mbit/s cap",
                f.get(key).map(show).unwrap_or_default()
            ))),
            n => Ok(n.map(|n| n as u32)),
        }
    };
    let (min, max) = (rate("min_tx_rate")?, rate("max_tx_rate")?);
    if let (Some(lo), Some(hi)) = (min, max)
        && hi != 0
        && lo > hi
    {
        return Err(invalid(format!(
            "min_tx_rate {lo} is greater than max_tx_rate {hi}"
        )));
    }
    Ok((min, max))
}

/// `ipam`, raw; its `type`, when set, must be a file name to look up in `CNI_PATH`.
pub(super) fn ipam(f: &Fields) -> Result<Option<Map<String, Value>>, CniError> {
    let Some(obj) = f.object("ipam")? else {
        return Ok(None);
    };
    let fi = Fields { obj, path: "ipam" };
    if let Some(t) = fi.str("type")?
        && !t.is_empty()
        && !valid_plugin_name(t)
    {
        return Err(invalid(format!(
            "invalid ipam.type {t:?}: must be a plugin file name (no '/')"
        )));
    }
    Ok(Some(obj.clone()))
}

pub(super) fn dns(f: &Fields) -> Result<Option<Dns>, CniError> {
    let Some(obj) = f.object("dns")? else {
        return Ok(None);
    };
    let fd = Fields { obj, path: "dns" };
    Ok(Some(Dns {
        nameservers: fd.strings("nameservers")?,
        domain: fd.str("domain")?.map(str::to_string),
        search: fd.strings("search")?,
        options: fd.strings("options")?,
    }))
}

pub(super) fn runtime_config(f: &Fields) -> Result<RuntimeConfig, CniError> {
    let Some(obj) = f.object("runtimeConfig")? else {
        return Ok(RuntimeConfig::default());
    };
    let fr = Fields {
        obj,
        path: "runtimeConfig",
    };
    let ips = fr
        .array("ips")?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let s = v.as_str().ok_or_else(|| {
                invalid(format!(
                    "runtimeConfig.ips[{i}]: expected a CIDR string, got {}",
                    show(v)
                ))
            })?;
            s.parse::<IpCidr>()
                .map_err(|e| invalid(format!("runtimeConfig.ips[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RuntimeConfig {
        mac: fr.mac("mac")?,
        ips,
        device_id: fr.pci("deviceID")?,
    })
}

pub(super) fn capabilities(f: &Fields) -> Result<BTreeMap<String, bool>, CniError> {
    let Some(obj) = f.object("capabilities")? else {
        return Ok(BTreeMap::new());
    };
    obj.iter()
        .map(|(k, v)| match v {
            Value::Bool(b) => Ok((k.clone(), *b)),
            v => Err(invalid(format!(
                "capabilities.{k}: expected true or false, got {}",
                show(v)
            ))),
        })
        .collect()
}

pub(super) fn valid_attachments(f: &Fields) -> Result<Option<Vec<ValidAttachment>>, CniError> {
    const KEY: &str = "cni.dev/valid-attachments";
    if f.get(KEY).is_none() {
        return Ok(None);
    }
    let entry = |(i, v): (usize, &Value)| {
        let field = format!("{KEY}[{i}]");
        let m = v
            .as_object()
            .ok_or_else(|| invalid(format!("{field}: expected an object, got {}", show(v))))?;
        let get = |k: &str| {
            m.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| invalid(format!("{field}.{k}: missing or not a string")))
        };
        Ok(ValidAttachment {
            container_id: get("containerID")?,
            ifname: get("ifname")?,
        })
    };
    f.array(KEY)?
        .iter()
        .enumerate()
        .map(entry)
        .collect::<Result<_, _>>()
        .map(Some)
}

pub(super) fn resource_name(f: &Fields) -> Result<Option<String>, CniError> {
    match f.nonempty_str("resourceName")? {
        Some(r) if r.chars().any(|c| c.is_whitespace() || c.is_control()) => Err(invalid(format!(
            "invalid resourceName {r:?}: contains whitespace"
        ))),
        r => Ok(r.map(str::to_string)),
    }
}

pub(super) fn agent_socket(f: &Fields) -> Result<PathBuf, CniError> {
    match f.nonempty_str("agentSocket")? {
        None => Ok(PathBuf::from(DEFAULT_AGENT_SOCKET)),
        Some(p) if p.starts_with('/') && !p.contains('\0') => Ok(PathBuf::from(p)),
        Some(p) => Err(invalid(format!(
            "invalid agentSocket {p:?}: must be an absolute path"
        ))),
    }
}

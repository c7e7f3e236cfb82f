//! The network configuration on stdin: sriov-cni's fields unchanged, the spec's, and ours.
//!
//! Compatibility rules (what a NetworkAttachmentDefinition written for sriov-cni expects):
//! - same names and JSON types: `vlan`, `vlanQoS`, `min_tx_rate`, `max_tx_rate`, `mtu` are JSON
//!   integers; `spoofchk`/`trust` are `"on"`/`"off"`; `link_state` is `auto|enable|disable`;
//!   `vlanProto` is `802.1q|802.1ad` (any case); `mac`, `deviceID`, `pciBusID` are strings;
//! - keys match as Go's `encoding/json` matches them: exactly, else ignoring ASCII case;
//! - a JSON `null` and, for string fields, `""` mean "not set" (Go's zero values);
//! - unknown keys are ignored (runtimes and Multus add their own).
//!
//! Error codes: malformed JSON or a top level that is not an object → 6; a missing `cniVersion`,
//! a known key with the wrong JSON type, or a value out of range or inconsistent → 7; a value
//! outside a field's fixed set of words (`vlanProto`, `spoofchk`, `trust`, `link_state`,
//! `logLevel`) and sriov-cni's `vlan_trunk`, which we do not implement → 2; an unsupported
//! `cniVersion` → 1. Every message names the field and the offending value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value};
use sriov_hw::vfctl::{VfLinkState, VlanProto};
use sriov_hw::{MacAddr, PciAddr};

use crate::error::{CniError, code};
use crate::result::{CniResult, Dns, IpCidr};
use crate::version;

/// Where the node agent listens unless the netconf says `agentSocket`.
pub const DEFAULT_AGENT_SOCKET: &str = "/run/sriov/agent.sock";
/// Highest VLAN ID (4095 is reserved by 802.1Q).
pub const MAX_VLAN: u16 = 4094;
/// Highest 802.1p priority.
pub const MAX_VLAN_QOS: u8 = 7;
/// Cap on `min_tx_rate`/`max_tx_rate`, Mbit/s: a VF cannot exceed its PF's link and the fastest
/// Ethernet PFs shipping are 800 Gbit/s. Anything above is a typo (e.g. bits instead of Mbit).
pub const MAX_TX_RATE_MBPS: u32 = 800_000;
/// MTU bounds: IPv4's minimum, and the largest an Ethernet netdev can be given.
pub const MIN_MTU: u32 = 68;
pub const MAX_MTU: u32 = 65_535;

/// sriov-cni's `logLevel` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    Panic,
    Error,
    Warning,
    #[default]
    Info,
    Debug,
}

/// `runtimeConfig`: what the runtime passes for the capabilities we declare (`mac`, `ips`,
/// `deviceID`); other capability keys are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeConfig {
    pub mac: Option<MacAddr>,
    pub ips: Vec<IpCidr>,
    pub device_id: Option<PciAddr>,
}

/// One entry of GC's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAttachment {
    pub container_id: String,
    pub ifname: String,
}

/// The validated netconf. `raw` is the document as received: IPAM delegation sends it unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    /// `type`; the runtime's business, kept for logs.
    pub plugin_type: Option<String>,
    pub capabilities: BTreeMap<String, bool>,
    /// `ipam`, kept raw for the IPAM plugin; see [`NetConf::ipam_type`].
    pub ipam: Option<Map<String, Value>>,
    pub dns: Option<Dns>,
    pub device_id: Option<PciAddr>,
    pub pci_bus_id: Option<PciAddr>,
    pub vlan: Option<u16>,
    pub vlan_qos: Option<u8>,
    pub vlan_proto: Option<VlanProto>,
    pub mac: Option<MacAddr>,
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    pub link_state: Option<VfLinkState>,
    /// Mbit/s, 0 = no limit.
    pub min_tx_rate: Option<u32>,
    /// Mbit/s, 0 = no limit.
    pub max_tx_rate: Option<u32>,
    pub mtu: Option<u32>,
    pub log_level: Option<LogLevel>,
    pub log_file: Option<String>,
    pub runtime_config: RuntimeConfig,
    pub prev_result: Option<Value>,
    pub args: Option<Value>,
    /// GC only: the attachments the runtime still knows.
    pub valid_attachments: Option<Vec<ValidAttachment>>,
    /// The pool, e.g. `example.com/sriov_emulated`.
    pub resource_name: Option<String>,
    /// Whether the agent's pod table is consulted (default true).
    pub pod_table: bool,
    pub agent_socket: PathBuf,
    pub raw: Value,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

fn unsupported(msg: impl Into<String>) -> CniError {
    CniError::new(code::UNSUPPORTED_FIELD, msg)
}

/// A JSON value for a message, cut short so a huge value cannot flood the runtime's log.
fn show(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// Typed access to one JSON object's known keys; `path` prefixes field names in messages.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: &'static str,
}

impl<'a> Fields<'a> {
    fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Exact key first, then the first ASCII-case-insensitive match; `null` is absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        let v = self.obj.get(key).or_else(|| {
            self.obj
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        });
        v.filter(|v| !v.is_null())
    }

    fn wrong_type(&self, key: &str, want: &str, v: &Value) -> CniError {
        invalid(format!(
            "{}: expected {want}, got {}",
            self.name(key),
            show(v)
        ))
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong_type(key, "a string", v)),
        }
    }

    /// A string where `""` means unset, as for Go's `omitempty` strings.
    fn nonempty_str(&self, key: &str) -> Result<Option<&'a str>, CniError> {
        Ok(self.str(key)?.filter(|s| !s.is_empty()))
    }

    /// A JSON integer (no fraction, no exponent), as Go's `*int` takes it.
    fn int(&self, key: &str) -> Result<Option<i64>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
            Some(Value::Number(n)) if n.is_u64() => Ok(Some(i64::MAX)),
            Some(v) => Err(self.wrong_type(key, "an integer", v)),
        }
    }

    /// An integer within `lo..=hi`.
    fn int_in(&self, key: &str, lo: i64, hi: i64, unit: &str) -> Result<Option<i64>, CniError> {
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

    fn bool(&self, key: &str) -> Result<Option<bool>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong_type(key, "true or false", v)),
        }
    }

    fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(self.wrong_type(key, "an object", v)),
        }
    }

    fn array(&self, key: &str) -> Result<&'a [Value], CniError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(v) => Err(self.wrong_type(key, "a list", v)),
        }
    }

    /// One of a fixed set of words (any case); another word is error 2.
    fn word<T: Copy>(&self, key: &str, words: &[(&str, T)]) -> Result<Option<T>, CniError> {
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

    fn mac(&self, key: &str) -> Result<Option<MacAddr>, CniError> {
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

    fn pci(&self, key: &str) -> Result<Option<PciAddr>, CniError> {
        let Some(s) = self.nonempty_str(key)? else {
            return Ok(None);
        };
        s.parse()
            .map(Some)
            .map_err(|e| invalid(format!("invalid {}: {e}", self.name(key))))
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, CniError> {
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
fn valid_name(s: &str) -> bool {
    crate::cni_args::is_container_style(s, usize::MAX)
}

/// An IPAM plugin is a file name looked up in `CNI_PATH`: no path, no `.`/`..`.
fn valid_plugin_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.chars().any(char::is_control)
}

const LINK_STATES: &[(&str, VfLinkState)] = &[
    ("auto", VfLinkState::Auto),
    ("enable", VfLinkState::Enable),
    ("disable", VfLinkState::Disable),
];

const LOG_LEVELS: &[(&str, LogLevel)] = &[
    ("panic", LogLevel::Panic),
    ("error", LogLevel::Error),
    ("warning", LogLevel::Warning),
    ("info", LogLevel::Info),
    ("debug", LogLevel::Debug),
];

/// `cniVersion` (required, supported) and `name` (required, the spec's charset).
fn identity(f: &Fields) -> Result<(String, String), CniError> {
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
fn vlan(f: &Fields) -> Result<VlanFields, CniError> {
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
fn rates(f: &Fields) -> Result<(Option<u32>, Option<u32>), CniError> {
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
fn ipam(f: &Fields) -> Result<Option<Map<String, Value>>, CniError> {
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

fn dns(f: &Fields) -> Result<Option<Dns>, CniError> {
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

fn runtime_config(f: &Fields) -> Result<RuntimeConfig, CniError> {
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

fn capabilities(f: &Fields) -> Result<BTreeMap<String, bool>, CniError> {
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

fn valid_attachments(f: &Fields) -> Result<Option<Vec<ValidAttachment>>, CniError> {
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

fn resource_name(f: &Fields) -> Result<Option<String>, CniError> {
    match f.nonempty_str("resourceName")? {
        Some(r) if r.chars().any(|c| c.is_whitespace() || c.is_control()) => Err(invalid(format!(
            "invalid resourceName {r:?}: contains whitespace"
        ))),
        r => Ok(r.map(str::to_string)),
    }
}

fn agent_socket(f: &Fields) -> Result<PathBuf, CniError> {
    match f.nonempty_str("agentSocket")? {
        None => Ok(PathBuf::from(DEFAULT_AGENT_SOCKET)),
        Some(p) if p.starts_with('/') && !p.contains('\0') => Ok(PathBuf::from(p)),
        Some(p) => Err(invalid(format!(
            "invalid agentSocket {p:?}: must be an absolute path"
        ))),
    }
}

impl NetConf {
    /// Parses and validates stdin.
    pub fn parse(stdin: &[u8]) -> Result<Self, CniError> {
        let v: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(code::DECODE, "cannot decode the network configuration")
                .with_details(e.to_string())
        })?;
        Self::from_value(v)
    }

    /// Validates an already-decoded document.
    pub fn from_value(raw: Value) -> Result<Self, CniError> {
        let Some(obj) = raw.as_object() else {
            return Err(CniError::new(
                code::DECODE,
                format!(
                    "the network configuration must be a JSON object, got {}",
                    show(&raw)
                ),
            ));
        };
        let f = Fields { obj, path: "" };
        let (cni_version, name) = identity(&f)?;
        if let Some(t) = f.get("vlan_trunk").filter(|v| v.as_str() != Some("")) {
            return Err(unsupported(format!(
                "unsupported field vlan_trunk {}: VLAN trunks are not implemented",
                show(t)
            )));
        }
        let (vlan, vlan_qos, vlan_proto) = vlan(&f)?;
        let (min_tx_rate, max_tx_rate) = rates(&f)?;
        let on_off = [("on", true), ("off", false)];
        let conf = NetConf {
            cni_version,
            name,
            plugin_type: f.str("type")?.map(str::to_string),
            capabilities: capabilities(&f)?,
            ipam: ipam(&f)?,
            dns: dns(&f)?,
            device_id: f.pci("deviceID")?,
            pci_bus_id: f.pci("pciBusID")?,
            vlan,
            vlan_qos,
            vlan_proto,
            mac: f.mac("mac")?,
            spoofchk: f.word("spoofchk", &on_off)?,
            trust: f.word("trust", &on_off)?,
            link_state: f.word("link_state", LINK_STATES)?,
            min_tx_rate,
            max_tx_rate,
            mtu: f
                .int_in("mtu", MIN_MTU.into(), MAX_MTU.into(), " bytes")?
                .map(|n| n as u32),
            log_level: f.word("logLevel", LOG_LEVELS)?,
            log_file: f.nonempty_str("logFile")?.map(str::to_string),
            runtime_config: runtime_config(&f)?,
            prev_result: f.object("prevResult")?.cloned().map(Value::Object),
            args: f.object("args")?.cloned().map(Value::Object),
            valid_attachments: valid_attachments(&f)?,
            resource_name: resource_name(&f)?,
            pod_table: f.bool("podTable")?.unwrap_or(true),
            agent_socket: agent_socket(&f)?,
            raw: Value::Null,
        };
        Ok(NetConf { raw, ..conf })
    }

    /// The MAC to give the VF: runtimeConfig `mac` > CNI_ARGS `MAC=` > pod table > netconf `mac`.
    /// `None`: keep the VF's own address.
    pub fn effective_mac(
        &self,
        cni_args_mac: Option<MacAddr>,
        pod_table_mac: Option<MacAddr>,
    ) -> Option<MacAddr> {
        self.runtime_config
            .mac
            .or(cni_args_mac)
            .or(pod_table_mac)
            .or(self.mac)
    }

    /// The VF named by the netconf: runtimeConfig `deviceID` > `deviceID` (Multus) > `pciBusID`.
    /// `None`: the agent picks one from `resourceName`'s pool.
    pub fn device_id(&self) -> Option<PciAddr> {
        self.runtime_config
            .device_id
            .or(self.device_id)
            .or(self.pci_bus_id)
    }

    /// Fixed addresses: runtimeConfig `ips` > the pod table's. `None`: delegate to `ipam`.
    pub fn effective_ips<'a>(
        &'a self,
        pod_table_ips: Option<&'a [IpCidr]>,
    ) -> Option<&'a [IpCidr]> {
        Some(self.runtime_config.ips.as_slice())
            .filter(|ips| !ips.is_empty())
            .or(pod_table_ips.filter(|ips| !ips.is_empty()))
    }

    /// The IPAM plugin to delegate to; `None` for no `ipam`, `"ipam": {}` or an empty `type`.
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam
            .as_ref()?
            .get("type")?
            .as_str()
            .filter(|s| !s.is_empty())
    }

    /// `prevResult` read in this netconf's version (error 6 when malformed).
    pub fn prev_result(&self) -> Result<Option<CniResult>, CniError> {
        self.prev_result
            .as_ref()
            .map(|v| {
                CniResult::parse(v, &self.cni_version).map_err(|e| CniError {
                    msg: format!("prevResult: {}", e.msg),
                    ..e
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal valid netconf with `extra` merged in.
    fn conf(extra: Value) -> Value {
        let mut v = json!({"cniVersion": "1.0.0", "name": "sriov-net", "type": "sriov"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    fn ok(extra: Value) -> NetConf {
        NetConf::from_value(conf(extra)).unwrap()
    }

    /// Asserts the code and that the message holds every fragment.
    fn err(extra: Value, code: u32, frags: &[&str]) {
        let e = NetConf::from_value(conf(extra.clone())).unwrap_err();
        assert_eq!(e.code, code, "{extra}: {e:?}");
        for f in frags {
            assert!(e.msg.contains(f), "{extra}: {:?} lacks {f:?}", e.msg);
        }
    }

    #[test]
    fn sriov_cni_reference_example() {
        let c = NetConf::parse(include_bytes!("../tests/fixtures/sriov-cni-full.json")).unwrap();
        assert_eq!(c.cni_version, "0.3.1");
        assert_eq!(c.device_id, Some("0000:03:02.0".parse().unwrap()));
        assert_eq!(c.mac, Some("ca:fe:c0:ff:ee:00".parse().unwrap()));
        assert_eq!(
            (c.vlan, c.vlan_qos, c.vlan_proto),
            (Some(1000), Some(4), Some(VlanProto::Dot1Ad))
        );
        assert_eq!((c.min_tx_rate, c.max_tx_rate), (Some(100), Some(200)));
        assert_eq!((c.spoofchk, c.trust), (Some(false), Some(true)));
        assert_eq!(c.link_state, Some(VfLinkState::Enable));
        assert_eq!(c.log_level, Some(LogLevel::Debug));
        assert_eq!(c.log_file.as_deref(), Some("/tmp/sriov.log"));
        assert_eq!(c.ipam_type(), Some("host-local"));
        assert!(c.pod_table);
        assert_eq!(c.agent_socket, PathBuf::from(DEFAULT_AGENT_SOCKET));
        assert_eq!(c.raw["ipam"]["subnet"], "10.56.217.0/24");
    }

    #[test]
    fn multus_delegate_with_our_fields_and_runtime_config() {
        let c = NetConf::parse(include_bytes!("../tests/fixtures/multus-delegate.json")).unwrap();
        assert_eq!(
            c.resource_name.as_deref(),
            Some("example.com/sriov_emulated")
        );
        assert!(!c.pod_table);
        assert_eq!(c.agent_socket, PathBuf::from("/var/run/sriov/agent.sock"));
        assert_eq!(c.mtu, Some(9000));
        assert_eq!(c.capabilities.get("mac"), Some(&true));
        assert_eq!(c.runtime_config.ips.len(), 2);
        assert_eq!(
            c.runtime_config.mac,
            Some("02:00:00:00:00:aa".parse().unwrap())
        );
        // runtimeConfig.deviceID > deviceID > pciBusID
        assert_eq!(c.device_id(), Some("0000:3b:02.3".parse().unwrap()));
        assert_eq!(c.ipam_type(), None, "\"ipam\": {{}} means no delegation");
        assert!(c.args.is_some() && c.prev_result.is_some());
        let prev = c.prev_result().unwrap().unwrap();
        assert_eq!(prev.interfaces[0].name, "net1");
    }

    #[test]
    fn unknown_fields_ignored_null_and_empty_mean_unset() {
        let c = ok(
            json!({"someRuntimeField": {"x": 1}, "vlan": null, "mac": "", "spoofchk": "",
            "deviceID": "", "logLevel": "", "ipam": {}}),
        );
        assert_eq!(
            (c.vlan, c.mac, c.spoofchk, c.device_id),
            (None, None, None, None)
        );
        assert_eq!(c.log_level, None);
    }

    #[test]
    fn keys_match_case_insensitively_like_go() {
        let c = ok(json!({"VLAN": 7, "Mac": "02:00:00:00:00:07", "vlanqos": 1, "MTU": 1500}));
        assert_eq!((c.vlan, c.vlan_qos, c.mtu), (Some(7), Some(1), Some(1500)));
        assert_eq!(c.mac, Some("02:00:00:00:00:07".parse().unwrap()));
        // The exact spelling wins over another case.
        assert_eq!(ok(json!({"Vlan": 5, "vlan": 6})).vlan, Some(6));
    }

    #[test]
    fn words_are_case_insensitive() {
        let c =
            ok(json!({"vlan": 10, "vlanProto": "802.1Q", "spoofchk": "ON", "link_state": "Auto"}));
        assert_eq!(c.vlan_proto, Some(VlanProto::Dot1Q));
        assert_eq!(c.spoofchk, Some(true));
        assert_eq!(c.link_state, Some(VfLinkState::Auto));
        assert_eq!(
            ok(json!({"vlan": 10, "vlanProto": "802.1AD"})).vlan_proto,
            Some(VlanProto::Dot1Ad)
        );
    }

    #[test]
    fn malformed_json_is_6_and_missing_version_7_unknown_version_1() {
        let e = NetConf::parse(b"{\"cniVersion\": ").unwrap_err();
        assert_eq!(e.code, code::DECODE);
        assert!(e.msg.contains("cannot decode"));
        let e = NetConf::parse(b"[1]").unwrap_err();
        assert_eq!(e.code, code::DECODE);
        assert!(e.msg.contains("JSON object"));
        let e = NetConf::parse(br#"{"name":"n"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (code::INVALID_CONFIG, "cniVersion is missing")
        );
        err(json!({"cniVersion": ""}), 7, &["cniVersion is missing"]);
        err(
            json!({"cniVersion": 1.0}),
            7,
            &["cniVersion", "expected a string", "1.0"],
        );
        err(json!({"cniVersion": "0.2.0"}), 1, &["0.2.0"]);
        err(json!({"cniVersion": "2.0.0"}), 1, &["2.0.0"]);
    }

    #[test]
    fn name_required_and_well_formed() {
        for name in [json!(null), json!("")] {
            err(json!({"name": name}), 7, &["name is missing"]);
        }
        err(json!({"name": 5}), 7, &["name", "expected a string"]);
        err(json!({"name": "-net"}), 7, &["invalid name \"-net\""]);
        err(json!({"name": "a b"}), 7, &["invalid name \"a b\""]);
        assert_eq!(ok(json!({"name": "Net_1.a-b"})).name, "Net_1.a-b");
    }

    #[test]
    fn vlan_range_qos_and_proto() {
        assert_eq!(ok(json!({"vlan": 4094})).vlan, Some(4094));
        assert_eq!(ok(json!({"vlan": 0})).vlan, Some(0));
        err(
            json!({"vlan": 4095}),
            7,
            &["invalid vlan 4095", "between 0 and 4094"],
        );
        err(json!({"vlan": -1}), 7, &["invalid vlan -1"]);
        err(json!({"vlan": 1e30}), 7, &["vlan", "expected an integer"]);
        err(
            json!({"vlan": 18446744073709551615u64}),
            7,
            &["invalid vlan 18446744073709551615"],
        );
        err(
            json!({"vlan": "100"}),
            7,
            &["vlan: expected an integer, got \"100\""],
        );
        err(
            json!({"vlan": 100.5}),
            7,
            &["vlan: expected an integer, got 100.5"],
        );
        err(
            json!({"vlan": 10, "vlanQoS": 8}),
            7,
            &["invalid vlanQoS 8", "between 0 and 7"],
        );
        err(
            json!({"vlanQoS": 3}),
            7,
            &["vlanQoS 3 requires a non-zero vlan", "not set"],
        );
        err(
            json!({"vlan": 0, "vlanQoS": 3}),
            7,
            &["vlanQoS 3 requires a non-zero vlan (vlan is 0)"],
        );
        assert_eq!(ok(json!({"vlanQoS": 0})).vlan_qos, Some(0));
        assert_eq!(ok(json!({"vlan": 5, "vlanQoS": 7})).vlan_qos, Some(7));
        err(
            json!({"vlanProto": "802.1ad"}),
            7,
            &["802.1ad requires a non-zero vlan"],
        );
        err(
            json!({"vlan": 0, "vlanProto": "802.1ad"}),
            7,
            &["802.1ad requires a non-zero vlan"],
        );
        assert_eq!(
            ok(json!({"vlanProto": "802.1q"})).vlan_proto,
            Some(VlanProto::Dot1Q)
        );
        err(
            json!({"vlan": 5, "vlanProto": "802.1x"}),
            2,
            &["unsupported vlanProto \"802.1x\"", "802.1q, 802.1ad"],
        );
        err(
            json!({"vlan": 5, "vlanProto": ""}),
            2,
            &["unsupported vlanProto \"\""],
        );
        err(
            json!({"vlan": 5, "vlanProto": 8021}),
            7,
            &["vlanProto: expected a string"],
        );
    }

    #[test]
    fn macs() {
        err(
            json!({"mac": "02:00:00:00:00"}),
            7,
            &["invalid mac", "02:00:00:00:00"],
        );
        err(
            json!({"mac": "zz:00:00:00:00:01"}),
            7,
            &["invalid mac", "zz:00:00:00:00:01"],
        );
        err(
            json!({"mac": "01:00:5e:00:00:01"}),
            7,
            &["invalid mac \"01:00:5e:00:00:01\"", "multicast"],
        );
        err(json!({"mac": "ff:ff:ff:ff:ff:ff"}), 7, &["multicast"]);
        err(
            json!({"mac": "00:00:00:00:00:00"}),
            7,
            &["invalid mac \"00:00:00:00:00:00\"", "all-zero"],
        );
        err(json!({"mac": 42}), 7, &["mac: expected a string, got 42"]);
        err(
            json!({"runtimeConfig": {"mac": "03:00:00:00:00:01"}}),
            7,
            &["invalid runtimeConfig.mac", "multicast"],
        );
    }

    #[test]
    fn rates() {
        let c = ok(json!({"min_tx_rate": 0, "max_tx_rate": MAX_TX_RATE_MBPS}));
        assert_eq!(c.max_tx_rate, Some(MAX_TX_RATE_MBPS));
        err(
            json!({"max_tx_rate": -100}),
            7,
            &["invalid max_tx_rate -100", "negative"],
        );
        err(
            json!({"min_tx_rate": -1}),
            7,
            &["invalid min_tx_rate -1", "negative"],
        );
        err(
            json!({"max_tx_rate": 800_001}),
            7,
            &["invalid max_tx_rate 800001", "800000 Mbit/s cap"],
        );
        err(
            json!({"min_tx_rate": 4_294_967_296u64}),
            7,
            &["invalid min_tx_rate 4294967296"],
        );
        err(
            json!({"max_tx_rate": "100"}),
            7,
            &["max_tx_rate: expected an integer"],
        );
        err(
            json!({"min_tx_rate": 200, "max_tx_rate": 100}),
            7,
            &["min_tx_rate 200 is greater than max_tx_rate 100"],
        );
        // max 0 means unlimited, so any min is consistent.
        assert_eq!(
            ok(json!({"min_tx_rate": 200, "max_tx_rate": 0})).min_tx_rate,
            Some(200)
        );
        assert_eq!(ok(json!({"min_tx_rate": 200})).min_tx_rate, Some(200));
    }

    #[test]
    fn words_outside_their_set_are_code_2() {
        err(
            json!({"spoofchk": "yes"}),
            2,
            &["unsupported spoofchk \"yes\"", "on, off"],
        );
        err(json!({"trust": "true"}), 2, &["unsupported trust \"true\""]);
        err(
            json!({"trust": true}),
            7,
            &["trust: expected a string, got true"],
        );
        err(
            json!({"link_state": "up"}),
            2,
            &["unsupported link_state \"up\"", "auto, enable, disable"],
        );
        err(
            json!({"logLevel": "verbose"}),
            2,
            &["unsupported logLevel \"verbose\""],
        );
        err(
            json!({"vlan_trunk": "10-20"}),
            2,
            &["unsupported field vlan_trunk \"10-20\""],
        );
        assert!(
            ok(json!({"vlan_trunk": ""}))
                .raw
                .get("vlan_trunk")
                .is_some()
        );
    }

    #[test]
    fn device_ids() {
        err(
            json!({"deviceID": "0000:3b:02"}),
            7,
            &["invalid deviceID", "0000:3b:02"],
        );
        err(json!({"deviceID": "../../etc"}), 7, &["invalid deviceID"]);
        err(
            json!({"pciBusID": "0000:3b:20.0"}),
            7,
            &["invalid pciBusID", "0000:3b:20.0"],
        );
        err(
            json!({"runtimeConfig": {"deviceID": "x"}}),
            7,
            &["invalid runtimeConfig.deviceID"],
        );
        err(json!({"deviceID": 3}), 7, &["deviceID: expected a string"]);
        let c = ok(json!({"pciBusID": "0000:01:10.2"}));
        assert_eq!(c.device_id(), Some("0000:01:10.2".parse().unwrap()));
        let c = ok(json!({"pciBusID": "0000:01:10.2", "deviceID": "01:10.0"}));
        assert_eq!(c.device_id(), Some("0000:01:10.0".parse().unwrap()));
        assert_eq!(ok(json!({})).device_id(), None);
    }

    #[test]
    fn mac_precedence() {
        let m = |s: &str| -> MacAddr { s.parse().unwrap() };
        let (rc, args, table, conf) = (
            m("02:00:00:00:00:01"),
            m("02:00:00:00:00:02"),
            m("02:00:00:00:00:03"),
            m("02:00:00:00:00:04"),
        );
        let full = ok(json!({"mac": conf.to_string(), "runtimeConfig": {"mac": rc.to_string()}}));
        assert_eq!(full.effective_mac(Some(args), Some(table)), Some(rc));
        let c = ok(json!({"mac": conf.to_string()}));
        assert_eq!(c.effective_mac(Some(args), Some(table)), Some(args));
        assert_eq!(c.effective_mac(None, Some(table)), Some(table));
        assert_eq!(c.effective_mac(None, None), Some(conf));
        assert_eq!(ok(json!({})).effective_mac(None, None), None);
    }

    #[test]
    fn ip_precedence_and_runtime_ips() {
        let table: Vec<IpCidr> = vec!["10.0.0.9/24".parse().unwrap()];
        let c = ok(json!({"runtimeConfig": {"ips": ["10.0.0.5/24", "fd00::5/64"]}}));
        assert_eq!(c.effective_ips(Some(&table)).unwrap().len(), 2);
        let c = ok(json!({"runtimeConfig": {"ips": []}}));
        assert_eq!(c.effective_ips(Some(&table)), Some(&table[..]));
        assert_eq!(c.effective_ips(None), None);
        err(
            json!({"runtimeConfig": {"ips": ["10.0.0.5"]}}),
            7,
            &["runtimeConfig.ips[0]", "10.0.0.5", "missing /prefix"],
        );
        err(
            json!({"runtimeConfig": {"ips": [5]}}),
            7,
            &["runtimeConfig.ips[0]: expected a CIDR string"],
        );
        err(
            json!({"runtimeConfig": {"ips": "10.0.0.5/24"}}),
            7,
            &["runtimeConfig.ips: expected a list"],
        );
        err(
            json!({"runtimeConfig": []}),
            7,
            &["runtimeConfig: expected an object"],
        );
    }

    #[test]
    fn our_fields() {
        err(
            json!({"podTable": "yes"}),
            7,
            &["podTable: expected true or false"],
        );
        err(
            json!({"agentSocket": "run/agent.sock"}),
            7,
            &["invalid agentSocket \"run/agent.sock\"", "absolute"],
        );
        err(
            json!({"resourceName": "a b"}),
            7,
            &["invalid resourceName \"a b\""],
        );
        err(
            json!({"resourceName": 1}),
            7,
            &["resourceName: expected a string"],
        );
        err(
            json!({"mtu": 67}),
            7,
            &["invalid mtu 67", "between 68 and 65535 bytes"],
        );
        err(json!({"mtu": 70000}), 7, &["invalid mtu 70000"]);
        assert_eq!(ok(json!({"mtu": 68})).mtu, Some(68));
    }

    #[test]
    fn structural_fields() {
        err(
            json!({"ipam": "host-local"}),
            7,
            &["ipam: expected an object, got \"host-local\""],
        );
        err(
            json!({"ipam": {"type": "../bin/sh"}}),
            7,
            &["invalid ipam.type \"../bin/sh\""],
        );
        err(
            json!({"ipam": {"type": 1}}),
            7,
            &["ipam.type: expected a string"],
        );
        err(
            json!({"capabilities": {"mac": "yes"}}),
            7,
            &["capabilities.mac: expected true or false"],
        );
        err(
            json!({"prevResult": "x"}),
            7,
            &["prevResult: expected an object"],
        );
        err(json!({"args": [1]}), 7, &["args: expected an object"]);
        err(
            json!({"dns": {"nameservers": "1.1.1.1"}}),
            7,
            &["dns.nameservers: expected a list"],
        );
        err(
            json!({"dns": {"search": [1]}}),
            7,
            &["dns.search[0]: expected a string"],
        );
        let c = ok(json!({"dns": {"nameservers": ["10.0.0.53"], "domain": "x.local"}}));
        assert_eq!(c.dns.unwrap().domain.as_deref(), Some("x.local"));
        let long = "x".repeat(500);
        let e = NetConf::from_value(conf(json!({"vlan": long}))).unwrap_err();
        assert!(
            e.msg.len() < 200,
            "values are cut short in messages: {}",
            e.msg.len()
        );
    }

    #[test]
    fn prev_result_in_the_netconf_version() {
        let prev =
            json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.1.0.7/16"}]});
        let c =
            NetConf::from_value(json!({"cniVersion": "0.4.0", "name": "n", "prevResult": prev}))
                .unwrap();
        assert_eq!(c.prev_result().unwrap().unwrap().ips.len(), 1);
        let c = ok(json!({"prevResult": {"ips": [{"address": "bad"}]}}));
        let e = c.prev_result().unwrap_err();
        assert_eq!(e.code, code::DECODE);
        assert!(
            e.msg.starts_with("prevResult: ") && e.msg.contains("ips[0].address"),
            "{}",
            e.msg
        );
        assert_eq!(ok(json!({})).prev_result().unwrap(), None);
    }

    #[test]
    fn gc_valid_attachments() {
        let c = ok(json!({"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "net1"}]}));
        let v = c.valid_attachments.unwrap();
        assert_eq!(
            (v[0].container_id.as_str(), v[0].ifname.as_str()),
            ("c1", "net1")
        );
        assert_eq!(ok(json!({})).valid_attachments, None);
        err(
            json!({"cni.dev/valid-attachments": [{"containerID": "c1"}]}),
            7,
            &["cni.dev/valid-attachments[0].ifname"],
        );
    }
}

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

mod fields;
#[cfg(test)]
mod tests;

use fields::{
    Fields, LINK_STATES, LOG_LEVELS, agent_socket, capabilities, dns, identity, ipam, rates,
    resource_name, runtime_config, show, unsupported, valid_attachments, vlan,
};

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
/// Upper bound of `mtu`, bytes: the largest MTU the kernel accepts on an Ethernet netdev.
pub const MAX_MTU: u32 = 65_535;

/// sriov-cni's `logLevel` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Nothing is logged (sriov-cni's lowest level; we never panic on purpose).
    Panic,
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warning,
    /// Default: one line per call outcome and notable steps.
    #[default]
    Info,
    /// Everything, including each step of attach and restore.
    Debug,
}

/// `runtimeConfig`: what the runtime passes for the capabilities we declare (`mac`, `ips`,
/// `deviceID`); other capability keys are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuntimeConfig {
    /// `mac` capability: the MAC to give the VF; wins over every other source.
    pub mac: Option<MacAddr>,
    /// `ips` capability: fixed addresses, used instead of `ipam`.
    pub ips: Vec<IpCidr>,
    /// `deviceID`: the VF's PCI address as Multus (or the device plugin) chose it.
    pub device_id: Option<PciAddr>,
}

/// One entry of GC's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidAttachment {
    /// `containerID` of an attachment to keep.
    pub container_id: String,
    /// `ifname` of that attachment inside the container.
    pub ifname: String,
}

/// The validated netconf. `raw` is the document as received: IPAM delegation sends it unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// `cniVersion`: the spec version to answer in.
    pub cni_version: String,
    /// `name`: the network's name; part of the attachment key and the pod-table lookup.
    pub name: String,
    /// `type`; the runtime's business, kept for logs.
    pub plugin_type: Option<String>,
    /// `capabilities` the runtime enabled (`mac`, `ips`…); informational, `runtimeConfig` carries
    /// the values.
    pub capabilities: BTreeMap<String, bool>,
    /// `ipam`, kept raw for the IPAM plugin; see [`NetConf::ipam_type`].
    pub ipam: Option<Map<String, Value>>,
    /// `dns` to report in the result when IPAM gives none.
    pub dns: Option<Dns>,
    /// `deviceID` (Multus's field); see [`NetConf::device_id()`] for the precedence.
    pub device_id: Option<PciAddr>,
    /// `pciBusID` (older sriov-cni configs); used when no `deviceID` is given.
    pub pci_bus_id: Option<PciAddr>,
    /// `vlan`: the VF's port VLAN ID, 0–4094 (0 = none).
    pub vlan: Option<u16>,
    /// `vlanQoS`: 802.1p priority 0–7 of the port VLAN.
    pub vlan_qos: Option<u8>,
    /// `vlanProto`: `802.1q` (default) or `802.1ad`.
    pub vlan_proto: Option<VlanProto>,
    /// `mac`: the lowest-precedence MAC; see [`NetConf::effective_mac`].
    pub mac: Option<MacAddr>,
    /// `spoofchk`: `"on"`/`"off"`; unset leaves the VF's setting alone.
    pub spoofchk: Option<bool>,
    /// `trust`: `"on"`/`"off"`; unset leaves the VF's setting alone.
    pub trust: Option<bool>,
    /// `link_state`: `auto`, `enable` or `disable`; unset leaves it alone.
    pub link_state: Option<VfLinkState>,
    /// Mbit/s, 0 = no limit.
    pub min_tx_rate: Option<u32>,
    /// Mbit/s, 0 = no limit.
    pub max_tx_rate: Option<u32>,
    /// `mtu` in bytes ([`MIN_MTU`]..=[`MAX_MTU`]), set on the VF netdev before the move.
    pub mtu: Option<u32>,
    /// `logLevel`; `info` when unset.
    pub log_level: Option<LogLevel>,
    /// `logFile`: absolute path to append this call's log lines to; no logging when unset.
    pub log_file: Option<String>,
    /// `runtimeConfig`, empty when absent.
    pub runtime_config: RuntimeConfig,
    /// `prevResult` as received; read with [`NetConf::prev_result()`].
    pub prev_result: Option<Value>,
    /// `args` (the conventions' `args.cni`…), kept as received; we read none of it.
    pub args: Option<Value>,
    /// GC only: the attachments the runtime still knows.
    pub valid_attachments: Option<Vec<ValidAttachment>>,
    /// The pool, e.g. `example.com/sriov_emulated`.
    pub resource_name: Option<String>,
    /// Whether the agent's pod table is consulted (default true).
    pub pod_table: bool,
    /// `agentSocket`: the node agent's gRPC socket; [`DEFAULT_AGENT_SOCKET`] when unset.
    pub agent_socket: PathBuf,
    /// The document exactly as received, handed unchanged to the IPAM plugin.
    pub raw: Value,
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

    /// `logFile` and `logLevel` read leniently from a netconf that failed validation, so the
    /// refusal itself can be logged: a value of the wrong type or an unknown level word is
    /// treated as absent.
    pub fn log_settings_lenient(stdin: &[u8]) -> (Option<String>, Option<LogLevel>) {
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(stdin) else {
            return (None, None);
        };
        let f = Fields {
            obj: &obj,
            path: "",
        };
        (
            f.nonempty_str("logFile").ok().flatten().map(str::to_string),
            f.word("logLevel", LOG_LEVELS).ok().flatten(),
        )
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

//! The pool config file: the reference device plugin's `{"resourceList": [...]}` JSON.

use std::path::Path;

use serde::Deserialize;

use super::pf_names::PfNameSel;
use super::selector::{RawSelector, Selector};

/// Why a pool config was refused. The message names the entry, so an operator can fix the
/// ConfigMap; the agent keeps its last good config when a reload fails.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read pool config {path}: {source}")]
    Read {
        /// The file's path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not JSON, or not shaped `{"resourceList": [...]}`.
    #[error("pool config is not valid JSON of the resourceList format: {0}")]
    Json(#[from] serde_json::Error),
    /// One `resourceList` entry is invalid.
    #[error("resourceList[{index}] ({name}): {msg}")]
    Entry {
        /// The entry's position in `resourceList`.
        index: usize,
        /// Its `resourceName`.
        name: String,
        /// What is wrong with it.
        msg: String,
    },
}

/// How GetPreferredAllocation chooses among equally good VFs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
pub enum AllocationPolicy {
    /// Spread across PFs (one PF's failure hits fewer pods).
    #[default]
    #[serde(rename = "spread")]
    Spread,
    /// Pack onto as few PFs as possible.
    #[serde(rename = "pack", alias = "packed")]
    Pack,
}

/// The whole pool config.
#[derive(Debug, Clone, Default)]
pub struct PoolConfig {
    /// The pools, in config order (a VF joins the first whose selectors match).
    pub resources: Vec<ResourceConfig>,
}

/// One `resourceList` entry, validated.
#[derive(Debug, Clone)]
pub struct ResourceConfig {
    /// `resourceName`, e.g. `sriov_netdevice`; `[a-zA-Z0-9_]+`.
    pub name: String,
    /// `resourcePrefix`, e.g. `intel.com` (the default).
    pub prefix: String,
    /// `excludeTopology`: advertise devices without NUMA affinity to kubelet.
    pub exclude_topology: bool,
    /// `needVhostNet`: containers also get `/dev/vhost-net` and `/dev/net/tun`.
    pub need_vhost_net: bool,
    /// `isRdma`: only VFs with an RDMA device join the pool.
    pub is_rdma: bool,
    /// `allocationPolicy`: how preferred allocations pick among free VFs.
    pub allocation_policy: AllocationPolicy,
    /// Any one set matching selects a VF.
    pub selectors: Vec<Selector>,
}

impl ResourceConfig {
    /// `<prefix>/<name>`, the extended resource name kubelet advertises.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.prefix, self.name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    resource_list: Vec<RawResource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawResource {
    resource_name: String,
    resource_prefix: Option<String>,
    device_type: Option<String>,
    #[serde(default)]
    exclude_topology: bool,
    #[serde(default)]
    is_rdma: bool,
    #[serde(default)]
    need_vhost_net: bool,
    #[serde(default)]
    allocation_policy: AllocationPolicy,
    #[serde(default)]
    additional_info: serde_json::Map<String, serde_json::Value>,
    /// An object or a list of objects; decoded by hand so errors name the bad field.
    selectors: Option<serde_json::Value>,
}

impl PoolConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and validates config JSON; any bad entry rejects the whole config.
    pub fn parse(json: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawConfig = serde_json::from_slice(json)?;
        let mut resources = Vec::with_capacity(raw.resource_list.len());
        for (index, r) in raw.resource_list.into_iter().enumerate() {
            let err = |msg: String| ConfigError::Entry {
                index,
                name: r.resource_name.clone(),
                msg,
            };
            if r.resource_name.is_empty()
                || !r
                    .resource_name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(err("resourceName must match ^[a-zA-Z0-9_]+$".into()));
            }
            let prefix = r
                .resource_prefix
                .clone()
                .unwrap_or_else(|| super::DEFAULT_PREFIX.into());
            if prefix.is_empty() || prefix.contains('/') || prefix.contains(char::is_whitespace) {
                return Err(err(format!("invalid resourcePrefix {prefix:?}")));
            }
            match r.device_type.as_deref() {
                None | Some("netDevice") => {}
                Some(other) => {
                    return Err(err(format!(
                        "deviceType {other:?} is not supported (only netDevice)"
                    )));
                }
            }
            let raw_sel: Vec<RawSelector> = match r.selectors.clone() {
                None => return Err(err("selectors are required".into())),
                Some(serde_json::Value::Array(v)) if v.is_empty() => {
                    return Err(err("selectors list is empty".into()));
                }
                Some(v @ serde_json::Value::Array(_)) => serde_json::from_value(v),
                Some(v) => serde_json::from_value(v).map(|s| vec![s]),
            }
            .map_err(|e| err(format!("selectors: {e}")))?;
            let selectors = raw_sel
                .into_iter()
                .map(|s| s.validate().map_err(&err))
                .collect::<Result<Vec<_>, _>>()?;
            let _ = &r.additional_info;
            let full = format!("{prefix}/{}", r.resource_name);
            if resources
                .iter()
                .any(|x: &ResourceConfig| x.full_name() == full)
            {
                return Err(err(format!("duplicate resource {full}")));
            }
            resources.push(ResourceConfig {
                name: r.resource_name,
                prefix,
                exclude_topology: r.exclude_topology,
                need_vhost_net: r.need_vhost_net,
                is_rdma: r.is_rdma,
                allocation_policy: r.allocation_policy,
                selectors,
            });
        }
        Ok(PoolConfig { resources })
    }
}

/// Parses `pfNames` entries for a selector.
pub(super) fn parse_pf_names(v: &[String]) -> Result<Vec<PfNameSel>, String> {
    v.iter().map(|s| PfNameSel::parse(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_reference_format_object_and_list() {
        let cfg = PoolConfig::parse(
            br#"{"resourceList":[
              {"resourceName":"intel_sriov_netdevice","selectors":{"vendors":["8086"],"devices":["154c","10ed"],"drivers":["iavf"]}},
              {"resourceName":"mlnx","resourcePrefix":"nvidia.com","excludeTopology":true,
               "selectors":[{"pfNames":["ens1f0#0-3,5"]},{"rootDevices":["0000:3b:00.1"]}]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(cfg.resources.len(), 2);
        assert_eq!(
            cfg.resources[0].full_name(),
            "intel.com/intel_sriov_netdevice"
        );
        assert_eq!(cfg.resources[1].full_name(), "nvidia.com/mlnx");
        assert!(cfg.resources[1].exclude_topology);
        assert_eq!(cfg.resources[1].selectors.len(), 2);
    }

    #[test]
    fn rejects_bad_entries_naming_them() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"resourceList":[{"resourceName":"a-b","selectors":{}}]}"#,
                "resourceList[0] (a-b)",
            ),
            (
                r#"{"resourceList":[{"resourceName":"ok","selectors":{"vendors":["80866"]}}]}"#,
                "vendors",
            ),
            (
                r#"{"resourceList":[{"resourceName":"ok","selectors":{"pfNames":["e#3-1"]}}]}"#,
                "pfNames",
            ),
            (
                r#"{"resourceList":[{"resourceName":"ok","selectors":{"pciAddresses":["zz"]}}]}"#,
                "zz",
            ),
            (
                r#"{"resourceList":[{"resourceName":"ok","selectors":{"vendor":["8086"]}}]}"#,
                "vendor",
            ),
            (
                r#"{"resourceList":[{"resourceName":"ok"}]}"#,
                "selectors are required",
            ),
            (
                r#"{"resourceList":[{"resourceName":"ok","selectors":{}},{"resourceName":"ok","selectors":{}}]}"#,
                "duplicate",
            ),
            (
                r#"{"resourceList":[{"resourceName":"ok","deviceType":"accelerator","selectors":{}}]}"#,
                "deviceType",
            ),
            (r#"{"resources":[]}"#, "resources"),
        ];
        for (json, frag) in cases {
            let e = PoolConfig::parse(json.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(frag), "{json}: {e}");
        }
    }
}

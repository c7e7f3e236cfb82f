//! One selector set of a pool: every field present must match (AND); values in a field are ORed.

use serde::Deserialize;
use sriov_hw::PciAddr;
use sriov_hw::discovery::{Pf, Vf};

use super::pf_names::PfNameSel;

/// A validated selector set.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// `vendors`: PCI vendor IDs (hex in the config, e.g. `8086`); empty = any.
    pub vendors: Vec<u16>,
    /// `devices`: PCI device IDs of the VF (hex, e.g. `154c`); empty = any.
    pub devices: Vec<u16>,
    /// `drivers`: the VF's bound driver (`iavf`, `vfio-pci`…); empty = any.
    pub drivers: Vec<String>,
    /// `pciAddresses`: the VFs' own addresses; empty = any.
    pub pci_addresses: Vec<PciAddr>,
    /// `pfNames`: PF netdev names, optionally with VF indexes (`ens1f0#0-3,5`); empty = any.
    pub pf_names: Vec<PfNameSel>,
    /// `rootDevices`: the PFs' PCI addresses; empty = any.
    pub root_devices: Vec<PciAddr>,
    /// `linkTypes`: the link type (`ether`, `infiniband`…), lower-cased; empty = any.
    pub link_types: Vec<String>,
    /// `Some(true)`: only VFs with an RDMA device; `Some(false)`: only without.
    pub is_rdma: Option<bool>,
    /// `needVhostNet`, accepted as in the reference plugin's selectors; the pool's flag is what
    /// counts.
    pub need_vhost_net: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawSelector {
    #[serde(default)]
    vendors: Vec<String>,
    #[serde(default)]
    devices: Vec<String>,
    #[serde(default)]
    drivers: Vec<String>,
    #[serde(default)]
    pci_addresses: Vec<String>,
    #[serde(default)]
    pf_names: Vec<String>,
    #[serde(default)]
    root_devices: Vec<String>,
    #[serde(default)]
    link_types: Vec<String>,
    is_rdma: Option<bool>,
    #[serde(default)]
    need_vhost_net: bool,
}

fn hex_id(field: &str, s: &str) -> Result<u16, String> {
    let t = s.trim_start_matches("0x");
    if t.is_empty() || t.len() > 4 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("{field}: {s:?} is not a 4-digit hex PCI ID"));
    }
    u16::from_str_radix(t, 16).map_err(|e| format!("{field}: {s:?}: {e}"))
}

fn pci_list(field: &str, v: &[String]) -> Result<Vec<PciAddr>, String> {
    v.iter()
        .map(|s| s.parse().map_err(|e| format!("{field}: {e}")))
        .collect()
}

impl RawSelector {
    pub(super) fn validate(self) -> Result<Selector, String> {
        Ok(Selector {
            vendors: self
                .vendors
                .iter()
                .map(|s| hex_id("vendors", s))
                .collect::<Result<_, _>>()?,
            devices: self
                .devices
                .iter()
                .map(|s| hex_id("devices", s))
                .collect::<Result<_, _>>()?,
            drivers: self.drivers,
            pci_addresses: pci_list("pciAddresses", &self.pci_addresses)?,
            pf_names: super::config::parse_pf_names(&self.pf_names)?,
            root_devices: pci_list("rootDevices", &self.root_devices)?,
            link_types: self
                .link_types
                .into_iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            is_rdma: self.is_rdma,
            need_vhost_net: self.need_vhost_net,
        })
    }
}

fn any_or_empty<T>(list: &[T], f: impl Fn(&T) -> bool) -> bool {
    list.is_empty() || list.iter().any(f)
}

impl Selector {
    /// Whether VF `vf` of `pf` passes every field of this set.
    pub fn matches(&self, pf: &Pf, vf: &Vf) -> bool {
        let link_type = vf.link_type.as_deref().or(pf.link_type.as_deref());
        any_or_empty(&self.vendors, |v| *v == vf.vendor)
            && any_or_empty(&self.devices, |d| *d == vf.device)
            && any_or_empty(&self.drivers, |d| vf.driver.as_deref() == Some(d.as_str()))
            && any_or_empty(&self.pci_addresses, |a| *a == vf.pci)
            && any_or_empty(&self.root_devices, |a| *a == pf.pci)
            && any_or_empty(&self.pf_names, |s| {
                pf.netdevs.iter().any(|n| s.matches(n, vf.index))
            })
            && any_or_empty(&self.link_types, |t| link_type == Some(t.as_str()))
            && self.is_rdma.is_none_or(|want| want == vf.rdma)
    }
}

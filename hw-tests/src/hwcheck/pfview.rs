//! What the kernel says, read without our own code: the PF's VF table from `ip -j -d link show
//! <pf>` (IFLA_VFINFO_LIST as iproute2 prints it) and where a VF's netdev is, from sysfs.

use std::path::Path;

use serde_json::Value;

/// One VF as the PF reports it, normalised across iproute2's JSON spellings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfRow {
    pub vf: u64,
    pub mac: String,
    pub vlan: u64,
    pub qos: u64,
    pub proto: String,
    pub max_tx: u64,
    pub min_tx: u64,
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    pub link_state: String,
}

impl VfRow {
    fn from_json(v: &Value) -> Option<Self> {
        // Newer iproute2 prints a `vlan_list`, older a flat `vlan`/`qos`.
        let vl = v["vlan_list"].get(0).unwrap_or(v);
        let rate = &v["rate"];
        Some(VfRow {
            vf: v["vf"].as_u64()?,
            mac: v["address"].as_str().unwrap_or("").to_string(),
            vlan: vl["vlan"].as_u64().unwrap_or(0),
            qos: vl["qos"].as_u64().unwrap_or(0),
            proto: vl["protocol"].as_str().unwrap_or("802.1Q").to_string(),
            max_tx: rate["max_tx"]
                .as_u64()
                .or(v["max_tx_rate"].as_u64())
                .unwrap_or(0),
            min_tx: rate["min_tx"]
                .as_u64()
                .or(v["min_tx_rate"].as_u64())
                .unwrap_or(0),
            spoofchk: v["spoofchk"].as_bool(),
            trust: v["trust"].as_bool(),
            link_state: v["link_state"].as_str().unwrap_or("").to_string(),
        })
    }

    /// One line for logs.
    pub fn brief(&self) -> String {
        format!(
            "vf {} mac {} vlan {} qos {} proto {} max_tx {} min_tx {} spoofchk {:?} trust {:?} link {}",
            self.vf,
            self.mac,
            self.vlan,
            self.qos,
            self.proto,
            self.max_tx,
            self.min_tx,
            self.spoofchk,
            self.trust,
            self.link_state
        )
    }
}

/// The PF's whole VF table.
pub fn vf_table(pf: &str) -> Result<Vec<VfRow>, String> {
    let v = crate::ip_json(&["-d", "link", "show", "dev", pf]);
    let list = v[0]["vfinfo_list"]
        .as_array()
        .ok_or_else(|| format!("`ip -j -d link show {pf}` has no vfinfo_list: {v}"))?;
    list.iter()
        .map(|e| VfRow::from_json(e).ok_or_else(|| format!("unreadable vfinfo entry {e}")))
        .collect()
}

/// One VF's row.
pub fn vf_row(pf: &str, vf: u32) -> Result<VfRow, String> {
    vf_table(pf)?
        .into_iter()
        .find(|r| r.vf == u64::from(vf))
        .ok_or_else(|| format!("PF {pf} reports no VF {vf}"))
}

/// The netdev names of a PCI function in the host namespace (`/sys/bus/pci/devices/<pci>/net`).
/// Empty when the netdev is in another namespace or the device has no netdev driver.
pub fn host_netdevs(sysfs: &Path, pci: &str) -> Vec<String> {
    let dir = sysfs.join("bus/pci/devices").join(pci).join("net");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The driver a PCI function is bound to.
pub fn driver(sysfs: &Path, pci: &str) -> Option<String> {
    let link = std::fs::read_link(sysfs.join("bus/pci/devices").join(pci).join("driver")).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// The IOMMU group of a PCI function.
pub fn iommu_group(sysfs: &Path, pci: &str) -> Option<u32> {
    let link =
        std::fs::read_link(sysfs.join("bus/pci/devices").join(pci).join("iommu_group")).ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// Polls `f` every 100 ms for up to `secs` seconds.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_both_iproute2_spellings() {
        let new = json!({"vf": 1, "address": "02:00:00:00:00:10",
            "vlan_list": [{"vlan": 100, "qos": 3}], "rate": {"max_tx": 100, "min_tx": 0},
            "spoofchk": true, "link_state": "auto", "trust": false});
        let r = VfRow::from_json(&new).unwrap();
        assert_eq!((r.vf, r.vlan, r.qos, r.max_tx), (1, 100, 3, 100));
        assert_eq!(r.proto, "802.1Q");
        assert_eq!(r.trust, Some(false));
        let old = json!({"vf": 2, "address": "00:00:00:00:00:00", "vlan": 7, "qos": 1,
            "max_tx_rate": 5, "min_tx_rate": 1});
        let r = VfRow::from_json(&old).unwrap();
        assert_eq!((r.vlan, r.qos, r.max_tx, r.min_tx), (7, 1, 5, 1));
        assert_eq!(r.spoofchk, None);
    }
}

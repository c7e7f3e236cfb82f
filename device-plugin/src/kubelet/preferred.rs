//! GetPreferredAllocation: which of the available devices a container should get.
//!
//! Kubelet asks before Allocate, giving the devices it may choose from, the ones it must keep
//! (already chosen for topology reasons) and the count. The answer is a preference; kubelet may
//! still pick otherwise. Policy, in order:
//! 1. every must-include ID is in the answer;
//! 2. NUMA: prefer the node(s) of the must-include devices; without any, the node with the most
//!    free devices (so a node that can satisfy the whole request is used alone whenever one can);
//! 3. PFs: spread round-robin over PFs (fewest already chosen first), or pack onto as few PFs as
//!    possible (PFs already used first, then the one with the most free devices);
//! 4. deterministic: ties are broken by PF and then device PCI address.
//!
//! Only healthy devices of the pool that kubelet listed as available are offered. When fewer
//! are available than asked, the answer is as large as it can be.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use sriov_hw::PciAddr;

use crate::pools::{AllocationPolicy, Device};

/// The preferred device IDs for one container: all of `must_include` (deduplicated, in the
/// given order) followed by the chosen devices, `size` IDs in all when the pool allows (never
/// fewer than the must-include ones). Pure; `devices` is the pool's current device list.
pub fn preferred_allocation(
    devices: &[Device],
    available: &[String],
    must_include: &[String],
    size: usize,
    policy: AllocationPolicy,
) -> Vec<String> {
    let by_id: HashMap<&str, &Device> = devices.iter().map(|d| (d.id.as_str(), d)).collect();

    let mut taken: HashSet<&str> = HashSet::new();
    let mut out: Vec<String> = Vec::with_capacity(size.max(must_include.len()));
    let mut pf_used: BTreeMap<PciAddr, usize> = BTreeMap::new();
    let mut must_numa: BTreeSet<u32> = BTreeSet::new();
    for id in must_include {
        if !taken.insert(id.as_str()) {
            continue;
        }
        out.push(id.clone());
        if let Some(d) = by_id.get(id.as_str()) {
            *pf_used.entry(d.pf).or_default() += 1;
            must_numa.extend(d.numa_node);
        }
    }
    if out.len() >= size {
        return out;
    }

    let mut candidates: Vec<&Device> = available
        .iter()
        .filter(|id| !taken.contains(id.as_str()))
        .filter_map(|id| by_id.get(id.as_str()).copied())
        .filter(|d| d.healthy)
        .collect();
    candidates.sort_by_key(|d| d.pci);
    candidates.dedup_by_key(|d| d.pci);

    let mut need = (size - out.len()).min(candidates.len());
    for tier in numa_tiers(candidates, &must_numa) {
        if need == 0 {
            break;
        }
        let picked = pick_from_tier(tier, need, &mut pf_used, policy);
        need -= picked.len();
        out.extend(picked.into_iter().map(|d| d.id.clone()));
    }
    out
}

/// Candidates grouped by NUMA node, in the order to draw from: the must-include nodes first (as
/// one group), then the other nodes by free count, most first (unknown node last on ties).
fn numa_tiers<'a>(candidates: Vec<&'a Device>, must_numa: &BTreeSet<u32>) -> Vec<Vec<&'a Device>> {
    let mut preferred = Vec::new();
    let mut groups: BTreeMap<(bool, u32), Vec<&Device>> = BTreeMap::new();
    for d in candidates {
        match d.numa_node {
            Some(n) if must_numa.contains(&n) => preferred.push(d),
            Some(n) => groups.entry((false, n)).or_default().push(d),
            None => groups.entry((true, 0)).or_default().push(d),
        }
    }
    let mut rest: Vec<((bool, u32), Vec<&Device>)> = groups.into_iter().collect();
    rest.sort_by_key(|(key, devs)| (Reverse(devs.len()), *key));
    let mut tiers = Vec::with_capacity(rest.len() + 1);
    if !preferred.is_empty() {
        tiers.push(preferred);
    }
    tiers.extend(rest.into_iter().map(|(_, devs)| devs));
    tiers
}

/// Picks up to `n` devices of one NUMA tier by the PF policy, counting picks into `pf_used`.
fn pick_from_tier<'a>(
    tier: Vec<&'a Device>,
    n: usize,
    pf_used: &mut BTreeMap<PciAddr, usize>,
    policy: AllocationPolicy,
) -> Vec<&'a Device> {
    // Per PF, free devices in PCI order (the tier is sorted by PCI address).
    let mut by_pf: BTreeMap<PciAddr, VecDeque<&Device>> = BTreeMap::new();
    for d in tier {
        by_pf.entry(d.pf).or_default().push_back(d);
    }
    let mut out = Vec::with_capacity(n);
    match policy {
        AllocationPolicy::Spread => {
            while out.len() < n {
                // The PF with the fewest devices chosen so far; the lowest address on ties.
                let Some(pf) = by_pf
                    .iter()
                    .filter(|(_, free)| !free.is_empty())
                    .min_by_key(|(pf, _)| (pf_used.get(pf).copied().unwrap_or(0), **pf))
                    .map(|(pf, _)| *pf)
                else {
                    break;
                };
                if let Some(d) = by_pf.get_mut(&pf).and_then(VecDeque::pop_front) {
                    *pf_used.entry(pf).or_default() += 1;
                    out.push(d);
                }
            }
        }
        AllocationPolicy::Pack => {
            // Taking from already used PFs costs no extra PF; among the others, the largest
            // first reaches the count with the fewest PFs.
            let mut order: Vec<(PciAddr, usize)> =
                by_pf.iter().map(|(pf, free)| (*pf, free.len())).collect();
            order.sort_by_key(|(pf, free)| {
                let used = pf_used.get(pf).copied().unwrap_or(0);
                (used == 0, Reverse(used), Reverse(*free), *pf)
            });
            for (pf, _) in order {
                let Some(free) = by_pf.get_mut(&pf) else {
                    continue;
                };
                while out.len() < n {
                    let Some(d) = free.pop_front() else { break };
                    *pf_used.entry(pf).or_default() += 1;
                    out.push(d);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Device `0000:<pf>:<vf/8>.<vf%8>` on PF `0000:<pf>:00.0`.
    fn dev(pf: u8, vf: u8, numa: Option<u32>) -> Device {
        let pci = PciAddr::new(0, pf, 2 + vf / 8, vf % 8).unwrap();
        Device {
            id: pci.to_string(),
            pci,
            healthy: true,
            numa_node: numa,
            pf: PciAddr::new(0, pf, 0, 0).unwrap(),
            pf_name: format!("pf{pf}"),
            driver: Some("iavf".into()),
            iommu_group: None,
        }
    }

    fn ids(devs: &[Device]) -> Vec<String> {
        devs.iter().map(|d| d.id.clone()).collect()
    }

    fn pfs_of(devs: &[Device], chosen: &[String]) -> Vec<u8> {
        chosen
            .iter()
            .map(|id| devs.iter().find(|d| &d.id == id).unwrap().pf.bus)
            .collect()
    }

    /// 4 PFs (buses 0x3b, 0x3c on NUMA 0; 0x86, 0x87 on NUMA 1) with `per_pf` VFs each.
    fn two_socket(per_pf: u8) -> Vec<Device> {
        let mut v = Vec::new();
        for (pf, numa) in [(0x3b, 0), (0x3c, 0), (0x86, 1), (0x87, 1)] {
            for vf in 0..per_pf {
                v.push(dev(pf, vf, Some(numa)));
            }
        }
        v
    }

    #[test]
    fn spread_takes_one_per_pf_round_robin() {
        let devs = two_socket(4);
        let all = ids(&devs);
        let got = preferred_allocation(&devs, &all, &[], 4, AllocationPolicy::Spread);
        // Both NUMA nodes have 8 free: node 0 wins the tie, then 3b,3c,3b,3c.
        assert_eq!(pfs_of(&devs, &got), [0x3b, 0x3c, 0x3b, 0x3c]);
        assert_eq!(got[0], "0000:3b:02.0");
        assert_eq!(got[2], "0000:3b:02.1");
    }

    #[test]
    fn pack_fills_one_pf_first() {
        let devs = two_socket(4);
        let all = ids(&devs);
        let got = preferred_allocation(&devs, &all, &[], 4, AllocationPolicy::Pack);
        assert_eq!(pfs_of(&devs, &got), [0x3b; 4]);
        let got = preferred_allocation(&devs, &all, &[], 6, AllocationPolicy::Pack);
        assert_eq!(pfs_of(&devs, &got), [0x3b, 0x3b, 0x3b, 0x3b, 0x3c, 0x3c]);
    }

    #[test]
    fn pack_prefers_the_pf_with_most_free() {
        let devs = two_socket(4);
        // On NUMA 0 (the only node available), 0x3b has one free VF and 0x3c all four.
        let avail: Vec<String> = devs
            .iter()
            .filter(|d| d.numa_node == Some(0))
            .filter(|d| d.pf.bus != 0x3b || d.pci.function == 0)
            .map(|d| d.id.clone())
            .collect();
        let got = preferred_allocation(&devs, &avail, &[], 3, AllocationPolicy::Pack);
        assert_eq!(pfs_of(&devs, &got), [0x3c; 3]);
    }

    #[test]
    fn must_include_pulls_its_numa_node() {
        let devs = two_socket(4);
        let all = ids(&devs);
        let must = vec![devs[8].id.clone()]; // on 0x86, NUMA 1
        for policy in [AllocationPolicy::Spread, AllocationPolicy::Pack] {
            let got = preferred_allocation(&devs, &all, &must, 3, policy);
            assert_eq!(got[0], must[0]);
            assert_eq!(got.len(), 3);
            assert!(pfs_of(&devs, &got).iter().all(|b| *b == 0x86 || *b == 0x87));
            if policy == AllocationPolicy::Spread {
                // must-include counts as one on 0x86, so 0x87 comes next.
                assert_eq!(pfs_of(&devs, &got), [0x86, 0x87, 0x86]);
            } else {
                assert_eq!(pfs_of(&devs, &got), [0x86, 0x86, 0x86]);
            }
        }
    }

    #[test]
    fn picks_the_numa_node_that_fits_the_whole_request() {
        let devs = two_socket(4);
        // Node 0 has 3 available, node 1 has 8: a request of 5 goes to node 1 only.
        let avail: Vec<String> = devs
            .iter()
            .filter(|d| d.numa_node == Some(1) || (d.pf.bus == 0x3b && d.pci.function < 3))
            .map(|d| d.id.clone())
            .collect();
        let got = preferred_allocation(&devs, &avail, &[], 5, AllocationPolicy::Spread);
        assert!(pfs_of(&devs, &got).iter().all(|b| *b >= 0x86), "{got:?}");
        // A request no node can hold alone spills over, largest node first.
        let got = preferred_allocation(&devs, &avail, &[], 10, AllocationPolicy::Spread);
        let pfs = pfs_of(&devs, &got);
        assert!(pfs[..8].iter().all(|b| *b >= 0x86));
        assert!(pfs[8..].iter().all(|b| *b == 0x3b));
    }

    #[test]
    fn not_enough_devices_gives_all_available() {
        let devs = two_socket(1);
        let avail = ids(&devs[..3]);
        let got = preferred_allocation(&devs, &avail, &[], 8, AllocationPolicy::Spread);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, avail);
    }

    #[test]
    fn unhealthy_unknown_and_duplicate_ids_are_skipped() {
        let mut devs = two_socket(2);
        devs[0].healthy = false;
        let mut avail = ids(&devs);
        avail.push("0000:ff:1f.7".into());
        avail.push(devs[1].id.clone());
        let got = preferred_allocation(&devs, &avail, &[], 16, AllocationPolicy::Spread);
        assert_eq!(got.len(), 7);
        assert!(!got.contains(&devs[0].id));
        assert!(!got.iter().any(|i| i == "0000:ff:1f.7"));
        let unique: HashSet<_> = got.iter().collect();
        assert_eq!(unique.len(), 7);
    }

    #[test]
    fn must_include_at_or_over_size_is_returned_whole() {
        let devs = two_socket(2);
        let all = ids(&devs);
        let must = vec![devs[5].id.clone(), devs[1].id.clone(), devs[5].id.clone()];
        let got = preferred_allocation(&devs, &all, &must, 1, AllocationPolicy::Spread);
        assert_eq!(got, [devs[5].id.clone(), devs[1].id.clone()]);
    }

    #[test]
    fn unknown_numa_is_its_own_group_and_deterministic() {
        let devs: Vec<Device> = (0..4)
            .flat_map(|vf| [dev(1, vf, None), dev(2, vf, None)])
            .collect();
        let mut avail = ids(&devs);
        let a = preferred_allocation(&devs, &avail, &[], 3, AllocationPolicy::Spread);
        avail.reverse();
        let b = preferred_allocation(&devs, &avail, &[], 3, AllocationPolicy::Spread);
        assert_eq!(a, b);
        assert_eq!(pfs_of(&devs, &a), [1, 2, 1]);
    }

    #[test]
    fn zero_size_is_empty() {
        let devs = two_socket(1);
        assert!(
            preferred_allocation(&devs, &ids(&devs), &[], 0, AllocationPolicy::Pack).is_empty()
        );
    }
}

//! Bringing an emulated NIC up, tearing it down, and reviving VFs whose veth died with a netns.

use std::collections::HashMap;
use std::path::Path;

use super::registers::{self, default_state};
use super::{
    EmulateError, EmulateSpec, EmulatedNic, EmulatedVf, MAX_VFS, eswitch, link_group,
    representor_mac, shaping, tree, validate_pf_name,
};
use crate::netlink::{Netlink, TopologyLink};
use crate::vf::{VfLinkState, VfState};

/// Builds (or reshapes) the emulated PF `spec.pf` with `spec.vfs` VFs and its sysfs tree.
///
/// Idempotent: the same spec again changes nothing and returns the same [`EmulatedNic`] (same PCI
/// addresses, same MACs). A different VF count adds or removes VFs (removed VFs lose their
/// registers; kept ones keep theirs). VFs whose veth was destroyed with a network namespace are
/// re-created with their registers re-applied (see [`revive_vf`]). Refuses to adopt a link named
/// `<pf>` that is not a bridge. On failure the NIC may be half-built; [`down`] removes it.
pub async fn up(spec: &EmulateSpec) -> Result<EmulatedNic, EmulateError> {
    validate_pf_name(&spec.pf)?;
    if spec.vfs == 0 || spec.vfs > MAX_VFS {
        return Err(EmulateError::InvalidVfCount(spec.vfs));
    }
    let root = spec.sysfs_root.as_path();
    let pf = spec.pf.as_str();
    let bus = match tree::locate(root, pf)? {
        Some((bus, _)) => bus,
        None => tree::allocate_bus(root, pf)?,
    };
    let nic = EmulatedNic::describe(pf, bus, spec.vfs);
    let pf_dir = tree::pf_dir(root, bus);

    let nl = Netlink::host()?;
    let links: HashMap<_, _> = nl
        .topology_links()
        .await?
        .into_iter()
        .map(|l| (l.name.clone(), l))
        .collect();

    let group = link_group(pf);
    let bridge = match links.get(pf) {
        Some(l) => {
            expect_kind(&l.name, l.kind.as_deref(), "bridge")?;
            if !l.up {
                nl.set_up_by_name(pf, true).await?;
            }
            if l.group != group {
                nl.set_group_by_name(pf, group).await?;
            }
            l.index
        }
        None => {
            nl.create_bridge(pf, nic.mac, group).await?;
            nl.topology_link(pf)
                .await?
                .ok_or_else(|| EmulateError::NoSuchPf {
                    pf: pf.to_string(),
                    root: root.to_path_buf(),
                })?
                .index
        }
    };

    // Shrink: links of VF indexes at or beyond the new count.
    for l in links.values() {
        if let Some((b'v' | b'r' | b'q', i)) = own_link(pf, l)
            && i >= spec.vfs
        {
            nl.delete_link_by_name(&l.name).await?;
        }
    }

    // The register files may not exist yet (first up); reading them is cheap either way.
    std::fs::create_dir_all(pf_dir.join(registers::REGISTERS_DIR))
        .map_err(|e| EmulateError::io("create", pf_dir.join(registers::REGISTERS_DIR), e))?;
    let _lock = registers::lock(&pf_dir)?;
    let states = registers::read_all(&pf_dir, spec.vfs)?;
    for (vf, state) in nic.vfs.iter().zip(&states) {
        match links.get(&vf.representor) {
            Some(rep) => {
                expect_kind(&rep.name, rep.kind.as_deref(), "veth")?;
                if rep.group != group {
                    nl.set_group_by_name(&vf.representor, group).await?;
                }
                let want_up = state.link_state != Some(VfLinkState::Disable);
                if rep.up != want_up {
                    nl.set_up_by_name(&vf.representor, want_up).await?;
                }
                // Default registers: a plain port of the PF bridge, as created.
                if rep.master != Some(bridge) || *state != default_state(vf.index) {
                    eswitch::apply_port(&nl, pf, vf, state, state).await?;
                }
            }
            None => {
                create_vf(&nl, &nic, vf, bridge, state).await?;
                if *state != default_state(vf.index) {
                    apply_vf_state(&nl, pf, vf, state).await?;
                }
            }
        }
    }
    tree::write_tree(root, &nic)?;
    Ok(nic)
}

/// Removes everything of emulated PF `pf`: the bridge, every VF veth pair (VF netdevs inside pods
/// die with their representors), the VLAN bridges, the ifb devices and the PF's sysfs tree (and
/// the tree's directories, root included, once empty).
///
/// Idempotent: `Ok` when nothing exists. Works on half-built or broken NICs: it finds links by
/// name and kind, not through the metadata, keeps going past failures and returns them all in
/// [`EmulateError::Teardown`].
pub async fn down(pf: &str, sysfs_root: &Path) -> Result<(), EmulateError> {
    validate_pf_name(pf)?;
    let mut errors = Vec::new();
    match Netlink::host() {
        Ok(nl) => remove_links(&nl, pf, &mut errors).await,
        Err(e) => errors.push(e.into()),
    }
    match tree::buses_of(sysfs_root, pf) {
        Ok(buses) => {
            for bus in buses {
                errors.extend(tree::remove_tree(sysfs_root, bus));
            }
        }
        Err(e) => errors.push(e),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EmulateError::Teardown(errors))
    }
}

/// Deletes the PF's bridge and every veth/ifb named like one of its VF links: all in one batched
/// request through the PF's link group when the group holds nothing else, one by one otherwise.
async fn remove_links(nl: &Netlink, pf: &str, errors: &mut Vec<EmulateError>) {
    let links = match nl.topology_links().await {
        Ok(l) => l,
        Err(e) => {
            errors.push(e.into());
            return;
        }
    };
    let group = link_group(pf);
    // Representors first: each takes its VF netdev along, wherever that is. The bridge last.
    let mut doomed: Vec<(u8, &str, u32)> = links
        .iter()
        .filter_map(|l| {
            if l.name == pf {
                return (l.kind.as_deref() == Some("bridge")).then_some((b'b', pf, l.group));
            }
            let (kind, _) = own_link(pf, l)?;
            Some((kind, l.name.as_str(), l.group))
        })
        .collect();
    if doomed.is_empty() {
        return;
    }
    doomed.sort_by_key(|(kind, _, _)| match kind {
        b'r' => 0,
        b'v' => 1,
        b'q' => 2,
        _ => 3,
    });
    let foreign_in_group = links
        .iter()
        .any(|l| l.group == group && !doomed.iter().any(|(_, n, _)| *n == l.name));
    if !foreign_in_group {
        let mut tagged = true;
        for (_, name, g) in &doomed {
            if *g != group && nl.set_group_by_name(name, group).await.is_err() {
                tagged = false;
            }
        }
        if tagged && nl.delete_link_group(group).await.is_ok() {
            return;
        }
    }
    for (_, name, _) in doomed {
        if let Err(e) = nl.delete_link_by_name(name).await {
            errors.push(e.into());
        }
    }
}

/// Is `l` one of PF `pf`'s links other than the PF bridge: a VF link (`<pf>v<i>`/`<pf>r<i>`
/// veths, `<pf>q<i>` ifbs) or a VLAN bridge (`<pf>b<hhh>`/`<pf>s<hhh>`, see [`eswitch`])?
/// Returns the letter and the index (the VLAN for bridges). Kinds are checked so another
/// emulated PF whose *bridge* is named like one of our veths (PF `a` vs PF `av1`) is never
/// touched, and VLAN bridges must also be in our link group (PF `a` vs a PF named `ab064`).
fn own_link(pf: &str, l: &TopologyLink) -> Option<(u8, u32)> {
    let rest = l.name.strip_prefix(pf)?;
    let (&letter, digits) = rest.as_bytes().split_first()?;
    let digits = std::str::from_utf8(digits).ok()?;
    let kind = l.kind.as_deref();
    match letter {
        b'v' | b'r' | b'q' => {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let want = if letter == b'q' { "ifb" } else { "veth" };
            let index = digits.parse().ok()?;
            (kind == Some(want)).then_some((letter, index))
        }
        b'b' | b's' => {
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let vlan = u32::from_str_radix(digits, 16).ok()?;
            (kind == Some("bridge") && l.group == link_group(pf)).then_some((letter, vlan))
        }
        _ => None,
    }
}

/// Refuses to adopt a link that is not of the kind the emulator would have made.
fn expect_kind(name: &str, kind: Option<&str>, expected: &'static str) -> Result<(), EmulateError> {
    if kind == Some(expected) {
        Ok(())
    } else {
        Err(EmulateError::ForeignLink {
            name: name.to_string(),
            found: kind.unwrap_or("device").to_string(),
            expected,
        })
    }
}

/// Creates VF `vf`'s veth pair as a port of `bridge`, the representor up unless the registers
/// say the link is disabled. A stray VF netdev of that name in the host (a veth whose
/// representor was renamed away) is deleted first.
async fn create_vf(
    nl: &Netlink,
    nic: &EmulatedNic,
    vf: &EmulatedVf,
    bridge: u32,
    state: &VfState,
) -> Result<(), EmulateError> {
    nl.delete_link_by_name(&vf.netdev).await?;
    let mac = match state.mac {
        Some(m) if !m.is_zero() => m,
        _ => vf.default_mac,
    };
    nl.create_veth_port(
        &vf.representor,
        representor_mac(&nic.pf, vf.index),
        state.link_state != Some(VfLinkState::Disable),
        bridge,
        &vf.netdev,
        mac,
        link_group(&nic.pf),
    )
    .await?;
    Ok(())
}

/// Applies all of `state` to a VF: the representor's admin state (link state), the shaping (max
/// TX rate), the host-side VF netdev's MAC if it is in the host namespace (a real VF takes its
/// admin MAC on reset; no admin MAC means the stable default) and the bridge port (VLAN group,
/// spoof check, see [`eswitch`]). A VF whose representor is gone is skipped: [`revive_vf`]
/// applies its state when it comes back.
pub(crate) async fn apply_vf_state(
    nl: &Netlink,
    pf: &str,
    vf: &EmulatedVf,
    state: &VfState,
) -> Result<(), EmulateError> {
    if nl.topology_link(&vf.representor).await?.is_none() {
        return Ok(());
    }
    apply_link_state(nl, vf, state).await?;
    apply_rate(nl, pf, vf, state).await?;
    apply_mac(nl, vf, state).await?;
    eswitch::apply_port(nl, pf, vf, state, state).await
}

/// Representor down for `disable`, up otherwise (the VF netdev loses/gets carrier).
pub(crate) async fn apply_link_state(
    nl: &Netlink,
    vf: &EmulatedVf,
    state: &VfState,
) -> Result<(), EmulateError> {
    let up = state.link_state != Some(VfLinkState::Disable);
    match nl.set_up_by_name(&vf.representor, up).await {
        Err(crate::netlink::NetlinkError::NotFound { .. }) => Ok(()),
        r => Ok(r?),
    }
}

/// tbf through the ifb for a non-zero max rate, nothing for 0.
pub(crate) async fn apply_rate(
    nl: &Netlink,
    pf: &str,
    vf: &EmulatedVf,
    state: &VfState,
) -> Result<(), EmulateError> {
    if state.max_tx_rate == 0 {
        shaping::clear(nl, vf).await
    } else {
        shaping::apply(nl, vf, state.max_tx_rate, link_group(pf)).await
    }
}

/// Sets the host-side VF netdev's MAC to the admin MAC (or the default when none is set).
pub(crate) async fn apply_mac(
    nl: &Netlink,
    vf: &EmulatedVf,
    state: &VfState,
) -> Result<(), EmulateError> {
    let Some(link) = nl.topology_link(&vf.netdev).await? else {
        return Ok(());
    };
    if link.kind.as_deref() != Some("veth") {
        return Ok(());
    }
    let mac = match state.mac {
        Some(m) if !m.is_zero() => m,
        _ => vf.default_mac,
    };
    nl.set_mac_by_name(&vf.netdev, mac).await?;
    Ok(())
}

/// Re-creates VF `vf` of emulated PF `pf` if its veth pair is gone (destroyed with a pod's
/// network namespace, where a real VF would have returned to the host): the pair under its
/// original names, the representor back on the bridge, and the VF's registers re-applied (link
/// state, rate, MAC, VLAN group and spoof check).
///
/// Returns `true` if it re-created the VF, `false` (a no-op) if the representor still exists: a
/// veth pair dies as one, so the VF netdev is alive somewhere, maybe inside a pod.
pub async fn revive_vf(pf: &str, vf: u32, sysfs_root: &Path) -> Result<bool, EmulateError> {
    validate_pf_name(pf)?;
    let nic = tree::load(sysfs_root, pf)?;
    let v = nic.vf(vf)?;
    let nl = Netlink::host()?;
    if nl.topology_link(&v.representor).await?.is_some() {
        return Ok(false);
    }
    let bridge = match nl.topology_link(pf).await? {
        Some(l) => {
            expect_kind(&l.name, l.kind.as_deref(), "bridge")?;
            l.index
        }
        None => {
            return Err(EmulateError::NoSuchPf {
                pf: pf.to_string(),
                root: sysfs_root.to_path_buf(),
            });
        }
    };
    let pf_dir = tree::pf_dir(sysfs_root, nic.bus);
    let _lock = registers::lock(&pf_dir)?;
    let state = registers::read(&pf_dir, vf)?;
    create_vf(&nl, &nic, v, bridge, &state).await?;
    apply_vf_state(&nl, pf, v, &state).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::{TopologyLink, link_group, own_link};

    fn link(name: &str, kind: &str, group: u32) -> TopologyLink {
        TopologyLink {
            index: 1,
            name: name.to_string(),
            kind: Some(kind.to_string()),
            master: None,
            up: true,
            group,
        }
    }

    #[test]
    fn own_links_match_name_and_kind() {
        let own = |name, kind| own_link("a", &link(name, kind, 0));
        assert_eq!(own("ar12", "veth"), Some((b'r', 12)));
        assert_eq!(own("av0", "veth"), Some((b'v', 0)));
        assert_eq!(own("aq3", "ifb"), Some((b'q', 3)));
        assert_eq!(own("av1", "bridge"), None);
        assert_eq!(own("aq3", "veth"), None);
        assert_eq!(own("av1v0", "veth"), None);
        assert_eq!(own("a", "bridge"), None);
        assert_eq!(own("ax1", "veth"), None);
    }

    #[test]
    fn vlan_bridges_are_ours_only_in_our_link_group() {
        let g = link_group("a");
        assert_eq!(
            own_link("a", &link("ab064", "bridge", g)),
            Some((b'b', 100))
        );
        assert_eq!(
            own_link("a", &link("asfff", "bridge", g)),
            Some((b's', 4095))
        );
        assert_eq!(own_link("a", &link("ab064", "bridge", 0)), None);
        assert_eq!(own_link("a", &link("ab064", "veth", g)), None);
        assert_eq!(own_link("a", &link("ab64", "bridge", g)), None);
    }
}

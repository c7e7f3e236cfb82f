//! VF control for the emulated NIC (DESIGN.md §3): each setter updates the VF's stored
//! "registers" and applies the eswitch equivalent — VLAN as the representor's bridge, spoofchk as
//! a locked port with a static FDB entry, max rate as a tbf behind an ingress redirect, link state
//! as the representor's admin state, MAC on the host-side VF netdev. Each call costs a few netlink
//! requests on that VF's links, whatever the number of VFs.
//!
//! Every call applies first and records after, under the PF's register lock: a failed call leaves
//! the registers as they were. Where the emulation has no equivalent, the call answers like a
//! real driver would: min TX rate ≠ 0 is refused as unsupported (as igb does), a VF index beyond
//! the VF count and out-of-range VLAN/QoS values are invalid (the kernel's EINVAL). 802.1ad is
//! accepted and isolated as its own VLAN space; QoS and trust are recorded only.
//!
//! A VF's netdev is known by its name `<pf>v<i>` in the host (the synthetic tree does not follow
//! renames) and by its veth pairing with the representor in a pod; one whose veth died with a
//! namespace is re-created ([`nic::revive_vf`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{
    EmulateError, EmulatedNic, eswitch, nic, registers, representor_name, tree, validate_pf_name,
    vf_netdev_name,
};
use crate::mac::MacAddr;
use crate::netlink::{LinkInfo, Netlink, NetlinkError};
use crate::pci::PciAddr;
use crate::vf::{
    VfAttr, VfChange, VfControl, VfError, VfErrorKind, VfLinkState, VfNetdevs, VfState, VfVlan,
    configure_each,
};

/// Drives the emulated NIC's "VFs" with bridge and tc equivalents. Keeps no VF state: every call
/// reads the registers from the PF's sysfs directory, so any number of processes (one per CNI
/// call) see the same VFs. Only the NIC's shape (names, bus, VF count) is read once per backend
/// (a backend lives for one CNI call or one agent request), so a DEL that restores six
/// attributes does not parse the 256-VF description six times.
pub struct Emulated {
    nl: Netlink,
    sysfs_root: PathBuf,
    nics: Mutex<Vec<Arc<EmulatedNic>>>,
}

/// Which parts of the emulation a register change has to be re-applied to.
#[derive(Clone, Copy)]
struct Effects {
    /// The host-side VF netdev's MAC (and, through `port`, the port's FDB entry for it).
    mac: bool,
    /// The representor's bridge port: VLAN group, FDB entry, lock.
    port: bool,
    /// The ifb + tbf shaping.
    rate: bool,
    /// The representor's admin state.
    link_state: bool,
}

impl Effects {
    /// What setting the attributes of `c` has to re-apply.
    fn of(c: &VfChange) -> Effects {
        Effects {
            mac: c.mac.is_some(),
            port: c.mac.is_some() || c.vlan.is_some() || c.spoofchk.is_some(),
            rate: c.rate.is_some(),
            link_state: c.link_state.is_some(),
        }
    }
}

impl Emulated {
    /// A backend using `nl` (a connection in the host namespace, where the bridge and the
    /// representors live) for the emulated PFs described under `sysfs_root`.
    pub fn new(nl: Netlink, sysfs_root: &Path) -> Self {
        Emulated {
            nl,
            sysfs_root: sysfs_root.to_path_buf(),
            nics: Mutex::new(Vec::new()),
        }
    }

    /// The emulated PF is a Linux bridge: its VFs can carry traffic iff it is administratively
    /// up. A bridge's carrier only says whether some port is up, i.e. whether some VF is in use,
    /// so it is not the "cable"; `ip link set <pf> down` is.
    pub fn pf_link_healthy(link: &LinkInfo) -> bool {
        link.up
    }

    /// PF `pf`'s description, read from its sysfs tree on first use.
    fn nic(&self, pf: &str) -> Result<Arc<EmulatedNic>, EmulateError> {
        validate_pf_name(pf)?;
        if let Ok(cache) = self.nics.lock()
            && let Some(n) = cache.iter().find(|n| n.pf == pf)
        {
            return Ok(n.clone());
        }
        let n = Arc::new(tree::load(&self.sysfs_root, pf)?);
        if let Ok(mut cache) = self.nics.lock() {
            cache.push(n.clone());
        }
        Ok(n)
    }

    /// Read-modify-apply-record of VF `vf`'s registers under the PF's lock: one register read
    /// and write however many attributes `c` sets, each part of the emulation it touches
    /// applied once.
    async fn update(
        &self,
        pf: &str,
        vf: u32,
        op: &'static str,
        c: &VfChange,
    ) -> Result<(), VfError> {
        let err = emulation_error(pf, vf, op);
        let nic = self.nic(pf).map_err(err)?;
        let v = nic.vf(vf).map_err(err)?;
        let pf_dir = tree::pf_dir(&self.sysfs_root, nic.bus);
        let _lock = registers::lock(&pf_dir).map_err(err)?;
        let old = registers::read(&pf_dir, vf).map_err(err)?;
        let mut state = old.clone();
        record(&mut state, c);
        match self.apply(pf, v, &old, &state, Effects::of(c)).await {
            // The VF's links vanished mid-call (its pod's namespace is being torn down): as when
            // they were gone before the call, the registers are recorded and revive_vf applies
            // them to the re-created VF.
            Err(e) if e.is_link_gone() => {}
            r => r.map_err(err)?,
        }
        registers::write(&pf_dir, &state).map_err(err)
    }

    /// Applies the parts of `new` that `effects` names (the MAC before the port, whose FDB entry
    /// follows it).
    async fn apply(
        &self,
        pf: &str,
        v: &super::EmulatedVf,
        old: &VfState,
        new: &VfState,
        effects: Effects,
    ) -> Result<(), EmulateError> {
        if effects.mac {
            nic::apply_mac(&self.nl, v, new).await?;
        }
        if effects.port {
            eswitch::apply_port(&self.nl, pf, v, old, new).await?;
        }
        if effects.rate {
            nic::apply_rate(&self.nl, pf, v, new).await?;
        }
        if effects.link_state {
            nic::apply_link_state(&self.nl, v, new).await?;
        }
        Ok(())
    }
}

/// Maps the emulator's error for operation `op` on VF `vf` of `pf` to the VF-control error.
fn emulation_error<'a>(
    pf: &'a str,
    vf: u32,
    op: &'static str,
) -> impl Fn(EmulateError) -> VfError + Copy + 'a {
    move |e| VfError::new(pf, vf, op, VfErrorKind::Emulation(e.to_string()))
}

/// Writes what `c` sets into the registers `s`. The emulation shapes a maximum only, so the
/// minimum is recorded as 0 (a non-zero one is refused before this).
fn record(s: &mut VfState, c: &VfChange) {
    if let Some(mac) = c.mac {
        s.mac = Some(mac);
    }
    if let Some(vlan) = c.vlan {
        s.vlan = vlan;
    }
    if let Some((_, max)) = c.rate {
        s.min_tx_rate = 0;
        s.max_tx_rate = max;
    }
    if let Some(on) = c.spoofchk {
        s.spoofchk = Some(on);
    }
    if let Some(on) = c.trust {
        s.trust = Some(on);
    }
    if let Some(state) = c.link_state {
        s.link_state = Some(state);
    }
}

/// A multicast MAC is no station's address (the kernel's EINVAL).
fn check_mac(pf: &str, vf: u32, op: &'static str, mac: MacAddr) -> Result<(), VfError> {
    if mac.is_multicast() {
        return Err(invalid(pf, vf, op, format!("{mac} is a multicast address")));
    }
    Ok(())
}

/// VLAN ≤ 4095, QoS ≤ 7, as the kernel checks.
fn check_vlan(pf: &str, vf: u32, op: &'static str, vlan: VfVlan) -> Result<(), VfError> {
    if vlan.vlan > 4095 || vlan.qos > 7 {
        return Err(invalid(
            pf,
            vf,
            op,
            format!("VLAN {} QoS {} (VLAN ≤ 4095, QoS ≤ 7)", vlan.vlan, vlan.qos),
        ));
    }
    Ok(())
}

/// The emulation shapes a maximum only: a guaranteed minimum is unsupported (as on igb).
fn check_rate(pf: &str, vf: u32, op: &'static str, min_mbps: u32) -> Result<(), VfError> {
    if min_mbps != 0 {
        return Err(VfError::new(
            pf,
            vf,
            op,
            VfErrorKind::Unsupported(format!(
                "min_tx_rate {min_mbps} Mbit/s: the emulated NIC cannot guarantee a minimum rate"
            )),
        ));
    }
    Ok(())
}

/// An argument the kernel would refuse with EINVAL.
fn invalid(pf: &str, vf: u32, op: &'static str, why: String) -> VfError {
    VfError::new(
        pf,
        vf,
        op,
        VfErrorKind::Emulation(format!("invalid argument: {why}")),
    )
}

impl VfControl for Emulated {
    /// The registers of every VF of `pf`, in index order. Errors name VF 0.
    async fn vf_states(&self, pf: &str) -> Result<Vec<VfState>, VfError> {
        let err = emulation_error(pf, 0, "read VF states");
        let nic = self.nic(pf).map_err(err)?;
        let pf_dir = tree::pf_dir(&self.sysfs_root, nic.bus);
        registers::read_all(&pf_dir, nic.vfs.len() as u32).map_err(err)
    }

    /// VF `vf`'s registers alone (one file, whatever the VF count).
    async fn vf_state(&self, pf: &str, vf: u32) -> Result<VfState, VfError> {
        let err = emulation_error(pf, vf, "read VF state");
        let nic = self.nic(pf).map_err(err)?;
        nic.vf(vf).map_err(err)?;
        registers::read(&tree::pf_dir(&self.sysfs_root, nic.bus), vf).map_err(err)
    }

    /// Records the admin MAC (all-zero clears it), updates the port's FDB entry, and sets the VF
    /// netdev's MAC if it is in the host namespace. Multicast MACs are invalid.
    async fn set_mac(&self, pf: &str, vf: u32, mac: MacAddr) -> Result<(), VfError> {
        const OP: &str = "set VF MAC";
        check_mac(pf, vf, OP, mac)?;
        let c = VfChange {
            mac: Some(mac),
            ..VfChange::default()
        };
        self.update(pf, vf, OP, &c).await
    }

    /// Moves the VF's representor into the VLAN group of `vlan` (0 = untagged). VLAN ≤ 4095,
    /// QoS ≤ 7, as the kernel checks.
    async fn set_vlan(&self, pf: &str, vf: u32, vlan: VfVlan) -> Result<(), VfError> {
        const OP: &str = "set VF VLAN";
        check_vlan(pf, vf, OP, vlan)?;
        let c = VfChange {
            vlan: Some(vlan),
            ..VfChange::default()
        };
        self.update(pf, vf, OP, &c).await
    }

    /// Shapes what the VF sends to `max_mbps` (0 = unlimited). `min_mbps` ≠ 0 is unsupported.
    async fn set_rate(
        &self,
        pf: &str,
        vf: u32,
        min_mbps: u32,
        max_mbps: u32,
    ) -> Result<(), VfError> {
        const OP: &str = "set VF rate";
        check_rate(pf, vf, OP, min_mbps)?;
        let c = VfChange {
            rate: Some((0, max_mbps)),
            ..VfChange::default()
        };
        self.update(pf, vf, OP, &c).await
    }

    /// Turns the VF's source-MAC check on or off (effective only while an admin MAC is set).
    async fn set_spoofchk(&self, pf: &str, vf: u32, on: bool) -> Result<(), VfError> {
        let c = VfChange {
            spoofchk: Some(on),
            ..VfChange::default()
        };
        self.update(pf, vf, "set VF spoofchk", &c).await
    }

    /// Records trust; the emulation has no privileged VF operations to gate.
    async fn set_trust(&self, pf: &str, vf: u32, on: bool) -> Result<(), VfError> {
        let c = VfChange {
            trust: Some(on),
            ..VfChange::default()
        };
        self.update(pf, vf, "set VF trust", &c).await
    }

    /// `Disable` takes the representor down (the VF netdev loses carrier); `Enable` and `Auto`
    /// (the bridge PF is always up) bring it up.
    async fn set_link_state(&self, pf: &str, vf: u32, state: VfLinkState) -> Result<(), VfError> {
        let c = VfChange {
            link_state: Some(state),
            ..VfChange::default()
        };
        self.update(pf, vf, "set VF link state", &c).await
    }

    /// Every attribute in one register transaction: the arguments are checked first (a refusal
    /// changes nothing), then one read, each part of the emulation applied once, one write. If
    /// applying fails, the attributes are set one at a time to name the one that failed.
    async fn configure(&self, pf: &str, vf: u32, c: &VfChange) -> Result<(), (VfAttr, VfError)> {
        if let Some(mac) = c.mac {
            check_mac(pf, vf, "set VF MAC", mac).map_err(|e| (VfAttr::Mac, e))?;
        }
        if let Some(vlan) = c.vlan {
            check_vlan(pf, vf, "set VF VLAN", vlan).map_err(|e| (VfAttr::Vlan, e))?;
        }
        if let Some((min, _)) = c.rate {
            check_rate(pf, vf, "set VF rate", min).map_err(|e| (VfAttr::Rate, e))?;
        }
        match self.update(pf, vf, "configure VF", c).await {
            Ok(()) => Ok(()),
            Err(_) => configure_each(self, pf, vf, c).await,
        }
    }
}

impl VfNetdevs for Emulated {
    /// The link named `<pf>v<i>` in the host namespace.
    async fn host_netdev(
        &self,
        pf: &str,
        vf: u32,
        _pci: PciAddr,
    ) -> Result<Option<LinkInfo>, VfError> {
        self.nl
            .link_by_name(&vf_netdev_name(pf, vf))
            .await
            .map_err(|e| VfError::new(pf, vf, "look up VF netdev", e))
    }

    /// Re-creates the VF's veth pair if it died with a namespace, registers re-applied; a no-op
    /// while the pair exists (the kernel tears a deleted namespace down asynchronously, so a
    /// caller waiting for the VF retries).
    async fn revive(&self, pf: &str, vf: u32) -> Result<(), VfError> {
        nic::revive_vf(pf, vf, &self.sysfs_root)
            .await
            .map(|_| ())
            .map_err(emulation_error(pf, vf, "re-create emulated VF"))
    }

    /// `<pf>v<i>`: the emulated NIC's tree does not follow renames.
    fn home_name(&self, pf: &str, vf: u32) -> Option<String> {
        Some(vf_netdev_name(pf, vf))
    }

    /// The link of `inside`'s namespace paired with the representor `<pf>r<i>`, which stays in
    /// the host: the representor's peer index (IFLA_LINK) names a link in the pod namespace, and
    /// that link must be a veth whose own peer is the representor. A pod's own veth (its `eth0`)
    /// has another peer, so it never matches, whatever its name or MAC.
    async fn netdev_in(
        &self,
        inside: &Netlink,
        pf: &str,
        vf: u32,
        _pci: PciAddr,
    ) -> Result<Option<String>, NetlinkError> {
        let Some(rep) = self.nl.link_by_name(&representor_name(pf, vf)).await? else {
            return Ok(None);
        };
        let Some(peer) = rep.link else {
            return Ok(None);
        };
        Ok(inside
            .link_by_index(peer)
            .await?
            .filter(|l| l.kind.as_deref() == Some("veth") && l.link == Some(rep.index))
            .map(|l| l.name))
    }
}

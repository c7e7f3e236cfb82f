//! Attaching a VF to a pod and giving it back: the kernel half of CNI ADD and DEL, shared by the
//! `sriov` CNI (ADD, DEL) and the agent (GC, reconciler), so there is one undo procedure.
//!
//! [`apply`] configures the VF through its PF, moves its netdev into the pod namespace under the
//! pod-side name and sets addresses and routes; on any failure it runs [`restore`] before
//! returning, so a failed ADD leaves the VF as it was. [`restore`] is idempotent and never stops at
//! the first failure: it restores the VF's configuration on the PF, then finds the VF wherever it
//! is (host under any name, still in the pod namespace, or destroyed with it on the emulated NIC),
//! renames it back and restores MAC and MTU, then reports every error together.

mod machine;
mod model;

#[cfg(test)]
mod tests;

pub use machine::{LinkOps, Machine, NodeMachine};
pub use model::{Applied, AttachError, Original, PodConfig, Route, Step, VfSettings, VfTarget};

use crate::netns::NetnsHandle;
use crate::vf::{VfControl, VfState};

/// Applies `settings` to the VF and moves it into `pod_ns` as configured by `pod`. On failure,
/// everything done is undone (see [`restore`]) and the error names the failed step and carries
/// any rollback errors.
pub async fn apply<M: Machine>(
    m: &M,
    t: &VfTarget,
    orig: &Original,
    settings: &VfSettings,
    pod_ns: &NetnsHandle,
    pod: &PodConfig,
) -> Result<Applied, AttachError> {
    match apply_steps(m, t, orig, settings, pod_ns, pod).await {
        Ok(a) => Ok(a),
        Err(mut e) => {
            if let Err(rb) = restore(m, t, orig, settings, Some(pod_ns), &pod.ifname).await {
                e.rollback = rb.into_iter().map(|e| e.to_string()).collect();
            }
            Err(e)
        }
    }
}

async fn apply_steps<M: Machine>(
    m: &M,
    t: &VfTarget,
    orig: &Original,
    s: &VfSettings,
    pod_ns: &NetnsHandle,
    pod: &PodConfig,
) -> Result<Applied, AttachError> {
    let vfs = m.vfs();
    let (pf, vf) = (t.pf.as_str(), t.index);
    let nl = |step| move |e| AttachError::netlink(step, e);
    // 0. The pod-side name must be free, before anything changes: if it is taken (the pod's own
    // `eth0`, or `lo`), the kernel would move the VF in under its host name and fail the rename.
    let inside = if t.vfio {
        None
    } else {
        let inside = m.enter(pod_ns).map_err(nl(Step::EnterPod))?;
        // A failed look-up is a failure to read the pod namespace, not a taken name.
        if inside
            .link_by_name(&pod.ifname)
            .await
            .map_err(nl(Step::EnterPod))?
            .is_some()
        {
            return Err(AttachError::msg(
                Step::IfnameFree,
                format!(
                    "CNI_IFNAME \"{}\" already exists in the pod namespace {}",
                    pod.ifname,
                    pod_ns.path().display()
                ),
            ));
        }
        Some(inside)
    };
    // 1. Everything set through the PF, in one request where the device takes one.
    let configure_pf = || async move {
        m.checkpoint(Step::VfConfig);
        vfs.configure(pf, vf, &s.change())
            .await
            .map_err(AttachError::vf_attr)
    };
    let Some(inside) = inside else {
        // A VF bound to vfio-pci has no netdev: the pod's userspace driver owns it.
        configure_pf().await?;
        return Ok(Applied::default());
    };
    // 2. The VF netdev, still in the host namespace, then the PF.
    let host = m.host();
    let dev = orig.netdev.as_str();
    m.checkpoint(Step::HostDown);
    host.set_down(dev).await.map_err(nl(Step::HostDown))?;
    if let Some(mac) = s.mac {
        // Most VF drivers only take the PF-assigned MAC after a reset: set it on the netdev too,
        // and before the PF's: once the PF has set an admin MAC, igb refuses an untrusted VF's own
        // MAC change (igbvf then answers EADDRNOTAVAIL) as soon as the VF has been up once.
        m.checkpoint(Step::NetdevMac);
        host.set_mac(dev, mac).await.map_err(nl(Step::NetdevMac))?;
    }
    configure_pf().await?;
    if let Some(mtu) = pod.mtu {
        host.set_mtu(dev, mtu).await.map_err(nl(Step::NetdevMtu))?;
    }
    // 3. Into the pod, renamed in the same request.
    m.checkpoint(Step::MoveToPod);
    host.move_to_netns(dev, pod_ns, &pod.ifname)
        .await
        .map_err(nl(Step::MoveToPod))?;
    let ifname = pod.ifname.as_str();
    m.checkpoint(Step::Address);
    for a in &pod.addresses {
        inside
            .add_address(ifname, *a)
            .await
            .map_err(nl(Step::Address))?;
    }
    inside.set_up(ifname).await.map_err(nl(Step::PodUp))?;
    m.checkpoint(Step::Route);
    for r in &pod.routes {
        inside
            .add_route(ifname, r.dst, r.gw)
            .await
            .map_err(nl(Step::Route))?;
    }
    m.checkpoint(Step::ReadBack);
    let link = inside
        .link_by_name(ifname)
        .await
        .map_err(nl(Step::ReadBack))?
        .ok_or_else(|| {
            AttachError::msg(
                Step::ReadBack,
                format!("{ifname} vanished from the pod namespace"),
            )
        })?;
    Ok(Applied {
        ifname: link.name,
        mac: link.mac,
        mtu: link.mtu,
    })
}

/// Gives the VF back: first the original value of every VF attribute `touched` sets on the PF
/// (only those: restoring an attribute ADD never changed could fail on drivers without it, e.g.
/// link state on igb), then the netdev in the host namespace under its original name, MAC and
/// MTU. Idempotent; attempts every step and returns all errors.
///
/// `pod_ns` is the pod's namespace if it still exists (the caller checked its identity); `ifname`
/// is the pod-side name the VF was given.
pub async fn restore<M: Machine>(
    m: &M,
    t: &VfTarget,
    orig: &Original,
    touched: &VfSettings,
    pod_ns: Option<&NetnsHandle>,
    ifname: &str,
) -> Result<(), Vec<AttachError>> {
    let mut errs = Vec::new();
    let vfs = m.vfs();
    let (pf, vf, o) = (t.pf.as_str(), t.index, &orig.vf);
    // The PF side first, starting with the admin MAC: while the PF holds one, igb refuses an
    // untrusted VF's own MAC change, so the netdev could not get its original MAC back. Clearing
    // it (all-zero) is also how "no admin MAC" is put back.
    let admin_mac = o.mac.filter(|m| !m.is_zero());
    let undo = touched.undo(o);
    if !undo.is_empty() && vfs.configure(pf, vf, &undo).await.is_err() {
        // Refused as a whole: attempt each attribute alone, so one refusal does not keep the
        // others from being put back, and every error is reported.
        if touched.mac.is_some() {
            let r = vfs.set_mac(pf, vf, crate::mac::MacAddr::default()).await;
            // Some drivers (older igb) refuse the all-zero MAC: then there is nothing to clear.
            if r.as_ref().err().and_then(|e| e.errno()) != Some(libc::EINVAL) {
                note(&mut errs, Step::VfMac, r);
            }
        }
        errs.extend(restore_vf_attributes(vfs, pf, vf, o, touched).await);
    }
    if !t.vfio
        && let Err(e) = restore_netdev(m, t, orig, pod_ns, ifname).await
    {
        errs.push(e);
    }
    // An admin MAC the PF reported before ADD goes back last, unless it is just the VF's own
    // address: igb reports the MAC an active VF registered itself exactly like an admin MAC, and
    // the netdev restore above has registered it again. Setting it as an admin MAC would lock an
    // untrusted VF's MAC (the next ADD could not set the pod's MAC on the netdev).
    if touched.mac.is_some()
        && let Some(mac) = admin_mac
        && (t.vfio || orig.mac != Some(mac))
        && let Err(e) = vfs.set_mac(pf, vf, mac).await
    {
        errs.push(AttachError::vf(Step::VfMac, e));
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Puts back the original value of every VF attribute other than the MAC that `touched` sets
/// on the PF (VLAN, rates, spoof check, trust, link state), attempting each and returning every
/// error. The PF half of [`restore`], also used by the agent when it releases an attachment a
/// live pod table re-apply changed.
pub async fn restore_vf_attributes<V: VfControl>(
    vfs: &V,
    pf: &str,
    vf: u32,
    o: &VfState,
    touched: &VfSettings,
) -> Vec<AttachError> {
    let mut errs = Vec::new();
    if touched.vlan.is_some() {
        note(&mut errs, Step::VfVlan, vfs.set_vlan(pf, vf, o.vlan).await);
    }
    if touched.min_tx_rate.is_some() || touched.max_tx_rate.is_some() {
        let r = vfs.set_rate(pf, vf, o.min_tx_rate, o.max_tx_rate).await;
        note(&mut errs, Step::VfRate, r);
    }
    if let (Some(_), Some(on)) = (touched.spoofchk, o.spoofchk) {
        note(
            &mut errs,
            Step::VfSpoofchk,
            vfs.set_spoofchk(pf, vf, on).await,
        );
    }
    if let (Some(_), Some(on)) = (touched.trust, o.trust) {
        note(&mut errs, Step::VfTrust, vfs.set_trust(pf, vf, on).await);
    }
    if let (Some(_), Some(state)) = (touched.link_state, o.link_state) {
        note(
            &mut errs,
            Step::VfLinkState,
            vfs.set_link_state(pf, vf, state).await,
        );
    }
    errs
}

/// Records a restore step's failure in `errs`, except "not supported": the driver has no such
/// attribute (e.g. link state on igb), so it cannot have been changed and there is nothing to
/// put back — failing there would make DEL retry forever.
fn note(errs: &mut Vec<AttachError>, step: Step, r: Result<(), crate::vf::VfError>) {
    match r {
        Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => {
            tracing::debug!(%step, error = %e, "restore: attribute not supported, nothing to restore");
        }
        Err(e) => errs.push(AttachError::vf(step, e)),
        Ok(()) => {}
    }
}

async fn restore_netdev<M: Machine>(
    m: &M,
    t: &VfTarget,
    orig: &Original,
    pod_ns: Option<&NetnsHandle>,
    ifname: &str,
) -> Result<(), AttachError> {
    let nl = |step| move |e| AttachError::netlink(step, e);
    let host = m.host();
    let mut name = m.find_in_host(t, orig).await;
    // A VF moved out of the pod just now is down and has no addresses (a namespace move drops
    // them), so it skips those two requests.
    let mut fresh = false;
    if name.is_none()
        && let Some(ns) = pod_ns
    {
        name = bring_back(m, ns, t, orig, ifname).await?;
        fresh = name.is_some();
    }
    if name.is_none() {
        // The namespace is gone: real VFs come back to the host by themselves (maybe a moment
        // later); the emulated NIC's veth died with it and is re-created.
        name = m
            .recover(t, orig)
            .await
            .map_err(|e| AttachError::vf(Step::Recover, e))?;
    }
    let Some(name) = name else {
        return Err(AttachError::msg(
            Step::Locate,
            format!(
                "VF {} netdev not found in the host or the pod namespace",
                t.pci
            ),
        ));
    };
    if !fresh {
        host.set_down(&name).await.map_err(nl(Step::HostDown))?;
    }
    if name != orig.netdev {
        host.set_name(&name, &orig.netdev)
            .await
            .map_err(nl(Step::Rename))?;
    }
    let dev = orig.netdev.as_str();
    if !fresh {
        host.flush_addresses(dev).await.map_err(nl(Step::Address))?;
    }
    if let Some(mac) = orig.mac {
        host.set_mac(dev, mac).await.map_err(nl(Step::NetdevMac))?;
    }
    if orig.mtu > 0 {
        host.set_mtu(dev, orig.mtu)
            .await
            .map_err(nl(Step::NetdevMtu))?;
    }
    Ok(())
}

/// Moves the VF out of a live pod namespace, renaming it to its host name in the same request.
/// The VF is found by what the pod cannot fake ([`Machine::find_in_pod`]: PCI parent device, or
/// the emulated VF's veth peer), never by name: the pod may own a link called `ifname` (its
/// `eth0`) or even one called like the VF's host name. `Ok(None)` when no link there is provably
/// this VF; then nothing is moved.
async fn bring_back<M: Machine>(
    m: &M,
    ns: &NetnsHandle,
    t: &VfTarget,
    orig: &Original,
    ifname: &str,
) -> Result<Option<String>, AttachError> {
    let nl = |step| move |e| AttachError::netlink(step, e);
    let host_name = orig.netdev.as_str();
    let inside = m.enter(ns).map_err(nl(Step::EnterPod))?;
    let Some(found) = m
        .find_in_pod(&inside, t, orig)
        .await
        .map_err(nl(Step::Locate))?
    else {
        tracing::warn!(vf = %t.pci, ifname, "no link in the pod namespace is provably this VF");
        return Ok(None);
    };
    inside.set_down(&found).await.map_err(nl(Step::PodDown))?;
    inside
        .move_to_netns(&found, m.host_ns(), host_name)
        .await
        .map_err(nl(Step::MoveToHost))?;
    Ok(Some(host_name.to_string()))
}

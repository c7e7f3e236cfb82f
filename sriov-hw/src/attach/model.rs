//! The data an attachment is made of: which VF, how it was, what to set, what came out.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::cidr::IpCidr;
use crate::mac::MacAddr;
use crate::netlink::NetlinkError;
use crate::pci::PciAddr;
use crate::vf::{VfAttr, VfChange, VfError, VfLinkState, VfState, VfVlan};

/// The VF being attached: found by PCI address, configured through its PF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfTarget {
    /// The VF's own PCI address (`0000:03:10.2`): how it is found again in any namespace.
    pub pci: PciAddr,
    /// The PF's netdev name in the host namespace.
    pub pf: String,
    /// The VF's index on its PF, as the PF's netlink VF attributes number it.
    pub index: u32,
    /// Bound to vfio-pci: no netdev to move, only the PF-side configuration applies.
    pub vfio: bool,
}

/// How the VF was before ADD; what DEL restores. Captured (and recorded in the ledger) before
/// anything is changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Original {
    /// The VF netdev's host name (empty for vfio-pci VFs).
    pub netdev: String,
    /// The VF netdev's MAC before ADD, restored on DEL; `None` if it had none.
    pub mac: Option<MacAddr>,
    /// 0 = unknown (not restored).
    pub mtu: u32,
    /// The VF's configuration on the PF.
    pub vf: VfState,
}

/// VF attributes to set through the PF; `None` leaves an attribute as it is (and DEL then does
/// not touch it either).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VfSettings {
    /// Admin MAC set through the PF (and on the netdev); the pod's MAC.
    pub mac: Option<MacAddr>,
    /// Port VLAN (tag, QoS, protocol) the PF inserts and strips for the VF.
    pub vlan: Option<VfVlan>,
    /// Guaranteed TX rate in Mbit/s; 0 = none. Unset with `max_tx_rate` set counts as 0.
    pub min_tx_rate: Option<u32>,
    /// TX rate cap in Mbit/s; 0 = unlimited. Unset with `min_tx_rate` set counts as 0.
    pub max_tx_rate: Option<u32>,
    /// Whether the PF drops frames whose source MAC is not the VF's.
    pub spoofchk: Option<bool>,
    /// Trusted VFs may change their MAC and enter promiscuous/multicast modes themselves.
    pub trust: Option<bool>,
    /// Whether the VF's link follows the PF, is forced up, or forced down.
    pub link_state: Option<VfLinkState>,
}

impl VfSettings {
    /// The rate ADD sets, if it sets one: an unset bound beside a set one counts as 0.
    fn rate(&self) -> Option<(u32, u32)> {
        (self.min_tx_rate.is_some() || self.max_tx_rate.is_some())
            .then(|| (self.min_tx_rate.unwrap_or(0), self.max_tx_rate.unwrap_or(0)))
    }

    /// What ADD sets on the PF, as one change.
    pub fn change(&self) -> VfChange {
        VfChange {
            mac: self.mac,
            vlan: self.vlan,
            rate: self.rate(),
            spoofchk: self.spoofchk,
            trust: self.trust,
            link_state: self.link_state,
        }
    }

    /// What puts back, for the attributes these settings touch (only those), the values `orig`
    /// reported before ADD; the admin MAC is cleared (all-zero), since an admin MAC to put back
    /// goes on only after the netdev has its own (see [`super::restore`]). Spoof check, trust
    /// and link state the driver never reported stay as they are.
    pub fn undo(&self, orig: &VfState) -> VfChange {
        VfChange {
            mac: self.mac.map(|_| MacAddr::default()),
            vlan: self.vlan.map(|_| orig.vlan),
            rate: self.rate().map(|_| (orig.min_tx_rate, orig.max_tx_rate)),
            spoofchk: self.spoofchk.and(orig.spoofchk),
            trust: self.trust.and(orig.trust),
            link_state: self.link_state.and(orig.link_state),
        }
    }
}

/// A route to add in the pod (`gw: None` = on-link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (`0.0.0.0/0` for a default route).
    pub dst: IpCidr,
    /// Next hop; `None` = on-link (scope link).
    pub gw: Option<IpAddr>,
}

/// The pod side: the interface name, MTU, addresses and routes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodConfig {
    /// The interface name inside the pod (`CNI_IFNAME`, e.g. `net1`).
    pub ifname: String,
    /// MTU in bytes to set on the VF netdev before the move; `None` keeps the current one.
    pub mtu: Option<u32>,
    /// Addresses (with prefix length) to add in the pod, typically from IPAM.
    pub addresses: Vec<IpCidr>,
    /// Routes to add in the pod after the interface is up.
    pub routes: Vec<Route>,
}

/// What the pod interface looks like after ADD (for the CNI result).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// The name the kernel reports for the pod interface, read back after the move.
    pub ifname: String,
    /// The pod interface's effective MAC as read back (`None` if the link reports none).
    pub mac: Option<MacAddr>,
    /// The pod interface's MTU in bytes, as read back.
    pub mtu: u32,
}

/// The step of ADD or DEL that failed, named in errors so an operator knows what was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The pod-side name (`CNI_IFNAME`) is already taken in the pod namespace: nothing is moved,
    /// since the kernel would move the VF in under its host name and then fail the rename.
    IfnameFree,
    /// Configuring the VF on the PF (every attribute at once; a refusal names the attribute's
    /// own step).
    VfConfig,
    /// Setting the port VLAN on the PF.
    VfVlan,
    /// Setting the min/max TX rate on the PF.
    VfRate,
    /// Setting spoof checking on the PF.
    VfSpoofchk,
    /// Setting VF trust on the PF.
    VfTrust,
    /// Setting the VF's link state on the PF.
    VfLinkState,
    /// Setting the VF's admin MAC on the PF.
    VfMac,
    /// Taking the VF netdev down in the host before changing it.
    HostDown,
    /// Setting the MAC on the VF netdev itself.
    NetdevMac,
    /// Setting the VF netdev's MTU.
    NetdevMtu,
    /// Moving the VF netdev into the pod namespace (renamed to `CNI_IFNAME`).
    MoveToPod,
    /// Opening a netlink socket inside the pod namespace.
    EnterPod,
    /// Adding the pod's addresses (on DEL: flushing them).
    Address,
    /// Bringing the interface up inside the pod.
    PodUp,
    /// Adding a route inside the pod.
    Route,
    /// Reading the pod interface back for the CNI result.
    ReadBack,
    /// DEL: finding the VF netdev in the pod or host namespace.
    Locate,
    /// DEL: taking the interface down inside the pod before moving it out.
    PodDown,
    /// DEL: moving the VF netdev back to the host namespace.
    MoveToHost,
    /// DEL: getting the VF netdev back after its pod namespace vanished.
    Recover,
    /// DEL: renaming the VF netdev back to its original host name.
    Rename,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::IfnameFree => "check the pod interface name is free",
            Step::VfConfig => "configure the VF on the PF",
            Step::VfVlan => "set VF VLAN",
            Step::VfRate => "set VF rate",
            Step::VfSpoofchk => "set VF spoofchk",
            Step::VfTrust => "set VF trust",
            Step::VfLinkState => "set VF link state",
            Step::VfMac => "set VF MAC",
            Step::HostDown => "set VF netdev down",
            Step::NetdevMac => "set VF netdev MAC",
            Step::NetdevMtu => "set VF netdev MTU",
            Step::MoveToPod => "move VF into the pod namespace",
            Step::EnterPod => "open the pod namespace",
            Step::Address => "configure addresses",
            Step::PodUp => "set the pod interface up",
            Step::Route => "add route",
            Step::ReadBack => "read the pod interface back",
            Step::Locate => "locate the VF netdev",
            Step::PodDown => "set the pod interface down",
            Step::MoveToHost => "move VF back to the host namespace",
            Step::Recover => "recover the VF netdev",
            Step::Rename => "rename the VF netdev back",
        })
    }
}

/// A failed step, with the cause and, for ADD, what rolling back could not undo.
#[derive(Debug, thiserror::Error)]
pub struct AttachError {
    /// The step that failed; its `Display` opens the error message.
    pub step: Step,
    /// The underlying error, as text (netlink, VF control or a message of ours).
    pub cause: String,
    /// The kernel's errno, when it answered (EOPNOTSUPP, EINVAL…).
    pub errno: Option<i32>,
    /// Errors of the rollback that followed a failed ADD (empty: fully rolled back).
    pub rollback: Vec<String>,
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.cause)?;
        if !self.rollback.is_empty() {
            write!(f, " (rollback incomplete: {})", self.rollback.join("; "))?;
        }
        Ok(())
    }
}

impl AttachError {
    /// A refusal from [`crate::vf::VfControl::configure`], under the refused attribute's step.
    pub(crate) fn vf_attr((attr, e): (VfAttr, VfError)) -> Self {
        let step = match attr {
            VfAttr::Mac => Step::VfMac,
            VfAttr::Vlan => Step::VfVlan,
            VfAttr::Rate => Step::VfRate,
            VfAttr::Spoofchk => Step::VfSpoofchk,
            VfAttr::Trust => Step::VfTrust,
            VfAttr::LinkState => Step::VfLinkState,
        };
        AttachError::vf(step, e)
    }

    pub(crate) fn vf(step: Step, e: VfError) -> Self {
        AttachError {
            step,
            errno: e.errno(),
            cause: e.to_string(),
            rollback: Vec::new(),
        }
    }

    pub(crate) fn netlink(step: Step, e: NetlinkError) -> Self {
        AttachError {
            step,
            errno: e.errno(),
            cause: e.to_string(),
            rollback: Vec::new(),
        }
    }

    pub(crate) fn msg(step: Step, cause: String) -> Self {
        AttachError {
            step,
            errno: None,
            cause,
            rollback: Vec::new(),
        }
    }
}

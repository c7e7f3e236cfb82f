//! The data an attachment is made of: which VF, how it was, what to set, what came out.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::cidr::IpCidr;
use crate::mac::MacAddr;
use crate::netlink::NetlinkError;
use crate::pci::PciAddr;
use crate::vf::{VfError, VfLinkState, VfState, VfVlan};

/// The VF being attached: found by PCI address, configured through its PF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfTarget {
    pub pci: PciAddr,
    /// The PF's netdev name in the host namespace.
    pub pf: String,
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
    pub mac: Option<MacAddr>,
    pub vlan: Option<VfVlan>,
    pub min_tx_rate: Option<u32>,
    pub max_tx_rate: Option<u32>,
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    pub link_state: Option<VfLinkState>,
}

/// A route to add in the pod (`gw: None` = on-link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dst: IpCidr,
    pub gw: Option<IpAddr>,
}

/// The pod side: the interface name, MTU, addresses and routes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodConfig {
    pub ifname: String,
    pub mtu: Option<u32>,
    pub addresses: Vec<IpCidr>,
    pub routes: Vec<Route>,
}

/// What the pod interface looks like after ADD (for the CNI result).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    pub ifname: String,
    pub mac: Option<MacAddr>,
    pub mtu: u32,
}

/// The step of ADD or DEL that failed, named in errors so an operator knows what was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The pod-side name (`CNI_IFNAME`) is already taken in the pod namespace: nothing is moved,
    /// since the kernel would move the VF in under its host name and then fail the rename.
    IfnameFree,
    VfVlan,
    VfRate,
    VfSpoofchk,
    VfTrust,
    VfLinkState,
    VfMac,
    HostDown,
    NetdevMac,
    NetdevMtu,
    MoveToPod,
    EnterPod,
    Address,
    PodUp,
    Route,
    ReadBack,
    Locate,
    PodDown,
    MoveToHost,
    Recover,
    Rename,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::IfnameFree => "check the pod interface name is free",
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
    pub step: Step,
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

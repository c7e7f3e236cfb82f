//! The agent's errors and the one mapping from them to `tonic::Status` at the gRPC edge.
//!
//! The CNI turns the status code into its own error code (Unavailable → 11 "try again later"), so
//! the code says what the caller can do about it and the message says why, naming the field, the
//! VF, the pool or the attachment involved.

use tonic::{Code, Status};

use crate::ledger::LedgerError;
use crate::pools::ConfigError;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    // The cause (which names the directory) follows in the error chain: `{:#}` prints it.
    /// The ledger could not be opened (often: another agent holds its lock).
    #[error("cannot open the ledger{}", lock_hint(.source))]
    Ledger {
        /// The `--state-dir` it lives in.
        dir: String,
        /// The ledger's own error.
        source: LedgerError,
    },
    /// `--state-dir` could not be created.
    #[error("cannot create the state directory {dir}")]
    StateDir {
        /// The directory, as configured.
        dir: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// `--standalone` without `--config`.
    #[error("--standalone needs a pool config (--config): the agent picks VFs from its pools")]
    NoPoolConfig,
    /// The pool config file (`--config`) does not parse or validate.
    #[error("invalid pool config {path}: {source}")]
    Pools {
        /// The file, as configured.
        path: String,
        /// What is wrong in it.
        source: ConfigError,
    },
    /// The node API socket could not be set up.
    #[error("node API socket {path}: {op}: {source}")]
    Socket {
        /// The socket path (`--socket`).
        path: String,
        /// What was being done (`"bind"`, `"chmod 0660"`, `"rename into place"`…).
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The gRPC server stopped with an error.
    #[error("serving the node API: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The inventory watcher could not start (link events) or has stopped.
    #[error("inventory watcher: {0}")]
    Watcher(String),
}

/// A hint when the ledger is locked, which means another process has it open.
fn lock_hint(e: &LedgerError) -> &'static str {
    if e.to_string().contains("could not acquire lock") {
        " (is another agent using this --state-dir?)"
    } else {
        ""
    }
}

/// Why a node API call failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A request field is missing or malformed.
    #[error("invalid {field}: {msg}")]
    Invalid {
        /// The request field, as named in the proto.
        field: &'static str,
        /// What is wrong with its value.
        msg: String,
    },
    /// `device_id` is not a VF the agent knows.
    #[error("unknown device {0}: not a VF discovered on this node")]
    UnknownDevice(String),
    /// `device_id` is a VF outside the named pool.
    #[error("device {device} is not in pool {pool}")]
    NotInPool {
        /// The VF's PCI address, as requested.
        device: String,
        /// The pool's resource name it is not in.
        pool: String,
    },
    /// `resource_name` names no configured pool.
    #[error("unknown pool {0:?}: not in the agent's pool config")]
    UnknownPool(String),
    /// Every VF of the pool is held or out of service.
    #[error(
        "pool {pool} has no free VF ({total} VFs: {} held, {unavailable} out of service)",
        total - unavailable
    )]
    PoolExhausted {
        /// The pool's resource name.
        pool: String,
        /// VFs in the pool.
        total: usize,
        /// Of those, out of service (PF down, quarantined); the rest are held.
        unavailable: usize,
    },
    /// The VF exists but may not be handed out now (PF link down, or quarantined).
    #[error("VF {device} is out of service: {why}")]
    OutOfService {
        /// The VF's PCI address.
        device: String,
        /// Why it may not be handed out.
        why: crate::health::Unavailable,
    },
    /// The VF's netdev is not in the host namespace although no attachment holds it.
    #[error("VF {0}")]
    NotHome(String),
    /// No device ID and no way to ask kubelet for one.
    #[error(
        "no deviceID, the agent is not standalone and has no PodResources socket to ask kubelet"
    )]
    NotStandalone,
    /// Kubelet's PodResources API says the pod holds no free device of the resource.
    #[error("pod {pod} holds no unattached device of {resource} (kubelet PodResources: {held:?})")]
    NoAllocatedDevice {
        /// The pod, as `namespace/name`.
        pod: String,
        /// The resource (pool) name from the netconf.
        resource: String,
        /// What kubelet says the pod holds of it (PCI addresses), all already attached.
        held: Vec<String>,
    },
    /// Kubelet's PodResources API could not be asked.
    #[error("kubelet PodResources: {0}")]
    PodResources(String),
    /// The VF cannot be attached as it is (e.g. its netdev is elsewhere).
    #[error("{0}")]
    Precondition(String),
    /// The pod table file is configured but has never loaded; refusing to fall back to IPAM.
    #[error("pod table invalid: {0}")]
    PodTableInvalid(String),
    /// The table's watch has not delivered yet: falling back to IPAM could hand out another IP.
    #[error("pod table not known yet ({0} has not answered since the agent started)")]
    PodTableUnknown(String),
    /// The IP's cluster-wide lease is another node's, or cannot be proven free.
    #[error("{0}")]
    Lease(String),
    /// An IP or VF is held by an attachment whose namespace is still alive.
    #[error(
        "{what} is held by pod {pod} (container {container}, ifname {ifname}), whose network namespace is still alive"
    )]
    Held {
        /// What is held: `VF <pci>` or `IP <ip> of network <name>`.
        what: String,
        /// The holding pod, as `namespace/name`.
        pod: String,
        /// The holding attachment's container ID.
        container: String,
        /// The holding attachment's pod-side interface name.
        ifname: String,
    },
    /// Reading or changing the hardware failed: which VF, doing what, and the typed cause.
    #[error("VF {vf}: {op}: {cause}")]
    Hardware {
        /// The VF (PCI address, with its PF and index where known).
        vf: String,
        /// What was being done ("read VF state", "netlink", ...).
        op: &'static str,
        /// The underlying failure.
        #[source]
        cause: Box<HwCause>,
    },
    /// A stale attachment holding what a Plan needs could not be released.
    #[error("reclaiming {what} from a stale attachment: {cause}")]
    Reclaim {
        /// What the Plan needed ("VF …", "IP … of network …").
        what: String,
        /// Why the release failed (its failed steps).
        cause: String,
    },
    /// The ledger refused or failed (busy VF or IP, storage).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What failed underneath a hardware operation, kept typed so a caller can tell a netlink
/// failure from a VF control refusal from an incomplete restore without reading the message.
#[derive(Debug, thiserror::Error)]
pub enum HwCause {
    /// A netlink request (connection, link lookup) failed.
    #[error(transparent)]
    Netlink(#[from] sriov_hw::netlink::NetlinkError),
    /// The PF refused or failed a VF read or setting.
    #[error(transparent)]
    Vf(#[from] sriov_hw::vfctl::VfError),
    /// Putting the VF's PF-side attributes back did not complete (the failed steps).
    #[error("{0}")]
    Restore(String),
}

impl AgentError {
    /// A hardware failure of VF `vf` while doing `op`.
    pub fn hardware(vf: impl ToString, op: &'static str, cause: impl Into<HwCause>) -> Self {
        AgentError::Hardware {
            vf: vf.to_string(),
            op,
            cause: Box::new(cause.into()),
        }
    }

    /// A malformed request field.
    pub fn invalid(field: &'static str, msg: impl ToString) -> Self {
        AgentError::Invalid {
            field,
            msg: msg.to_string(),
        }
    }

    /// The gRPC code this error travels as.
    pub fn code(&self) -> Code {
        match self {
            AgentError::Invalid { .. }
            | AgentError::UnknownDevice(_)
            | AgentError::NotInPool { .. }
            | AgentError::UnknownPool(_) => Code::InvalidArgument,
            AgentError::PoolExhausted { .. } => Code::ResourceExhausted,
            AgentError::NotStandalone
            | AgentError::Precondition(_)
            | AgentError::NoAllocatedDevice { .. } => Code::FailedPrecondition,
            AgentError::PodTableInvalid(_)
            | AgentError::PodTableUnknown(_)
            | AgentError::Lease(_)
            | AgentError::Held { .. }
            | AgentError::OutOfService { .. }
            | AgentError::NotHome(_)
            | AgentError::PodResources(_) => Code::Unavailable,
            AgentError::Hardware { .. } | AgentError::Reclaim { .. } => Code::Internal,
            AgentError::Ledger(e) => match e {
                LedgerError::Exists { .. } => Code::AlreadyExists,
                LedgerError::NotFound(_) => Code::NotFound,
                // A holder the retry could not reclaim: a concurrent ADD won; try again later.
                LedgerError::VfBusy { .. } | LedgerError::IpBusy { .. } => Code::Unavailable,
                // Disk full, read-only, I/O error: nothing was recorded; it works again as soon
                // as the disk does, so the CNI says "try again later" (11).
                LedgerError::Unwritable { .. } => Code::Unavailable,
                LedgerError::Storage(_) | LedgerError::Corrupt(..) => Code::Internal,
            },
        }
    }
}

impl From<AgentError> for Status {
    fn from(e: AgentError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hardware_failure_keeps_its_typed_cause() {
        let e = AgentError::hardware(
            "0000:3b:02.1",
            "netlink",
            sriov_hw::netlink::NetlinkError::Io {
                op: "open",
                message: "EMFILE".into(),
            },
        );
        assert_eq!(e.code(), Code::Internal);
        let src = std::error::Error::source(&e).map(|s| s.to_string());
        assert!(src.is_some_and(|s| s.contains("EMFILE")));
        assert!(matches!(
            &e,
            AgentError::Hardware { cause, .. } if matches!(**cause, HwCause::Netlink(_))
        ));
        assert!(
            e.to_string().starts_with("VF 0000:3b:02.1: netlink: "),
            "{e}"
        );
    }

    #[test]
    fn codes() {
        let exists = AgentError::Ledger(LedgerError::Exists {
            key: "c/net1".into(),
            state: "Planned".into(),
        });
        assert_eq!(Status::from(exists).code(), Code::AlreadyExists);
        assert_eq!(
            Status::from(AgentError::Ledger(LedgerError::NotFound("x".into()))).code(),
            Code::NotFound
        );
        let s = Status::from(AgentError::invalid("key.container_id", "empty"));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("key.container_id"));
        assert_eq!(
            Status::from(AgentError::PodTableInvalid("bad".into())).code(),
            Code::Unavailable
        );
        assert_eq!(
            Status::from(AgentError::NotStandalone).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            Status::from(AgentError::PoolExhausted {
                pool: "p".into(),
                total: 1,
                unavailable: 0,
            })
            .code(),
            Code::ResourceExhausted
        );
    }
}

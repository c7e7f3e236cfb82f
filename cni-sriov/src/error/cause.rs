//! The one mapping from our failures to CNI error codes: every failure that is not a plain
//! validation error (those are built as a [`CniError`] where they are found, with their code) is a
//! [`Failure`], and `From<Failure> for CniError` is the only place its code is chosen. The code
//! follows from what failed, the agent's gRPC status code and the kernel's errno; message text is
//! never looked at.

use std::path::PathBuf;

use sriov_hw::attach::{AttachError, Step};
use sriov_hw::netlink::NetlinkError;
use sriov_hw::netns::NetnsError;
use sriov_proto::convert::ConvertError;

use super::{CniError, code};

/// A failure of one of the verbs, typed by what failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The agent answered a call with an error status; its gRPC code says what the caller can do.
    #[error("{}", .0.message())]
    Agent(tonic::Status),
    /// The agent's socket did not accept a connection: nothing was changed, the runtime retries.
    #[error("the sriov agent is not reachable at {}", socket.display())]
    AgentUnreachable {
        /// The agent's socket path (netconf `agentSocket`).
        socket: PathBuf,
        /// The connect error, shown in the error's details.
        cause: String,
    },
    /// The agent's socket exists but this process may not open it (the CNI runs as root).
    #[error(
        "permission denied on the sriov agent's socket {} (the CNI runs as root)",
        socket.display()
    )]
    AgentSocketDenied {
        /// The agent's socket path (netconf `agentSocket`).
        socket: PathBuf,
    },
    /// `CNI_NETNS` cannot be opened as a network namespace: the runtime passed a bad variable.
    #[error("CNI_NETNS {}: {source}", path.display())]
    Netns {
        /// `CNI_NETNS` as given.
        path: PathBuf,
        /// Why it is not a usable network namespace.
        source: NetnsError,
    },
    /// CHECK: the attachment's namespace is gone (or is another one): the container is unknown.
    #[error("pod namespace: {0}")]
    PodNetnsGone(NetnsError),
    /// A netlink socket or request failed while reading or changing the kernel.
    #[error("netlink: {0}")]
    Netlink(#[from] NetlinkError),
    /// A step of attaching the VF failed; the attach already rolled back what it did.
    #[error("VF {vf} on PF {pf}: {source}")]
    Attach {
        /// The VF's PCI address.
        vf: String,
        /// Its PF's netdev name in the host namespace.
        pf: String,
        /// The failed step and its cause.
        source: AttachError,
    },
    /// DEL could not give the VF back: the record is kept (releasing an unrestored VF would let
    /// the next pod record the leaked state as "original"), so the runtime must retry.
    #[error("restoring VF {vf} on PF {pf} failed")]
    Restore {
        /// The VF's PCI address.
        vf: String,
        /// Its PF's netdev name in the host namespace.
        pf: String,
        /// Every restore step that failed, joined into the error's details.
        errs: Vec<AttachError>,
    },
    /// DEL could not open netlink to restore the VF: the record is kept, the runtime retries.
    #[error("netlink: {0}")]
    RestoreUnreachable(NetlinkError),
    /// The agent's record cannot be read back into the hardware model (corrupt, or newer agent).
    #[error("agent record: {0}")]
    Record(#[from] ConvertError),
    /// The async runtime could not be built.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The delegated IPAM plugin could not be started or fed.
    #[error("IPAM plugin {plugin}: {source}")]
    IpamExec {
        /// The IPAM plugin's `type`, as named in the netconf.
        plugin: String,
        /// Why spawning it or writing its stdin failed.
        source: std::io::Error,
    },
}

impl Failure {
    /// The CNI code for this failure.
    pub fn code(&self) -> u32 {
        match self {
            Failure::Agent(s) => agent_code(s.code()),
            Failure::AgentUnreachable { .. }
            | Failure::AgentSocketDenied { .. }
            | Failure::Restore { .. }
            | Failure::RestoreUnreachable(_) => code::TRY_AGAIN,
            Failure::Netns { .. } => code::INVALID_ENV,
            Failure::PodNetnsGone(_) => code::UNKNOWN_CONTAINER,
            Failure::Netlink(_) | Failure::IpamExec { .. } => code::IO_FAILURE,
            Failure::Attach { source, .. } => attach_code(source),
            Failure::Record(_) | Failure::Runtime(_) => code::INTERNAL,
        }
    }

    /// The longer explanation for the error's `details`, where there is one.
    fn details(&self) -> String {
        match self {
            Failure::AgentUnreachable { cause, .. } => cause.clone(),
            Failure::Restore { errs, .. } => joined(errs),
            _ => String::new(),
        }
    }
}

impl From<Failure> for CniError {
    fn from(f: Failure) -> CniError {
        CniError::new(f.code(), f.to_string()).with_details(f.details())
    }
}

impl From<tonic::Status> for CniError {
    fn from(s: tonic::Status) -> CniError {
        Failure::Agent(s).into()
    }
}

impl From<NetlinkError> for CniError {
    fn from(e: NetlinkError) -> CniError {
        Failure::Netlink(e).into()
    }
}

impl From<ConvertError> for CniError {
    fn from(e: ConvertError) -> CniError {
        Failure::Record(e).into()
    }
}

/// The agent's gRPC code as the CNI code the runtime should see: bad requests are configuration
/// errors (7); contention and unavailability are "try again" (11).
fn agent_code(c: tonic::Code) -> u32 {
    use tonic::Code;
    match c {
        Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition => code::INVALID_CONFIG,
        Code::Unavailable
        | Code::ResourceExhausted
        | Code::AlreadyExists
        | Code::Aborted
        | Code::DeadlineExceeded
        | Code::Cancelled
        // The agent never answers Unknown: it is the transport failing (the agent died or
        // restarted mid-call). Whatever it recorded, DEL undoes; the runtime retries.
        | Code::Unknown => code::TRY_AGAIN,
        _ => code::INTERNAL,
    }
}

/// A failed kernel step: a `CNI_IFNAME` the pod namespace already has is an invalid environment
/// variable (4, the spec's code for a bad `CNI_*` variable: retrying cannot help, the runtime
/// must pick another name); a device refusing a setting (not supported, invalid value) is a
/// configuration error (7); anything else is an I/O failure (5).
fn attach_code(e: &AttachError) -> u32 {
    let refused = matches!(
        e.errno,
        Some(libc::EOPNOTSUPP | libc::EPROTONOSUPPORT | libc::EINVAL | libc::ERANGE)
    );
    if e.step == Step::IfnameFree {
        code::INVALID_ENV
    } else if refused {
        code::INVALID_CONFIG
    } else {
        code::IO_FAILURE
    }
}

/// Restore errors joined for a message.
pub fn joined(errs: &[AttachError]) -> String {
    errs.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;

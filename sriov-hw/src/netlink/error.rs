//! Errors of the netlink wrapper.

/// A netlink request that failed: which operation, on what, and the kernel's answer.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel answered with an errno.
    #[error("{op} {target}: {message} (errno {errno})")]
    Kernel {
        op: &'static str,
        target: String,
        errno: i32,
        message: String,
    },
    /// No link of that name or index exists in the namespace.
    #[error("{op}: no such link {target}")]
    NotFound { op: &'static str, target: String },
    /// The socket or the namespace switch failed before anything was sent.
    #[error("{op}: {message}")]
    Io { op: &'static str, message: String },
}

impl NetlinkError {
    /// The kernel errno (positive, e.g. `libc::EOPNOTSUPP`), if the kernel answered.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            NetlinkError::NotFound { .. } => Some(libc::ENODEV),
            NetlinkError::Io { .. } => None,
        }
    }
}

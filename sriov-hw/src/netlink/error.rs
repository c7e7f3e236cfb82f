//! Errors of the netlink wrapper.

use netlink_packet_core::ErrorMessage;

/// A netlink request that failed: which operation, on what, and the kernel's answer.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel answered with an errno.
    #[error("{op} {target}: {message} (errno {errno})")]
    Kernel {
        /// The operation, in words (`"rename link"`, `"move link to netns"`…).
        op: &'static str,
        /// The link (or other object) it was applied to.
        target: String,
        /// The positive errno the kernel answered with (e.g. `libc::EBUSY`).
        errno: i32,
        /// The errno's text, as the OS describes it.
        message: String,
    },
    /// No link of that name or index exists in the namespace.
    #[error("{op}: no such link {target}")]
    NotFound {
        /// The operation that looked the link up.
        op: &'static str,
        /// The link name or index that does not exist.
        target: String,
    },
    /// The socket or the namespace switch failed before anything was sent.
    #[error("{op}: {message}")]
    Io {
        /// The operation that could not be sent.
        op: &'static str,
        /// What failed (socket, setns…), with its target.
        message: String,
    },
    /// The request was not sent because its arguments cannot be expressed (e.g. an IPv6 gateway
    /// for an IPv4 destination).
    #[error("{op} {target}: invalid request: {message}")]
    Invalid {
        /// The operation that was refused before sending.
        op: &'static str,
        /// The link (or other object) it would have applied to.
        target: String,
        /// Why the arguments cannot be expressed.
        message: String,
    },
    /// The kernel's answer could not be decoded or was not the expected message.
    #[error("{op} {target}: unexpected reply: {message}")]
    Protocol {
        /// The operation whose reply was unexpected.
        op: &'static str,
        /// The link (or other object) it was applied to.
        target: String,
        /// What was wrong with the reply.
        message: String,
    },
}

impl NetlinkError {
    /// The kernel errno (positive, e.g. `libc::EOPNOTSUPP`), if the kernel answered.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            NetlinkError::NotFound { .. } => Some(libc::ENODEV),
            NetlinkError::Io { .. }
            | NetlinkError::Invalid { .. }
            | NetlinkError::Protocol { .. } => None,
        }
    }

    /// Whether the kernel said the object does not exist (`ENODEV`, or `NotFound`).
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(libc::ENODEV)
    }

    /// Maps a kernel NACK to [`NetlinkError::Kernel`], with the message `strerror` gives.
    pub(super) fn from_nack(op: &'static str, target: &str, err: &ErrorMessage) -> Self {
        let errno = err.code.map(|c| c.get().abs()).unwrap_or(0);
        NetlinkError::Kernel {
            op,
            target: target.to_string(),
            errno,
            message: strerror(errno),
        }
    }
}

/// The C library's text for `errno`, without std's " (os error N)" suffix (we print the number
/// ourselves).
fn strerror(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

//! Network namespace handles.
//!
//! Runtimes name a pod's namespace by a path: docker-era runtimes pass `/proc/<pid>/ns/net`,
//! containerd and CRI-O a bind mount such as `/var/run/netns/cni-<uuid>`, podman
//! `/run/netns/netns-<uuid>`. [`NetnsHandle::open`] accepts any of them, checks that the path really
//! is a *network* namespace, and keeps the file open so the namespace stays alive and stays the same
//! one while we hold it (a `/proc/<pid>` path can be reused by an unrelated process later).
//!
//! [`NetnsId`] (device + inode of the nsfs file) is what tells two namespaces apart; the agent records
//! it so that "the path still exists" is never mistaken for "the namespace still exists".
//!
//! The few syscalls involved sit behind [`NsSys`] so the validation logic is unit-tested without root
//! against a recording double; [`RealNsSys`] is the only implementation production code uses.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The namespace file of the calling thread. `thread-self`, not `self`: in a multi-threaded
/// process another thread may have entered a different namespace.
pub const CURRENT_THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// `statfs.f_type` of nsfs, the filesystem behind every `/proc/<pid>/ns/*` file and its bind mounts.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// `CLONE_NEWNET`, as returned by the `NS_GET_NSTYPE` ioctl for a network namespace.
const CLONE_NEWNET: i32 = libc::CLONE_NEWNET;

/// Why a path could not be opened as a network namespace. Always names the path: a CNI error is
/// often all an operator sees.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// Opening or inspecting the path failed (missing, permission denied…).
    #[error("netns {path}: {op}: {source}")]
    Io {
        /// The namespace path as given (`/var/run/netns/…`, `/proc/<pid>/ns/net`).
        path: PathBuf,
        /// What was being done (`"open"`, `"fstatfs"`…).
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The path exists but is not a namespace file at all (regular file, directory…).
    #[error("netns {path}: not a namespace file (filesystem magic {magic:#x}, expected nsfs)")]
    NotNamespace {
        /// The path that was opened.
        path: PathBuf,
        /// The filesystem magic `fstatfs` reported for it.
        magic: i64,
    },
    /// The path is a namespace, but not a network one (e.g. `/proc/self/ns/mnt`).
    #[error("netns {path}: is a {kind} namespace, not a network namespace")]
    WrongType {
        /// The path that was opened.
        path: PathBuf,
        /// The namespace type it is (`"mnt"`, `"pid"`…).
        kind: &'static str,
    },
    /// Entering the namespace on the helper thread failed.
    #[error("netns {path}: setns: {source}")]
    Setns {
        /// The namespace path that could not be entered.
        path: PathBuf,
        /// The error `setns(2)` returned.
        #[source]
        source: io::Error,
    },
    /// The closure run inside the namespace panicked.
    #[error("netns {path}: helper thread panicked")]
    ThreadPanicked {
        /// The namespace the closure was running in.
        path: PathBuf,
    },
}

impl NetnsError {
    /// The OS errno behind the failure, if any (e.g. `ENOENT` for a vanished namespace).
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetnsError::Io { source, .. } | NetnsError::Setns { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}

/// Identity of a namespace: device and inode of its nsfs file. Equal ids mean the same namespace,
/// whatever path it was reached through, for as long as the namespace lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NetnsId {
    /// `st_dev` of the nsfs file.
    pub dev: u64,
    /// `st_ino` of the nsfs file (what `ip netns identify` and `lsns` show).
    pub ino: u64,
}

impl fmt::Display for NetnsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "net:[{}] (dev {})", self.ino, self.dev)
    }
}

/// The syscalls namespace handling needs. Real code uses [`RealNsSys`]; tests use a recording
/// double, so the validation and thread logic is covered without root.
pub trait NsSys: Sync {
    /// Opens `path` read-only, close-on-exec.
    fn open(&self, path: &Path) -> io::Result<OwnedFd>;
    /// `fstatfs(fd).f_type`.
    fn fs_magic(&self, fd: BorrowedFd<'_>) -> io::Result<i64>;
    /// The `CLONE_NEW*` type of the namespace (`NS_GET_NSTYPE` ioctl).
    fn ns_type(&self, fd: BorrowedFd<'_>) -> io::Result<i32>;
    /// `fstat(fd)` device and inode.
    fn id(&self, fd: BorrowedFd<'_>) -> io::Result<NetnsId>;
    /// Moves the *calling thread* into the network namespace `fd`.
    fn setns(&self, fd: BorrowedFd<'_>) -> io::Result<()>;
}

/// The kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealNsSys;

/// `NS_GET_NSTYPE` = `_IO(NSIO, 0x3)` with `NSIO` = 0xb7 (linux/nsfs.h).
const NS_GET_NSTYPE: u32 = 0xb7 << 8 | 0x3;

impl NsSys for RealNsSys {
    fn open(&self, path: &Path) -> io::Result<OwnedFd> {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: a FIFO (or a device) named as a namespace must not block the open; the
        // file type is checked right after (fstatfs), and nsfs files ignore the flag.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)?;
        Ok(OwnedFd::from(file))
    }

    fn fs_magic(&self, fd: BorrowedFd<'_>) -> io::Result<i64> {
        let st = nix::sys::statfs::fstatfs(fd).map_err(io::Error::from)?;
        // f_type is a signed or unsigned word depending on the libc; the magic fits either way.
        #[allow(clippy::unnecessary_cast)]
        Ok(st.filesystem_type().0 as i64)
    }

    fn ns_type(&self, fd: BorrowedFd<'_>) -> io::Result<i32> {
        use std::os::fd::AsRawFd;
        // SAFETY: NS_GET_NSTYPE takes no argument and only returns the fd's namespace type; `fd`
        // is a valid open descriptor for the duration of the call.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(rc)
    }

    fn id(&self, fd: BorrowedFd<'_>) -> io::Result<NetnsId> {
        let st = nix::sys::stat::fstat(fd).map_err(io::Error::from)?;
        #[allow(clippy::unnecessary_cast)]
        Ok(NetnsId {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        })
    }

    fn setns(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
    }
}

/// An open, verified network namespace. Cheap to clone (the fd is shared); the namespace stays
/// alive while any clone exists, even if its path is unmounted or its process exits.
#[derive(Debug, Clone)]
pub struct NetnsHandle {
    fd: Arc<OwnedFd>,
    path: PathBuf,
    id: NetnsId,
}

impl NetnsHandle {
    /// Opens the network namespace at `path` (`/proc/<pid>/ns/net`, `/run/netns/<name>`, any nsfs
    /// file or bind mount of one). Fails, naming the path, if it is missing, not a namespace file,
    /// or a namespace of another type.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, NetnsError> {
        Self::open_with(&RealNsSys, path.as_ref())
    }

    /// The calling thread's own network namespace.
    pub fn current() -> Result<Self, NetnsError> {
        Self::open(CURRENT_THREAD_NETNS)
    }

    /// [`NetnsHandle::open`] through an explicit syscall layer.
    pub fn open_with(sys: &dyn NsSys, path: &Path) -> Result<Self, NetnsError> {
        let io_err = |op: &'static str| {
            move |source: io::Error| NetnsError::Io {
                path: path.to_path_buf(),
                op,
                source,
            }
        };
        let fd = sys.open(path).map_err(io_err("open"))?;
        let magic = sys.fs_magic(fd.as_fd()).map_err(io_err("fstatfs"))?;
        if magic != NSFS_MAGIC {
            return Err(NetnsError::NotNamespace {
                path: path.to_path_buf(),
                magic,
            });
        }
        let kind = sys
            .ns_type(fd.as_fd())
            .map_err(io_err("ioctl NS_GET_NSTYPE"))?;
        if kind != CLONE_NEWNET {
            return Err(NetnsError::WrongType {
                path: path.to_path_buf(),
                kind: ns_type_name(kind),
            });
        }
        let id = sys.id(fd.as_fd()).map_err(io_err("fstat"))?;
        Ok(NetnsHandle {
            fd: Arc::new(fd),
            path: path.to_path_buf(),
            id,
        })
    }

    /// The path this handle was opened from (for messages; it may since have been removed).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The namespace's identity, stable for its lifetime and independent of the path.
    pub fn id(&self) -> NetnsId {
        self.id
    }

    /// Whether both handles refer to the same namespace.
    pub fn is_same(&self, other: &NetnsHandle) -> bool {
        self.id == other.id
    }

    /// Runs `f` on a short-lived helper thread that has entered this namespace, and returns its
    /// result. The thread exits afterwards, so the namespace switch never leaks into the caller's
    /// threads (in particular never into a tokio worker). Sockets created by `f` stay bound to this
    /// namespace after the thread is gone. Blocks the caller until `f` returns.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        self.run_in_with(&RealNsSys, f)
    }

    /// [`NetnsHandle::run_in`] through an explicit syscall layer.
    pub fn run_in_with<T: Send>(
        &self,
        sys: &dyn NsSys,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T, NetnsError> {
        let joined = std::thread::scope(|s| {
            s.spawn(|| {
                sys.setns(self.fd.as_fd())
                    .map_err(|source| NetnsError::Setns {
                        path: self.path.clone(),
                        source,
                    })?;
                Ok(f())
            })
            .join()
        });
        joined.map_err(|_| NetnsError::ThreadPanicked {
            path: self.path.clone(),
        })?
    }
}

impl AsFd for NetnsHandle {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Human name of a `CLONE_NEW*` namespace type, for error messages.
fn ns_type_name(kind: i32) -> &'static str {
    match kind {
        libc::CLONE_NEWNS => "mount",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWTIME => "time",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A syscall double: answers from its fields and records every call (with the thread it came
    /// from, so tests can check setns never runs on the caller's thread).
    struct Fake {
        magic: i64,
        kind: i32,
        open_err: Option<i32>,
        calls: Mutex<Vec<(String, std::thread::ThreadId)>>,
    }

    impl Fake {
        fn new(magic: i64, kind: i32) -> Self {
            Fake {
                magic,
                kind,
                open_err: None,
                calls: Mutex::new(Vec::new()),
            }
        }
        fn record(&self, call: &str) {
            if let Ok(mut c) = self.calls.lock() {
                c.push((call.to_string(), std::thread::current().id()));
            }
        }
        fn calls(&self) -> Vec<(String, std::thread::ThreadId)> {
            self.calls.lock().map(|c| c.clone()).unwrap_or_default()
        }
    }

    impl NsSys for Fake {
        fn open(&self, _path: &Path) -> io::Result<OwnedFd> {
            self.record("open");
            if let Some(e) = self.open_err {
                return Err(io::Error::from_raw_os_error(e));
            }
            // Any real fd will do; the double never looks at it.
            RealNsSys.open(Path::new("/dev/null"))
        }
        fn fs_magic(&self, _fd: BorrowedFd<'_>) -> io::Result<i64> {
            self.record("fstatfs");
            Ok(self.magic)
        }
        fn ns_type(&self, _fd: BorrowedFd<'_>) -> io::Result<i32> {
            self.record("ns_type");
            Ok(self.kind)
        }
        fn id(&self, _fd: BorrowedFd<'_>) -> io::Result<NetnsId> {
            self.record("fstat");
            Ok(NetnsId {
                dev: 4,
                ino: 4026531840,
            })
        }
        fn setns(&self, _fd: BorrowedFd<'_>) -> io::Result<()> {
            self.record("setns");
            Ok(())
        }
    }

    #[test]
    fn opens_a_network_namespace_and_reports_its_identity() {
        let sys = Fake::new(NSFS_MAGIC, libc::CLONE_NEWNET);
        let ns = NetnsHandle::open_with(&sys, Path::new("/run/netns/x")).unwrap();
        assert_eq!(
            ns.id(),
            NetnsId {
                dev: 4,
                ino: 4026531840
            }
        );
        assert_eq!(ns.path(), Path::new("/run/netns/x"));
        let names: Vec<_> = sys.calls().into_iter().map(|c| c.0).collect();
        assert_eq!(names, ["open", "fstatfs", "ns_type", "fstat"]);
    }

    #[test]
    fn rejects_a_file_that_is_not_on_nsfs() {
        let sys = Fake::new(0xEF53, 0);
        let err = NetnsHandle::open_with(&sys, Path::new("/etc/hostname")).unwrap_err();
        assert!(matches!(err, NetnsError::NotNamespace { .. }), "{err:?}");
        assert!(err.to_string().contains("/etc/hostname"), "{err}");
        // Never asks a non-nsfs fd for its namespace type.
        assert!(!sys.calls().iter().any(|c| c.0 == "ns_type"));
    }

    #[test]
    fn rejects_a_namespace_of_another_type() {
        let sys = Fake::new(NSFS_MAGIC, libc::CLONE_NEWNS);
        let err = NetnsHandle::open_with(&sys, Path::new("/proc/1/ns/mnt")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/proc/1/ns/mnt") && msg.contains("mount"),
            "{msg}"
        );
    }

    #[test]
    fn missing_path_is_an_io_error_with_errno_and_path() {
        let mut sys = Fake::new(NSFS_MAGIC, libc::CLONE_NEWNET);
        sys.open_err = Some(libc::ENOENT);
        let err = NetnsHandle::open_with(&sys, Path::new("/run/netns/gone")).unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENOENT));
        assert!(err.to_string().contains("/run/netns/gone"), "{err}");
    }

    #[test]
    fn run_in_enters_the_namespace_on_another_thread() {
        let sys = Fake::new(NSFS_MAGIC, libc::CLONE_NEWNET);
        let ns = NetnsHandle::open_with(&sys, Path::new("/run/netns/x")).unwrap();
        let caller = std::thread::current().id();
        let ran_on = ns
            .run_in_with(&sys, || std::thread::current().id())
            .unwrap();
        assert_ne!(ran_on, caller);
        let setns: Vec<_> = sys.calls().into_iter().filter(|c| c.0 == "setns").collect();
        assert_eq!(setns.len(), 1);
        assert_eq!(setns[0].1, ran_on);
    }

    #[test]
    fn current_namespace_is_the_same_as_itself() {
        // Works unprivileged: any process may open its own namespace file.
        let a = NetnsHandle::current().unwrap();
        let b = NetnsHandle::open("/proc/self/ns/net").unwrap();
        assert!(a.is_same(&b));
    }
}

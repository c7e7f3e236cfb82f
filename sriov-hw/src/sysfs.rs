//! A rooted, read-only view of sysfs (or of any kernel-style attribute tree, such as `/proc`).
//!
//! Every reader in this crate takes a [`Sysfs`] instead of hard-coding `/sys`, so discovery runs on
//! the host, on fixture trees written by tests, and on the emulated NIC's synthetic tree. Paths given
//! to the methods are relative to the root. When the root is not `/`, symlinks are resolved by us,
//! inside the root, the way `openat2(RESOLVE_IN_ROOT)` does it: an absolute link target means
//! "under the root", and `..` never climbs above the root. A fixture therefore can never make us
//! read the host's `/sys`. For the kernel's own trees (`/sys`, `/proc`, `/`), whose links never
//! leave them, the kernel resolves paths itself: the fast path the CNI takes on every call.
//!
//! Nothing here panics on what it reads: missing files, broken symlinks, directories where files are
//! expected, FIFOs, non-UTF-8 or garbage content all become a [`SysfsError`] that names the path.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

mod dir;

pub use dir::SysfsDir;

/// The largest attribute we read whole; sysfs attributes are at most a page.
const MAX_ATTR_BYTES: u64 = 64 * 1024;

/// The kernel's own limit on symlinks followed while resolving one path (ELOOP).
const MAX_SYMLINK_HOPS: u32 = 40;

/// Set once openat2 turned out to be unavailable (kernel < 5.6, or a seccomp filter refusing it),
/// so later calls go straight to the userspace walk.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// How often one lookup tries openat2 while it answers EAGAIN.
const OPENAT2_ATTEMPTS: u32 = 8;

/// Why a sysfs read failed. Every variant names the absolute path that was read.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    /// The OS refused the operation (missing file, broken symlink, permission, EISDIR…).
    #[error("{}: {error}", path.display())]
    Io {
        /// The absolute path.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// A file was expected, something else (a directory, a FIFO, a device) was found.
    #[error("{}: not a regular file", path.display())]
    NotAFile {
        /// The absolute path.
        path: PathBuf,
    },
    /// The content is not UTF-8, so it cannot be an attribute we understand.
    #[error("{}: content is not UTF-8", path.display())]
    NotUtf8 {
        /// The absolute path.
        path: PathBuf,
    },
    /// The file is larger than any sysfs attribute can be.
    #[error("{}: larger than {MAX_ATTR_BYTES} bytes", path.display())]
    TooLarge {
        /// The absolute path.
        path: PathBuf,
    },
    /// The content does not parse as what the attribute must hold.
    #[error("{}: cannot parse {content:?} as {expected}", path.display())]
    Parse {
        /// The absolute path.
        path: PathBuf,
        /// The attribute's content, trimmed, as read.
        content: String,
        /// What it should have parsed as (`"a decimal count"`, `"a PCI address"`…).
        expected: &'static str,
    },
    /// More than 40 symlinks while resolving one path (a loop, as ELOOP).
    #[error("{}: too many levels of symbolic links", path.display())]
    SymlinkLoop {
        /// The path being resolved.
        path: PathBuf,
    },
    /// A symlink was expected (`driver`, `physfn`, `virtfnN`, `iommu_group`).
    #[error("{}: not a symbolic link", path.display())]
    NotASymlink {
        /// The path that was expected to be a symlink.
        path: PathBuf,
    },
    /// A symlink whose target has no usable last component (e.g. `..` or `/`).
    #[error("{}: symlink target {target:?} names nothing", path.display())]
    BadLinkTarget {
        /// The symlink.
        path: PathBuf,
        /// What it points at.
        target: PathBuf,
    },
}

impl SysfsError {
    /// The same error, about `to` instead: a failure on the way to a path is reported as about
    /// the path the caller asked for.
    fn about(mut self, to: PathBuf) -> Self {
        match &mut self {
            SysfsError::Io { path, .. }
            | SysfsError::NotAFile { path }
            | SysfsError::NotUtf8 { path }
            | SysfsError::TooLarge { path }
            | SysfsError::Parse { path, .. }
            | SysfsError::SymlinkLoop { path }
            | SysfsError::NotASymlink { path }
            | SysfsError::BadLinkTarget { path, .. } => *path = to,
        }
        self
    }

    /// The absolute path the failed operation was about.
    pub fn path(&self) -> &Path {
        match self {
            SysfsError::Io { path, .. }
            | SysfsError::NotAFile { path }
            | SysfsError::NotUtf8 { path }
            | SysfsError::TooLarge { path }
            | SysfsError::Parse { path, .. }
            | SysfsError::SymlinkLoop { path }
            | SysfsError::NotASymlink { path }
            | SysfsError::BadLinkTarget { path, .. } => path,
        }
    }

    /// True when the path (or a symlink on the way to it) does not exist. Callers use this to tell
    /// "attribute absent" (often normal: no NUMA, unbound driver) from "attribute broken".
    pub fn is_not_found(&self) -> bool {
        matches!(self, SysfsError::Io { error, .. } if error.kind() == io::ErrorKind::NotFound)
    }
}

/// A sysfs reader rooted at a directory (`/sys` on the host).
///
/// Cheap to create and to clone; it holds no open file descriptors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysfs {
    root: PathBuf,
    /// Never use openat2 (tests of the userspace walk that old kernels get).
    walk_only: bool,
}

impl Sysfs {
    /// A reader for the tree under `root` (a fixture, the emulated NIC's tree, or `/sys`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs {
            root: root.into(),
            walk_only: false,
        }
    }

    /// The host's sysfs, `/sys`.
    pub fn host() -> Self {
        Sysfs::new("/sys")
    }

    /// The directory every relative path is resolved under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/rel` without resolving anything, for messages and for handing to other tools.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(normalize(rel.as_ref()))
    }

    /// Whether the root is a kernel-made tree (`/`, `/sys`, `/proc`) whose symlinks are relative
    /// and stay inside it, so the kernel's own resolution is already confined and we skip ours.
    fn is_system_root(&self) -> bool {
        ["/", "/sys", "/proc"]
            .iter()
            .any(|r| self.root == Path::new(r))
    }

    /// Resolves every symlink in `rel`, confined to the root, and returns the physical path
    /// relative to the root. Fails (with [`SysfsError::is_not_found`]) when any component is missing.
    pub fn resolve(&self, rel: impl AsRef<Path>) -> Result<PathBuf, SysfsError> {
        let rel = normalize(rel.as_ref());
        if self.is_system_root() {
            let abs = self.root.join(&rel);
            return std::fs::canonicalize(&abs)
                .map(|p| {
                    p.strip_prefix(&self.root)
                        .map(Path::to_path_buf)
                        .unwrap_or(p)
                })
                .map_err(|error| SysfsError::Io { path: abs, error });
        }
        let mut out = PathBuf::new();
        // Components still to walk, last one first (so pushing a link's target is cheap).
        let mut pending: Vec<std::ffi::OsString> = rel
            .components()
            .rev()
            .map(|c| c.as_os_str().to_os_string())
            .collect();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            if comp == ".." {
                out.pop();
                continue;
            }
            out.push(&comp);
            let abs = self.root.join(&out);
            let meta = std::fs::symlink_metadata(&abs).map_err(|error| SysfsError::Io {
                // "Missing" names what the caller asked for; other errors the component at fault.
                path: if error.kind() == io::ErrorKind::NotFound {
                    self.root.join(&rel)
                } else {
                    abs.clone()
                },
                error,
            })?;
            if !meta.file_type().is_symlink() {
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(SysfsError::SymlinkLoop { path: abs });
            }
            let target = std::fs::read_link(&abs).map_err(|error| SysfsError::Io {
                path: abs.clone(),
                error,
            })?;
            out.pop();
            if target.is_absolute() {
                out.clear();
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(n) => pending.push(n.to_os_string()),
                    Component::ParentDir => pending.push("..".into()),
                    Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                }
            }
        }
        Ok(out)
    }

    /// Whether `rel` exists (following symlinks inside the root).
    pub fn exists(&self, rel: impl AsRef<Path>) -> bool {
        self.resolve(rel).is_ok()
    }

    /// Opens `rel` with the kernel confining resolution to the root (`openat2` with
    /// `RESOLVE_IN_ROOT`, Linux 5.6+): one syscall instead of one `lstat` per component. `None`
    /// when openat2 is unavailable; the caller then walks the path itself.
    fn open_in_root(&self, rel: &Path, flags: OFlag) -> Option<io::Result<OwnedFd>> {
        if self.walk_only || NO_OPENAT2.load(Ordering::Relaxed) {
            return None;
        }
        let cstr = |p: &OsStr| {
            CString::new(p.as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
        };
        let (root, rel) = match (
            cstr(self.root.as_os_str()),
            cstr(normalize(rel).as_os_str()),
        ) {
            (Ok(root), Ok(rel)) if rel.is_empty() => (root, c".".to_owned()),
            (Ok(root), Ok(rel)) => (root, rel),
            (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
        };
        let dirfd = match open_dir_path(&root) {
            Ok(fd) => fd,
            Err(e) => return Some(Err(e)),
        };
        let resolve = ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS;
        openat2(&dirfd, &rel, flags, resolve)
    }

    /// An I/O error about `rel`, with ELOOP reported as [`SysfsError::SymlinkLoop`].
    fn io_error(&self, rel: &Path, error: io::Error) -> SysfsError {
        let path = self.path(rel);
        if error.raw_os_error() == Some(Errno::ELOOP as i32) {
            SysfsError::SymlinkLoop { path }
        } else {
            SysfsError::Io { path, error }
        }
    }

    /// Opens a regular file for reading. FIFOs and devices are refused without blocking.
    pub fn open(&self, rel: impl AsRef<Path>) -> Result<File, SysfsError> {
        let rel = rel.as_ref();
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK;
        // Errors name the path asked for, whichever branch runs (openat2, or the walk, which
        // may resolve elsewhere): which one runs can change from one call to the next (EAGAIN).
        let file = match (!self.is_system_root())
            .then(|| self.open_in_root(rel, flags))
            .flatten()
        {
            Some(Ok(fd)) => File::from(fd),
            Some(Err(error)) => return Err(self.io_error(rel, error)),
            None => {
                let abs = if self.is_system_root() {
                    self.path(rel)
                } else {
                    let resolved = self.resolve(rel).map_err(|e| e.about(self.path(rel)))?;
                    self.root.join(resolved)
                };
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags((flags | OFlag::O_CLOEXEC).bits())
                    .open(&abs)
                    .map_err(|error| SysfsError::Io {
                        path: self.path(rel),
                        error,
                    })?
            }
        };
        check_regular(&file, || self.path(rel))?;
        Ok(file)
    }

    /// Reads an attribute as UTF-8 with surrounding whitespace (the kernel's trailing `\n`) removed.
    pub fn read_string(&self, rel: impl AsRef<Path>) -> Result<String, SysfsError> {
        let rel = rel.as_ref();
        read_attr(self.open(rel)?, || self.path(rel))
    }

    /// Reads a decimal number (`sriov_totalvfs`, `numa_node`, `net/<if>/type`…).
    pub fn read_dec<T: FromStr>(&self, rel: impl AsRef<Path>) -> Result<T, SysfsError> {
        let rel = rel.as_ref();
        parse_dec(self.read_string(rel)?, || self.path(rel))
    }

    /// Reads a 16-bit hex ID as the kernel prints `vendor` and `device` (`0x8086`; the prefix is
    /// optional).
    pub fn read_hex_u16(&self, rel: impl AsRef<Path>) -> Result<u16, SysfsError> {
        let rel = rel.as_ref();
        parse_hex_u16(self.read_string(rel)?, || self.path(rel))
    }

    /// The raw target of the symlink `rel` (not followed), as `readlink(2)` gives it.
    pub fn read_link(&self, rel: impl AsRef<Path>) -> Result<PathBuf, SysfsError> {
        let rel = normalize(rel.as_ref());
        let not_a_link = |path: PathBuf, error: io::Error| {
            if error.kind() == io::ErrorKind::InvalidInput {
                SysfsError::NotASymlink { path }
            } else {
                SysfsError::Io { path, error }
            }
        };
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            let abs = self.root.join(&rel);
            return std::fs::read_link(&abs).map_err(|e| not_a_link(abs, e));
        };
        if self.is_system_root() {
            let abs = self.root.join(&rel);
            return std::fs::read_link(&abs).map_err(|e| not_a_link(abs, e));
        }
        let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        match self.open_in_root(parent, dir_flags) {
            Some(Ok(dir)) => readlinkat(&dir, name).map_err(|e| not_a_link(self.path(&rel), e)),
            Some(Err(error)) => Err(self.io_error(&rel, error)),
            None => {
                let parent = self.resolve(parent).map_err(|e| e.about(self.path(&rel)))?;
                let abs = self.root.join(parent).join(name);
                std::fs::read_link(&abs).map_err(|e| not_a_link(self.path(&rel), e))
            }
        }
    }

    /// The last component of the symlink's target: the driver name for `driver`, the group number
    /// for `iommu_group`, the PCI address for `virtfnN`/`physfn`. Works on broken links too.
    pub fn link_name(&self, rel: impl AsRef<Path>) -> Result<String, SysfsError> {
        let rel = rel.as_ref();
        target_name(self.read_link(rel)?, || self.path(rel))
    }

    /// Where the symlink `rel` points, as a path relative to the root: a relative target is taken
    /// from the link's (physical) directory, an absolute one from the root. The target itself is not
    /// required to exist, so a broken `virtfnN` still tells which VF it meant.
    pub fn link_target(&self, rel: impl AsRef<Path>) -> Result<PathBuf, SysfsError> {
        let rel = normalize(rel.as_ref());
        let parent = match rel.parent() {
            Some(p) => self.resolve(p)?,
            None => PathBuf::new(),
        };
        join_target(&parent, self.read_link(&rel)?, || self.path(&rel))
    }

    /// The names in a directory, sorted. Names that are not UTF-8 are returned lossily (they then
    /// fail to parse or to open, and callers report them).
    pub fn list_dir(&self, rel: impl AsRef<Path>) -> Result<Vec<String>, SysfsError> {
        let rel = rel.as_ref();
        let abs = if self.is_system_root() {
            self.path(rel)
        } else {
            self.root.join(self.resolve(rel)?)
        };
        let io_err = |error| SysfsError::Io {
            path: abs.clone(),
            error,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&abs).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
}

/// `open(path, O_PATH | O_DIRECTORY)`: a handle to resolve paths from.
fn open_dir_path(path: &CStr) -> io::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    Ok(nix::fcntl::open(path, flags, Mode::empty())?)
}

/// `openat2(dir, path, {flags | O_CLOEXEC, resolve})`. `None` when openat2 cannot be used (then
/// remembered: old kernel, seccomp) or cannot do it now (EAGAIN); the caller takes the slow path.
fn openat2(
    dir: &OwnedFd,
    path: &CStr,
    flags: OFlag,
    resolve: ResolveFlag,
) -> Option<io::Result<OwnedFd>> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve);
    // EAGAIN: a rename or mount anywhere on the system raced the lookup (the kernel checks
    // global sequence counts); it says to retry. Under load that is common, so retry a few
    // times before the caller walks instead.
    let mut attempts = 0;
    let res = loop {
        let res = nix::fcntl::openat2(dir, path, how);
        attempts += 1;
        if !matches!(res, Err(Errno::EAGAIN)) || attempts >= OPENAT2_ATTEMPTS {
            break res;
        }
    };
    match res {
        Ok(fd) => Some(Ok(fd)),
        // ENOSYS: old kernel; EPERM: seccomp; E2BIG/EAGAIN: cannot do it now — walk instead.
        Err(Errno::ENOSYS | Errno::EPERM | Errno::E2BIG) => {
            NO_OPENAT2.store(true, Ordering::Relaxed);
            None
        }
        Err(Errno::EAGAIN) => None,
        Err(e) => Some(Err(e.into())),
    }
}

/// Checks that `file` is a regular file.
fn check_regular(file: &File, path: impl Fn() -> PathBuf) -> Result<(), SysfsError> {
    let meta = file.metadata().map_err(|error| SysfsError::Io {
        path: path(),
        error,
    })?;
    if !meta.is_file() {
        return Err(SysfsError::NotAFile { path: path() });
    }
    Ok(())
}

/// Reads an opened attribute whole: UTF-8, at most [`MAX_ATTR_BYTES`], trimmed.
fn read_attr(mut file: File, path: impl Fn() -> PathBuf) -> Result<String, SysfsError> {
    let io_err = |error| SysfsError::Io {
        path: path(),
        error,
    };
    // Attributes are at most a page: read into the stack, and only a larger file into a Vec.
    let mut small = [0u8; 4096];
    let mut n = 0;
    let big = loop {
        let Some(rest) = small.get_mut(n..).filter(|r| !r.is_empty()) else {
            let mut v = small.to_vec();
            let limit = MAX_ATTR_BYTES + 1 - v.len() as u64;
            file.take(limit).read_to_end(&mut v).map_err(io_err)?;
            break Some(v);
        };
        let asked = rest.len();
        match file.read(rest) {
            Ok(0) => break None,
            // A regular file (checked before) reads short only at its end, and a sysfs
            // attribute hands its whole value to the first read: no second read to see EOF.
            Ok(k) if k < asked => {
                n += k;
                break None;
            }
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(e)),
        }
    };
    let bytes = big.as_deref().unwrap_or(small.get(..n).unwrap_or_default());
    if bytes.len() as u64 > MAX_ATTR_BYTES {
        return Err(SysfsError::TooLarge { path: path() });
    }
    let s = std::str::from_utf8(bytes).map_err(|_| SysfsError::NotUtf8 { path: path() })?;
    Ok(s.trim().to_string())
}

/// Parses an attribute read from `path` as a decimal number.
fn parse_dec<T: FromStr>(s: String, path: impl Fn() -> PathBuf) -> Result<T, SysfsError> {
    s.parse().map_err(|_| SysfsError::Parse {
        path: path(),
        content: s,
        expected: "a decimal number",
    })
}

/// Parses a 16-bit hex ID (`0x8086`; the prefix is optional) read from `path`.
fn parse_hex_u16(s: String, path: impl Fn() -> PathBuf) -> Result<u16, SysfsError> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(&s);
    let ok = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit());
    match ok.then(|| u16::from_str_radix(digits, 16).ok()).flatten() {
        Some(v) => Ok(v),
        None => Err(SysfsError::Parse {
            path: path(),
            content: s,
            expected: "a 16-bit hex ID like 0x8086",
        }),
    }
}

/// The last component of a symlink target read from `path`, as a string.
fn target_name(target: PathBuf, path: impl Fn() -> PathBuf) -> Result<String, SysfsError> {
    match target.file_name() {
        Some(n) => n
            .to_str()
            .map(str::to_string)
            .ok_or(SysfsError::NotUtf8 { path: path() }),
        None => Err(SysfsError::BadLinkTarget {
            path: path(),
            target,
        }),
    }
}

/// Where a symlink read from `path`, in the physical directory `parent`, points (see
/// [`Sysfs::link_target`]).
fn join_target(
    parent: &Path,
    target: PathBuf,
    path: impl Fn() -> PathBuf,
) -> Result<PathBuf, SysfsError> {
    let joined = if target.is_absolute() {
        target.clone()
    } else {
        parent.join(&target)
    };
    let out = normalize(&joined);
    if out.file_name().is_none() {
        return Err(SysfsError::BadLinkTarget {
            path: path(),
            target,
        });
    }
    Ok(out)
}

/// `readlinkat(dir, name)`. A `name` holding a NUL is refused as EINVAL, the kernel's answer
/// for "not a symlink" too, so it reads as no link by that name.
fn readlinkat(dir: &OwnedFd, name: &OsStr) -> io::Result<PathBuf> {
    Ok(PathBuf::from(nix::fcntl::readlinkat(dir, name)?))
}

/// Lexically normalizes a path to a root-relative one: drops `/` and `.`, applies `..` without
/// climbing above the root.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests;

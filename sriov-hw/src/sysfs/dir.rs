//! [`SysfsDir`]: one directory of a [`Sysfs`] tree, resolved once and held open, whose entries
//! are read relative to it.
//!
//! Discovery reads about ten entries of every function. Through the path methods of [`Sysfs`]
//! each read resolves its whole path from the root again (under a fixture root: an `lstat` per
//! component, and the root opened and closed around every `openat2`), some 80 system calls per
//! VF. A [`SysfsDir`] costs one `openat2` to open and one per entry read after that.
//!
//! The results and errors are those of the path methods on `<dir>/<name>`, and symlinks stay
//! confined to the root: a relative lookup is done by the kernel with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, and whenever it meets a symlink, or `name` is more than plain names, or
//! the lookup fails other than "no such file", or openat2 is unavailable, the method hands over
//! to the path method, which resolves symlinks inside the root.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{OFlag, ResolveFlag};

use super::{
    NO_OPENAT2, Sysfs, SysfsError, check_regular, join_target, normalize, open_dir_path, openat2,
    parse_dec, parse_hex_u16, read_attr, readlinkat, target_name,
};

/// Lookups relative to an open directory: never above it, never through a symlink.
const BENEATH: ResolveFlag = ResolveFlag::RESOLVE_BENEATH
    .union(ResolveFlag::RESOLVE_NO_SYMLINKS)
    .union(ResolveFlag::RESOLVE_NO_MAGICLINKS);

/// How directories are held: a handle to resolve from, not readable itself.
const DIR_FLAGS: OFlag = OFlag::O_PATH.union(OFlag::O_DIRECTORY);

/// A directory of a [`Sysfs`] tree (see the module docs). Create with [`Sysfs::dir`].
#[derive(Debug)]
pub struct SysfsDir<'a> {
    sysfs: &'a Sysfs,
    /// The physical path (no symlinks) relative to the root.
    rel: PathBuf,
    /// The root, shared with the directories opened from this one; `None`: path methods only.
    root: Option<Arc<OwnedFd>>,
    /// The directory itself; `None`: path methods only.
    fd: Option<OwnedFd>,
}

impl Sysfs {
    /// Resolves the directory `rel` as [`Sysfs::resolve`] does (and fails as it does) and holds it
    /// open, so its entries are read with one short lookup each.
    pub fn dir(&self, rel: impl AsRef<Path>) -> Result<SysfsDir<'_>, SysfsError> {
        let root = if self.walk_only || NO_OPENAT2.load(Ordering::Relaxed) {
            None
        } else {
            c_path(self.root.as_os_str())
                .and_then(|c| open_dir_path(&c).ok())
                .map(Arc::new)
        };
        SysfsDir::open(self, root, normalize(rel.as_ref()))
    }
}

impl<'a> SysfsDir<'a> {
    /// Opens the normalized root-relative `rel`: directly when no symlink is on the way (then `rel`
    /// is physical), else resolved first.
    fn open(
        sysfs: &'a Sysfs,
        root: Option<Arc<OwnedFd>>,
        rel: PathBuf,
    ) -> Result<Self, SysfsError> {
        if let Some(fd) = root.as_deref().and_then(|r| open_plain(r, &rel)) {
            return Ok(SysfsDir {
                sysfs,
                rel,
                root,
                fd: Some(fd),
            });
        }
        let rel = sysfs.resolve(&rel)?;
        let fd = root.as_deref().and_then(|r| open_plain(r, &rel));
        Ok(SysfsDir {
            sysfs,
            rel,
            root,
            fd,
        })
    }

    /// The directory's physical path relative to the root.
    pub fn rel(&self) -> &Path {
        &self.rel
    }

    /// The absolute path of entry `name`, for messages.
    pub fn path(&self, name: impl AsRef<Path>) -> PathBuf {
        self.sysfs.path(self.rel.join(name))
    }

    /// The directory that entry `name` is or leads to, as [`Sysfs::dir`] on `<dir>/<name>`.
    pub fn dir(&self, name: impl AsRef<Path>) -> Result<SysfsDir<'a>, SysfsError> {
        let name = name.as_ref();
        // A symlink whose target is plain (`..` only in front): it leads to the target joined to
        // this physical directory, if nothing on the way there is a symlink.
        if let (Some(fd), Some(root), Some(c)) = (&self.fd, &self.root, plain_name(name))
            && let Ok(target) = readlinkat(fd, OsStr::from_bytes(c.to_bytes()))
            && is_plain_target(&target)
        {
            let rel = normalize(&self.rel.join(&target));
            if let Some(fd) = open_plain(root, &rel) {
                return Ok(SysfsDir {
                    sysfs: self.sysfs,
                    rel,
                    root: Some(Arc::clone(root)),
                    fd: Some(fd),
                });
            }
        }
        SysfsDir::open(
            self.sysfs,
            self.root.clone(),
            normalize(&self.rel.join(name)),
        )
    }

    /// As [`Sysfs::dir`] on the root-relative `rel`, reusing this directory's handle on the root.
    pub fn dir_at_root(&self, rel: impl AsRef<Path>) -> Result<SysfsDir<'a>, SysfsError> {
        SysfsDir::open(self.sysfs, self.root.clone(), normalize(rel.as_ref()))
    }

    /// Opens entry `name` relative to the directory. `None`: take the path method instead.
    fn open_at(&self, name: &Path, flags: OFlag) -> Option<io::Result<OwnedFd>> {
        let fd = self.fd.as_ref()?;
        let c = plain_path(name)?;
        match openat2(fd, &c, flags, BENEATH)? {
            Ok(fd) => Some(Ok(fd)),
            Err(e) if e.raw_os_error() == Some(Errno::ENOENT as i32) => Some(Err(e)),
            // A symlink on the way (ELOOP), or anything unusual: the path method decides.
            Err(_) => None,
        }
    }

    /// As [`Sysfs::read_string`] on `<dir>/<name>`.
    pub fn read_string(&self, name: impl AsRef<Path>) -> Result<String, SysfsError> {
        let name = name.as_ref();
        match self.open_at(name, OFlag::O_RDONLY | OFlag::O_NONBLOCK) {
            None => self.sysfs.read_string(self.rel.join(name)),
            Some(Err(error)) => Err(SysfsError::Io {
                path: self.path(name),
                error,
            }),
            Some(Ok(fd)) => {
                let file = File::from(fd);
                check_regular(&file, || self.path(name))?;
                read_attr(file, || self.path(name))
            }
        }
    }

    /// As [`Sysfs::read_dec`] on `<dir>/<name>`.
    pub fn read_dec<T: FromStr>(&self, name: impl AsRef<Path>) -> Result<T, SysfsError> {
        let name = name.as_ref();
        parse_dec(self.read_string(name)?, || self.path(name))
    }

    /// As [`Sysfs::read_hex_u16`] on `<dir>/<name>`.
    pub fn read_hex_u16(&self, name: impl AsRef<Path>) -> Result<u16, SysfsError> {
        let name = name.as_ref();
        parse_hex_u16(self.read_string(name)?, || self.path(name))
    }

    /// As [`Sysfs::read_link`] on `<dir>/<name>`.
    pub fn read_link(&self, name: impl AsRef<Path>) -> Result<PathBuf, SysfsError> {
        let name = name.as_ref();
        if let (Some(fd), Some(c)) = (&self.fd, plain_name(name)) {
            match readlinkat(fd, OsStr::from_bytes(c.to_bytes())) {
                Ok(t) => return Ok(t),
                Err(e) if e.raw_os_error() == Some(Errno::EINVAL as i32) => {
                    return Err(SysfsError::NotASymlink {
                        path: self.path(name),
                    });
                }
                Err(error) if error.raw_os_error() == Some(Errno::ENOENT as i32) => {
                    return Err(SysfsError::Io {
                        path: self.path(name),
                        error,
                    });
                }
                Err(_) => {}
            }
        }
        self.sysfs.read_link(self.rel.join(name))
    }

    /// As [`Sysfs::link_name`] on `<dir>/<name>`.
    pub fn link_name(&self, name: impl AsRef<Path>) -> Result<String, SysfsError> {
        let name = name.as_ref();
        target_name(self.read_link(name)?, || self.path(name))
    }

    /// As [`Sysfs::link_target`] on `<dir>/<name>`.
    pub fn link_target(&self, name: impl AsRef<Path>) -> Result<PathBuf, SysfsError> {
        let name = name.as_ref();
        if plain_name(name).is_none() {
            return self.sysfs.link_target(self.rel.join(name));
        }
        join_target(&self.rel, self.read_link(name)?, || self.path(name))
    }

    /// As [`Sysfs::list_dir`] on `<dir>/<name>` (`""`: this directory).
    pub fn list_dir(&self, name: impl AsRef<Path>) -> Result<Vec<String>, SysfsError> {
        let name = name.as_ref();
        let io_err = |error| SysfsError::Io {
            path: self.path(name),
            error,
        };
        match self.open_at(name, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
            None => self.sysfs.list_dir(self.rel.join(name)),
            Some(Err(e)) => Err(io_err(e)),
            Some(Ok(fd)) => read_names(fd).map_err(io_err),
        }
    }
}

/// Opens the root-relative `rel` as a directory if no symlink is on the way.
fn open_plain(root: &OwnedFd, rel: &Path) -> Option<OwnedFd> {
    let c = c_path(rel.as_os_str())?;
    openat2(root, &c, DIR_FLAGS, BENEATH)?.ok()
}

/// `p` as a C string; the empty path is `.`. `None` if it holds a NUL byte.
fn c_path(p: &OsStr) -> Option<CString> {
    if p.is_empty() {
        return Some(c".".to_owned());
    }
    CString::new(p.as_bytes()).ok()
}

/// `name` as a C string if it is empty (the directory itself) or only plain names.
fn plain_path(name: &Path) -> Option<CString> {
    name.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| c_path(name.as_os_str()))
        .flatten()
}

/// `name` as a C string if it is exactly one plain name.
fn plain_name(name: &Path) -> Option<CString> {
    let mut c = name.components();
    match (c.next(), c.next()) {
        (Some(Component::Normal(_)), None) => CString::new(name.as_os_str().as_bytes()).ok(),
        _ => None,
    }
}

/// A symlink target whose `..` are all in front (`../../devices/x`, `/bus/pci`): joining it
/// lexically to the link's physical directory is what resolving it does, when no further
/// symlink is met.
fn is_plain_target(t: &Path) -> bool {
    let mut seen_name = false;
    for c in t.components() {
        match c {
            Component::Normal(_) => seen_name = true,
            Component::ParentDir if seen_name => return false,
            Component::ParentDir | Component::RootDir | Component::CurDir => {}
            Component::Prefix(_) => return false,
        }
    }
    seen_name
}

/// The names in the open directory `fd` (without `.` and `..`), sorted, lossily UTF-8.
fn read_names(fd: OwnedFd) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    // The stream takes `fd` over (closed on failure too) and is closed after the last entry;
    // iterating it by value does not rewind it first.
    for entry in Dir::from_fd(fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
#[path = "dir_tests.rs"]
mod tests;

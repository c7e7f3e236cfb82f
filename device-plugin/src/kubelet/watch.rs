//! Noticing socket re-creation in kubelet's device plugin directory.
//!
//! Kubelet, when it restarts, removes every plugin socket in its directory and creates a new
//! `kubelet.sock`; a plugin learns of the restart only from the files. The manager polls
//! [`FileId`]s (device, inode, ctime) every ~100 ms: a `kubelet.sock` with a new identity means
//! "register again", a plugin socket that is gone or not ours means "serve again". Polling a
//! handful of `stat`s costs nothing measurable and works on every filesystem kubelet runs on.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Identity of a directory entry: its device, inode and change time. A file that is removed and
/// created again under the same name gets a new identity even when the filesystem reuses the
/// inode number, because its ctime differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
}

impl FileId {
    /// The identity of the entry at `path` itself (not following symlinks), or `None` when there
    /// is none (or it cannot be inspected, which for our purpose is the same).
    pub(crate) fn of(path: &Path) -> Option<Self> {
        std::fs::symlink_metadata(path).ok().map(|m| Self {
            dev: m.dev(),
            ino: m.ino(),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// Tracks `kubelet.sock`: [`KubeletSocket::changed`] is true once per appearance of a new
/// socket (first seen, or re-created).
#[derive(Debug)]
pub(crate) struct KubeletSocket {
    last: Option<FileId>,
}

impl KubeletSocket {
    /// Starts from the current state of `path`, so an existing socket does not count as new.
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            last: FileId::of(path),
        }
    }

    /// Whether a socket is now at `path` that was not there at the previous call.
    pub(crate) fn changed(&mut self, path: &Path) -> bool {
        let now = FileId::of(path);
        let changed = now.is_some() && now != self.last;
        self.last = now;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recreated_file_is_noticed_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kubelet.sock");
        let mut k = KubeletSocket::new(&p);
        assert!(!k.changed(&p));
        std::fs::write(&p, b"").unwrap();
        assert!(k.changed(&p));
        assert!(!k.changed(&p));
        std::fs::remove_file(&p).unwrap();
        // Timestamps tick at the kernel's coarse clock; step past it in case the inode is reused.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, b"").unwrap();
        assert!(k.changed(&p));
        std::fs::remove_file(&p).unwrap();
        assert!(!k.changed(&p));
    }
}

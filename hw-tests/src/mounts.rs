//! A private tmpfs for fault tests: a tiny one that a test fills up, or a read-only one, to
//! put the agent's state directory on storage that fails the way a real disk does (ENOSPC,
//! EROFS). The mount is detached on drop, even when the test panics, and its mount point (a
//! temporary directory of its own, outside any other test directory) is then removed.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A tmpfs mounted on a fresh temporary directory; unmounted (lazily) on drop.
pub struct Tmpfs {
    /// Dropped after the unmount in `Drop::drop`, which removes the now empty mount point.
    dir: tempfile::TempDir,
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("path without NUL")
}

fn check(rc: libc::c_int, what: &str, path: &Path) -> io::Result<()> {
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    Err(io::Error::new(
        e.kind(),
        format!("{what} {}: {e}", path.display()),
    ))
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_kib` KiB (read-only from the start when `read_only`).
    pub fn mount(size_kib: u64, read_only: bool) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("sriov-fault-").tempdir()?;
        let target = cstr(dir.path());
        let opts = CString::new(format!("size={size_kib}k,mode=0755")).expect("options");
        let flags = if read_only { libc::MS_RDONLY } else { 0 };
        // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                flags,
                opts.as_ptr().cast(),
            )
        };
        check(rc, "mount tmpfs on", dir.path())?;
        Ok(Tmpfs { dir })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts read-only (what the kernel does to a filesystem after an I/O error with
    /// `errors=remount-ro`, or an operator's `mount -o remount,ro`).
    pub fn remount_read_only(&self) -> io::Result<()> {
        let target = cstr(self.path());
        // SAFETY: valid NUL-terminated target; source, type and data may be null for a remount.
        let rc = unsafe {
            libc::mount(
                std::ptr::null(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_RDONLY,
                std::ptr::null(),
            )
        };
        check(rc, "remount read-only", self.path())
    }

    /// Writes zeros to `<mount>/<name>` until the filesystem is full; returns the file's path.
    /// Fails if the write stops for any reason other than ENOSPC.
    pub fn fill(&self, name: &str) -> io::Result<PathBuf> {
        use std::io::Write;
        let path = self.path().join(name);
        let mut f = std::fs::File::create(&path)?;
        let chunk = vec![0u8; 4096];
        loop {
            match f.write(&chunk) {
                Ok(0) => return Err(io::Error::other("write returned 0")),
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(e),
            }
        }
        // Whatever the page cache still holds is already charged to the tmpfs.
        Ok(path)
    }

    /// Bytes still free on the filesystem (statvfs).
    pub fn free_bytes(&self) -> io::Result<u64> {
        let target = cstr(self.path());
        // SAFETY: statvfs is plain data; the kernel fills it on success.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid NUL-terminated path and a valid out-pointer.
        let rc = unsafe { libc::statvfs(target.as_ptr(), &mut st) };
        check(rc, "statvfs", self.path())?;
        Ok(st.f_bavail as u64 * st.f_frsize as u64)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = cstr(self.path());
        // MNT_DETACH: gone from the namespace now even if a (killed) agent still holds a file.
        // SAFETY: valid NUL-terminated path.
        let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 {
            eprintln!(
                "unmount {}: {}",
                self.path().display(),
                io::Error::last_os_error()
            );
        }
        // `dir` drops next and removes the (now plain, empty) mount point.
    }
}

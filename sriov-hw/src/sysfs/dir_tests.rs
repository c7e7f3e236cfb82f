//! [`SysfsDir`] answers exactly as the path methods of [`Sysfs`] on `<dir>/<name>`, with openat2
//! and with the userspace walk, on plain entries, symlinked ones, and broken ones.

use std::fmt::Debug;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use super::super::{Sysfs, SysfsError};

/// Runs `f` on a fresh tree with the openat2 reader and with the userspace walk.
fn both(f: impl Fn(&Path, &Sysfs)) {
    for walk_only in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let sys = Sysfs {
            walk_only,
            ..Sysfs::new(dir.path())
        };
        f(dir.path(), &sys);
    }
}

fn show<T: Debug>(r: Result<T, SysfsError>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("err {e} (not found: {})", e.is_not_found()),
    }
}

/// A PCI-like tree: a bus symlink to a device whose entries are plain, symlinked, and broken.
fn build(d: &Path) {
    let dev = d.join("devices/pci0000:00/0000:01:00.0");
    fs::create_dir_all(dev.join("net/eth0")).unwrap();
    fs::create_dir_all(d.join("devices/pci0000:00/0000:01:10.0")).unwrap();
    fs::create_dir_all(d.join("bus/pci/devices")).unwrap();
    fs::create_dir_all(d.join("bus/pci/drivers/ice")).unwrap();
    fs::create_dir_all(d.join("other/sub")).unwrap();
    fs::write(dev.join("vendor"), "0x8086\n").unwrap();
    fs::write(dev.join("numa_node"), "-1\n").unwrap();
    fs::write(dev.join("garbage"), "zz\n").unwrap();
    fs::write(dev.join("net/eth0/type"), "1\n").unwrap();
    fs::write(d.join("other/sub/device"), "0x1593\n").unwrap();
    fs::create_dir(dev.join("adir")).unwrap();
    symlink(
        "../../../devices/pci0000:00/0000:01:00.0",
        d.join("bus/pci/devices/0000:01:00.0"),
    )
    .unwrap();
    symlink("../../../bus/pci/drivers/ice", dev.join("driver")).unwrap();
    symlink("../0000:01:10.0", dev.join("virtfn0")).unwrap();
    symlink("/other/sub/device", dev.join("device")).unwrap();
    symlink("../../../../../../../etc/hostname", dev.join("escape")).unwrap();
    symlink("missing", dev.join("broken")).unwrap();
    symlink("loop", dev.join("loop")).unwrap();
    symlink("/other", dev.join("abslink")).unwrap();
    symlink("../0000:01:10.0/../../../other", dev.join("crooked")).unwrap();
}

const NAMES: &[&str] = &[
    "vendor",
    "device",
    "numa_node",
    "garbage",
    "adir",
    "driver",
    "virtfn0",
    "escape",
    "broken",
    "loop",
    "abslink",
    "crooked",
    "missing",
    "net",
    "net/eth0",
    "net/eth0/type",
    "abslink/sub",
    "../0000:01:10.0",
    "",
];

#[test]
fn entries_read_as_the_path_methods_read_them() {
    both(|d, sys| {
        build(d);
        for base in [
            "devices/pci0000:00/0000:01:00.0",
            "bus/pci/devices/0000:01:00.0",
        ] {
            let dir = sys.dir(base).unwrap();
            assert_eq!(dir.rel(), Path::new("devices/pci0000:00/0000:01:00.0"));
            for name in NAMES {
                let rel = dir.rel().join(name);
                let ctx = format!("{base} / {name:?}");
                assert_eq!(
                    show(dir.read_string(name)),
                    show(sys.read_string(&rel)),
                    "{ctx}"
                );
                assert_eq!(
                    show(dir.read_dec::<i32>(name)),
                    show(sys.read_dec::<i32>(&rel)),
                    "{ctx}"
                );
                assert_eq!(
                    show(dir.read_hex_u16(name)),
                    show(sys.read_hex_u16(&rel)),
                    "{ctx}"
                );
                assert_eq!(
                    show(dir.read_link(name)),
                    show(sys.read_link(&rel)),
                    "{ctx}"
                );
                assert_eq!(
                    show(dir.link_name(name)),
                    show(sys.link_name(&rel)),
                    "{ctx}"
                );
                assert_eq!(
                    show(dir.link_target(name)),
                    show(sys.link_target(&rel)),
                    "{ctx}"
                );
                assert_eq!(show(dir.list_dir(name)), show(sys.list_dir(&rel)), "{ctx}");
                let sub = dir.dir(name).map(|s| s.rel().to_path_buf());
                assert_eq!(show(sub), show(sys.resolve(&rel)), "{ctx}");
            }
        }
    });
}

#[test]
fn directories_resolve_inside_the_root() {
    both(|d, sys| {
        build(d);
        let bus = sys.dir("bus/pci/devices").unwrap();
        let dev = bus.dir("0000:01:00.0").unwrap();
        assert_eq!(dev.rel(), Path::new("devices/pci0000:00/0000:01:00.0"));
        assert_eq!(dev.read_hex_u16("vendor").unwrap(), 0x8086);
        // An absolute link means "under the root".
        assert_eq!(dev.read_hex_u16("device").unwrap(), 0x1593);
        assert_eq!(dev.dir("abslink").unwrap().rel(), Path::new("other"));
        // Escaping links stay under the root: the host's file is never read.
        let e = dev.read_string("escape").unwrap_err();
        assert!(e.is_not_found() && e.path().starts_with(d), "{e}");
        let vf = dev
            .dir_at_root(dev.link_target("virtfn0").unwrap())
            .unwrap();
        assert_eq!(vf.rel(), Path::new("devices/pci0000:00/0000:01:10.0"));
        assert_eq!(dev.list_dir("net").unwrap(), ["eth0"]);
        assert!(sys.dir("nope").unwrap_err().is_not_found());
        assert!(dev.dir("broken").unwrap_err().is_not_found());
        assert!(matches!(
            dev.dir("loop").unwrap_err(),
            SysfsError::SymlinkLoop { .. }
        ));
    });
}

#[test]
fn kernel_roots_read_through_the_kernel() {
    if !Path::new("/proc/self/stat").exists() {
        eprintln!("SKIP: no /proc");
        return;
    }
    let proc_ = Sysfs::new("/proc");
    let me = proc_.dir("self").unwrap();
    assert_eq!(me.rel(), Path::new(&std::process::id().to_string()));
    assert!(!me.read_string("stat").unwrap().is_empty());
    assert!(me.read_string("nonexistent").unwrap_err().is_not_found());
}

/// The userspace walk (old kernels, and any lookup that openat2 answers with EAGAIN, which a
/// rename anywhere on a loaded machine causes) answers as openat2 does and names the same
/// paths, so which of the two ran never shows in a result or an error.
#[test]
fn the_walk_and_openat2_answer_alike() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let fast = Sysfs::new(dir.path());
    let walk = Sysfs {
        walk_only: true,
        ..Sysfs::new(dir.path())
    };
    for base in [
        "devices/pci0000:00/0000:01:00.0",
        "bus/pci/devices/0000:01:00.0",
    ] {
        for name in NAMES {
            let rel = Path::new(base).join(name);
            let each = |s: &Sysfs| {
                [
                    show(s.read_string(&rel)),
                    show(s.read_link(&rel)),
                    show(s.link_name(&rel)),
                    show(s.link_target(&rel)),
                    show(s.list_dir(&rel)),
                    show(s.resolve(&rel)),
                ]
            };
            assert_eq!(each(&fast), each(&walk), "{rel:?}");
        }
    }
}

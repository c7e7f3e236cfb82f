//! The rooted reader: confinement of symlinks, errors, and the userspace fallback walk.

use super::*;
use std::fs;
use std::os::unix::fs::symlink;

fn tree() -> (tempfile::TempDir, Sysfs) {
    let dir = tempfile::tempdir().unwrap();
    let sys = Sysfs::new(dir.path());
    (dir, sys)
}

/// Runs `f` with the openat2 reader and with the userspace walk old kernels get.
fn both(f: impl Fn(&Path, &Sysfs)) {
    let (dir, sys) = tree();
    f(dir.path(), &sys);
    let (dir, sys) = tree();
    let walk = Sysfs {
        walk_only: true,
        ..sys
    };
    f(dir.path(), &walk);
}

#[test]
fn reads_trimmed_strings_and_numbers() {
    both(|d, sys| {
        fs::write(d.join("n"), "64\n").unwrap();
        fs::write(d.join("neg"), "-1\n").unwrap();
        fs::write(d.join("vendor"), "0x8086\n").unwrap();
        fs::write(d.join("bare"), "15b3").unwrap();
        assert_eq!(sys.read_string("n").unwrap(), "64");
        assert_eq!(sys.read_dec::<u32>("n").unwrap(), 64);
        assert_eq!(sys.read_dec::<i32>("neg").unwrap(), -1);
        assert_eq!(sys.read_hex_u16("vendor").unwrap(), 0x8086);
        assert_eq!(sys.read_hex_u16("bare").unwrap(), 0x15b3);
    });
}

#[test]
fn garbage_is_an_error_naming_the_path() {
    both(|d, sys| {
        fs::write(d.join("g"), "lots\n").unwrap();
        fs::write(d.join("h"), "0x18086\n").unwrap();
        fs::write(d.join("x"), "0x\n").unwrap();
        fs::write(d.join("bin"), [0xff, 0xfe, 0x00]).unwrap();
        fs::create_dir(d.join("d")).unwrap();
        let e = sys.read_dec::<u32>("g").unwrap_err();
        assert!(matches!(e, SysfsError::Parse { .. }), "{e}");
        assert_eq!(e.path(), d.join("g"));
        assert!(e.to_string().contains("\"lots\""), "{e}");
        assert!(sys.read_hex_u16("h").is_err());
        assert!(sys.read_hex_u16("x").is_err());
        assert!(matches!(
            sys.read_string("bin").unwrap_err(),
            SysfsError::NotUtf8 { .. }
        ));
        assert!(matches!(
            sys.read_string("d").unwrap_err(),
            SysfsError::NotAFile { .. }
        ));
        let missing = sys.read_string("nope").unwrap_err();
        assert!(missing.is_not_found());
        assert_eq!(missing.path(), d.join("nope"));
    });
}

#[test]
fn fifo_is_refused_without_blocking() {
    both(|d, sys| {
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
        nix::unistd::mkfifo(&d.join("fifo"), mode).unwrap();
        assert!(matches!(
            sys.read_string("fifo").unwrap_err(),
            SysfsError::NotAFile { .. }
        ));
    });
}

#[test]
fn relative_links_resolve_from_the_links_physical_directory() {
    both(|d, sys| {
        fs::create_dir_all(d.join("devices/pci0000:00/0000:01:00.0")).unwrap();
        fs::create_dir_all(d.join("devices/pci0000:00/0000:01:10.0")).unwrap();
        fs::create_dir_all(d.join("bus/pci/devices")).unwrap();
        fs::write(d.join("devices/pci0000:00/0000:01:10.0/vendor"), "0x8086\n").unwrap();
        symlink(
            "../../../devices/pci0000:00/0000:01:00.0",
            d.join("bus/pci/devices/0000:01:00.0"),
        )
        .unwrap();
        symlink(
            "../0000:01:10.0",
            d.join("devices/pci0000:00/0000:01:00.0/virtfn0"),
        )
        .unwrap();
        // Through the bus symlink, `..` must be taken physically (devices/pci0000:00), not lexically.
        assert_eq!(
            sys.link_target("bus/pci/devices/0000:01:00.0/virtfn0")
                .unwrap(),
            Path::new("devices/pci0000:00/0000:01:10.0")
        );
        assert_eq!(
            sys.read_hex_u16("bus/pci/devices/0000:01:00.0/virtfn0/vendor")
                .unwrap(),
            0x8086
        );
        assert_eq!(
            sys.link_name("bus/pci/devices/0000:01:00.0/virtfn0")
                .unwrap(),
            "0000:01:10.0"
        );
        assert_eq!(
            sys.resolve("bus/pci/devices/0000:01:00.0").unwrap(),
            Path::new("devices/pci0000:00/0000:01:00.0")
        );
    });
}

#[test]
fn absolute_and_escaping_links_stay_under_the_root() {
    both(|d, sys| {
        fs::create_dir_all(d.join("kernel/iommu_groups/7")).unwrap();
        fs::write(d.join("kernel/iommu_groups/7/type"), "DMA\n").unwrap();
        // An absolute target means "under the root", never the host's file.
        symlink("/kernel/iommu_groups/7", d.join("grp")).unwrap();
        assert_eq!(sys.read_string("grp/type").unwrap(), "DMA");
        symlink("/etc/hostname", d.join("host")).unwrap();
        let e = sys.read_string("host").unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.path().starts_with(d), "{e}");
        // `..` above the root stays at the root.
        symlink("../../../../../../etc/passwd", d.join("up")).unwrap();
        assert!(sys.read_string("up").unwrap_err().is_not_found());
        assert_eq!(sys.link_target("up").unwrap(), Path::new("etc/passwd"));
        assert_eq!(
            sys.read_string("../../kernel/iommu_groups/7/type").unwrap(),
            "DMA"
        );
    });
}

#[test]
fn broken_and_looping_links_are_errors() {
    both(|d, sys| {
        symlink("missing", d.join("broken")).unwrap();
        symlink("loop2", d.join("loop1")).unwrap();
        symlink("loop1", d.join("loop2")).unwrap();
        fs::write(d.join("plain"), "x").unwrap();
        assert!(sys.read_string("broken").unwrap_err().is_not_found());
        // A broken link still names its target.
        assert_eq!(sys.link_name("broken").unwrap(), "missing");
        assert!(matches!(
            sys.read_string("loop1").unwrap_err(),
            SysfsError::SymlinkLoop { .. }
        ));
        assert!(matches!(
            sys.read_link("plain").unwrap_err(),
            SysfsError::NotASymlink { .. }
        ));
        symlink("..", d.join("dots")).unwrap();
        assert!(matches!(
            sys.link_name("dots").unwrap_err(),
            SysfsError::BadLinkTarget { .. }
        ));
    });
}

#[test]
fn lists_directories_sorted() {
    both(|d, sys| {
        for n in ["virtfn10", "virtfn2", "a"] {
            fs::write(d.join(n), "").unwrap();
        }
        assert_eq!(sys.list_dir("").unwrap(), ["a", "virtfn10", "virtfn2"]);
        assert!(sys.list_dir("nope").unwrap_err().is_not_found());
    });
}

#[test]
fn kernel_roots_read_through_the_kernel() {
    assert_eq!(Sysfs::host().root(), Path::new("/sys"));
    if !Path::new("/proc/self/stat").exists() {
        eprintln!("SKIP: no /proc");
        return;
    }
    let proc_ = Sysfs::new("/proc");
    assert!(!proc_.read_string("self/stat").unwrap().is_empty());
    let pid = proc_.resolve("self").unwrap();
    assert_eq!(pid, Path::new(&std::process::id().to_string()));
    assert!(
        proc_
            .read_string("self/nonexistent")
            .unwrap_err()
            .is_not_found()
    );
}

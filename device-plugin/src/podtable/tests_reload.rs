//! Reload tests: good → bad → good, vanished files, and the ConfigMap `..data` symlink swap.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;

const GOOD_A: &str = r#"{"networks": {"net": {"pods": {"default/a": {"ips": ["10.0.0.1/24"]}}}}}"#;
const GOOD_B: &str = r#"{"networks": {"net": {"pods": {
    "default/a": {"ips": ["10.0.0.1/24"]}, "default/b": {"ips": ["10.0.0.2/24"]}}}}}"#;
const BAD: &str = r#"{"networks": {"net": {"pods": {"default/a": {"ips": ["10.0.0.300/24"]}}}}}"#;

/// Writes like an editor that saves in place (same inode).
fn write_in_place(p: &Path, s: &str) {
    std::fs::write(p, s).unwrap();
}

fn has_pod(src: &PodTableSource, name: &str) -> bool {
    src.table().lookup("net", "default", name).is_some()
}

#[test]
fn good_then_bad_then_good() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.json");
    let mut src = PodTableSource::new(&path);

    write_in_place(&path, GOOD_A);
    assert_eq!(
        src.refresh(),
        RefreshOutcome::Loaded {
            networks: 1,
            entries: 1
        }
    );
    assert!(has_pod(&src, "a"));
    assert_eq!(src.refresh(), RefreshOutcome::Unchanged);

    write_in_place(&path, BAD);
    let RefreshOutcome::Rejected { error, .. } = src.refresh() else {
        panic!("bad table not rejected")
    };
    assert!(
        error.contains(r#"network "net" pod "default/a": ips[0] "10.0.0.300/24" is not a CIDR"#),
        "{error}"
    );
    assert!(has_pod(&src, "a"), "the last good table stays in force");
    assert_eq!(
        src.refresh(),
        RefreshOutcome::Unchanged,
        "the same bad content is not re-reported"
    );
    let st = src.status();
    assert_eq!(
        (st.loads_ok, st.loads_failed, st.entries, st.present),
        (1, 1, 1, true)
    );
    assert_eq!(st.last_error.as_deref(), Some(error.as_str()));

    write_in_place(&path, GOOD_B);
    assert_eq!(
        src.refresh(),
        RefreshOutcome::Loaded {
            networks: 1,
            entries: 2
        }
    );
    assert!(has_pod(&src, "b"));
    let st = src.status();
    assert_eq!((st.loads_ok, st.loads_failed, st.last_error), (2, 1, None));
    assert!(st.loaded_at_unix.is_some());
}

#[test]
fn snapshots_handed_out_survive_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.json");
    write_in_place(&path, GOOD_A);
    let mut src = PodTableSource::new(&path);
    src.refresh();
    let old = src.table();
    write_in_place(&path, r#"{"networks": {}}"#);
    assert_eq!(
        src.refresh(),
        RefreshOutcome::Loaded {
            networks: 0,
            entries: 0
        }
    );
    assert_eq!(old.entries(), 1);
    assert_eq!(src.table().entries(), 0);
}

#[test]
fn settled_file_is_checked_by_stat_and_edits_still_seen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.json");
    let old = SystemTime::now() - Duration::from_secs(60);
    write_in_place(&path, GOOD_A);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let mut src = PodTableSource::new(&path);
    assert!(matches!(src.refresh(), RefreshOutcome::Loaded { .. }));
    assert_eq!(src.refresh(), RefreshOutcome::Unchanged);
    // An in-place edit that even restores the old mtime: size and ctime give it away.
    write_in_place(&path, GOOD_B);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(
        src.refresh(),
        RefreshOutcome::Loaded {
            networks: 1,
            entries: 2
        }
    );
}

#[test]
fn missing_file_is_an_empty_table_until_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.json");
    let mut src = PodTableSource::new(&path);
    assert_eq!(
        src.refresh(),
        RefreshOutcome::Missing {
            kept_last_good: false
        }
    );
    assert_eq!(
        src.refresh(),
        RefreshOutcome::Unchanged,
        "reported (and logged) once"
    );
    assert_eq!(src.table().entries(), 0);
    assert!(!src.status().present);

    write_in_place(&path, GOOD_A);
    assert!(matches!(src.refresh(), RefreshOutcome::Loaded { .. }));

    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        src.refresh(),
        RefreshOutcome::Missing {
            kept_last_good: true
        }
    );
    assert!(
        has_pod(&src, "a"),
        "a vanished file keeps the last good table"
    );
    assert_eq!(src.refresh(), RefreshOutcome::Unchanged);

    write_in_place(&path, GOOD_B);
    assert!(matches!(
        src.refresh(),
        RefreshOutcome::Loaded { entries: 2, .. }
    ));
}

#[test]
fn bad_table_at_start_leaves_the_empty_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.json");
    write_in_place(&path, "{not json");
    let mut src = PodTableSource::new(&path);
    assert!(matches!(src.refresh(), RefreshOutcome::Rejected { .. }));
    let st = src.status();
    assert_eq!((st.loads_ok, st.loads_failed, st.entries), (0, 1, 0));
    assert!(st.last_error.unwrap().contains("not JSON"));
}

/// Kubelet's atomic writer: data in `..<timestamp>/`, `..data` → that dir, and the key a
/// symlink `<key>` → `..data/<key>`. An update writes a new dir and renames a new symlink over
/// `..data`, then removes the old dir.
struct ConfigMapVolume {
    root: tempfile::TempDir,
    generation: u32,
}

impl ConfigMapVolume {
    fn new(content: &str) -> Self {
        let mut v = ConfigMapVolume {
            root: tempfile::tempdir().unwrap(),
            generation: 0,
        };
        v.update(content);
        std::os::unix::fs::symlink("..data/table.json", v.root.path().join("table.json")).unwrap();
        v
    }

    fn key_path(&self) -> std::path::PathBuf {
        self.root.path().join("table.json")
    }

    fn update(&mut self, content: &str) {
        let root = self.root.path();
        let old = format!("..gen_{}", self.generation);
        self.generation += 1;
        let new = format!("..gen_{}", self.generation);
        std::fs::create_dir(root.join(&new)).unwrap();
        let file = root.join(&new).join("table.json");
        std::fs::write(&file, content).unwrap();
        // Old timestamps, so the reloader trusts its stamp: only the inode reveals the swap.
        let then = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(then)
            .unwrap();
        std::os::unix::fs::symlink(&new, root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        let _ = std::fs::remove_dir_all(root.join(old));
    }
}

#[test]
fn configmap_symlink_swap_is_picked_up() {
    let mut vol = ConfigMapVolume::new(GOOD_A);
    let mut src = PodTableSource::new(vol.key_path());
    assert!(matches!(
        src.refresh(),
        RefreshOutcome::Loaded { entries: 1, .. }
    ));
    assert_eq!(src.refresh(), RefreshOutcome::Unchanged);

    vol.update(GOOD_B);
    assert!(matches!(
        src.refresh(),
        RefreshOutcome::Loaded { entries: 2, .. }
    ));

    vol.update(BAD);
    assert!(matches!(src.refresh(), RefreshOutcome::Rejected { .. }));
    assert!(has_pod(&src, "b"));

    // A swap to identical contents (the same data republished) is not a new load.
    vol.update(BAD);
    assert_eq!(src.refresh(), RefreshOutcome::Unchanged);
    assert_eq!(src.status().loads_failed, 1);

    vol.update(GOOD_A);
    assert!(matches!(
        src.refresh(),
        RefreshOutcome::Loaded { entries: 1, .. }
    ));
    assert!(!has_pod(&src, "b"));

    // The volume going away entirely (dangling `..data`): keep the last good table.
    std::fs::remove_dir_all(vol.root.path().join(format!("..gen_{}", vol.generation))).unwrap();
    assert_eq!(
        src.refresh(),
        RefreshOutcome::Missing {
            kept_last_good: true
        }
    );
    assert!(has_pod(&src, "a"));
}

#[test]
fn a_table_over_the_size_cap_is_refused_unread_and_the_last_good_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("table.json");
    let mut src = PodTableSource::new(&path);
    write_in_place(&path, GOOD_A);
    assert!(matches!(src.refresh(), RefreshOutcome::Loaded { .. }));
    // Valid JSON padded past the cap with whitespace.
    let big = format!("{GOOD_B}{}", " ".repeat(MAX_TABLE_BYTES));
    write_in_place(&path, &big);
    let RefreshOutcome::Rejected { error, .. } = src.refresh() else {
        panic!("an over-cap table was not rejected")
    };
    assert!(error.contains("over the 16 MiB cap"), "{error}");
    assert!(
        has_pod(&src, "a") && !has_pod(&src, "b"),
        "the last good table stays"
    );
    // The same pushed through the API path is refused alike.
    let mut pushed = PodTableSource::pushed("configmap t/t");
    let RefreshOutcome::Rejected { error, .. } = pushed.offer(Some(big.as_bytes())) else {
        panic!("an over-cap pushed table was not rejected")
    };
    assert!(error.contains("over the 16 MiB cap"), "{error}");
}

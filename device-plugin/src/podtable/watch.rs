//! Reloading the pod table: cheap enough to call on every CNI ADD, and never losing the last
//! good table to a bad edit or a vanished file or ConfigMap.
//!
//! Two origins feed one [`PodTableSource`]: a file it re-reads itself ([`PodTableSource::new`]),
//! or contents pushed to it by a watch on the API server ([`PodTableSource::pushed`],
//! [`PodTableSource::offer`]). Validation, the last-good rule and the counters are the same.
//!
//! For the file:
//! A ConfigMap volume updates by writing a new timestamped directory and swapping the `..data`
//! symlink; the file the agent is pointed at (`<mount>/<key>`) is a symlink through `..data`.
//! So the file is `stat`ed through its symlinks and identified by (device, inode, size, mtime,
//! ctime): the swap changes the inode, an in-place edit changes size or times. A stamp whose
//! mtime is under two seconds old is "racy" (a second write in the same timestamp tick would
//! not change it), so the file is re-read until its stamp settles; re-reading content that hashes
//! the same as the last read is not a new load.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{PodTable, PodTableError};

/// A stamp this young may hide a second write in the same timestamp tick.
const RACY: Duration = Duration::from_secs(2);

/// What one [`PodTableSource::refresh`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The file (or its absence) is as last seen; the table in force is unchanged.
    Unchanged,
    /// New content was valid and is now in force.
    Loaded {
        /// Networks in the new table.
        networks: usize,
        /// Pod entries in the new table, over all networks.
        entries: usize,
    },
    /// New content could not be read or was invalid; the last good table stays in force.
    /// `problems` lists each problem on its own (one entry for a read or JSON error).
    Rejected {
        /// The error, as one line for the logs.
        error: String,
        /// Each problem on its own, for `status` and the rejection Event.
        problems: Vec<String>,
    },
    /// The file does not exist (or is a dangling symlink). Before any good load the table is
    /// empty; after one, the last good table stays (`kept_last_good`).
    Missing {
        /// Whether an earlier good table stays in force (`false`: the table is now empty).
        kept_last_good: bool,
    },
}

/// The reloader's state for metrics and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceStatus {
    /// The file's path, or `configmap NAMESPACE/NAME`.
    pub origin: String,
    /// Whether the file (or ConfigMap, or its key) existed at the last refresh.
    pub present: bool,
    /// Valid contents loaded since start.
    pub loads_ok: u64,
    /// Contents read and rejected (or unreadable) since start; each file version counts once.
    pub loads_failed: u64,
    /// Why the newest contents were rejected; cleared by the next good load.
    pub last_error: Option<String>,
    /// When the table in force was loaded (seconds since the epoch); `None` if never.
    pub loaded_at_unix: Option<u64>,
    /// Networks and entries of the table in force.
    pub networks: usize,
    /// Pod entries of the table in force, over all networks.
    pub entries: usize,
}

/// The file's identity and version as `stat` (through symlinks) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Self {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    fn is_racy(&self) -> bool {
        let t = UNIX_EPOCH
            + Duration::new(
                self.mtime.0.max(0) as u64,
                self.mtime.1.clamp(0, 999_999_999) as u32,
            );
        SystemTime::now()
            .duration_since(t)
            .map_or(true, |age| age < RACY)
    }
}

/// Where a source's contents come from.
#[derive(Debug, Clone)]
enum Origin {
    /// A file, re-read by [`PodTableSource::refresh`] when its stamp changes.
    File(PathBuf),
    /// Pushed by [`PodTableSource::offer`]; the string names it (`configmap NS/NAME`).
    Pushed(String),
}

/// The pod table's origin and the last good table read from it. The agent owns one (behind a
/// mutex), calls [`refresh`](Self::refresh) before each lookup or on a timer (a pushed source
/// ignores it), and hands out [`table`](Self::table) snapshots.
#[derive(Debug)]
pub struct PodTableSource {
    origin: Origin,
    /// A pushed source that has not been offered anything yet: lookups must not fall back to
    /// IPAM while the table is simply not known.
    awaiting_first: bool,
    current: Arc<PodTable>,
    /// The stamp of the last read, if it can be trusted to detect the next change.
    stamp: Option<Stamp>,
    /// Hash of the last contents read (good or bad), so identical contents are not reloaded,
    /// and why those contents were rejected, if they were.
    content_hash: Option<u64>,
    content_error: Option<String>,
    present: bool,
    missing_logged: bool,
    loads_ok: u64,
    loads_failed: u64,
    last_error: Option<String>,
    loaded_at: Option<SystemTime>,
}

impl PodTableSource {
    /// A source for `path` holding the empty table; nothing is read until the first
    /// [`refresh`](Self::refresh).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_origin(Origin::File(path.into()))
    }

    /// A source whose contents arrive through [`offer`](Self::offer) (`what` names the origin in
    /// logs and `status`). Until the first offer, [`awaiting_first`](Self::awaiting_first).
    pub fn pushed(what: impl Into<String>) -> Self {
        let mut src = Self::with_origin(Origin::Pushed(what.into()));
        src.awaiting_first = true;
        src
    }

    fn with_origin(origin: Origin) -> Self {
        PodTableSource {
            origin,
            awaiting_first: false,
            current: Arc::new(PodTable::empty()),
            stamp: None,
            content_hash: None,
            content_error: None,
            present: false,
            missing_logged: false,
            loads_ok: 0,
            loads_failed: 0,
            last_error: None,
            loaded_at: None,
        }
    }

    /// The file, for a file source.
    pub fn path(&self) -> Option<&Path> {
        match &self.origin {
            Origin::File(p) => Some(p),
            Origin::Pushed(_) => None,
        }
    }

    /// What the table is read from, for logs and `status`.
    pub fn origin(&self) -> String {
        match &self.origin {
            Origin::File(p) => p.display().to_string(),
            Origin::Pushed(what) => what.clone(),
        }
    }

    /// A pushed source that has not yet heard whether its origin exists.
    pub fn awaiting_first(&self) -> bool {
        self.awaiting_first
    }

    /// New contents from a pushed origin (`None`: the ConfigMap or its key is gone). The same
    /// rules as a file: identical contents are not a new load, an invalid table keeps the last
    /// good one, and a vanished origin keeps it too.
    pub fn offer(&mut self, contents: Option<&[u8]>) -> RefreshOutcome {
        self.awaiting_first = false;
        match contents {
            None => self.missing(),
            Some(bytes) => {
                self.present = true;
                self.missing_logged = false;
                self.load(bytes)
            }
        }
    }

    /// The table in force: the last good one, or the empty table if none was ever loaded.
    pub fn table(&self) -> Arc<PodTable> {
        Arc::clone(&self.current)
    }

    /// Re-reads the file if it changed since the last call (one `stat` otherwise). Never
    /// replaces the table in force with anything but a valid table.
    pub fn refresh(&mut self) -> RefreshOutcome {
        let Origin::File(path) = &self.origin else {
            return RefreshOutcome::Unchanged;
        };
        let path = path.clone();
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.missing(),
            Err(source) => return self.io_error(source),
        };
        self.present = true;
        self.missing_logged = false;
        let stamp = Stamp::of(&meta);
        if meta.len() > super::MAX_TABLE_BYTES as u64 {
            // Not read at all; refused once per file version.
            if self.stamp == Some(stamp) {
                return RefreshOutcome::Unchanged;
            }
            self.stamp = (!stamp.is_racy()).then_some(stamp);
            let error = PodTableError::TooLarge { len: meta.len() }.to_string();
            self.content_hash = None;
            self.content_error = Some(error.clone());
            return self.reject(error.clone(), vec![error]);
        }
        if self.stamp == Some(stamp) {
            return RefreshOutcome::Unchanged;
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(source) => return self.io_error(source),
        };
        // Stamped before the read, so a write racing the read changes the next stamp.
        self.stamp = (!stamp.is_racy()).then_some(stamp);
        self.load(&bytes)
    }

    /// Validates `bytes` and puts them in force if they are new and valid.
    fn load(&mut self, bytes: &[u8]) -> RefreshOutcome {
        let hash = {
            let mut h = DefaultHasher::new();
            bytes.hash(&mut h);
            h.finish()
        };
        if self.content_hash == Some(hash) {
            // Same contents as last read (a touch, a swap to identical data, the end of an I/O
            // error): same verdict as then.
            self.last_error.clone_from(&self.content_error);
            return RefreshOutcome::Unchanged;
        }
        self.content_hash = Some(hash);
        match PodTable::parse(bytes) {
            Ok(table) => {
                let (networks, entries) = (table.networks(), table.entries());
                self.current = Arc::new(table);
                self.loads_ok += 1;
                self.content_error = None;
                self.last_error = None;
                self.loaded_at = Some(SystemTime::now());
                tracing::info!(origin = %self.origin(), networks, entries, "pod table loaded");
                RefreshOutcome::Loaded { networks, entries }
            }
            Err(e) => {
                let error = e.to_string();
                let problems = match e.problems() {
                    [] => vec![error.clone()],
                    p => p.iter().map(ToString::to_string).collect(),
                };
                self.content_error = Some(error.clone());
                self.reject(error, problems)
            }
        }
    }

    /// The file exists but cannot be read: retried on every call (no stamp kept), counted and
    /// logged only when the error is news.
    fn io_error(&mut self, source: std::io::Error) -> RefreshOutcome {
        self.present = true;
        self.stamp = None;
        let error = PodTableError::Read {
            path: self.path().map(Path::to_path_buf).unwrap_or_default(),
            source,
        }
        .to_string();
        if self.last_error.as_deref() == Some(error.as_str()) {
            return RefreshOutcome::Unchanged;
        }
        self.reject(error.clone(), vec![error])
    }

    fn reject(&mut self, error: String, problems: Vec<String>) -> RefreshOutcome {
        self.loads_failed += 1;
        tracing::error!(
            origin = %self.origin(),
            error = %error,
            kept_entries = self.current.entries(),
            "pod table rejected; the last good table stays in force"
        );
        self.last_error = Some(error.clone());
        RefreshOutcome::Rejected { error, problems }
    }

    fn missing(&mut self) -> RefreshOutcome {
        let kept_last_good = self.loads_ok > 0;
        self.present = false;
        // When it comes back, read it whatever its stamp.
        self.stamp = None;
        if self.missing_logged {
            return RefreshOutcome::Unchanged;
        }
        self.missing_logged = true;
        if kept_last_good {
            tracing::warn!(origin = %self.origin(), "pod table disappeared; keeping the last good table");
        } else {
            tracing::info!(origin = %self.origin(), "no pod table; using the empty table");
        }
        RefreshOutcome::Missing { kept_last_good }
    }

    /// Counters and the last error, for metrics and `status`.
    pub fn status(&self) -> SourceStatus {
        SourceStatus {
            origin: self.origin(),
            present: self.present,
            loads_ok: self.loads_ok,
            loads_failed: self.loads_failed,
            last_error: self.last_error.clone(),
            loaded_at_unix: self
                .loaded_at
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            networks: self.current.networks(),
            entries: self.current.entries(),
        }
    }
}

//! Why a pod table was refused. One error lists every problem, each naming its network and pod
//! key, so an operator fixes the ConfigMap in one pass.

use std::fmt;
use std::path::PathBuf;

/// Which part of a network a problem is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The network object itself (an unknown key, a repeated name…).
    Network,
    /// The network's `defaults`.
    Defaults,
    /// One pod entry, by its `<namespace>/<name>` key as written.
    Pod(String),
}

/// One thing wrong with the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The network (its key under `networks`) the problem is in.
    pub network: String,
    /// Which part of that network.
    pub scope: Scope,
    /// What is wrong, quoting the offending field and value: `ips[0] "10.0.0.300/24" is not a CIDR`.
    pub message: String,
}

impl fmt::Display for Problem {
    /// `network "db-net" pod "default/db-1": ips[0] ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "network {:?}", self.network)?;
        match &self.scope {
            Scope::Network => {}
            Scope::Defaults => f.write_str(" defaults")?,
            Scope::Pod(key) => write!(f, " pod {key:?}")?,
        }
        write!(f, ": {}", self.message)
    }
}

/// Why the pod table could not be used. The agent keeps its last good table on any of these.
#[derive(Debug, thiserror::Error)]
pub enum PodTableError {
    /// The table file could not be read.
    #[error("cannot read pod table {}: {source}", path.display())]
    Read {
        /// The file's path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Over [`super::MAX_TABLE_BYTES`]: refused before it is read or parsed.
    #[error("pod table is {len} bytes, over the {} MiB cap (about 150,000 entries): refused unread, the last good table stays", super::MAX_TABLE_BYTES >> 20)]
    TooLarge {
        /// The file's size in bytes.
        len: u64,
    },
    /// Not JSON, or not shaped `{"networks": {"<name>": {"defaults": …, "pods": …}}}`.
    #[error(r#"pod table is not JSON of the shape {{"networks": {{"<network>": {{"defaults": {{…}}, "pods": {{…}}}}}}}}: {0}"#)]
    Json(#[from] serde_json::Error),
    /// Well-formed JSON with bad entries; every one is listed, in file order.
    #[error("pod table rejected ({} problem{}): {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, join(.0))]
    Invalid(Vec<Problem>),
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl PodTableError {
    /// The individual problems (empty for read and JSON shape errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            PodTableError::Invalid(p) => p,
            _ => &[],
        }
    }
}

//! placeholder (H1)
use std::path::{Path, PathBuf};
/// placeholder
pub struct Sysfs {
    pub root: PathBuf,
}
impl Sysfs {
    pub fn new(root: &Path) -> Self {
        Sysfs {
            root: root.to_path_buf(),
        }
    }
}

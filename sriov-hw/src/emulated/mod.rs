//! placeholder (H3)
use std::path::{Path, PathBuf};
/// placeholder
pub struct EmulateSpec {
    pub pf: String,
    pub vfs: u32,
    pub sysfs_root: PathBuf,
}
/// placeholder
#[derive(serde::Serialize)]
pub struct EmulatedNic {}
/// placeholder
pub async fn up(_s: &EmulateSpec) -> Result<EmulatedNic, std::io::Error> {
    todo!()
}
/// placeholder
pub async fn down(_pf: &str, _r: &Path) -> Result<(), std::io::Error> {
    todo!()
}

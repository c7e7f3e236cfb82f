//! placeholder (H1)
use crate::PciAddr;
use serde::Serialize;
#[derive(Serialize)]
pub struct Pf {
    pub pci: PciAddr,
    pub netdevs: Vec<String>,
    pub driver: Option<String>,
    pub num_vfs: u32,
    pub total_vfs: u32,
    pub numa_node: Option<u32>,
    pub vfs: Vec<Vf>,
    pub default_route: bool,
    pub link_type: Option<String>,
}
#[derive(Serialize)]
pub struct Vf {
    pub pci: PciAddr,
    pub index: u32,
    pub netdevs: Vec<String>,
    pub driver: Option<String>,
    pub vendor: u16,
    pub device: u16,
    pub link_type: Option<String>,
    pub rdma: bool,
}
#[derive(Serialize)]
pub struct Inventory {
    pub pfs: Vec<Pf>,
    pub warnings: Vec<String>,
}
pub fn discover(_s: &crate::sysfs::Sysfs, _p: Option<&std::path::Path>) -> Inventory {
    todo!()
}

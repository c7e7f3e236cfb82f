//! Link operations (placeholder, H2).

/// What callers need to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: Option<crate::mac::MacAddr>,
    pub mtu: u32,
    pub up: bool,
}

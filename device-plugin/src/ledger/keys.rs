//! Key encodings of the ledger's trees. Container IDs and ifnames never contain NUL, so NUL
//! separates the parts unambiguously.

use sriov_proto::node::AttachmentKey;

/// `container_id \0 ifname`.
pub fn att_key(k: &AttachmentKey) -> Vec<u8> {
    let mut v = Vec::with_capacity(k.container_id.len() + k.ifname.len() + 1);
    v.extend_from_slice(k.container_id.as_bytes());
    v.push(0);
    v.extend_from_slice(k.ifname.as_bytes());
    v
}

/// Inverse of [`att_key`].
pub fn parse_att_key(b: &[u8]) -> AttachmentKey {
    let s = String::from_utf8_lossy(b);
    let (c, i) = s.split_once('\0').unwrap_or((&s, ""));
    AttachmentKey {
        container_id: c.to_string(),
        ifname: i.to_string(),
    }
}

/// A raw attachment key as `container/ifname` for messages.
pub fn show_raw(raw: &str) -> String {
    raw.replace('\0', "/")
}

/// `network \0 address` (the prefix of a CIDR is dropped: an address is held, not a subnet).
/// The address is normalised (`fd00::0011` and `fd00::11` are one address).
pub fn ip_key(network: &str, ip: &str) -> Vec<u8> {
    let raw = ip.split('/').next().unwrap_or(ip);
    let addr = raw
        .parse::<std::net::IpAddr>()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| raw.to_string());
    let mut v = Vec::with_capacity(network.len() + addr.len() + 1);
    v.extend_from_slice(network.as_bytes());
    v.push(0);
    v.extend_from_slice(addr.as_bytes());
    v
}

//! Telling the VF's VLAN that an attachment's addresses live at its MAC now (gratuitous ARP,
//! unsolicited NA: [`sriov_hw::announce`]), after Commit and after a fenced address comes back.
//!
//! The agent sends, not the CNI: closing a packet socket waits for an RCU grace period (10-25 ms
//! on the test VM), which a short-lived CNI process would add to every ADD; the agent pays it on
//! a background task.

use std::net::IpAddr;

use sriov_hw::MacAddr;
use sriov_hw::announce::{self, Schedule};
use sriov_hw::netns::NetnsHandle;
use sriov_proto::node::Attachment;

/// What to announce for a committed attachment: its pod-side name, MAC and addresses. `None`
/// for a vfio-pci VF (no netdev), a link forced down (it cannot send) or nothing to say.
pub fn target_of(a: &Attachment, only: Option<IpAddr>) -> Option<(String, MacAddr, Vec<IpAddr>)> {
    if a.vfio
        || a.settings
            .as_ref()
            .is_some_and(|s| s.link_state == "disable")
    {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&a.result_json).ok()?;
    let iface = v.get("interfaces")?.get(0)?;
    let ifname = iface.get("name")?.as_str()?.to_string();
    let mac: MacAddr = iface.get("mac")?.as_str()?.parse().ok()?;
    let addrs: Vec<IpAddr> = v
        .get("ips")?
        .as_array()?
        .iter()
        .filter_map(|ip| ip.get("address")?.as_str()?.split('/').next()?.parse().ok())
        .filter(|ip| only.is_none_or(|o| o == *ip))
        .collect();
    (!addrs.is_empty()).then_some((ifname, mac, addrs))
}

/// Announces `a`'s addresses (or only `only`) in the background; never fails (logged inside).
pub fn announce_in_background(a: &Attachment, only: Option<IpAddr>) {
    let Some((ifname, mac, addrs)) = target_of(a, only) else {
        return;
    };
    let path = a.netns_path.clone();
    tokio::spawn(async move {
        match NetnsHandle::open(&path) {
            Ok(ns) => {
                announce::announce(&ns, &ifname, mac, &addrs, &Schedule::AGENT).await;
            }
            Err(e) => tracing::warn!(netns = %path, error = %e, "neighbour announcement: netns"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_result_says_what_to_announce() {
        let mut a = Attachment {
            result_json: r#"{"interfaces":[{"name":"net1","mac":"02:00:00:00:00:0a"}],
                "ips":[{"address":"10.0.0.10/24"},{"address":"fd00::10/64"}]}"#
                .into(),
            ..Attachment::default()
        };
        let (ifname, mac, addrs) = target_of(&a, None).unwrap();
        assert_eq!(
            (ifname.as_str(), mac.to_string().as_str()),
            ("net1", "02:00:00:00:00:0a")
        );
        assert_eq!(addrs.len(), 2);
        let only = target_of(&a, Some("fd00::10".parse().unwrap())).unwrap();
        assert_eq!(only.2, ["fd00::10".parse::<IpAddr>().unwrap()]);
        a.vfio = true;
        assert!(target_of(&a, None).is_none());
    }
}

//! Waiting, briefly, for a link in a pod's namespace to be able to transmit: carrier
//! (`IFF_LOWER_UP`) and the kernel's link watcher having made it operational (`IFF_RUNNING`;
//! until then its qdisc is the no-op one, which drops every frame). Event driven, so the first
//! announcement leaves within the event latency of the carrier coming up, not a polling period.

use std::time::Duration;

use futures::StreamExt;

use crate::netlink::{LinkEvent, LinkInfo, Netlink, NetlinkError, link_events_in};
use crate::netns::NetnsHandle;

/// Whether a frame handed to this link now goes out.
fn can_transmit(l: &LinkInfo) -> bool {
    l.up && l.lower_up && l.running
}

/// Waits up to `wait` for `ifname` in `ns` to be able to transmit. Returns the link's index
/// and whether it can (`false`: the wait ran out, or the event stream ended). A missing link or
/// a failing netlink socket is an error.
pub(super) async fn wait_for_carrier(
    ns: &NetnsHandle,
    ifname: &str,
    wait: Duration,
) -> Result<(u32, bool), NetlinkError> {
    let deadline = tokio::time::Instant::now() + wait;
    let nl = Netlink::in_netns(ns)?;
    // Subscribe before reading the state, so a change in between is not missed.
    let mut events = link_events_in(ns)?;
    let read = || async {
        nl.link_by_name(ifname)
            .await?
            .ok_or_else(|| NetlinkError::NotFound {
                op: "wait for carrier",
                target: ifname.to_string(),
            })
    };
    let link = read().await?;
    if can_transmit(&link) {
        return Ok((link.index, true));
    }
    let index = link.index;
    loop {
        let Ok(ev) = tokio::time::timeout_at(deadline, events.next()).await else {
            return Ok((index, false));
        };
        match ev {
            None => return Ok((index, false)),
            Some(LinkEvent::Changed(l)) if l.index == index && can_transmit(&l) => {
                return Ok((index, true));
            }
            Some(LinkEvent::Removed(l)) if l.index == index => {
                return Err(NetlinkError::NotFound {
                    op: "wait for carrier",
                    target: ifname.to_string(),
                });
            }
            Some(LinkEvent::Overrun) => {
                if can_transmit(&read().await?) {
                    return Ok((index, true));
                }
            }
            Some(_) => {}
        }
    }
}

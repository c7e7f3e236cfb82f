//! Privileged: link change events arrive for a link set down and up, and for its deletion.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed expectation is the test failing

mod common;

use std::time::{Duration, Instant};

use common::{VethGuard, ip_ok, privileged};
use futures::StreamExt;
use sriov_hw::netlink::{LinkEvent, LinkEvents, link_events};

/// The next event about `name` that satisfies `want`, within 2 s.
async fn next_about(
    events: &mut LinkEvents,
    name: &str,
    want: impl Fn(&LinkEvent) -> bool,
) -> LinkEvent {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, events.next())
            .await
            .unwrap_or_else(|_| panic!("no matching event for {name} within 2 s"))
            .expect("event stream ended");
        let about = match &ev {
            LinkEvent::Changed(l) | LinkEvent::Removed(l) => l.name == name,
            LinkEvent::Overrun => false,
        };
        if about && want(&ev) {
            return ev;
        }
    }
}

#[tokio::test]
async fn reports_admin_state_and_deletion() {
    if !privileged("reports_admin_state_and_deletion") {
        return;
    }
    let veth = VethGuard::new();
    let mut events = link_events().unwrap();

    ip_ok(&["link", "set", &veth.a, "up"]);
    let up = next_about(
        &mut events,
        &veth.a,
        |e| matches!(e, LinkEvent::Changed(l) if l.up),
    )
    .await;
    let LinkEvent::Changed(info) = up else {
        unreachable!()
    };
    assert!(info.index > 0);

    let t = Instant::now();
    ip_ok(&["link", "set", &veth.a, "down"]);
    next_about(
        &mut events,
        &veth.a,
        |e| matches!(e, LinkEvent::Changed(l) if !l.up),
    )
    .await;
    eprintln!("link down event after {:?}", t.elapsed());

    ip_ok(&["link", "del", &veth.a]);
    next_about(&mut events, &veth.a, |e| matches!(e, LinkEvent::Removed(_))).await;
}

//! Where PF link state comes from, and the rule that turns it into VF health.
//!
//! The watcher reads link state through [`LinkSource`]: [`NetlinkLinks`] on a node (link events
//! from the kernel), [`ManualLinks`] in tests and wherever the sysfs tree is not the machine's
//! own (fixture trees: their netdev names do not exist in this namespace).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use sriov_hw::netlink::{LinkEvent, LinkInfo, Netlink, NetlinkError, link_events};
use sriov_hw::vfctl::NicKind;

/// Link state as the health watcher needs it: events as they happen, and the current state of
/// one link on demand (at start, after a missed event, after a rescan).
pub trait LinkSource: Send + Sync + 'static {
    /// Subscribes to link changes. Events that happen before this returns may be missed, so the
    /// watcher reads current states after subscribing. The stream ending means the subscription
    /// broke; the watcher subscribes again.
    fn subscribe(&self) -> Result<BoxStream<'static, LinkEvent>, NetlinkError>;

    /// The current state of link `name`; `Ok(None)` when no such link exists.
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LinkInfo>, NetlinkError>>;
}

/// The health rule for the VFs of one PF, given its driver and the state of its netdev:
///
/// - `None`: the netdev sysfs names does not exist in this namespace (deleted, renamed, or moved
///   away); VF control through it is impossible → **Unhealthy**.
/// - otherwise the rule of the PF's kind of NIC ([`NicKind::pf_link_healthy`]): a real NIC is
///   **Healthy** iff administratively up *and* with carrier (a pulled cable stops every VF); the
///   emulated NIC, a bridge whose carrier is not a cable, iff administratively up.
///
/// PFs without any netdev (unbound driver) have no link to judge; the caller keeps their VFs
/// Healthy (their VFs are withdrawn by the rescan if they go away).
pub fn pf_link_healthy(link: Option<&LinkInfo>, pf_driver: Option<&str>) -> bool {
    link.is_some_and(|l| NicKind::for_driver(pf_driver.unwrap_or_default()).pf_link_healthy(l))
}

/// Link state from the kernel: RTNLGRP_LINK events and RTM_GETLINK, in the agent's namespace.
#[derive(Clone)]
pub struct NetlinkLinks {
    nl: Netlink,
}

impl NetlinkLinks {
    /// Opens a netlink connection in the caller's namespace; must be called within a tokio
    /// runtime.
    pub fn host() -> Result<Self, NetlinkError> {
        Ok(NetlinkLinks {
            nl: Netlink::host()?,
        })
    }
}

impl LinkSource for NetlinkLinks {
    fn subscribe(&self) -> Result<BoxStream<'static, LinkEvent>, NetlinkError> {
        Ok(link_events()?.boxed())
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LinkInfo>, NetlinkError>> {
        self.nl.link_by_name(name).boxed()
    }
}

/// Link states set by hand: every link is up with carrier unless [`ManualLinks::set`] or
/// [`ManualLinks::remove`] said otherwise. Changes are sent to subscribers as events, exactly as
/// the kernel would send them. Cloning shares the state.
#[derive(Clone, Default)]
pub struct ManualLinks {
    inner: Arc<Mutex<Manual>>,
}

#[derive(Default)]
struct Manual {
    /// Links whose state was set; `None` = removed.
    links: HashMap<String, Option<LinkInfo>>,
    subscribers: Vec<mpsc::UnboundedSender<LinkEvent>>,
}

/// What a link nobody set looks like: up, with carrier.
fn default_link(name: &str) -> LinkInfo {
    LinkInfo {
        index: 0,
        name: name.to_string(),
        mac: None,
        mtu: 1500,
        up: true,
        lower_up: true,
        oper_up: true,
        running: true,
        kind: None,
        master: None,
        link: None,
        parent_dev: None,
        parent_bus: None,
    }
}

impl ManualLinks {
    /// All links up with carrier.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets link `name`'s admin state and carrier and notifies subscribers.
    pub fn set(&self, name: &str, up: bool, carrier: bool) {
        let info = LinkInfo {
            up,
            lower_up: up && carrier,
            oper_up: up && carrier,
            running: up && carrier,
            ..default_link(name)
        };
        self.publish(name, Some(info.clone()), LinkEvent::Changed(info));
    }

    /// Changes link `name` like [`ManualLinks::set`] but tells no subscriber: an event the
    /// kernel dropped (overrun), which only a re-read of the link reveals.
    pub fn set_silently(&self, name: &str, up: bool, carrier: bool) {
        let info = LinkInfo {
            up,
            lower_up: up && carrier,
            oper_up: up && carrier,
            running: up && carrier,
            ..default_link(name)
        };
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .links
            .insert(name.to_string(), Some(info));
    }

    /// Makes link `name` disappear and notifies subscribers.
    pub fn remove(&self, name: &str) {
        let last = self.state(name).unwrap_or_else(|| default_link(name));
        self.publish(name, None, LinkEvent::Removed(last));
    }

    /// The current state of `name` (what [`LinkSource::get`] answers).
    pub fn state(&self, name: &str) -> Option<LinkInfo> {
        let m = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match m.links.get(name) {
            Some(s) => s.clone(),
            None => Some(default_link(name)),
        }
    }

    fn publish(&self, name: &str, state: Option<LinkInfo>, ev: LinkEvent) {
        let mut m = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        m.links.insert(name.to_string(), state);
        m.subscribers
            .retain(|tx| tx.unbounded_send(ev.clone()).is_ok());
    }
}

impl LinkSource for ManualLinks {
    fn subscribe(&self) -> Result<BoxStream<'static, LinkEvent>, NetlinkError> {
        let (tx, rx) = mpsc::unbounded();
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .subscribers
            .push(tx);
        Ok(rx.boxed())
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<LinkInfo>, NetlinkError>> {
        let s = self.state(name);
        async move { Ok(s) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use sriov_hw::emulated::EMULATED_DRIVER;

    use super::*;

    #[test]
    fn health_rule_per_driver() {
        let mut l = default_link("ens1f0");
        assert!(pf_link_healthy(Some(&l), Some("ice")));
        l.lower_up = false;
        assert!(!pf_link_healthy(Some(&l), Some("ice")), "no carrier");
        assert!(
            pf_link_healthy(Some(&l), Some(EMULATED_DRIVER)),
            "bridge carrier is not the cable"
        );
        l.up = false;
        assert!(!pf_link_healthy(Some(&l), Some(EMULATED_DRIVER)));
        assert!(!pf_link_healthy(Some(&l), None));
        assert!(!pf_link_healthy(None, Some("ice")), "netdev gone");
    }

    #[tokio::test]
    async fn manual_links_notify_subscribers() {
        let links = ManualLinks::new();
        let mut ev = links.subscribe().unwrap();
        assert!(links.get("a").await.unwrap().is_some_and(|l| l.up));
        links.set("a", false, true);
        let Some(LinkEvent::Changed(l)) = ev.next().await else {
            panic!("expected a change")
        };
        assert!(!l.up && !l.lower_up);
        links.remove("a");
        assert!(matches!(ev.next().await, Some(LinkEvent::Removed(_))));
        assert_eq!(links.get("a").await.unwrap(), None);
    }
}

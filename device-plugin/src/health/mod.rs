//! The truthful inventory (DESIGN.md §5 "Health is real"): discovery, pool assignment, PF link
//! health and the VF quarantine combined into one [`NodeView`] stream, which the node API and
//! the kubelet side both read.
//!
//! - [`InventoryWatcher`] owns the state and publishes a new snapshot on a `tokio::sync::watch`
//!   channel whenever anything kubelet would see changed (and never when nothing did).
//! - Health follows PF link state through netlink link events ([`links`]), so a PF set down
//!   turns its VFs Unhealthy within milliseconds, not at the next poll.
//! - sysfs is re-scanned periodically and on demand, so VFs that vanish (numvfs lowered) are
//!   withdrawn and new ones appear.
//! - [`assemble::view`] is the pure function from (config, inventory, link states, quarantine)
//!   to a view; everything else is plumbing around it.

pub mod assemble;
pub mod links;
mod view;
mod watcher;

pub use links::{LinkSource, ManualLinks, NetlinkLinks, pf_link_healthy};
pub use view::{NodeView, Quarantine, Unavailable};
pub use watcher::{
    DEFAULT_RESCAN_INTERVAL, HealthError, InventoryWatcher, ScanStats, WatcherOptions,
};

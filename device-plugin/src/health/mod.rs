//! The truthful inventory (DESIGN.md §5 "Health is real"): discovery, pool assignment and PF link
//! health combined into one [`Snapshot`](crate::pools::Snapshot) stream.
//!
//! - [`InventoryWatcher`] owns the state and publishes a new snapshot on a `tokio::sync::watch`
//!   channel whenever anything kubelet would see changed (and never when nothing did).
//! - Health follows PF link state through netlink link events ([`links`]), so a PF set down
//!   turns its VFs Unhealthy within milliseconds, not at the next poll.
//! - sysfs is re-scanned periodically and on demand, so VFs that vanish (numvfs lowered) are
//!   withdrawn and new ones appear.
//! - [`assemble::snapshot`] is the pure function from (config, inventory, link states) to a
//!   snapshot; everything else is plumbing around it.

pub mod assemble;
pub mod links;
mod watcher;

pub use links::{LinkSource, ManualLinks, NetlinkLinks, pf_link_healthy};
pub use watcher::{
    DEFAULT_RESCAN_INTERVAL, HealthError, InventoryWatcher, ScanStats, WatcherOptions,
};

//! Where the node API's inventory comes from.
//!
//! Standalone tests and embedders let the agent scan sysfs itself. `run` instead hands it the
//! kubelet side's [`InventoryWatcher`](crate::health::InventoryWatcher) as an [`InventoryFeed`],
//! so one sysfs scan (at start and on every rescan) serves both the node API and kubelet.

use std::sync::Arc;

use futures::future::BoxFuture;
use sriov_hw::discovery::Inventory;

/// An inventory kept current by someone else (one sysfs scan for the whole agent).
pub trait InventoryFeed: Send + Sync {
    /// The inventory of the last scan. A new scan that found the same thing must return the
    /// same `Arc` (the agent rebuilds its pools only when the pointer changes).
    fn current(&self) -> Arc<Inventory>;

    /// Scans again now; resolves once [`InventoryFeed::current`] returns the result.
    fn rescan(&self) -> BoxFuture<'_, ()>;
}

impl InventoryFeed for crate::health::InventoryWatcher {
    fn current(&self) -> Arc<Inventory> {
        self.inventory()
    }

    fn rescan(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.rescan_now().await {
                tracing::warn!(error = %e, "inventory rescan failed; keeping the last inventory");
            }
        })
    }
}

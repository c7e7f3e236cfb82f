//! One pool as kubelet sees it: the device list ListAndWatch sends, and lookup by device ID for
//! Allocate. Built once per snapshot change and shared by every stream and call of the pool.

use std::collections::HashMap;

use sriov_proto::deviceplugin::v1beta1 as api;
use sriov_proto::kubelet::{HEALTHY, UNHEALTHY};

use crate::pools::{Device, PoolDevices};

/// A pool's devices plus an index by ID. Immutable; replaced whole on every change.
#[derive(Debug)]
pub(crate) struct PoolView {
    pub(crate) pool: PoolDevices,
    index: HashMap<String, usize>,
}

impl PoolView {
    /// Indexes `pool`'s devices by ID (the first of duplicate IDs wins).
    pub(crate) fn new(pool: PoolDevices) -> Self {
        let mut index = HashMap::with_capacity(pool.devices.len());
        for (i, d) in pool.devices.iter().enumerate() {
            index.entry(d.id.clone()).or_insert(i);
        }
        Self { pool, index }
    }

    /// The device with kubelet ID `id`, if the pool has it.
    pub(crate) fn get(&self, id: &str) -> Option<&Device> {
        self.index.get(id).and_then(|&i| self.pool.devices.get(i))
    }

    /// The full list ListAndWatch sends: every device with its health, and its NUMA node unless
    /// the pool excludes topology or the node is unknown (kubelet's topology manager then treats
    /// the device as usable from any node).
    pub(crate) fn list_response(&self) -> api::ListAndWatchResponse {
        let devices = self
            .pool
            .devices
            .iter()
            .map(|d| api::Device {
                id: d.id.clone(),
                health: if d.healthy { HEALTHY } else { UNHEALTHY }.to_string(),
                topology: d
                    .numa_node
                    .filter(|_| !self.pool.exclude_topology)
                    .map(|n| api::TopologyInfo {
                        nodes: vec![api::NumaNode { id: i64::from(n) }],
                    }),
            })
            .collect();
        api::ListAndWatchResponse { devices }
    }
}

//! The agent's metric set (issue 4 item 8): every series it exposes, registered in one place, with
//! methods named for the events that move them.

use crate::health::{InventoryWatcher, ScanStats};
use crate::pools::Snapshot;

use super::registry::{Counter, Gauge, MetricsError, Registry};

/// `result` label of a successful operation.
pub const RESULT_OK: &str = "ok";
/// `result` label of a failed operation.
pub const RESULT_ERROR: &str = "error";

fn result(ok: bool) -> &'static str {
    if ok { RESULT_OK } else { RESULT_ERROR }
}

/// Handles to every series the agent exposes. Cloning shares them.
#[derive(Clone)]
pub struct AgentMetrics {
    /// The registry the series live in (what the HTTP server renders).
    pub registry: Registry,
    /// `sriov_devices{resource,health}`: devices each pool advertises, by health.
    pub devices: Gauge,
    /// `sriov_devices_allocated{resource}`: devices kubelet allocated to pods (set by the agent).
    pub allocated: Gauge,
    /// `sriov_devices_attached{resource}`: VFs attached to pods by the CNI (set by the agent).
    pub attached: Gauge,
    /// `sriov_kubelet_registrations_total{resource,result}`.
    pub registrations: Counter,
    /// `sriov_pod_table_reloads_total{result}`.
    pub pod_table_reloads: Counter,
    /// `sriov_config_reloads_total{result}`: pool config reloads.
    pub config_reloads: Counter,
    /// `sriov_inventory_scan_duration_seconds`: wall time of the last sysfs rescan.
    pub scan_duration: Gauge,
    /// `sriov_inventory_scans_total`.
    pub scans: Counter,
    /// `sriov_inventory_warnings`: things the last rescan could not read.
    pub scan_warnings: Gauge,
    /// `sriov_ip_leases{state}`: fixed IPs this node holds a lease for, `held` and `fenced`
    /// (taken off the VF because the lease could not be renewed in time).
    pub ip_leases: Gauge,
}

impl AgentMetrics {
    /// Registers the agent's series in `registry`. Fails only if one is already registered there.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        let r = registry;
        let m = AgentMetrics {
            registry: r.clone(),
            devices: r.gauge(
                "sriov_devices",
                "SR-IOV VFs advertised to kubelet per resource pool, by health.",
                &["resource", "health"],
            )?,
            allocated: r.gauge(
                "sriov_devices_allocated",
                "VFs of the pool that kubelet has allocated to pods.",
                &["resource"],
            )?,
            attached: r.gauge(
                "sriov_devices_attached",
                "VFs of the pool attached to a pod network namespace by the CNI.",
                &["resource"],
            )?,
            registrations: r.counter(
                "sriov_kubelet_registrations_total",
                "Device plugin registrations with kubelet, by resource and result.",
                &["resource", "result"],
            )?,
            pod_table_reloads: r.counter(
                "sriov_pod_table_reloads_total",
                "Pod table (fixed IP) reloads, by result; on error the last good table stays.",
                &["result"],
            )?,
            config_reloads: r.counter(
                "sriov_config_reloads_total",
                "Pool config reloads, by result; on error the last good config stays.",
                &["result"],
            )?,
            scan_duration: r.gauge(
                "sriov_inventory_scan_duration_seconds",
                "Duration of the last sysfs inventory scan, PF link reads included.",
                &[],
            )?,
            scans: r.counter(
                "sriov_inventory_scans_total",
                "Sysfs inventory scans completed.",
                &[],
            )?,
            scan_warnings: r.gauge(
                "sriov_inventory_warnings",
                "Things the last inventory scan could not read (see the agent log).",
                &[],
            )?,
            ip_leases: r.gauge(
                "sriov_ip_leases",
                "Fixed IPs this node leases cluster-wide: held, and fenced (off the VF until the lease is renewed).",
                &["state"],
            )?,
        };
        for ok in [true, false] {
            m.pod_table_reloads.touch(&[result(ok)]);
            m.config_reloads.touch(&[result(ok)]);
        }
        m.scans.touch(&[]);
        Ok(m)
    }

    /// Counts a registration attempt of `resource` with kubelet.
    pub fn registration(&self, resource: &str, ok: bool) {
        self.registrations.inc(&[resource, result(ok)]);
    }

    /// Counts a pod table reload.
    pub fn pod_table_reload(&self, ok: bool) {
        self.pod_table_reloads.inc(&[result(ok)]);
    }

    /// Counts a pool config reload.
    pub fn config_reload(&self, ok: bool) {
        self.config_reloads.inc(&[result(ok)]);
    }

    /// Sets how many of `resource`'s devices kubelet has allocated.
    pub fn set_allocated(&self, resource: &str, n: usize) {
        self.allocated.set(&[resource], n as f64);
    }

    /// Sets the IP lease gauges.
    pub fn set_ip_leases(&self, held: usize, fenced: usize) {
        self.ip_leases.set(&["held"], held as f64);
        self.ip_leases.set(&["fenced"], fenced as f64);
    }

    /// Sets how many of `resource`'s VFs are attached to pods.
    pub fn set_attached(&self, resource: &str, n: usize) {
        self.attached.set(&[resource], n as f64);
    }

    /// Sets `sriov_devices` from a snapshot; pools that are gone lose their series.
    pub fn observe_snapshot(&self, snap: &Snapshot) {
        let resources: Vec<String> = snap.iter().map(|p| p.resource()).collect();
        self.devices.retain(|k| resources.contains(&k[0]));
        for (pool, resource) in snap.iter().zip(&resources) {
            let healthy = pool.devices.iter().filter(|d| d.healthy).count();
            let unhealthy = pool.devices.len() - healthy;
            self.devices.set(&[resource, "healthy"], healthy as f64);
            self.devices.set(&[resource, "unhealthy"], unhealthy as f64);
        }
    }

    /// Sets the scan series from the watcher's statistics.
    pub fn observe_scan(&self, stats: &ScanStats) {
        self.scan_duration
            .set(&[], stats.last_duration.as_secs_f64());
        self.scan_warnings.set(&[], stats.warnings as f64);
        let seen = self.scans.get(&[]).unwrap_or(0.0);
        self.scans.inc_by(&[], stats.scans as f64 - seen);
    }

    /// Keeps the device and scan series up to date with `watcher` at every scrape (a collector
    /// reading its latest snapshot and statistics).
    pub fn follow(&self, watcher: &InventoryWatcher) {
        let snaps = watcher.subscribe();
        let stats = watcher.subscribe_scan_stats();
        // Only the handles: capturing `self` would capture the registry, a reference cycle.
        let m = AgentMetrics {
            registry: Registry::new(),
            ..self.clone()
        };
        self.registry.add_collector(move || {
            m.observe_snapshot(&snaps.borrow().pools);
            m.observe_scan(&stats.borrow());
        });
    }
}

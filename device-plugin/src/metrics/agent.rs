//! The agent's metric set (issue 4 item 8): every series it exposes, registered in one place, with
//! methods named for the events that move them.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::health::{InventoryWatcher, ScanStats};
use crate::pools::Snapshot;

use super::registry::{MetricsError, Registry};

/// `result` label of a successful operation.
pub const RESULT_OK: &str = "ok";
/// `result` label of a failed operation.
pub const RESULT_ERROR: &str = "error";

fn result(ok: bool) -> &'static str {
    if ok { RESULT_OK } else { RESULT_ERROR }
}

/// A count as a gauge value (saturating: no pool has 2^63 devices).
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabels {
    resource: String,
    health: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistrationLabels {
    resource: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// Handles to every series the agent exposes (each an `Arc` inside). Counters are registered
/// without `_total`, which the encoder appends: the scraped names are the ones listed.
#[derive(Clone, Default)]
struct Series {
    /// `sriov_devices{resource,health}`: devices each pool advertises, by health.
    devices: Family<DeviceLabels, Gauge>,
    /// Resources `devices` has series for, so pools that are gone can lose theirs.
    device_resources: Arc<Mutex<Vec<String>>>,
    /// `sriov_devices_allocated{resource}`: devices kubelet allocated to pods (set by the agent).
    allocated: Family<ResourceLabels, Gauge>,
    /// `sriov_devices_attached{resource}`: VFs attached to pods by the CNI (set by the agent).
    attached: Family<ResourceLabels, Gauge>,
    /// `sriov_kubelet_registrations_total{resource,result}`.
    registrations: Family<RegistrationLabels, Counter>,
    /// `sriov_pod_table_reloads_total{result}`.
    pod_table_reloads: Family<ResultLabels, Counter>,
    /// `sriov_config_reloads_total{result}`: pool config reloads.
    config_reloads: Family<ResultLabels, Counter>,
    /// `sriov_inventory_scan_duration_seconds`: wall time of the last sysfs rescan.
    scan_duration: Gauge<f64, AtomicU64>,
    /// `sriov_inventory_scans_total`.
    scans: Counter,
    /// `sriov_inventory_warnings`: things the last rescan could not read.
    scan_warnings: Gauge,
    /// `sriov_ip_leases{state}`: fixed IPs this node holds a lease for, `held` and `fenced`
    /// (taken off the VF because the lease could not be renewed in time).
    ip_leases: Family<StateLabels, Gauge>,
}

/// The agent's series and the registry they are rendered from. Cloning shares them.
#[derive(Clone)]
pub struct AgentMetrics {
    registry: Registry,
    series: Series,
}

impl AgentMetrics {
    /// Registers the agent's series in `registry`. Fails only if one is already registered there.
    pub fn new(registry: &Registry) -> Result<Self, MetricsError> {
        let r = registry;
        let s = Series::default();
        r.register(
            "sriov_devices",
            "SR-IOV VFs advertised to kubelet per resource pool, by health.",
            s.devices.clone(),
        )?;
        r.register(
            "sriov_devices_allocated",
            "VFs of the pool that kubelet has allocated to pods.",
            s.allocated.clone(),
        )?;
        r.register(
            "sriov_devices_attached",
            "VFs of the pool attached to a pod network namespace by the CNI.",
            s.attached.clone(),
        )?;
        r.register(
            "sriov_kubelet_registrations",
            "Device plugin registrations with kubelet, by resource and result.",
            s.registrations.clone(),
        )?;
        r.register(
            "sriov_pod_table_reloads",
            "Pod table (fixed IP) reloads, by result; on error the last good table stays.",
            s.pod_table_reloads.clone(),
        )?;
        r.register(
            "sriov_config_reloads",
            "Pool config reloads, by result; on error the last good config stays.",
            s.config_reloads.clone(),
        )?;
        r.register(
            "sriov_inventory_scan_duration_seconds",
            "Duration of the last sysfs inventory scan, PF link reads included.",
            s.scan_duration.clone(),
        )?;
        r.register(
            "sriov_inventory_scans",
            "Sysfs inventory scans completed.",
            s.scans.clone(),
        )?;
        r.register(
            "sriov_inventory_warnings",
            "Things the last inventory scan could not read (see the agent log).",
            s.scan_warnings.clone(),
        )?;
        r.register(
            "sriov_ip_leases",
            "Fixed IPs this node leases cluster-wide: held, and fenced (off the VF until the lease is renewed).",
            s.ip_leases.clone(),
        )?;
        // "Zero so far" rather than nothing, so rate() and alerts see the series from the start.
        for ok in [true, false] {
            let labels = ResultLabels { result: result(ok) };
            drop(s.pod_table_reloads.get_or_create(&labels));
            drop(s.config_reloads.get_or_create(&labels));
        }
        Ok(AgentMetrics {
            registry: r.clone(),
            series: s,
        })
    }

    /// Counts a registration attempt of `resource` with kubelet.
    pub fn registration(&self, resource: &str, ok: bool) {
        let labels = RegistrationLabels {
            resource: resource.into(),
            result: result(ok),
        };
        self.series.registrations.get_or_create(&labels).inc();
    }

    /// Counts a pod table reload.
    pub fn pod_table_reload(&self, ok: bool) {
        let labels = ResultLabels { result: result(ok) };
        self.series.pod_table_reloads.get_or_create(&labels).inc();
    }

    /// Counts a pool config reload.
    pub fn config_reload(&self, ok: bool) {
        let labels = ResultLabels { result: result(ok) };
        self.series.config_reloads.get_or_create(&labels).inc();
    }

    /// Sets how many of `resource`'s devices kubelet has allocated.
    pub fn set_allocated(&self, resource: &str, n: usize) {
        let labels = ResourceLabels {
            resource: resource.into(),
        };
        self.series.allocated.get_or_create(&labels).set(count(n));
    }

    /// Sets the IP lease gauges.
    pub fn set_ip_leases(&self, held: usize, fenced: usize) {
        for (state, n) in [("held", held), ("fenced", fenced)] {
            let labels = StateLabels { state };
            self.series.ip_leases.get_or_create(&labels).set(count(n));
        }
    }

    /// Sets how many of `resource`'s VFs are attached to pods.
    pub fn set_attached(&self, resource: &str, n: usize) {
        let labels = ResourceLabels {
            resource: resource.into(),
        };
        self.series.attached.get_or_create(&labels).set(count(n));
    }

    /// Sets `sriov_devices` from a snapshot; pools that are gone lose their series.
    pub fn observe_snapshot(&self, snap: &Snapshot) {
        self.series.observe_snapshot(snap);
    }

    /// Sets the scan series from the watcher's statistics.
    pub fn observe_scan(&self, stats: &ScanStats) {
        self.series.observe_scan(stats);
    }

    /// Keeps the device and scan series up to date with `watcher` at every scrape (a hook
    /// reading its latest snapshot and statistics).
    pub fn follow(&self, watcher: &InventoryWatcher) {
        let snaps = watcher.subscribe();
        let stats = watcher.subscribe_scan_stats();
        // Only the handles: capturing `self` would capture the registry, a reference cycle.
        let s = self.series.clone();
        self.registry.add_hook(move || {
            s.observe_snapshot(&snaps.borrow().pools);
            s.observe_scan(&stats.borrow());
        });
    }
}

impl Series {
    fn observe_snapshot(&self, snap: &Snapshot) {
        let resources: Vec<String> = snap.iter().map(|p| p.resource()).collect();
        let mut known = self
            .device_resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for gone in known.iter().filter(|r| !resources.contains(r)) {
            for health in ["healthy", "unhealthy"] {
                self.devices.remove(&DeviceLabels {
                    resource: gone.clone(),
                    health,
                });
            }
        }
        for (pool, resource) in snap.iter().zip(&resources) {
            let healthy = pool.devices.iter().filter(|d| d.healthy).count();
            let unhealthy = pool.devices.len() - healthy;
            for (health, n) in [("healthy", healthy), ("unhealthy", unhealthy)] {
                let labels = DeviceLabels {
                    resource: resource.clone(),
                    health,
                };
                self.devices.get_or_create(&labels).set(count(n));
            }
        }
        *known = resources;
    }

    fn observe_scan(&self, stats: &ScanStats) {
        self.scan_duration.set(stats.last_duration.as_secs_f64());
        self.scan_warnings.set(count(stats.warnings));
        // The watcher counts scans; the counter follows it (never backwards).
        let seen = self.scans.get();
        if stats.scans > seen {
            self.scans.inc_by(stats.scans - seen);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pools::{Device, PoolDevices};
    use std::time::Duration;

    fn pool(name: &str, health: &[bool]) -> PoolDevices {
        let pf: sriov_hw::PciAddr = "0000:3b:00.0".parse().unwrap();
        PoolDevices {
            prefix: "example.com".into(),
            name: name.into(),
            exclude_topology: false,
            need_vhost_net: false,
            allocation_policy: Default::default(),
            devices: health
                .iter()
                .enumerate()
                .map(|(i, &healthy)| Device {
                    id: format!("0000:3b:02.{i}"),
                    pci: format!("0000:3b:02.{i}").parse().unwrap(),
                    healthy,
                    numa_node: None,
                    pf,
                    pf_name: "ens1f0".into(),
                    driver: None,
                    iommu_group: None,
                })
                .collect(),
        }
    }

    /// The whole exposition, line by line (series order within a family is not fixed): every
    /// name, label, HELP text and type operators' dashboards rely on.
    #[test]
    fn renders_every_series_with_todays_names() {
        let r = Registry::new();
        let m = AgentMetrics::new(&r).unwrap();
        m.observe_snapshot(&Arc::new(vec![
            pool("a", &[true, true, false]),
            pool("b", &[true]),
        ]));
        m.observe_scan(&ScanStats {
            scans: 3,
            last_duration: Duration::from_millis(12),
            pfs: 1,
            vfs: 4,
            warnings: 1,
        });
        m.registration("example.com/a", true);
        m.registration("example.com/a", false);
        m.config_reload(true);
        m.pod_table_reload(false);
        m.set_allocated("example.com/a", 2);
        m.set_attached("example.com/a", 1);
        m.set_ip_leases(5, 1);
        let text = r.render();
        let mut got: Vec<&str> = text.lines().collect();
        got.sort_unstable();
        let mut want = vec![
            "# HELP sriov_devices SR-IOV VFs advertised to kubelet per resource pool, by health.",
            "# TYPE sriov_devices gauge",
            "sriov_devices{resource=\"example.com/a\",health=\"healthy\"} 2",
            "sriov_devices{resource=\"example.com/a\",health=\"unhealthy\"} 1",
            "sriov_devices{resource=\"example.com/b\",health=\"healthy\"} 1",
            "sriov_devices{resource=\"example.com/b\",health=\"unhealthy\"} 0",
            "# HELP sriov_devices_allocated VFs of the pool that kubelet has allocated to pods.",
            "# TYPE sriov_devices_allocated gauge",
            "sriov_devices_allocated{resource=\"example.com/a\"} 2",
            "# HELP sriov_devices_attached VFs of the pool attached to a pod network namespace by the CNI.",
            "# TYPE sriov_devices_attached gauge",
            "sriov_devices_attached{resource=\"example.com/a\"} 1",
            "# HELP sriov_kubelet_registrations_total Device plugin registrations with kubelet, by resource and result.",
            "# TYPE sriov_kubelet_registrations_total counter",
            "sriov_kubelet_registrations_total{resource=\"example.com/a\",result=\"ok\"} 1",
            "sriov_kubelet_registrations_total{resource=\"example.com/a\",result=\"error\"} 1",
            "# HELP sriov_pod_table_reloads_total Pod table (fixed IP) reloads, by result; on error the last good table stays.",
            "# TYPE sriov_pod_table_reloads_total counter",
            "sriov_pod_table_reloads_total{result=\"ok\"} 0",
            "sriov_pod_table_reloads_total{result=\"error\"} 1",
            "# HELP sriov_config_reloads_total Pool config reloads, by result; on error the last good config stays.",
            "# TYPE sriov_config_reloads_total counter",
            "sriov_config_reloads_total{result=\"ok\"} 1",
            "sriov_config_reloads_total{result=\"error\"} 0",
            "# HELP sriov_inventory_scan_duration_seconds Duration of the last sysfs inventory scan, PF link reads included.",
            "# TYPE sriov_inventory_scan_duration_seconds gauge",
            "sriov_inventory_scan_duration_seconds 0.012",
            "# HELP sriov_inventory_scans_total Sysfs inventory scans completed.",
            "# TYPE sriov_inventory_scans_total counter",
            "sriov_inventory_scans_total 3",
            "# HELP sriov_inventory_warnings Things the last inventory scan could not read (see the agent log).",
            "# TYPE sriov_inventory_warnings gauge",
            "sriov_inventory_warnings 1",
            "# HELP sriov_ip_leases Fixed IPs this node leases cluster-wide: held, and fenced (off the VF until the lease is renewed).",
            "# TYPE sriov_ip_leases gauge",
            "sriov_ip_leases{state=\"held\"} 5",
            "sriov_ip_leases{state=\"fenced\"} 1",
        ];
        want.sort_unstable();
        assert_eq!(got, want, "{text}");
        // Families come out in registration order, HELP before TYPE before the series.
        assert!(text.starts_with("# HELP sriov_devices SR-IOV"));
    }

    #[test]
    fn pools_that_are_gone_lose_their_series_and_scans_never_go_back() {
        let r = Registry::new();
        let m = AgentMetrics::new(&r).unwrap();
        m.observe_snapshot(&Arc::new(vec![pool("a", &[true]), pool("b", &[false])]));
        m.observe_snapshot(&Arc::new(vec![pool("b", &[true, true])]));
        let text = r.render();
        assert!(!text.contains("example.com/a"), "{text}");
        assert!(text.contains("sriov_devices{resource=\"example.com/b\",health=\"healthy\"} 2\n"));
        let stats = |scans| ScanStats {
            scans,
            last_duration: Duration::ZERO,
            pfs: 0,
            vfs: 0,
            warnings: 0,
        };
        m.observe_scan(&stats(4));
        m.observe_scan(&stats(2));
        assert!(r.render().contains("\nsriov_inventory_scans_total 4\n"));
        assert!(matches!(
            AgentMetrics::new(&r),
            Err(MetricsError::Duplicate(_))
        ));
    }
}

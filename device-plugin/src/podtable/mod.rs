//! The pod table: fixed, externally managed network settings per pod, keyed by
//! `<namespace>/<pod name>`, read from a JSON file a ConfigMap provides (DESIGN §2).
//!
//! # Format
//!
//! ```json
//! {"networks": {
//!   "db-net": {                                   // the netconf's "name"
//!     "defaults": {"gateway": ["10.10.0.1", "fd00::1"], "vlan": 100, "max_tx_rate": 1000},
//!     "pods": {
//!       "default/db-0": {"ips": ["10.10.0.10/24", "fd00::10/64"]},
//!       "default/db-1": {"ips": ["10.10.0.11/24"], "mac": "02:00:00:00:10:0b", "vlanQoS": 5}
//!     }}}}
//! ```
//!
//! An entry or the defaults may hold `ips` (CIDRs: the host address and its prefix, v4 and v6),
//! `gateway` (an IP or a list, at most one per family), `routes` (`[{"dst": CIDR, "gw": IP?}]`),
//! `dns` (`{"nameservers", "domain", "search", "options"}`), `mac`, `vlan` (0..=4094), `vlanQoS`
//! (0..=7), `max_tx_rate` and `min_tx_rate` (Mbit/s, 0..=[`MAX_RATE_MBPS`]), `spoofchk` and
//! `trust` (booleans, over the netconf's `"on"`/`"off"`). `null` is the same as
//! leaving a key out. An empty `networks` object is a valid, empty table.
//!
//! # Merge rule
//!
//! A listed pod's settings are its entry merged over its network's `defaults`, **field by field,
//! the entry winning, with no deeper merge**: an entry's `ips`, `routes`, `gateway` or `dns`
//! replaces the default one whole (so `"routes": []` in an entry removes the default routes).
//! One exception keeps dual-stack defaults usable: a gateway *inherited* from the defaults is
//! dropped for a family the pod has no address in (an entry's own gateway is never dropped).
//! Pods without an entry get nothing from the table, not even the defaults: the CNI then uses
//! the netconf's `ipam`.
//!
//! # Validation
//!
//! A table with any problem is rejected whole ([`PodTableError::Invalid`] lists every problem,
//! naming network and pod key, and quoting the value); the agent keeps the last good one
//! ([`PodTableSource`]). Checked: unknown keys anywhere; CIDRs, IPs and MACs parse; pod keys are
//! `<DNS-1123 label>/<DNS-1123 subdomain>`; pod addresses are usable host addresses (not the v4
//! subnet's network or broadcast address when the prefix is below 31, not loopback, multicast or
//! unspecified); an address appears once per pod and once per network (the same address in two
//! *different* networks is fine); a MAC appears once per network; each gateway and route `gw` lies
//! inside one of the pod's subnets of its family and is not the pod's own address; route
//! destinations have no host bits set; VLAN, QoS and rate ranges; a non-zero `vlanQoS` needs a
//! non-zero `vlan`; `min_tx_rate` ≤ `max_tx_rate` unless the latter is 0 (unlimited).
//! A pod may have several addresses of one family (all are configured; the first of each family
//! is its primary address).

mod decode;
mod error;
mod keys;
mod model;
mod raw;
mod validate;
mod watch;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_reload;

use std::collections::HashMap;
use std::net::IpAddr;

// The agent's public surface.
pub use error::{PodTableError, Problem, Scope};
pub use model::{Dns, IpCidr, ParseCidrError, PodConfig, Route};
pub use watch::{PodTableSource, RefreshOutcome, SourceStatus};

/// The highest rate (Mbit/s) the table accepts: 1 Tbit/s, beyond any NIC; larger values are
/// typos (or bytes where Mbit was meant).
pub const MAX_RATE_MBPS: u32 = 1_000_000;

/// The largest pod table accepted, in bytes: 16 MiB, about 150,000 entries of the usual shape
/// (a ConfigMap cannot exceed 1 MiB anyway). A bigger file is refused before it is read, so a
/// runaway generator cannot make the agent hold gigabytes (a 1,000,000-entry table took 1.5 GB).
pub const MAX_TABLE_BYTES: usize = 16 << 20;

/// The namespace CNI_ARGS imply when they carry none (podman sends no namespace).
pub const DEFAULT_NAMESPACE: &str = "default";

/// A validated pod table. Immutable; the agent swaps whole tables (`Arc<PodTable>`) on reload.
#[derive(Debug, Clone, Default)]
pub struct PodTable {
    networks: HashMap<String, NetworkTable>,
    entries: usize,
}

/// One network's pods, merged, and the reverse index for [`PodTable::holder_of`].
#[derive(Debug, Clone, Default)]
struct NetworkTable {
    /// By `<namespace>/<name>`.
    pods: HashMap<String, PodConfig>,
    /// Each pod address → the key of the pod it belongs to.
    holders: HashMap<IpAddr, String>,
}

impl PodTable {
    /// The table with no networks: every lookup misses.
    pub fn empty() -> Self {
        PodTable::default()
    }

    /// Parses and validates a table file's contents. Any problem rejects the whole table; the
    /// error lists every problem found.
    pub fn parse(json: &[u8]) -> Result<PodTable, PodTableError> {
        if json.len() > MAX_TABLE_BYTES {
            return Err(PodTableError::TooLarge {
                len: json.len() as u64,
            });
        }
        let raw: raw::RawTable = serde_json::from_slice(json)?;
        validate::build(raw)
    }

    /// The merged settings (defaults + entry) the table gives pod `namespace/pod` on network
    /// `network` (the netconf's `name`), or `None` when the pod is not listed there. An empty
    /// `namespace` means [`DEFAULT_NAMESPACE`]. Two hash look-ups and one clone: cheap enough
    /// for every CNI ADD on a table of 10,000 entries.
    pub fn lookup(&self, network: &str, namespace: &str, pod: &str) -> Option<PodConfig> {
        let ns = if namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            namespace
        };
        self.networks
            .get(network)?
            .pods
            .get(&format!("{ns}/{pod}"))
            .cloned()
    }

    /// The `<namespace>/<name>` key of the pod the table gives address `ip` on `network`, if
    /// any (for naming the rightful owner when an address is contested).
    pub fn holder_of(&self, network: &str, ip: IpAddr) -> Option<&str> {
        self.networks
            .get(network)?
            .holders
            .get(&ip)
            .map(String::as_str)
    }

    /// Number of networks in the table.
    pub fn networks(&self) -> usize {
        self.networks.len()
    }

    /// Number of pod entries over all networks.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Network names, sorted (for `status`).
    pub fn network_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.networks.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

//! Cluster-wide IP leases with fencing: a fixed IP in use on a node is held by a
//! `coordination.k8s.io/v1` Lease, so no two nodes ever answer for one address.
//!
//! # Timing contract
//!
//! With `D` = [`LeaseTiming::duration`], `R` = [`LeaseTiming::renew_every`] and
//! `F` = [`LeaseTiming::fence_after`] (defaults 15 s, 5 s, 10 s; `R < F < D` is enforced):
//! - The holder renews every `R` (every second after a failed attempt). `t0` is the holder's
//!   *monotonic* instant at which it sent the last renewal the API server accepted.
//! - The holder takes the IP off its VF (fences) once `now > t0 + F` without a newer accepted
//!   renewal. Deadlines are checked every 250 ms, apart from renewals (a renewal hanging on a
//!   partitioned API server cannot delay a fence), and a fence takes milliseconds: it is done
//!   before `t0 + F + 1 s`.
//! - Another node takes the lease only when the lease object (its `resourceVersion`) has stayed
//!   unchanged for `D` on the taker's *monotonic* clock since the taker first saw that version.
//!   The taker first saw it after the holder wrote it, so after `t0`: it takes over after
//!   `t0 + D`, at least `D - F - 1 s` (4 s by default) after the holder fenced. This part assumes
//!   nothing about wall clocks, only that monotonic clocks run at nearly the same rate.
//! - One shortcut for leases nobody renews (a node that died long ago): a lease whose `renewTime`
//!   (the holder's wall clock) is older than `D + max_clock_skew` on the taker's wall clock is
//!   expired at once. It assumes node clocks differ by less than `max_clock_skew` (default `D`:
//!   15 s, where NTP keeps nodes within milliseconds).
//! - An agent that restarts does not know `t0`: it renews every recorded lease before it serves
//!   and, if that fails, fences at once.
//!
//! Requests time out after [`super::REQUEST_TIMEOUT`] at most; one renewal is one GET and one
//! PUT per lease (more on a conflict).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use super::events::{Events, Kind};

/// Annotation naming the pod (`namespace/name`) the IP is for.
pub const POD_ANNOTATION: &str = "sriov.example.com/pod";
/// Annotations with the exact network and IP (the lease name is a lossy spelling of both).
pub const NETWORK_ANNOTATION: &str = "sriov.example.com/network";
/// Annotation with the exact IP the lease holds, as text.
pub const IP_ANNOTATION: &str = "sriov.example.com/ip";

/// Every lease request gives up after this: a renewal on a deadline cannot wait on a hung peer.
const LEASE_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How often fence deadlines are checked.
const ENFORCE_EVERY: Duration = Duration::from_millis(250);

/// The lease timing (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// `D`: how long an unchanged lease blocks other nodes; written to the lease's
    /// `leaseDurationSeconds`.
    pub duration: Duration,
    /// `R`: period of the holder's renewals.
    pub renew_every: Duration,
    /// `F`: how long after the last accepted renewal the holder fences the IP.
    pub fence_after: Duration,
    /// How far node wall clocks may differ, for the shortcut on long-dead leases.
    pub max_clock_skew: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming::from_duration(Duration::from_secs(15))
    }
}

impl LeaseTiming {
    /// `duration` with renewals every third of it and the fence at two thirds.
    pub fn from_duration(duration: Duration) -> Self {
        LeaseTiming {
            duration,
            renew_every: duration / 3,
            fence_after: duration * 2 / 3,
            max_clock_skew: duration,
        }
    }

    /// Refuses timings that break the contract.
    pub fn check(&self) -> Result<(), String> {
        if self.duration < Duration::from_secs(3) {
            return Err(format!("lease duration {:?} is under 3 s", self.duration));
        }
        if !(self.renew_every < self.fence_after && self.fence_after < self.duration) {
            return Err(format!(
                "need renew period < fence deadline < lease duration, got {:?} / {:?} / {:?}",
                self.renew_every, self.fence_after, self.duration
            ));
        }
        Ok(())
    }
}

/// One fixed IP of one network.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpKey {
    /// The netconf `name` of the network the IP belongs to.
    pub network: String,
    /// The fixed IP (no prefix: an address is held, not a subnet).
    pub ip: IpAddr,
}

impl std::fmt::Display for IpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on network {}", self.ip, self.network)
    }
}

/// The lease's name: `sriov-ip-<network>-<ip>`, dots and colons as dashes, lower case, anything
/// else outside `[a-z0-9-]` as a dash too (the exact values are in the annotations).
pub fn lease_name(key: &IpKey) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let mut name = format!(
        "sriov-ip-{}-{}",
        clean(&key.network),
        clean(&key.ip.to_string())
    );
    name.truncate(253);
    while name.ends_with('-') {
        name.pop();
    }
    name
}

/// Why a lease could not be taken.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "{key} is held by node {node} for pod {pod} (lease {lease}, not expired): the IP cannot be on two nodes"
    )]
    /// Another node holds the lease and it has not expired.
    Held {
        /// The IP asked for.
        key: IpKey,
        /// The Lease object's name.
        lease: String,
        /// The node holding it.
        node: String,
        /// The pod it holds it for (`namespace/name`, `?` if unannotated).
        pod: String,
    },
    #[error(
        "cannot prove {key} is free: the API server did not answer ({why}); a fixed IP is only brought up under its lease"
    )]
    /// The API server did not answer, so the IP cannot be proven free.
    Unreachable {
        /// The IP asked for.
        key: IpKey,
        /// The request error.
        why: String,
    },
    /// The lease name computed for `key` belongs to another IP (names are a lossy spelling).
    #[error("lease {lease} names {other}, not {key}: two IPs spell the same lease name")]
    NameClash {
        /// The IP asked for.
        key: IpKey,
        /// The Lease object's name.
        lease: String,
        /// The IP its annotations name.
        other: String,
    },
}

/// Takes a fixed IP off its VF and puts it back. The agent implements it on its ledger.
#[tonic::async_trait]
pub trait Fencer: Send + Sync {
    /// Removes `key`'s address from the VF holding it (the attachment stays).
    async fn fence(&self, key: &IpKey) -> Result<(), String>;
    /// Puts the address back (and its routes), then announces it to the neighbours.
    async fn restore(&self, key: &IpKey) -> Result<(), String>;
}

/// A lease this node holds (or held and must win back).
#[derive(Debug, Clone)]
struct Held {
    pod: String,
    /// Monotonic instant the last accepted renewal was sent; `None`: not since this process started.
    renewed: Option<Instant>,
    /// When the last attempt started (renewals are spaced by `renew_every`).
    attempted: Option<Instant>,
    fenced: bool,
    /// Another node holds it now (seen at the last renewal).
    lost: bool,
}

/// The version of another node's lease as this node first saw it.
#[derive(Debug, Clone)]
struct Seen {
    version: String,
    since: Instant,
}

/// Counts of what is held, for metrics and `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseCounts {
    /// Leases this node holds.
    pub held: usize,
    /// Of those, fenced (the IP taken off its VF until a renewal succeeds).
    pub fenced: usize,
}

/// This node's IP leases.
pub struct Leases {
    api: Api<Lease>,
    node: String,
    timing: LeaseTiming,
    events: Option<Events>,
    held: Mutex<HashMap<IpKey, Held>>,
    seen: Mutex<HashMap<String, Seen>>,
    /// Serializes renewal passes against each other (not against Plans).
    pass: tokio::sync::Mutex<()>,
    /// Serializes fence and restore passes.
    enforcing: tokio::sync::Mutex<()>,
}

impl Leases {
    /// Leases in `namespace`, held as `node`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        node: &str,
        timing: LeaseTiming,
        events: Option<Events>,
    ) -> Self {
        Leases {
            api: Api::namespaced(client, namespace),
            node: node.to_string(),
            timing,
            events,
            held: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            pass: tokio::sync::Mutex::new(()),
            enforcing: tokio::sync::Mutex::new(()),
        }
    }

    /// The timing in force.
    pub fn timing(&self) -> LeaseTiming {
        self.timing
    }

    /// Takes (or renews) the lease of `key` for `pod` before the kernel is touched. Returns
    /// whether this call took it (as opposed to renewing one this node already held).
    pub async fn acquire(&self, key: &IpKey, pod: &str) -> Result<bool, LeaseError> {
        let sent = Instant::now();
        let was_held = self.lock_held().contains_key(key);
        // A lease we do not hold is most often absent (its last holder's DEL deleted it):
        // create first, one request; only a conflict reads what is there.
        self.take(key, pod, !was_held).await?;
        let mut held = self.lock_held();
        let h = held.entry(key.clone()).or_insert_with(|| Held {
            pod: pod.to_string(),
            renewed: None,
            attempted: None,
            fenced: false,
            lost: false,
        });
        h.pod = pod.to_string();
        h.renewed = Some(sent);
        h.attempted = Some(sent);
        h.lost = false;
        Ok(!was_held)
    }

    /// Lets the lease of `key` go: forgotten here, and deleted on the API server if this node
    /// still holds it. An unreachable API server is logged, not an error: the lease then expires.
    pub async fn release(&self, key: &IpKey) {
        self.forget(key);
        self.delete_if_ours(key).await;
    }

    /// Stops renewing (and fencing) `key` at once; [`delete_if_ours`](Self::delete_if_ours)
    /// may follow later. Safe in any order with a new [`acquire`](Self::acquire) of the same
    /// key: the delete is conditional on the version it read, so it never deletes a renewal.
    pub fn forget(&self, key: &IpKey) {
        self.lock_held().remove(key);
    }

    /// Deletes `key`'s lease if this node holds it (precondition: the version just read).
    pub async fn delete_if_ours(&self, key: &IpKey) {
        let name = lease_name(key);
        // A renewal pass that was already sending this lease's update when DEL forgot it would
        // change its resourceVersion between our read and our delete (409, and the lease would
        // linger until it expires): wait for that pass; later ones skip the forgotten key.
        // Not retried on 409 otherwise: a new ADD on this node may have taken the lease again,
        // and a second read would then delete that pod's lease.
        let _pass = self.pass.lock().await;
        match self.delete_once(&name).await {
            Ok(()) => tracing::info!(lease = %name, ip = %key, "lease released"),
            Err(e) => {
                tracing::warn!(lease = %name, ip = %key, error = %e, "lease not released; it expires by itself")
            }
        }
    }

    /// Deletes lease `name` if this node holds it, on the condition that it is unchanged since
    /// it was read.
    async fn delete_once(&self, name: &str) -> Result<(), String> {
        let lease = match self.get(name).await? {
            Some(l) => l,
            None => return Ok(()),
        };
        if holder(&lease) != Some(self.node.as_str()) {
            return Ok(());
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: lease.metadata.resource_version.clone(),
                uid: lease.metadata.uid.clone(),
            }),
            ..DeleteParams::default()
        };
        timed(self.api.delete(name, &dp)).await.map(|_| ())
    }

    /// Takes over the bookkeeping of a lease an earlier instance of this agent held (after a
    /// restart): the next [`renew_due`](Self::renew_due) renews it first thing, and the next
    /// [`enforce`](Self::enforce) after that fences it if that failed.
    pub fn adopt(&self, key: &IpKey, pod: &str) {
        self.lock_held().entry(key.clone()).or_insert_with(|| Held {
            pod: pod.to_string(),
            renewed: None,
            attempted: None,
            fenced: false,
            lost: false,
        });
    }

    /// What is held and what is fenced now.
    pub fn counts(&self) -> LeaseCounts {
        let held = self.lock_held();
        LeaseCounts {
            held: held.len(),
            fenced: held.values().filter(|h| h.fenced).count(),
        }
    }

    /// Every held key and the fenced ones, sorted, as `<ip> on network <name>` (for `status`).
    pub fn keys(&self) -> (Vec<String>, Vec<String>) {
        let held = self.lock_held();
        let mut all: Vec<&IpKey> = held.keys().collect();
        all.sort();
        let fenced = all
            .iter()
            .filter(|k| held.get(**k).is_some_and(|h| h.fenced))
            .map(ToString::to_string)
            .collect();
        (all.iter().map(ToString::to_string).collect(), fenced)
    }

    /// Whether `key`'s address is fenced off its VF.
    pub fn is_fenced(&self, key: &IpKey) -> bool {
        self.lock_held().get(key).is_some_and(|h| h.fenced)
    }

    /// Renews every lease that is due (all of them on the first call after [`adopt`]). A lease
    /// another node now holds is marked lost: [`enforce`](Self::enforce) fences it at once.
    ///
    /// [`adopt`]: Self::adopt
    pub async fn renew_due(&self) {
        let _pass = self.pass.lock().await;
        let now = Instant::now();
        let due: Vec<(IpKey, String)> = self
            .lock_held()
            .iter_mut()
            .filter(|(_, h)| {
                // Due every `renew_every`; after a failed attempt (or while fenced), every tick.
                let failed = h.fenced
                    || match (h.attempted, h.renewed) {
                        (Some(a), Some(r)) => r < a,
                        (Some(_), None) => true,
                        (None, _) => false,
                    };
                failed
                    || h.attempted
                        .is_none_or(|t| now.duration_since(t) >= self.timing.renew_every)
            })
            .map(|(k, h)| {
                h.attempted = Some(now);
                (k.clone(), h.pod.clone())
            })
            .collect();
        let results = join_all(due.iter().map(|(k, pod)| async move {
            let sent = Instant::now();
            (k, pod, sent, self.take(k, pod, false).await)
        }))
        .await;
        for (k, pod, sent, r) in results {
            let mut held = self.lock_held();
            let Some(h) = held.get_mut(k) else { continue };
            match r {
                Ok(()) => {
                    h.renewed = Some(sent);
                    h.lost = false;
                }
                Err(e) => {
                    h.lost = matches!(e, LeaseError::Held { .. });
                    drop(held);
                    tracing::warn!(ip = %k, pod = %pod, error = %e, "lease renewal failed");
                }
            }
        }
    }

    /// Fences every address whose lease is past its fence deadline (or lost), and restores every
    /// fenced one whose lease is held again. Never waits on the API server.
    pub async fn enforce(&self, fencer: &dyn Fencer) {
        let _one = self.enforcing.lock().await;
        let now = Instant::now();
        let actions: Vec<(IpKey, String, bool)> = self
            .lock_held()
            .iter()
            .filter_map(|(k, h)| {
                let current = !h.lost
                    && h.renewed
                        .is_some_and(|t| now.duration_since(t) <= self.timing.fence_after);
                match (h.fenced, current) {
                    (false, false) => Some((k.clone(), h.pod.clone(), true)),
                    (true, true) => Some((k.clone(), h.pod.clone(), false)),
                    _ => None,
                }
            })
            .collect();
        for (k, pod, fence) in actions {
            let r = if fence {
                fencer.fence(&k).await
            } else {
                fencer.restore(&k).await
            };
            match r {
                Ok(()) => {
                    if let Some(h) = self.lock_held().get_mut(&k) {
                        h.fenced = fence;
                    }
                    let (reason, note, kind) = if fence {
                        (
                            "FixedIPFenced",
                            format!(
                                "{k} taken off the pod's VF on node {}: its lease could not be renewed in time (it stays off until the lease is held again)",
                                self.node
                            ),
                            Kind::Warning,
                        )
                    } else {
                        (
                            "FixedIPRestored",
                            format!(
                                "{k} back on the pod's VF on node {}: the lease is held again",
                                self.node
                            ),
                            Kind::Normal,
                        )
                    };
                    tracing::warn!(ip = %k, pod = %pod, "{reason}");
                    self.pod_event(&pod, kind, reason, note);
                }
                Err(e) => {
                    tracing::error!(ip = %k, pod = %pod, fence, error = %e, "fencing step failed; retried")
                }
            }
        }
    }

    /// Renews on a 1 s tick and enforces the fence deadline on a 250 ms tick, independently (a
    /// renewal hung on a partitioned API server never delays a fence), until dropped.
    pub async fn run(self: Arc<Self>, fencer: Arc<dyn Fencer>) {
        let renew = async {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                self.renew_due().await;
            }
        };
        let enforce = async {
            let mut every = tokio::time::interval(ENFORCE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                self.enforce(fencer.as_ref()).await;
            }
        };
        tokio::join!(renew, enforce);
    }

    /// An Event on `pod` (`namespace/name`), if Events are configured.
    pub fn pod_event(&self, pod: &str, kind: Kind, reason: &str, note: String) {
        if let (Some(ev), Some((ns, name))) = (&self.events, pod.split_once('/')) {
            ev.emit(Events::pod(ns, name), kind, reason, note);
        }
    }

    /// One attempt to hold `key`'s lease: create it, renew our own, or take an expired or
    /// released one. Optimistic concurrency: a conflict re-reads (three tries).
    async fn take(&self, key: &IpKey, pod: &str, create_first: bool) -> Result<(), LeaseError> {
        let name = lease_name(key);
        let unreachable = |why: String| LeaseError::Unreachable {
            key: key.clone(),
            why,
        };
        if create_first {
            let lease = self.fresh(&name, key, pod, Timestamp::now());
            match timed(self.api.create(&PostParams::default(), &lease)).await {
                Ok(_) => {
                    tracing::info!(lease = %name, ip = %key, %pod, "lease taken (new)");
                    return Ok(());
                }
                Err(e) if is_conflict(&e) => {} // it exists: read it below
                Err(e) => return Err(unreachable(e)),
            }
        }
        for _ in 0..3 {
            let current = self.get(&name).await.map_err(unreachable)?;
            let now = Timestamp::now();
            let Some(mut lease) = current else {
                let lease = self.fresh(&name, key, pod, now);
                match timed(self.api.create(&PostParams::default(), &lease)).await {
                    Ok(_) => {
                        tracing::info!(lease = %name, ip = %key, %pod, "lease taken (new)");
                        return Ok(());
                    }
                    Err(e) if is_conflict(&e) => continue,
                    Err(e) => return Err(unreachable(e)),
                }
            };
            if let Some(other) = other_key(&lease)
                && other != *key
            {
                return Err(LeaseError::NameClash {
                    key: key.clone(),
                    lease: name,
                    other: other.to_string(),
                });
            }
            let ours = holder(&lease) == Some(self.node.as_str());
            let previous = holder(&lease).map(str::to_string);
            let previous_pod = annotation(&lease, POD_ANNOTATION);
            if !ours && previous.is_some() && !self.expired(&name, &lease) {
                return Err(LeaseError::Held {
                    key: key.clone(),
                    lease: name,
                    node: previous.unwrap_or_default(),
                    pod: previous_pod.unwrap_or_else(|| "?".into()),
                });
            }
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if !ours {
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                spec.acquire_time = Some(MicroTime(now));
            }
            spec.holder_identity = Some(self.node.clone());
            spec.lease_duration_seconds = Some(self.timing.duration.as_secs() as i32);
            spec.renew_time = Some(MicroTime(now));
            set_annotations(&mut lease.metadata, key, pod);
            match timed(self.api.replace(&name, &PostParams::default(), &lease)).await {
                Ok(_) => {
                    if !ours {
                        self.lock_seen().remove(&name);
                        let from = match &previous {
                            Some(n) => format!("node {n} (lease expired)"),
                            None => "nobody (lease released)".to_string(),
                        };
                        tracing::info!(lease = %name, ip = %key, %pod, %from, "lease taken over");
                        if previous.is_some() {
                            self.pod_event(
                                pod,
                                Kind::Normal,
                                "FixedIPReclaimed",
                                format!(
                                    "{key} reclaimed by node {} from {from}{}",
                                    self.node,
                                    previous_pod
                                        .map(|p| format!(", where pod {p} had it"))
                                        .unwrap_or_default()
                                ),
                            );
                        }
                    }
                    return Ok(());
                }
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(unreachable(e)),
            }
        }
        Err(unreachable(
            "the lease kept changing under three attempts".into(),
        ))
    }

    /// Whether another node's lease is expired by the contract (module docs): unchanged for `D`
    /// on our monotonic clock, or older than `D + max_clock_skew` by the wall clocks.
    fn expired(&self, name: &str, lease: &Lease) -> bool {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let duration = lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_duration_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.timing.duration, Duration::from_secs);
        let now = Instant::now();
        let mut seen = self.lock_seen();
        let s = seen.entry(name.to_string()).or_insert_with(|| Seen {
            version: version.clone(),
            since: now,
        });
        if s.version != version {
            *s = Seen {
                version,
                since: now,
            };
        }
        if now.duration_since(s.since) > duration {
            return true;
        }
        let renewed = lease
            .spec
            .as_ref()
            .and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()))
            .map(|t| t.0);
        match renewed {
            Some(t) => {
                let age = Timestamp::now().duration_since(t);
                age.is_positive() && age.unsigned_abs() > duration + self.timing.max_clock_skew
            }
            None => true,
        }
    }

    fn fresh(&self, name: &str, key: &IpKey, pod: &str, now: Timestamp) -> Lease {
        let mut metadata = ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        };
        set_annotations(&mut metadata, key, pod);
        Lease {
            metadata,
            spec: Some(LeaseSpec {
                holder_identity: Some(self.node.clone()),
                lease_duration_seconds: Some(self.timing.duration.as_secs() as i32),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        }
    }

    async fn get(&self, name: &str) -> Result<Option<Lease>, String> {
        timed(self.api.get_opt(name)).await
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashMap<IpKey, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request with [`LEASE_REQUEST_TIMEOUT`]; errors as text (409 kept recognisable).
async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(LEASE_REQUEST_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(kube::Error::Api(s))) if s.code == 409 => Err(CONFLICT.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer in {LEASE_REQUEST_TIMEOUT:?}")),
    }
}

const CONFLICT: &str = "conflict (409)";

fn is_conflict(e: &str) -> bool {
    e == CONFLICT
}

fn holder(l: &Lease) -> Option<&str> {
    l.spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

fn annotation(l: &Lease, key: &str) -> Option<String> {
    l.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .cloned()
}

/// The exact (network, IP) a lease was written for, if it says.
fn other_key(l: &Lease) -> Option<IpKey> {
    Some(IpKey {
        network: annotation(l, NETWORK_ANNOTATION)?,
        ip: annotation(l, IP_ANNOTATION)?.parse().ok()?,
    })
}

fn set_annotations(m: &mut ObjectMeta, key: &IpKey, pod: &str) {
    let a = m.annotations.get_or_insert_with(Default::default);
    a.insert(POD_ANNOTATION.into(), pod.into());
    a.insert(NETWORK_ANNOTATION.into(), key.network.clone());
    a.insert(IP_ANNOTATION.into(), key.ip.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_dns_subdomains_with_dashes_for_dots_and_colons() {
        let k = |n: &str, ip: &str| IpKey {
            network: n.into(),
            ip: ip.parse().unwrap(),
        };
        assert_eq!(
            lease_name(&k("db-net", "10.10.0.10")),
            "sriov-ip-db-net-10-10-0-10"
        );
        assert_eq!(
            lease_name(&k("db-net", "fd00::10")),
            "sriov-ip-db-net-fd00--10"
        );
        assert_eq!(
            lease_name(&k("DB_Net", "10.0.0.1")),
            "sriov-ip-db-net-10-0-0-1"
        );
        let long = "n".repeat(300);
        let name = lease_name(&k(&long, "10.0.0.1"));
        assert!(name.len() <= 253 && !name.ends_with('-'));
    }

    #[test]
    fn timing_defaults_keep_the_contract_and_bad_ones_are_refused() {
        let t = LeaseTiming::default();
        assert_eq!(
            (t.duration, t.renew_every, t.fence_after),
            (
                Duration::from_secs(15),
                Duration::from_secs(5),
                Duration::from_secs(10)
            )
        );
        t.check().unwrap();
        assert!(
            LeaseTiming::from_duration(Duration::from_secs(1))
                .check()
                .is_err()
        );
        let mut bad = t;
        bad.fence_after = bad.duration;
        assert!(bad.check().unwrap_err().contains("fence deadline"));
    }
}

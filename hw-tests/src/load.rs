//! Kubelet-side load for fault tests: tasks that call `Allocate` and `GetPreferredAllocation`
//! on every pool without pause, the way a busy kubelet would, recording each call's outcome and
//! the fault epoch it started and ended in, so a test can tell calls that overlapped a fault
//! (kubelet or agent down: failures allowed) from calls made while all was well (must succeed).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sriov_proto::deviceplugin::v1beta1 as api;
use sriov_proto::deviceplugin::v1beta1::device_plugin_client::DevicePluginClient;
use tonic::transport::Channel;

use crate::kubelet::Dialer;

/// Prefix of a call's error when the plugin answered, but wrongly (never allowed, fault or not).
pub const WRONG: &str = "wrong answer: ";
/// A call that takes longer than this counts as failed (a hung server must not hang the test).
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Fault epochs: even = healthy, odd = a fault is in progress. The test bumps it to odd before
/// it injects a fault and back to even once the system has recovered (re-registered, lists
/// complete).
#[derive(Default)]
pub struct Epoch(AtomicU64);

impl Epoch {
    /// The current epoch.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    /// A fault starts (epoch becomes odd).
    pub fn fault(&self) {
        let e = self.0.fetch_add(1, Ordering::SeqCst);
        assert!(e.is_multiple_of(2), "fault() twice");
    }
    /// The system recovered (epoch becomes even).
    pub fn recovered(&self) {
        let e = self.0.fetch_add(1, Ordering::SeqCst);
        assert!(!e.is_multiple_of(2), "recovered() without fault()");
    }
}

/// One call made by the load.
#[derive(Debug, Clone)]
pub struct Call {
    /// The pool's resource name the call went to.
    pub resource: String,
    /// `"Allocate"` or `"GetPreferredAllocation"`.
    pub method: &'static str,
    /// [`Epoch`] when the call was sent.
    pub start_epoch: u64,
    /// [`Epoch`] when its answer (or failure) came.
    pub end_epoch: u64,
    /// `Err` holds the gRPC status (code and message).
    pub result: Result<(), String>,
}

impl Call {
    /// True if the plugin answered, but with something wrong.
    pub fn wrong(&self) -> bool {
        self.result.as_ref().is_err_and(|e| e.starts_with(WRONG))
    }

    /// True if the call started and ended in the same healthy epoch: it had to succeed.
    pub fn in_calm(&self) -> bool {
        self.start_epoch == self.end_epoch && self.start_epoch.is_multiple_of(2)
    }
}

/// The running load; [`Load::stop`] ends it and returns every call.
pub struct Load {
    stop: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<Call>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `per_pool` tasks per `(resource, device IDs)`. Each task dials the endpoint the
    /// resource last registered with, and dials again whenever a new registration arrives or a
    /// call fails (kubelet dials again on every registration).
    pub fn start(
        kubelet: Dialer,
        epoch: Arc<Epoch>,
        pools: &[(String, Vec<String>)],
        per_pool: usize,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (resource, ids) in pools {
            for n in 0..per_pool {
                let (k, e, s, c) = (kubelet.clone(), epoch.clone(), stop.clone(), calls.clone());
                let (resource, ids) = (resource.clone(), ids.clone());
                tasks.push(tokio::spawn(async move {
                    drive(&k, &e, &s, &c, &resource, &ids, n).await
                }));
            }
        }
        Load { stop, calls, tasks }
    }

    /// Calls recorded so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Successful calls of `resource` that started in `epoch` or later.
    pub fn ok_since(&self, resource: &str, epoch: u64) -> usize {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls
            .iter()
            .filter(|c| c.resource == resource && c.start_epoch >= epoch && c.result.is_ok())
            .count()
    }

    /// Stops the tasks and returns every call made.
    pub async fn stop(self) -> Vec<Call> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.clone()
    }
}

async fn drive(
    kubelet: &Dialer,
    epoch: &Epoch,
    stop: &AtomicBool,
    calls: &Mutex<Vec<Call>>,
    resource: &str,
    ids: &[String],
    n: usize,
) {
    let mut client: Option<(usize, DevicePluginClient<Channel>)> = None;
    let mut i = n;
    while !stop.load(Ordering::SeqCst) {
        let generation = kubelet.registration_count();
        if client.as_ref().is_none_or(|(g, _)| *g != generation) {
            client = match kubelet.plugin(resource).await {
                Ok(c) => Some((generation, c)),
                Err(_) => {
                    // Not registered (yet) or the socket is gone: what kubelet sees while down.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
        }
        let Some((_, c)) = client.as_mut() else {
            continue;
        };
        i += 1;
        let id = &ids[i % ids.len()];
        let start_epoch = epoch.get();
        let (method, result) = if i.is_multiple_of(2) {
            let req = api::AllocateRequest {
                container_requests: vec![api::ContainerAllocateRequest {
                    devices_ids: vec![id.clone()],
                }],
            };
            let r = tokio::time::timeout(CALL_TIMEOUT, c.allocate(req)).await;
            (
                "Allocate",
                settle(r, |r: api::AllocateResponse| {
                    let env = r
                        .container_responses
                        .first()
                        .map(|c| c.envs.values().any(|v| v.contains(id.as_str())));
                    (env == Some(true))
                        .then_some(())
                        .ok_or_else(|| format!("Allocate answer without {id}: {r:?}"))
                }),
            )
        } else {
            let req = api::PreferredAllocationRequest {
                container_requests: vec![api::ContainerPreferredAllocationRequest {
                    available_device_i_ds: ids.to_vec(),
                    must_include_device_i_ds: vec![id.clone()],
                    allocation_size: 1,
                }],
            };
            let r = tokio::time::timeout(CALL_TIMEOUT, c.get_preferred_allocation(req)).await;
            (
                "GetPreferredAllocation",
                settle(r, |r: api::PreferredAllocationResponse| {
                    let got = r.container_responses.first().map(|c| c.device_i_ds.clone());
                    (got.as_deref() == Some(std::slice::from_ref(id)))
                        .then_some(())
                        .ok_or_else(|| format!("must-include {id} not preferred: {got:?}"))
                }),
            )
        };
        let failed = result.is_err();
        calls.lock().unwrap_or_else(|e| e.into_inner()).push(Call {
            resource: resource.to_string(),
            method,
            start_epoch,
            end_epoch: epoch.get(),
            result,
        });
        if failed {
            client = None;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// A call's outcome: timed out, a gRPC error, or an answer that `check` accepts or not.
fn settle<T>(
    r: Result<Result<tonic::Response<T>, tonic::Status>, tokio::time::error::Elapsed>,
    check: impl FnOnce(T) -> Result<(), String>,
) -> Result<(), String> {
    match r {
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
        Ok(Err(s)) => Err(format!("{:?}: {}", s.code(), s.message())),
        Ok(Ok(resp)) => check(resp.into_inner()).map_err(|e| format!("{WRONG}{e}")),
    }
}

//! Registering a pool with kubelet: dial `kubelet.sock`, send `Register`, retry until it works.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sriov_proto::deviceplugin::v1beta1::RegisterRequest;
use sriov_proto::deviceplugin::v1beta1::registration_client::RegistrationClient;
use sriov_proto::kubelet::DEVICE_PLUGIN_API_VERSION;
use sriov_proto::uds_endpoint;

use super::KubeletError;
use super::manager::Counters;
use super::plugin::plugin_options;

/// First retry delay after a failed registration; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Retry delay cap: a kubelet that comes back is found within a second even without the
/// socket watcher noticing.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Bound on one dial + Register; kubelet dials our socket back before answering.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What one pool registers as.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    /// `<prefix>/<name>`.
    pub(crate) resource: String,
    /// Our socket's file name inside kubelet's directory (kubelet resolves it there).
    pub(crate) endpoint: String,
}

impl Registration {
    fn request(&self) -> RegisterRequest {
        RegisterRequest {
            version: DEVICE_PLUGIN_API_VERSION.to_string(),
            endpoint: self.endpoint.clone(),
            resource_name: self.resource.clone(),
            options: Some(plugin_options()),
        }
    }
}

/// One attempt: dial kubelet at `kubelet_sock` and register.
pub(crate) async fn register_once(
    kubelet_sock: &Path,
    reg: &Registration,
) -> Result<(), KubeletError> {
    let connect_err = |source| KubeletError::Connect {
        path: kubelet_sock.to_path_buf(),
        source,
    };
    let channel = uds_endpoint(kubelet_sock)
        .map_err(connect_err)?
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .map_err(connect_err)?;
    RegistrationClient::new(channel)
        .register(reg.request())
        .await
        .map_err(|status| KubeletError::Register {
            resource: reg.resource.clone(),
            status: Box::new(status),
        })?;
    Ok(())
}

/// Registers until kubelet accepts, backing off from 50 ms to at most 1 s between attempts.
/// Counts every outcome in `counters`. Logs the first failure of a run as a warning and the
/// rest at debug level (kubelet being down for a while is normal during its restart).
pub(crate) async fn register_until_ok(
    kubelet_sock: PathBuf,
    reg: Registration,
    counters: Arc<Counters>,
) {
    let mut delay = FIRST_BACKOFF;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match register_once(&kubelet_sock, &reg).await {
            Ok(()) => {
                counters.registrations_ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    resource = %reg.resource,
                    endpoint = %reg.endpoint,
                    attempt,
                    "registered with kubelet"
                );
                return;
            }
            Err(e) => {
                counters
                    .registrations_failed
                    .fetch_add(1, Ordering::Relaxed);
                if attempt == 1 {
                    tracing::warn!(resource = %reg.resource, %e, "registration failed; retrying");
                } else {
                    tracing::debug!(resource = %reg.resource, %e, attempt, "registration failed");
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

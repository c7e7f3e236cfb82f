//! The `DevicePlugin` gRPC service of one pool.
//!
//! Every call reads the pool's current [`PoolView`] from a `watch` channel the manager updates;
//! ListAndWatch is that channel as a stream ([`WatchStream`]): the current list at once, then a
//! full new list whenever the pool changes. Streams end when the pool is removed (the manager
//! drops the sender) or the server stops (the stop channel), so a graceful server shutdown is
//! never held open by a kubelet that keeps watching.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use sriov_proto::deviceplugin::v1beta1 as api;
use sriov_proto::deviceplugin::v1beta1::device_plugin_server::DevicePlugin;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

use super::allocate::{self, AllocateError};
use super::preferred::preferred_allocation;
use super::view::PoolView;

/// The options we register with and answer `GetDevicePluginOptions` with: no PreStartContainer
/// hook (nothing to prepare), GetPreferredAllocation implemented.
pub(crate) fn plugin_options() -> api::DevicePluginOptions {
    api::DevicePluginOptions {
        pre_start_required: false,
        get_preferred_allocation_available: true,
    }
}

/// How Allocate answers, shared by every pool.
#[derive(Debug, Clone)]
pub(crate) struct AllocateOptions {
    /// Return CDI device names (`<prefix>/<name>=<pci>`) in `cdi_devices`.
    pub(crate) cdi: bool,
    /// Where device-info spec files go.
    pub(crate) devinfo_dir: PathBuf,
}

/// One pool's service. Cheap to clone (tonic clones it per connection).
#[derive(Clone)]
pub(crate) struct PoolPlugin {
    pool: watch::Receiver<Arc<PoolView>>,
    stop: watch::Receiver<bool>,
    opts: Arc<AllocateOptions>,
}

impl PoolPlugin {
    /// A service answering from `pool`; its streams end when `stop` becomes true.
    pub(crate) fn new(
        pool: watch::Receiver<Arc<PoolView>>,
        stop: watch::Receiver<bool>,
        opts: Arc<AllocateOptions>,
    ) -> Self {
        Self { pool, stop, opts }
    }

    fn view(&self) -> Arc<PoolView> {
        self.pool.borrow().clone()
    }
}

type ListStream = Pin<Box<dyn Stream<Item = Result<api::ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl DevicePlugin for PoolPlugin {
    async fn get_device_plugin_options(
        &self,
        _: Request<api::Empty>,
    ) -> Result<Response<api::DevicePluginOptions>, Status> {
        Ok(Response::new(plugin_options()))
    }

    type ListAndWatchStream = ListStream;

    async fn list_and_watch(
        &self,
        _: Request<api::Empty>,
    ) -> Result<Response<Self::ListAndWatchStream>, Status> {
        let resource = self.view().pool.resource();
        tracing::info!(%resource, "kubelet opened ListAndWatch");
        let mut stop = self.stop.clone();
        let stopped = async move {
            // An error means the server's stop sender is gone: stop too.
            let _ = stop.wait_for(|s| *s).await;
        };
        let stream = WatchStream::new(self.pool.clone())
            .map(|view| Ok(view.list_response()))
            .take_until(stopped);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_preferred_allocation(
        &self,
        req: Request<api::PreferredAllocationRequest>,
    ) -> Result<Response<api::PreferredAllocationResponse>, Status> {
        let view = self.view();
        let container_responses = req
            .into_inner()
            .container_requests
            .iter()
            .map(|c| api::ContainerPreferredAllocationResponse {
                device_i_ds: preferred_allocation(
                    &view.pool.devices,
                    &c.available_device_i_ds,
                    &c.must_include_device_i_ds,
                    usize::try_from(c.allocation_size).unwrap_or(0),
                    view.pool.allocation_policy,
                ),
            })
            .collect();
        Ok(Response::new(api::PreferredAllocationResponse {
            container_responses,
        }))
    }

    async fn allocate(
        &self,
        req: Request<api::AllocateRequest>,
    ) -> Result<Response<api::AllocateResponse>, Status> {
        let view = self.view();
        let pool = &view.pool;
        let req = req.into_inner();
        // Check everything before writing anything: a refused request leaves no trace.
        let resolved = req
            .container_requests
            .iter()
            .map(|c| allocate::resolve(&view, &c.devices_ids))
            .collect::<Result<Vec<_>, AllocateError>>()
            .inspect_err(|e| tracing::warn!(resource = %pool.resource(), %e, "Allocate refused"))?;
        for devices in &resolved {
            allocate::write_devinfo(&self.opts.devinfo_dir, pool, devices).inspect_err(
                |e| tracing::error!(resource = %pool.resource(), %e, "Allocate failed"),
            )?;
        }
        let container_responses = resolved
            .iter()
            .map(|devices| allocate::container_response(pool, devices, self.opts.cdi))
            .collect();
        tracing::info!(
            resource = %pool.resource(),
            devices = ?req.container_requests.iter().map(|c| &c.devices_ids).collect::<Vec<_>>(),
            "allocated"
        );
        Ok(Response::new(api::AllocateResponse {
            container_responses,
        }))
    }

    async fn pre_start_container(
        &self,
        _: Request<api::PreStartContainerRequest>,
    ) -> Result<Response<api::PreStartContainerResponse>, Status> {
        Ok(Response::new(api::PreStartContainerResponse {}))
    }
}

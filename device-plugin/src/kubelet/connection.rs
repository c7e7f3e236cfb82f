//! One pool's gRPC server on its Unix socket in kubelet's directory: bind, serve, notice that
//! the socket was taken away, stop.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sriov_proto::deviceplugin::v1beta1::device_plugin_server::DevicePluginServer;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::KubeletError;
use super::plugin::PoolPlugin;
use super::watch::FileId;

/// How long a stopping server may take to finish in-flight calls before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// A serving pool socket. Dropping it without [`PluginServer::stop`] leaves the task running
/// until its stop sender is dropped (which also stops it).
pub(crate) struct PluginServer {
    path: PathBuf,
    id: Option<FileId>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl PluginServer {
    /// Removes whatever is at `path` (a stale socket from an earlier run, or kubelet's leftovers),
    /// binds a new socket there and serves `make(stop)` on it. `make` receives the stop channel
    /// the service's streams must end on.
    pub(crate) fn start(
        path: &Path,
        make: impl FnOnce(watch::Receiver<bool>) -> PoolPlugin,
    ) -> Result<Self, KubeletError> {
        let listen_err = |source| KubeletError::Listen {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(listen_err(e)),
        }
        let listener = UnixListener::bind(path).map_err(listen_err)?;
        // Only kubelet (root) dials it; set explicitly, whatever the process umask.
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(listen_err)?;
        let id = FileId::of(path);
        let (stop, stop_rx) = watch::channel(false);
        let service = DevicePluginServer::new(make(stop_rx.clone()));
        let mut shutdown = stop_rx;
        let socket = path.display().to_string();
        let task = tokio::spawn(async move {
            let res = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(sriov_proto::uds::incoming(listener), async move {
                    let _ = shutdown.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = res {
                tracing::error!(%socket, %e, "device plugin server failed");
            }
        });
        Ok(Self {
            path: path.to_path_buf(),
            id,
            stop,
            task,
        })
    }

    /// Whether our socket is still the one at our path. Kubelet deletes plugin sockets when it
    /// restarts; a server whose socket is gone can no longer be reached and must be replaced.
    pub(crate) fn socket_intact(&self) -> bool {
        self.id.is_some() && FileId::of(&self.path) == self.id && !self.task.is_finished()
    }

    /// Stops serving in the background: streams end, in-flight calls get [`STOP_GRACE`], then
    /// the task is aborted. With `remove_socket`, our socket file is removed if it is still ours
    /// (never a newer server's). The returned task finishes when the server is gone.
    pub(crate) fn stop(self, remove_socket: bool) -> JoinHandle<()> {
        let Self {
            path,
            id,
            stop,
            mut task,
        } = self;
        if remove_socket
            && id.is_some()
            && FileId::of(&path) == id
            && let Err(e) = std::fs::remove_file(&path)
        {
            tracing::warn!(socket = %path.display(), %e, "cannot remove device plugin socket");
        }
        let _ = stop.send(true);
        tokio::spawn(async move {
            if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                task.abort();
            }
        })
    }
}

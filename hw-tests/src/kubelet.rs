//! A kubelet stand-in that speaks the device plugin API v1beta1 (kubelet's own proto) over real
//! Unix sockets, for tests of the agent's kubelet side, in-process or against the real binary.
//!
//! It does what kubelet's device manager does with a plugin: serves `Registration` on
//! `<dir>/kubelet.sock`; on `Register` checks the version, dials the plugin socket named in the
//! request (relative to `<dir>`), asks `GetDevicePluginOptions`, and follows `ListAndWatch`,
//! keeping each resource's latest device list. Tests then call `Allocate` and
//! `GetPreferredAllocation` through [`KubeletStandIn::plugin`]. [`KubeletStandIn::restart`]
//! does what a kubelet restart does to the directory: the server goes away, every socket in the
//! directory is removed, and a new `kubelet.sock` appears.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sriov_proto::deviceplugin::v1beta1 as api;
use sriov_proto::deviceplugin::v1beta1::device_plugin_client::DevicePluginClient;
use sriov_proto::deviceplugin::v1beta1::registration_server::{Registration, RegistrationServer};
use sriov_proto::kubelet::{DEVICE_PLUGIN_API_VERSION, KUBELET_SOCKET_NAME};
use sriov_proto::uds_endpoint;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// How long the stand-in waits to dial a plugin that registered (kubelet uses 10 s).
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// One accepted registration.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The request as the plugin sent it.
    pub request: api::RegisterRequest,
    /// What `GetDevicePluginOptions` answered when the stand-in dialed back.
    pub options: api::DevicePluginOptions,
    /// When the registration was accepted.
    pub at: Instant,
}

/// The latest `ListAndWatch` message of one resource.
#[derive(Debug, Clone)]
pub struct DeviceList {
    /// The devices, as sent.
    pub devices: Vec<api::Device>,
    /// When the message arrived.
    pub received: Instant,
    /// How many messages this resource's current stream has delivered (1 = the initial list).
    pub seq: u64,
}

impl DeviceList {
    /// The device with ID `id`.
    pub fn get(&self, id: &str) -> Option<&api::Device> {
        self.devices.iter().find(|d| d.id == id)
    }
}

#[derive(Default)]
struct Inner {
    registrations: Vec<Registered>,
    lists: HashMap<String, DeviceList>,
    /// Per resource, the task following its ListAndWatch stream.
    watchers: HashMap<String, JoinHandle<()>>,
}

/// Shared between the gRPC service and the test's handle. `changed` is bumped on every
/// registration and every list, so waiters can re-check.
struct State {
    dir: PathBuf,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
}

impl State {
    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone)]
struct Service(Arc<State>);

#[tonic::async_trait]
impl Registration for Service {
    async fn register(
        &self,
        req: Request<api::RegisterRequest>,
    ) -> Result<Response<api::Empty>, Status> {
        let request = req.into_inner();
        if request.version != DEVICE_PLUGIN_API_VERSION {
            return Err(Status::invalid_argument(format!(
                "unsupported device plugin API version {:?}",
                request.version
            )));
        }
        let sock = self.0.dir.join(&request.endpoint);
        let mut client = dial(&sock)
            .await
            .map_err(|e| Status::unavailable(format!("cannot dial {}: {e}", sock.display())))?;
        let options = client
            .get_device_plugin_options(api::Empty {})
            .await?
            .into_inner();
        let resource = request.resource_name.clone();
        let state = self.0.clone();
        let watcher = tokio::spawn(follow(state, resource.clone(), client));
        {
            let mut inner = self.0.lock();
            if let Some(old) = inner.watchers.insert(resource.clone(), watcher) {
                old.abort();
            }
            inner.lists.remove(&resource);
            inner.registrations.push(Registered {
                request,
                options,
                at: Instant::now(),
            });
        }
        self.0.bump();
        Ok(Response::new(api::Empty {}))
    }
}

/// Follows one resource's ListAndWatch stream until it ends.
async fn follow(state: Arc<State>, resource: String, mut client: DevicePluginClient<Channel>) {
    let Ok(resp) = client.list_and_watch(api::Empty {}).await else {
        return;
    };
    let mut stream = resp.into_inner();
    let mut seq = 0;
    while let Ok(Some(msg)) = stream.message().await {
        seq += 1;
        state.lock().lists.insert(
            resource.clone(),
            DeviceList {
                devices: msg.devices,
                received: Instant::now(),
                seq,
            },
        );
        state.bump();
    }
}

async fn dial(sock: &Path) -> Result<DevicePluginClient<Channel>, tonic::transport::Error> {
    let channel = uds_endpoint(sock)?
        .connect_timeout(DIAL_TIMEOUT)
        .connect()
        .await?;
    Ok(DevicePluginClient::new(channel))
}

/// The stand-in. Dropping it stops its server and stream followers.
pub struct KubeletStandIn {
    state: Arc<State>,
    server: Option<JoinHandle<()>>,
}

impl KubeletStandIn {
    /// Serves `Registration` on `<dir>/kubelet.sock` (replacing a stale socket).
    pub fn start(dir: &Path) -> std::io::Result<Self> {
        let (changed, _) = watch::channel(0);
        let state = Arc::new(State {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner::default()),
            changed,
        });
        let mut me = Self {
            state,
            server: None,
        };
        me.serve()?;
        Ok(me)
    }

    /// Path of the registration socket.
    pub fn socket(&self) -> PathBuf {
        self.state.dir.join(KUBELET_SOCKET_NAME)
    }

    fn serve(&mut self) -> std::io::Result<()> {
        let path = self.socket();
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(&path)?;
        let svc = RegistrationServer::new(Service(self.state.clone()));
        self.server = Some(tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(UnixListenerStream::new(listener))
                .await;
        }));
        Ok(())
    }

    /// Goes down like a stopped kubelet: the server and all stream followers stop and
    /// `kubelet.sock` is removed. Device lists are forgotten; registrations are kept.
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
        let mut inner = self.state.lock();
        for (_, w) in inner.watchers.drain() {
            w.abort();
        }
        inner.lists.clear();
        drop(inner);
        let _ = std::fs::remove_file(self.socket());
    }

    /// A kubelet restart: [`stop`](Self::stop), remove every socket in the directory (kubelet
    /// clears plugin sockets at start), then serve a new `kubelet.sock`. Returns when the new
    /// socket exists, i.e. the moment a plugin could first notice the restart.
    pub fn restart(&mut self) -> std::io::Result<Instant> {
        self.stop();
        for entry in std::fs::read_dir(&self.state.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "sock") {
                std::fs::remove_file(&path)?;
            }
        }
        self.serve()?;
        Ok(Instant::now())
    }

    /// Re-creates only `kubelet.sock` (plugin sockets stay): a kubelet that came back without
    /// clearing its directory. Returns when the new socket exists.
    pub fn recreate_socket(&mut self) -> std::io::Result<Instant> {
        self.stop();
        self.serve()?;
        Ok(Instant::now())
    }

    /// Every registration accepted so far, oldest first.
    pub fn registrations(&self) -> Vec<Registered> {
        self.state.lock().registrations.clone()
    }

    /// The latest device list of `resource`, if its stream has delivered one.
    pub fn devices(&self, resource: &str) -> Option<DeviceList> {
        self.state.lock().lists.get(resource).cloned()
    }

    /// Waits until `f` returns `Some` (checked now and after every registration or list), or
    /// `timeout` passes (`None`).
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&Self) -> Option<T>,
    ) -> Option<T> {
        let mut rx = self.state.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            rx.borrow_and_update();
            if let Some(v) = f(self) {
                return Some(v);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return f(self),
            }
        }
    }

    /// Waits for a registration of `resource` accepted after `since`.
    pub async fn wait_registration(
        &self,
        resource: &str,
        since: Instant,
        timeout: Duration,
    ) -> Option<Registered> {
        self.wait_for(timeout, |k| {
            k.registrations()
                .into_iter()
                .find(|r| r.request.resource_name == resource && r.at >= since)
        })
        .await
    }

    /// Waits for a device list of `resource` that satisfies `pred`.
    pub async fn wait_devices(
        &self,
        resource: &str,
        timeout: Duration,
        mut pred: impl FnMut(&DeviceList) -> bool,
    ) -> Option<DeviceList> {
        self.wait_for(timeout, |k| k.devices(resource).filter(|l| pred(l)))
            .await
    }

    /// A client of the plugin socket `resource` last registered with, as kubelet dials it for
    /// Allocate and GetPreferredAllocation.
    pub async fn plugin(&self, resource: &str) -> Result<DevicePluginClient<Channel>, String> {
        self.dialer().plugin(resource).await
    }

    /// A handle that reads registrations and dials plugins, for tasks that run while the test
    /// restarts the stand-in.
    pub fn dialer(&self) -> Dialer {
        Dialer(self.state.clone())
    }
}

/// Registrations and plugin dialing, shareable across tasks (see [`KubeletStandIn::dialer`]).
#[derive(Clone)]
pub struct Dialer(Arc<State>);

impl Dialer {
    /// How many registrations the stand-in has accepted so far.
    pub fn registration_count(&self) -> usize {
        self.0.lock().registrations.len()
    }

    /// As [`KubeletStandIn::plugin`].
    pub async fn plugin(&self, resource: &str) -> Result<DevicePluginClient<Channel>, String> {
        let endpoint = self
            .0
            .lock()
            .registrations
            .iter()
            .rev()
            .find(|r| r.request.resource_name == resource)
            .map(|r| r.request.endpoint.clone())
            .ok_or_else(|| format!("{resource} never registered"))?;
        dial(&self.0.dir.join(endpoint))
            .await
            .map_err(|e| e.to_string())
    }
}

impl Drop for KubeletStandIn {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
        for (_, w) in self.state.lock().watchers.drain() {
            w.abort();
        }
    }
}

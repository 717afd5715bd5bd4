//! The containerd-facing side: the shim's start/delete actions, the server with
//! the Task and Sandbox services, processes and events. Nothing here knows about RTOSes or OCI runtime CLIs.

mod container;
#[cfg(test)]
mod core_tests;
mod events;
mod exits;
mod labels;
pub mod info;
mod logging;
mod process;
mod sandbox;
pub mod serve;
mod service;
mod task;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::util::write_str_to_file;
use containerd_shim::{api::DeleteResponse, ExitSignal, Flags, StartOpts};
use containerd_shim::protos::protobuf::MessageField;
use tokio::sync::Mutex;

pub use container::{decide, runtime_options, RuntimeOptions};
/// For the fuzz targets (fuzz/): the pod config decoder is otherwise internal.
#[doc(hidden)]
pub use sandbox::PodConfig;
pub use service::Service;

use crate::annotations::Annotations;

pub struct MicaShim {
    exit: Arc<ExitSignal>,
    id: String,
    namespace: String,
    /// containerd's gRPC socket (`-address`), for `labels_as_annotations`.
    containerd: String,
    /// The address this shim serves on (`-socket`; empty for `start` and `delete`).
    socket: String,
}

/// The grouping key of the container in the current bundle: its pod or group.
fn grouping(bundle: &Path, id: &str) -> String {
    let annotations = crate::spec::BundleSpec::load(bundle).map(|s| s.annotations).unwrap_or_default();
    Annotations::parse(&annotations).ok().and_then(|a| a.grouping().map(str::to_string)).unwrap_or_else(|| id.to_string())
}

fn socket_path(address: &str) -> &Path {
    Path::new(address.strip_prefix("unix://").unwrap_or(address))
}

fn socket_alive(address: &str) -> bool {
    std::os::unix::net::UnixStream::connect(socket_path(address)).is_ok()
}

/// Unlinks a shim socket nothing listens on any more (a path that is not a
/// socket is left alone).
fn remove_socket(address: &str) {
    use std::os::unix::fs::FileTypeExt;
    let path = socket_path(address);
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(socket = %path.display(), error = %e, "cannot remove shim socket");
        }
    }
}

#[async_trait]
impl containerd_shim::Shim for MicaShim {
    type T = task::TaskService;

    async fn new(_runtime_id: &str, args: &Flags, config: &mut containerd_shim::Config) -> Self {
        // Our own tracing logger writes to the log fifo; the crate's would be a second one.
        config.no_setup_logger = true;
        MicaShim {
            exit: Arc::new(ExitSignal::default()),
            id: args.id.clone(),
            namespace: args.namespace.clone(),
            containerd: args.address.clone(),
            socket: args.socket.clone(),
        }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let group = grouping(Path::new("."), &opts.id);
        let address = containerd_shim::socket_address(&opts.address, &opts.namespace, &group);
        // Another container of the same pod or group: reuse its shim process.
        if group != opts.id && socket_alive(&address) {
            write_str_to_file("address", &address).await?;
            return Ok(address);
        }
        // Not the crate's spawn: it cannot read containerd 2.3's BootstrapParams.
        let address = crate::bootstrap::spawn(opts, &group).await?;
        write_str_to_file("address", &address).await?;
        Ok(address)
    }

    async fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let bundle = std::env::current_dir().map_err(|e| containerd_shim::Error::Other(e.to_string()))?;
        let pid = container::cleanup_dead(&bundle, &self.id)
            .await
            .map_err(|e| containerd_shim::Error::Other(format!("cleanup of {} in {}: {e}", self.id, self.namespace)))?;
        sandbox::cleanup_dead(&bundle, &self.id);
        // A shim killed outright never unlinked its socket. A group's shim may
        // still serve other members, so only a socket nobody answers on goes.
        if let Ok(address) = std::fs::read_to_string(bundle.join("address")) {
            if !socket_alive(address.trim()) {
                remove_socket(address.trim());
            }
        }
        Ok(DeleteResponse {
            pid,
            exit_status: 128 + nix::libc::SIGKILL as u32,
            exited_at: MessageField::some(service::timestamp(std::time::SystemTime::now())),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
        // The crate unlinks the socket named in ./address after this returns, but
        // a group's shim runs in its first member's bundle, which containerd may
        // have deleted by now; the socket we serve on is known from our flags.
        // Existing connections live on: only the name goes.
        remove_socket(&self.socket);
    }

    /// Not used: `serve` builds the service (see serve.rs); the trait wants it.
    async fn create_task_service(&self, publisher: RemotePublisher) -> task::TaskService {
        task::TaskService(Service::new(&self.namespace, &self.containerd, &publisher.address, self.exit.clone()).await)
    }
}

impl Service {
    /// The Task service with its exit loop running. `events` is containerd's
    /// ttrpc address for events, `containerd` its gRPC socket.
    pub async fn new(namespace: &str, containerd: &str, events: &str, exit: Arc<ExitSignal>) -> Service {
        // Our own publisher: ordered, synchronous forwarding (see events.rs).
        let sink = Arc::new(events::Publisher::new(events, namespace));
        Service::build(namespace, containerd, sink, crate::backend::backend_for, exit).await
    }

    pub(super) async fn build(
        namespace: &str,
        containerd: &str,
        events: Arc<dyn events::EventSink>,
        backends: crate::backend::Backends,
        exit: Arc<ExitSignal>,
    ) -> Service {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let svc = Service {
            namespace: namespace.into(),
            containerd: containerd.into(),
            containers: Arc::new(Mutex::new(HashMap::new())),
            events,
            backends,
            exit,
            notices: tx,
            unclaimed: Default::default(),
            creating: Default::default(),
        };
        svc.watch_exits(rx).await;
        svc
    }
}

//! The containerd-facing side: the shim's start/delete actions, the Task service,
//! processes and events. Nothing here knows about RTOSes or OCI runtime CLIs.

mod container;
mod events;
mod exits;
mod logging;
mod process;
mod service;

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
pub use service::Service;

use crate::annotations::Annotations;

pub struct MicaShim {
    exit: Arc<ExitSignal>,
    id: String,
    namespace: String,
    debug: bool,
}

/// The grouping key of the container in the current bundle: its pod or group.
fn grouping(bundle: &Path, id: &str) -> String {
    let annotations = crate::spec::BundleSpec::load(bundle).map(|s| s.annotations).unwrap_or_default();
    Annotations::parse(&annotations).ok().and_then(|a| a.grouping().map(str::to_string)).unwrap_or_else(|| id.to_string())
}

fn socket_alive(address: &str) -> bool {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

#[async_trait]
impl containerd_shim::Shim for MicaShim {
    type T = Service;

    async fn new(_runtime_id: &str, args: &Flags, config: &mut containerd_shim::Config) -> Self {
        // Our own tracing logger writes to the log fifo; the crate's would be a second one.
        config.no_setup_logger = true;
        MicaShim { exit: Arc::new(ExitSignal::default()), id: args.id.clone(), namespace: args.namespace.clone(), debug: args.debug }
    }

    async fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let group = grouping(Path::new("."), &opts.id);
        let address = containerd_shim::socket_address(&opts.address, &opts.namespace, &group);
        // Another container of the same pod or group: reuse its shim process.
        if group != opts.id && socket_alive(&address) {
            write_str_to_file("address", &address).await?;
            return Ok(address);
        }
        let address = containerd_shim::spawn(opts, &group, Vec::new()).await?;
        write_str_to_file("address", &address).await?;
        Ok(address)
    }

    async fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let bundle = std::env::current_dir().map_err(|e| containerd_shim::Error::Other(e.to_string()))?;
        let pid = container::cleanup_dead(&bundle, &self.id)
            .await
            .map_err(|e| containerd_shim::Error::Other(format!("cleanup of {} in {}: {e}", self.id, self.namespace)))?;
        Ok(DeleteResponse {
            pid,
            exit_status: 128 + nix::libc::SIGKILL as u32,
            exited_at: MessageField::some(service::timestamp(std::time::SystemTime::now())),
            ..Default::default()
        })
    }

    async fn wait(&mut self) {
        self.exit.wait().await;
    }

    async fn create_task_service(&self, publisher: RemotePublisher) -> Service {
        logging::init(self.debug, &self.id);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let svc = Service {
            namespace: self.namespace.clone(),
            containers: Arc::new(Mutex::new(HashMap::new())),
            // Our own publisher: ordered, synchronous forwarding (see events.rs).
            publisher: Arc::new(events::Publisher::new(&publisher.address, &self.namespace)),
            exit: self.exit.clone(),
            notices: tx,
            unclaimed: Default::default(),
        };
        svc.watch_exits(rx).await;
        svc
    }
}

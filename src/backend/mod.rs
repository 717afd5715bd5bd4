//! The Backend contract: what varies between an RTOS client of micad, a Linux
//! container run by an OCI runtime CLI and the pod's namespace holder. The task
//! service (src/shim) owns state, wait channels and events; a backend only does
//! the work. The backends are named in one place, `registry.rs`.

pub mod delegate;
pub mod holder;
pub mod mica;
mod registry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use containerd_shim::protos::protobuf::well_known_types::any::Any;

pub use registry::{backend_for, cleanup_dead};

/// Which backend serves a route (`backend_for`, the registry, in the shim).
pub type Backends = fn(&crate::router::Route) -> &'static dyn Backend;

use crate::config::Config;
use crate::router::Decision;
use crate::stdio::{IoSlot, StdioPaths};

pub type Result<T> = std::result::Result<T, Error>;

/// Errors carry the status containerd should see.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn failed(context: &str, e: impl std::fmt::Display) -> Error {
        Error::Failed(format!("{context}: {e}"))
    }
}

/// Everything a backend needs to create a container.
pub struct CreateContext<'a> {
    pub id: &'a str,
    pub namespace: &'a str,
    pub bundle: &'a Path,
    pub spec: &'a crate::spec::BundleSpec,
    pub annotations: &'a crate::annotations::Annotations,
    pub stdio: &'a StdioPaths,
    pub config: &'a Config,
    pub decision: &'a Decision,
    /// A private directory for this container's files, removed at delete.
    pub work_dir: PathBuf,
    /// Where out-of-band events (OOM kills) go.
    pub notices: NoticeSender,
    /// The init process's IO, owned by the core: the backend puts the copy
    /// tasks there when it attaches the process (at create or at start).
    pub io: IoSlot,
}

/// Builds containers of one kind and cleans up after them when their shim died.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The key of this backend's record in the container's state file.
    fn name(&self) -> &'static str;
    /// Whether the shim mounts the container's rootfs before `create`.
    fn needs_rootfs(&self) -> bool {
        true
    }
    async fn create(&self, ctx: &CreateContext<'_>) -> Result<Arc<dyn Instance>>;
    /// The record `cleanup` needs if the shim dies while `create` runs, known
    /// before `create` acts (the runtime may hold the container before `create`
    /// returns). None: the backend holds nothing `cleanup` could undo.
    fn planned_record(&self, _ctx: &CreateContext<'_>) -> Result<Option<serde_json::Value>> {
        Ok(None)
    }
    /// Removes what a container held, knowing only its record (`shim delete`
    /// after the shim died).
    async fn cleanup(&self, record: serde_json::Value, bundle: &Path, id: &str) -> Result<()>;
}

/// What each backend left on disk, by backend name: the record its `Instance`
/// gave, read back by the same backend's `cleanup`. On disk a JSON object
/// (`{"delegate": {...}}`); a `null` entry means nothing held.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Leftovers(pub BTreeMap<String, serde_json::Value>);

impl Leftovers {
    pub fn of(backend: &str, record: serde_json::Value) -> Leftovers {
        Leftovers(BTreeMap::from([(backend.to_string(), record)]))
    }
}

/// A resource-usage sample, already encoded as containerd expects it.
pub type Stats = Any;

/// One container held by a backend. `exec_id` None means the init process.
/// What a backend cannot do has a default refusal; a backend overrides it
/// when it can, or to say why in its own words. Processes' IO is not here:
/// the core owns it (`IoSlot`) and resizes, closes and drains it itself.
#[async_trait]
pub trait Instance: Send + Sync {
    /// Pid of the init process (known from create on; 0 when it has none).
    fn pid(&self) -> u32;
    /// What `shim delete` needs to remove this container after the shim died.
    fn record(&self) -> serde_json::Value;
    async fn start(&self) -> Result<()>;
    async fn kill(&self, exec_id: Option<&str>, signal: u32, all: bool) -> Result<()>;
    /// Removes the container; called after init exited, or to clean up a failed create.
    async fn delete(&self) -> Result<()>;
    async fn pids(&self) -> Result<Vec<u32>>;
    async fn stats(&self) -> Result<Stats>;

    /// Prepares an exec process (OCI process JSON); it runs at `start_exec`,
    /// which attaches its IO into `io`.
    async fn exec(&self, _exec_id: &str, _process: Vec<u8>, _stdio: StdioPaths, _io: IoSlot) -> Result<()> {
        Err(Error::Unimplemented("this container has no processes to exec into".into()))
    }
    async fn start_exec(&self, exec_id: &str) -> Result<u32> {
        Err(Error::NotFound(format!("exec {exec_id} not found")))
    }
    /// Forgets an exec process after it exited (or never started).
    async fn delete_exec(&self, exec_id: &str) -> Result<()> {
        Err(Error::NotFound(format!("exec {exec_id} not found")))
    }
    async fn pause(&self) -> Result<()> {
        Err(Error::Unimplemented("this container cannot be paused".into()))
    }
    async fn resume(&self) -> Result<()> {
        Err(Error::Unimplemented("this container cannot be paused".into()))
    }
    /// Applies new resources (OCI LinuxResources JSON).
    async fn update(&self, _resources: &[u8]) -> Result<()> {
        Err(Error::Unimplemented("this container's resources cannot be updated".into()))
    }
    /// Called when init exited, before the exit is published: true if it was
    /// killed for running out of memory (so /tasks/oom goes out first).
    async fn oom_at_exit(&self) -> bool {
        false
    }
}

/// Reported by a backend outside any request, into one channel the shim reads
/// in order: an OOM kill, or the exit of a process that is not a child of the
/// shim (an RTOS; children's exits come from the reaper by pid).
#[derive(Debug)]
pub enum Notice {
    Oom { id: String },
    Exit { id: String, exec: Option<String>, code: i32 },
}

pub type NoticeSender = tokio::sync::mpsc::UnboundedSender<Notice>;

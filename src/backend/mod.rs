//! The Backend contract: what varies between an RTOS client of micad and a Linux
//! container run by an OCI runtime CLI. The task service (src/shim) owns state,
//! wait channels and events; a backend only does the work.

pub mod delegate;
pub mod mica;

use std::path::PathBuf;

use async_trait::async_trait;
use containerd_shim::protos::protobuf::well_known_types::any::Any;

use crate::config::Config;
use crate::router::Decision;
use crate::stdio::StdioPaths;

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
    pub bundle: &'a std::path::Path,
    pub spec: &'a crate::spec::BundleSpec,
    pub stdio: &'a StdioPaths,
    pub config: &'a Config,
    pub decision: &'a Decision,
    /// A private directory for this container's files, removed at delete.
    pub work_dir: PathBuf,
}

/// What the backend left on disk, recorded so `shim delete` can clean up after a
/// dead shim.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Leftovers {
    /// Delegate binary and its `--root`, when a delegate holds the container.
    pub delegate: Option<DelegateLeftover>,
    /// micad socket dir and client name, when micad holds the container.
    #[serde(default)]
    pub mica: Option<mica::MicaLeftover>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct DelegateLeftover {
    pub name: String,
    pub binary: PathBuf,
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    #[serde(default)]
    pub global_args: Vec<String>,
    #[serde(default)]
    pub sealed_exec: bool,
}

/// A resource-usage sample, already encoded as containerd expects it.
pub type Stats = Any;

/// One container held by a backend. `exec_id` None means the init process.
#[async_trait]
pub trait Instance: Send + Sync {
    /// Pid of the init process (known from create on).
    fn pid(&self) -> u32;
    fn leftovers(&self) -> Leftovers;
    async fn start(&self) -> Result<()>;
    async fn kill(&self, exec_id: Option<&str>, signal: u32, all: bool) -> Result<()>;
    /// Prepares an exec process (OCI process JSON); it runs at `start_exec`.
    async fn exec(&self, exec_id: &str, process: Vec<u8>, stdio: StdioPaths) -> Result<()>;
    async fn start_exec(&self, exec_id: &str) -> Result<u32>;
    /// Forgets an exec process after it exited (or never started).
    async fn delete_exec(&self, exec_id: &str) -> Result<()>;
    /// Removes the container; called after init exited, or to clean up a failed create.
    async fn delete(&self) -> Result<()>;
    async fn resize_pty(&self, exec_id: Option<&str>, width: u32, height: u32) -> Result<()>;
    async fn close_io(&self, exec_id: Option<&str>) -> Result<()>;
    /// Waits (bounded) for a process's output to reach containerd after it exited.
    async fn drain_io(&self, exec_id: Option<&str>);
    async fn pids(&self) -> Result<Vec<u32>>;
    async fn pause(&self) -> Result<()>;
    async fn resume(&self) -> Result<()>;
    /// Applies new resources (OCI LinuxResources JSON).
    async fn update(&self, resources: &[u8]) -> Result<()>;
    async fn stats(&self) -> Result<Stats>;
    /// Called when init exited, before the exit is published: true if it was
    /// killed for running out of memory (so /tasks/oom goes out first).
    async fn oom_at_exit(&self) -> bool;
}

/// Reported by a backend outside any request (e.g. an OOM kill of a child).
#[derive(Debug)]
pub enum Notice {
    Oom { id: String },
}

pub type NoticeSender = tokio::sync::mpsc::UnboundedSender<Notice>;

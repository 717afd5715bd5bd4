//! micrun: a containerd shim v2 runtime (`io.containerd.mica.v2`) that sends each
//! container either to an RTOS through openEuler MICA's micad, or to a Linux OCI
//! runtime CLI (crun, runc, youki).

/// The runtime name containerd knows this shim by.
pub const RUNTIME_NAME: &str = "io.containerd.mica.v2";

pub mod annotations;
pub mod backend;
pub mod bootstrap;
pub mod cgroup;
pub mod config;
pub mod hooks;
pub mod router;
pub mod shim;
pub mod sim;
pub mod spawn;
pub mod spec;
pub mod state;
pub mod stdio;
pub mod wire;

//! `micrun sim`: a simulator of openEuler MICA's micad that speaks its socket
//! protocol byte for byte (as micad implements it), so the mica backend can be developed and
//! tested without MICA hardware. Like Zephyr's native_sim, host-native firmware
//! runs as the RTOS; other firmware gets an emulated console.
//!
//! Simulator-only extension: when host firmware exits by itself, its exit code is
//! written to `<socket-dir>/<name>.exit` (micad has no way to tell it).

mod console;
mod elf;
pub mod faults;
mod requests;
mod rtos;
mod server;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use elf::{inspect as inspect_firmware, Firmware};
pub use rtos::exit_file;
pub use server::Simulator;

use crate::backend::mica::protocol::Pedestal;
use rtos::RtosClient;

#[derive(Debug, Clone)]
pub struct Options {
    pub socket_dir: PathBuf,
    pub tty_dir: PathBuf,
    /// The one pedestal this simulated machine has.
    pub pedestal: Pedestal,
    pub pid_file: Option<PathBuf>,
    /// Test-only faults (faults.rs); none by default.
    pub faults: faults::FaultOptions,
}

/// State shared by every socket's task. `registry` is locked for the whole of each
/// request, which makes the simulator handle one request at a time, as micad does.
pub(crate) struct Shared {
    opts: Options,
    registry: tokio::sync::Mutex<Registry>,
    live: Arc<Live>,
    faults: faults::Faults,
}

#[derive(Default)]
pub(crate) struct Registry {
    clients: HashMap<String, RtosClient>,
}

/// Firmware pids and tty links alive right now, kept outside the registry lock so
/// shutdown can clean them up even while a request is in progress.
#[derive(Default)]
pub(crate) struct Live {
    pids: Mutex<HashSet<u32>>,
    links: Mutex<HashSet<PathBuf>>,
}

impl Live {
    /// Kills every firmware process we started (by pid) and removes our tty links.
    fn clean_up(&self) {
        for pid in self.pids.lock().expect("live lock").drain() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
        for link in self.links.lock().expect("live lock").drain() {
            let _ = std::fs::remove_file(link);
        }
    }
}

/// Parses `--pedestal`: the names micad knows, plus `baremetal`.
pub fn parse_pedestal(s: &str) -> Result<Pedestal, String> {
    match s {
        "baremetal" => Ok(Pedestal::BareMetal),
        "xen" | "jailhouse" | "hetero" => Ok(Pedestal::from_wire(s)),
        other => Err(format!("unknown pedestal {other:?}: use xen, baremetal, jailhouse or hetero")),
    }
}

/// Entry point of `micrun sim`: runs until SIGTERM or SIGINT.
pub fn run(opts: Options) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async {
        let sim = Simulator::bind(opts.clone()).await?;
        if let Some(p) = &opts.pid_file {
            std::fs::write(p, format!("{}\n", std::process::id()))
                .map_err(|e| format!("cannot write pid file {}: {e}", p.display()))?;
        }
        tracing::info!(
            "micad simulator ready: sockets in {}, ttys in {}, pedestal {}",
            opts.socket_dir.display(),
            opts.tty_dir.display(),
            opts.pedestal
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
        let result = tokio::select! {
            r = sim.serve() => r,
            _ = term.recv() => Ok(()),
            _ = tokio::signal::ctrl_c() => Ok(()),
        };
        sim.shut_down();
        if let Some(p) = &opts.pid_file {
            let _ = std::fs::remove_file(p);
        }
        result
    })
}

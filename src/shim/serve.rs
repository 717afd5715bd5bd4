//! The serving shim: one ttrpc server on the shim socket with containerd's
//! Task service and the Sandbox service containerd 2.x calls for a handler with
//! `sandboxer = "shim"`. The containerd-shim crate's `run` serves the Task
//! service only, so its `start` and `delete` actions are kept and serving is
//! done here, the same way: reap children, answer on the socket, tell the
//! `start` process we serve by closing stdout, leave when the service says so.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;

use containerd_shim::protos::sandbox_async::create_sandbox;
use containerd_shim::protos::shim_async::create_task;
use containerd_shim::protos::ttrpc::r#async::transport::Listener;
use containerd_shim::protos::ttrpc::r#async::Server;
use containerd_shim::{ExitSignal, Flags};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use tokio::signal::unix::{signal, SignalKind};

use super::{remove_socket, socket_alive, socket_path, Service};

/// containerd's event address for this shim, set in its environment.
const TTRPC_ADDRESS: &str = "TTRPC_ADDRESS";
/// How long an exiting shim waits for containerd to take its queued events.
const EVENTS_FLUSH_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// The action the flags ask for is serving (neither `start` nor `delete`).
pub fn requested(flags: &Flags) -> bool {
    flags.action.is_empty()
}

pub async fn serve(flags: Flags) -> Result<(), String> {
    if flags.socket.is_empty() {
        return Err("-socket is required to serve".into());
    }
    let events = std::env::var(TTRPC_ADDRESS).map_err(|_| format!("{TTRPC_ADDRESS} is not set: containerd starts the shim with it"))?;
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| format!("become a subreaper: {e}"))?;
    reap_children().map_err(|e| format!("install signal handlers: {e}"))?;
    super::logging::init(flags.debug, &flags.id);

    let Some(listener) = listen(&flags.socket)? else {
        // Another shim of the same group answers there already.
        return Ok(());
    };
    let exit = Arc::new(ExitSignal::default());
    let tasks = Service::new(&flags.namespace, &flags.address, &events, exit.clone()).await;
    let sandboxes = Arc::new(super::sandbox::SandboxService::new(tasks.clone()));
    let events = tasks.events.clone();
    let listener = Listener::try_from(listener).map_err(|e| format!("ttrpc listener on {}: {e}", flags.socket))?;
    let mut server = Server::new()
        .add_listener(listener)
        .register_service(create_task(Arc::new(super::task::TaskService(tasks))))
        .register_service(create_sandbox(sandboxes));
    server.start().await.map_err(|e| format!("serve on {}: {e}", flags.socket))?;
    // `start` waits for our stdout to close; from here on it goes to stderr.
    // SAFETY: dup2 on the process's own standard descriptors.
    if unsafe { nix::libc::dup2(nix::libc::STDERR_FILENO, nix::libc::STDOUT_FILENO) } < 0 {
        return Err(format!("close stdout: {}", std::io::Error::last_os_error()));
    }
    tracing::info!(socket = %flags.socket, "serving the Task and Sandbox services");
    exit.wait().await;
    // The last container's /tasks/delete may still be queued.
    events.flush(EVENTS_FLUSH_BOUND).await;
    // Existing connections live on until shutdown: only the name goes now.
    remove_socket(&flags.socket);
    let _ = server.shutdown().await;
    Ok(())
}

/// Binds the shim socket. A live socket of the same name means another shim
/// of the group serves: its address is recorded and nothing is served here.
fn listen(address: &str) -> Result<Option<UnixListener>, String> {
    let path = socket_path(address);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    match UnixListener::bind(path) {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if socket_alive(address) {
                std::fs::write("address", address).map_err(|e| format!("write ./address: {e}"))?;
                return Ok(None);
            }
            remove_socket(address);
            UnixListener::bind(path).map(Some).map_err(|e| format!("bind {}: {e}", path.display()))
        }
        Err(e) => Err(format!("bind {}: {e}", Path::new(path).display())),
    }
}

/// Reaps every child as it exits and hands the exit to the crate's monitor,
/// which the Task service's exit loop subscribes to. SIGTERM, SIGINT and
/// SIGPIPE are taken so that none of them ends the shim.
fn reap_children() -> std::io::Result<()> {
    let mut chld = signal(SignalKind::child())?;
    for kind in [SignalKind::terminate(), SignalKind::interrupt(), SignalKind::pipe()] {
        let mut s = signal(kind)?;
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                tracing::debug!(signal = kind.as_raw_value(), "signal ignored");
            }
        });
    }
    tokio::spawn(async move {
        while chld.recv().await.is_some() {
            loop {
                let (pid, code) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) => (pid, code),
                    Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
                    Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "waitpid");
                        break;
                    }
                };
                if let Err(e) = containerd_shim::monitor::monitor_notify_by_pid(pid.as_raw(), code).await {
                    tracing::warn!(pid = pid.as_raw(), error = %e, "exit not delivered to the monitor");
                }
            }
        }
    });
    Ok(())
}

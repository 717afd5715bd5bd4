//! The RTOS's console tty and its end: micad has no exit events, so a task polls
//! `status` (whose side effect stops a halted client and reports it Offline) and
//! turns the first non-running state after start into the container's exit. A
//! console hang-up (micad closed the pty) triggers that check at once.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::termios;
use tokio::sync::Mutex;

use super::client::{MicadClient, MicadError};
use super::protocol::ClientState;
use crate::backend::{Error, Notice, NoticeSender, Result};

/// Reported when micad lost the client (e.g. micad restarted and wiped its sockets).
pub const LOST_CLIENT_EXIT: i32 = 255;
const TTY_POLL: Duration = Duration::from_millis(50);

/// Where the container is in its life. Held across a `stop` by kill so the
/// watcher never reports the stop as a halt with another code.
#[derive(Debug, Default)]
pub struct Life {
    pub started: bool,
    pub exit: Option<i32>,
}

fn halted(state: ClientState) -> bool {
    matches!(state, ClientState::Offline | ClientState::Stopped | ClientState::Error)
}

/// Waits (bounded) for the tty micad announces in the status services column.
/// None if the RTOS halted before announcing one.
pub async fn wait_for_tty(client: &MicadClient, name: &str, bound: Duration) -> Result<Option<PathBuf>> {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let st = client.status(name).await.map_err(|e| Error::Failed(format!("wait for the RTOS console: {e}")))?;
        if let Some(tty) = st.tty() {
            return Ok(Some(PathBuf::from(tty)));
        }
        if halted(st.state) {
            return Ok(None);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Failed(format!(
                "micad started the RTOS but announced no console tty within {} s (status: {})",
                bound.as_secs(),
                st.format().trim_end()
            )));
        }
        tokio::time::sleep(TTY_POLL).await;
    }
}

/// Opens the client's tty as a plain byte pipe: never our controlling terminal,
/// raw so the line discipline neither echoes nor rewrites what passes.
pub fn open_tty(path: &Path) -> std::io::Result<OwnedFd> {
    let fd = nix::fcntl::open(path, OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC, Mode::empty())?;
    let mut t = termios::tcgetattr(&fd)?;
    termios::cfmakeraw(&mut t);
    termios::tcsetattr(&fd, termios::SetArg::TCSANOW, &t)?;
    Ok(fd)
}

/// The simulator's extension: `micrun sim` writes a halted firmware's exit code to
/// `<socket_dir>/<name>.exit`. Real micad cannot tell one, so a halt is exit 0.
fn halt_code(socket_dir: &Path, name: &str) -> i32 {
    std::fs::read_to_string(socket_dir.join(format!("{name}.exit")))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Hands the RTOS's exit to the shim's event loop, in order with its other notices.
pub fn notify_exit(notices: &NoticeSender, id: &str, code: i32) {
    if notices.send(Notice::Exit { id: id.into(), exec: None, code }).is_err() {
        tracing::error!(id, code, "could not publish the RTOS exit: the shim's event loop is gone");
    }
}

/// Polls until the RTOS halts or micad loses it; then records and publishes the exit.
/// With `auto_close` (annotation `container.auto_close=true`) an RTOS that halted by
/// itself has its micad client removed (`rm`) before the exit is published, instead
/// of at Delete; a stop by Kill is not a halt of its own and is left to Delete.
pub async fn watch(
    client: MicadClient,
    name: String,
    interval: Duration,
    life: Arc<Mutex<Life>>,
    auto_close: bool,
    hangup: Arc<tokio::sync::Notify>,
    notices: NoticeSender,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = hangup.notified() => tracing::info!(id = %name, "RTOS console hung up; asking micad now"),
        }
        let mut l = life.lock().await;
        if l.exit.is_some() {
            return;
        }
        let code = match client.status(&name).await {
            Ok(st) if halted(st.state) => {
                let code = match st.state {
                    ClientState::Error => 1,
                    _ => halt_code(client.socket_dir(), &name),
                };
                tracing::info!(id = %name, state = %st.state, code, "RTOS halted");
                if auto_close {
                    match client.rm(&name).await {
                        Ok(()) => tracing::info!(id = %name, "auto_close: removed the micad client of the halted RTOS"),
                        Err(e) => tracing::warn!(id = %name, error = %e, "auto_close: could not remove the micad client; Delete will try again"),
                    }
                }
                code
            }
            Ok(_) => continue,
            Err(e @ (MicadError::NoSuchClient { .. } | MicadError::NotRunning { .. })) => {
                tracing::error!(id = %name, error = %e, code = LOST_CLIENT_EXIT,
                    "micad no longer has this RTOS client (micad restarted or the client was removed behind our back); ending the task");
                LOST_CLIENT_EXIT
            }
            Err(e) => {
                tracing::warn!(id = %name, error = %e, "status poll failed; trying again");
                continue;
            }
        };
        l.exit = Some(code);
        drop(l);
        notify_exit(&notices, &name, code);
        return;
    }
}

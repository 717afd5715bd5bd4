//! One task per running RTOS follows it from Start to its end: it waits for
//! the console tty micad announces, attaches it to containerd's stdio, then
//! turns the first non-running state into the container's exit. micad sends
//! no events, so `status` is the source of truth (its side effect stops a
//! halted client and reports it Offline); the kernel's events say when to ask:
//! inotify on the tty directory for the link, the pty's hang-up for the end.
//! Polling remains as the bounded fallback.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::stat::Mode;
use nix::sys::termios;
use tokio::io::unix::AsyncFd;
use tokio::sync::{watch, Mutex, Notify};
use tokio::time::Instant;

use super::client::{MicadClient, MicadError};
use super::protocol::ClientState;
use crate::backend::{Notice, NoticeSender};
use crate::stdio::{IoCopy, IoSlot, StdioPaths};

/// Reported when micad lost the client (e.g. micad restarted and wiped its sockets).
pub const LOST_CLIENT_EXIT: i32 = 255;
/// How long the RTOS has to announce its console after `start`.
const TTY_WAIT: Duration = Duration::from_secs(10);
/// The fallback poll for the tty when no inotify event comes (or none can).
const TTY_POLL: Duration = Duration::from_millis(50);
/// After a new tty link, micad may list the service a moment later: asked
/// again this often, this many times, before falling back to `TTY_POLL`.
const TTY_RECHECK: Duration = Duration::from_millis(1);
const TTY_RECHECKS: u32 = 20;

/// Where the container is in its life. Held across a `stop` by kill so the
/// follower never reports the stop as a halt with another code.
#[derive(Debug, Default)]
pub struct Life {
    pub started: bool,
    pub exit: Option<i32>,
}

fn halted(state: ClientState) -> bool {
    matches!(state, ClientState::Offline | ClientState::Stopped | ClientState::Error)
}

/// Where the console goes: the init process's IO slot, which the core owns.
pub struct Console {
    pub slot: IoSlot,
    pub stdio: StdioPaths,
    pub namespace: String,
    /// Where micad makes the tty links (`[mica] tty_dir`), watched with inotify.
    pub tty_dir: PathBuf,
}

impl Console {
    fn stdin_given(&self) -> bool {
        !self.stdio.stdin.is_empty()
    }
}

/// What the follower of one RTOS needs.
pub struct Follower {
    pub client: MicadClient,
    /// The micad client name, which is the container id.
    pub name: String,
    pub console: Console,
    /// The fallback status poll while the RTOS runs (`[mica] status_interval_ms`).
    pub interval: Duration,
    pub life: Arc<Mutex<Life>>,
    /// Upstream's auto-close (annotation `container.auto_close_timeout`).
    pub auto_close: Option<Duration>,
    pub notices: NoticeSender,
}

impl Follower {
    /// Attaches the console when it appears, then reports the RTOS's end.
    pub async fn run(self) {
        let due = Arc::new(Notify::new());
        // Whether a client holds the console's stdin: assumed until the
        // console's stdin copy says otherwise.
        let (clients, seen) = watch::channel(self.console.stdin_given());
        let timer = self.auto_close.map(|after| tokio::spawn(unattended(after, seen, due.clone(), self.name.clone())));
        let mut clients = Some(clients);
        let hangup = self.await_console(&due, &mut clients).await;
        if let Some(c) = clients {
            c.send_replace(false); // no console: no client can come
        }
        self.watch(hangup.unwrap_or_else(|| Arc::new(Notify::new())), &due).await;
        if let Some(t) = timer {
            t.abort();
        }
    }

    /// Waits (bounded) for the tty micad names in the status services column
    /// and attaches it. None when there is no console to follow: the RTOS
    /// halted first, micad lost it, it announced none in time, or it could
    /// not be opened (each said in the log).
    async fn await_console(&self, due: &Notify, clients: &mut Option<watch::Sender<bool>>) -> Option<Arc<Notify>> {
        let name = &self.name;
        let mut links = TtyLinks::watch(&self.console.tty_dir);
        let deadline = Instant::now() + TTY_WAIT;
        let mut rechecks = 0;
        loop {
            match self.client.status(name).await {
                Ok(st) => {
                    if let Some(tty) = st.tty() {
                        return self.attach(Path::new(tty), clients).await;
                    }
                    if halted(st.state) {
                        tracing::info!(id = %name, state = %st.state, "RTOS halted before its console appeared");
                        return None;
                    }
                }
                Err(e @ (MicadError::NoSuchClient { .. } | MicadError::NotRunning { .. })) => {
                    tracing::info!(id = %name, error = %e, "RTOS gone before its console appeared");
                    return None;
                }
                Err(e) => tracing::warn!(id = %name, error = %e, "status while waiting for the console failed; trying again"),
            }
            if Instant::now() >= deadline {
                tracing::warn!(id = %name, after_s = TTY_WAIT.as_secs(),
                    "micad announced no console tty for this RTOS; it runs without one (no output, no input)");
                return None;
            }
            let wait = async {
                if rechecks > 0 {
                    rechecks -= 1;
                    tokio::time::sleep(TTY_RECHECK).await;
                } else if let Some(l) = links.as_mut() {
                    if l.next(TTY_POLL).await {
                        rechecks = TTY_RECHECKS;
                    }
                } else {
                    tokio::time::sleep(TTY_POLL).await;
                }
            };
            tokio::select! {
                _ = wait => {}
                _ = due.notified() => {
                    due.notify_one(); // for the watch, which closes the RTOS
                    return None;
                }
            }
        }
    }

    async fn attach(&self, tty: &Path, clients: &mut Option<watch::Sender<bool>>) -> Option<Arc<Notify>> {
        let c = &self.console;
        let opened = async {
            let fd = open_tty(tty).map_err(|e| format!("open the RTOS console {}: {e}", tty.display()))?;
            let tracker = clients.take().expect("the console is attached once");
            let io = IoCopy::console_tracking_clients(&c.stdio, fd, &self.name, &c.namespace, tracker)
                .await
                .map_err(|e| format!("connect the RTOS console to containerd: {e}"))?;
            let hangup = io.hangup();
            c.slot.lock().await.attach(io).map_err(|e| format!("size the RTOS console: {e}"))?;
            Ok::<_, String>(hangup)
        };
        match opened.await {
            Ok(hangup) => {
                tracing::info!(id = %self.name, tty = %tty.display(), "RTOS console attached");
                Some(hangup)
            }
            Err(e) => {
                tracing::error!(id = %self.name, error = %e, "the RTOS runs without its console");
                None
            }
        }
    }

    /// Asks micad at once, then again at each hang-up of the console or poll
    /// interval, until the RTOS halts or micad loses it; then records and
    /// publishes the exit. With auto-close, an RTOS that halted by itself has
    /// its micad client removed (`rm`) before the exit is published instead of
    /// at Delete (a stop by Kill is left to Delete), and once `due` fires the
    /// RTOS is closed: `rm`, exit 0, as upstream does.
    async fn watch(&self, hangup: Arc<Notify>, due: &Notify) {
        let name = &self.name;
        let mut closing = false;
        loop {
            let mut l = self.life.lock().await;
            if l.exit.is_some() {
                return;
            }
            let code = if closing { self.close().await } else { self.poll().await };
            if let Some(code) = code {
                l.exit = Some(code);
                drop(l);
                notify_exit(&self.notices, name, code);
                return;
            }
            drop(l);
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = hangup.notified() => tracing::info!(id = %name, "RTOS console hung up; asking micad now"),
                _ = due.notified() => closing = true,
            }
            if closing {
                tracing::info!(id = %name, timeout = ?self.auto_close.unwrap_or_default(), "auto_close: no console client for the timeout; closing the RTOS");
            }
        }
    }

    /// One `status`: the exit code once the RTOS halted or micad lost it.
    async fn poll(&self) -> Option<i32> {
        let (client, name) = (&self.client, &self.name);
        match client.status(name).await {
            Ok(st) if halted(st.state) => {
                let code = match st.state {
                    ClientState::Error => 1,
                    _ => halt_code(client.socket_dir(), name),
                };
                tracing::info!(id = %name, state = %st.state, code, "RTOS halted");
                if self.auto_close.is_some() {
                    match client.rm(name).await {
                        Ok(()) => tracing::info!(id = %name, "auto_close: removed the micad client of the halted RTOS"),
                        Err(e) => tracing::warn!(id = %name, error = %e, "auto_close: could not remove the micad client; Delete will try again"),
                    }
                }
                Some(code)
            }
            Ok(_) => None,
            Err(e @ (MicadError::NoSuchClient { .. } | MicadError::NotRunning { .. })) => {
                tracing::error!(id = %name, error = %e, code = LOST_CLIENT_EXIT,
                    "micad no longer has this RTOS client (micad restarted or the client was removed behind our back); ending the task");
                Some(LOST_CLIENT_EXIT)
            }
            Err(e) => {
                tracing::warn!(id = %name, error = %e, "status poll failed; trying again");
                None
            }
        }
    }

    /// Auto-close: removes the client, which stops the RTOS (upstream's close
    /// is micad's `rm`); exit 0 as upstream reports. None (tried again at the
    /// next interval) when micad refuses.
    async fn close(&self) -> Option<i32> {
        match self.client.rm(&self.name).await {
            Ok(()) | Err(MicadError::NoSuchClient { .. }) => Some(0),
            Err(e) => {
                tracing::warn!(id = %self.name, error = %e, "auto_close: could not remove the RTOS client; trying again");
                None
            }
        }
    }
}

/// Fires `due` once auto-close's timeout has passed with no console client
/// (`clients` false: no stdin, the last writer of the stdin fifo gone, or
/// stdin closed); a client coming back stops the count.
async fn unattended(after: Duration, mut clients: watch::Receiver<bool>, due: Arc<Notify>, name: String) {
    loop {
        // An error means the stdin copy is gone, and with it every client.
        let _ = clients.wait_for(|attached| !attached).await;
        tracing::info!(id = %name, timeout = ?after, "auto_close: no console client; counting");
        tokio::select! {
            _ = tokio::time::sleep(after) => {
                due.notify_one();
                return;
            }
            // Disabled when the copy is gone: no client can come back then.
            Ok(_) = clients.wait_for(|attached| *attached) => {
                tracing::info!(id = %name, timeout = ?after, "auto_close: a console client is back; not counting");
            }
        }
    }
}

/// New entries in the tty directory, by inotify. None where inotify cannot
/// watch it; the caller polls then.
struct TtyLinks(AsyncFd<WatchedDir>);

struct WatchedDir(Option<Inotify>);

impl WatchedDir {
    fn fd(&self) -> &Inotify {
        self.0.as_ref().expect("taken only in drop")
    }
}

impl AsRawFd for WatchedDir {
    fn as_raw_fd(&self) -> RawFd {
        self.fd().as_fd().as_raw_fd()
    }
}

/// Closing an inotify instance waits for the kernel's fsnotify grace period
/// (measured here: 8-16 ms). The shim runs on one thread, so the close goes
/// to a blocking thread instead of stalling every other request.
impl Drop for WatchedDir {
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(move || drop(fd))),
                Err(_) => drop(fd),
            }
        }
    }
}

impl TtyLinks {
    fn watch(dir: &Path) -> Option<TtyLinks> {
        let made = || -> std::io::Result<TtyLinks> {
            let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
            fd.add_watch(dir, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)?;
            Ok(TtyLinks(crate::stdio::new_async_fd(WatchedDir(Some(fd)))?))
        };
        made()
            .inspect_err(|e| tracing::debug!(dir = %dir.display(), error = %e, "no inotify on the tty dir; polling for the console"))
            .ok()
    }

    /// True once a `ttyRPMSG*` entry appeared within `bound`.
    async fn next(&mut self, bound: Duration) -> bool {
        let seen = async {
            loop {
                let Ok(mut ready) = self.0.readable().await else { return false };
                match ready.try_io(|d| d.get_ref().fd().read_events().map_err(std::io::Error::from)) {
                    Ok(Ok(events)) => {
                        let tty = |n: &std::ffi::OsStr| n.as_encoded_bytes().starts_with(b"ttyRPMSG");
                        if events.iter().any(|e| e.name.as_deref().is_some_and(tty)) {
                            return true;
                        }
                    }
                    Ok(Err(_)) => return false,
                    Err(_would_block) => {}
                }
            }
        };
        tokio::time::timeout(bound, seen).await.unwrap_or(false)
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

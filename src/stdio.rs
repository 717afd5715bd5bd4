//! A process's stdio as containerd hands it over (fifos, `binary://`, `file://`)
//! and the copy tasks that connect it to pipes or a pty. Shared by both backends.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use nix::fcntl::OFlag;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;

/// Where containerd wants a process's stdio. Empty strings mean "none".
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// The ends a child process (or the runtime CLI that becomes it) gets.
#[derive(Default)]
pub struct ChildEnds {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Where a process's IO lives: made by the core for each process and handed
/// to the backend, which fills it once the process is attached; the core
/// resizes, closes and drains it.
pub type IoSlot = Arc<tokio::sync::Mutex<IoCopy>>;

pub fn io_slot() -> IoSlot {
    Arc::new(tokio::sync::Mutex::new(IoCopy::default()))
}

/// How long Delete waits for a process's output to reach containerd.
pub const DRAIN_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// The running copy tasks of one process.
#[derive(Default)]
pub struct IoCopy {
    stdin_close: Option<oneshot::Sender<()>>,
    outputs: Vec<JoinHandle<()>>,
    console: Option<Arc<AsyncFd<OwnedFd>>>,
    /// Notified when a console's output ends (the other side hung up).
    hangup: Arc<Notify>,
    /// A console has one output stream, so a separate stderr fifo gets nothing.
    /// It is opened all the same and closed with the output (or at the latest
    /// when drained): containerd's reader, e.g. CRI's log copier, waits for a
    /// writer and then for end of file, and otherwise fails with "reading from
    /// a closed fifo" once the task is deleted.
    idle_stderr: Option<pipe::Sender>,
    /// A console that comes after Start (an RTOS's tty appears once the RTOS
    /// announces it): a resize or stdin close that arrives first is kept here
    /// and applied when the console is attached.
    early: Option<Early>,
}

#[derive(Default)]
struct Early {
    winsize: Option<(u32, u32)>,
    stdin_closed: bool,
}

enum Output<'a> {
    None,
    Fifo(&'a str),
    File(&'a str),
    Binary(&'a str),
}

fn classify(uri: &str) -> Output<'_> {
    if uri.is_empty() {
        Output::None
    } else if let Some(p) = uri.strip_prefix("file://") {
        Output::File(p)
    } else if let Some(rest) = uri.strip_prefix("binary://") {
        Output::Binary(rest)
    } else {
        Output::Fifo(uri.strip_prefix("fifo://").unwrap_or(uri))
    }
}

impl IoCopy {
    /// Sets up non-terminal stdio: pipes for the child, copied to/from containerd.
    pub async fn pipes(paths: &StdioPaths, id: &str, namespace: &str) -> std::io::Result<(IoCopy, ChildEnds)> {
        let mut io = IoCopy::default();
        let mut ends = ChildEnds::default();
        if !paths.stdin.is_empty() {
            let (r, w) = pipe_pair()?;
            let fifo = pipe::OpenOptions::new().read_write(true).open_receiver(&paths.stdin)?;
            let (tx, rx) = oneshot::channel();
            io.stdin_close = Some(tx);
            tokio::spawn(copy_stdin(fifo, pipe::Sender::from_owned_fd(w)?, rx));
            ends.stdin = Some(r);
        }
        // binary:// takes both streams at once, and only when stdout names it.
        if let Output::Binary(spec) = classify(&paths.stdout) {
            let (out_w, err_w) = log_binary(spec, id, namespace).await?;
            ends.stdout = Some(out_w);
            ends.stderr = Some(err_w);
            return Ok((io, ends));
        }
        ends.stdout = io.output(&paths.stdout)?;
        ends.stderr = if paths.stderr == paths.stdout && matches!(classify(&paths.stdout), Output::File(_)) {
            ends.stdout.as_ref().map(|f| f.try_clone()).transpose()?
        } else {
            io.output(&paths.stderr)?
        };
        Ok((io, ends))
    }

    fn output(&mut self, uri: &str) -> std::io::Result<Option<OwnedFd>> {
        match classify(uri) {
            Output::None => Ok(None),
            Output::File(p) => Ok(Some(open_append(p)?.into())),
            Output::Fifo(p) => {
                let (r, w) = pipe_pair()?;
                // Read-write open never blocks and never fails for lack of a reader;
                // containerd's reader sees EOF once we drop it after the copy.
                let fifo = pipe::OpenOptions::new().read_write(true).open_sender(p)?;
                let rx = pipe::Receiver::from_owned_fd(r)?;
                self.outputs.push(tokio::spawn(copy_out(rx, fifo)));
                Ok(Some(w))
            }
            Output::Binary(_) => Err(std::io::Error::other("binary:// is only supported for stdout")),
        }
    }

    /// Sets up terminal stdio over a pty master received from the runtime (or
    /// an RTOS's rpmsg tty). `id` and `namespace` are for a logging binary.
    pub async fn console(paths: &StdioPaths, master: OwnedFd, id: &str, namespace: &str) -> std::io::Result<IoCopy> {
        Self::console_of(paths, master, id, namespace, None).await
    }

    /// A console whose clients come and go (an RTOS's): `clients` says
    /// whether a writer holds the stdin fifo (see `copy_stdin_tracking`);
    /// without stdin, or once it was closed, nobody does.
    pub async fn console_tracking_clients(
        paths: &StdioPaths,
        master: OwnedFd,
        id: &str,
        namespace: &str,
        clients: watch::Sender<bool>,
    ) -> std::io::Result<IoCopy> {
        Self::console_of(paths, master, id, namespace, Some(clients)).await
    }

    async fn console_of(
        paths: &StdioPaths,
        master: OwnedFd,
        id: &str,
        namespace: &str,
        clients: Option<watch::Sender<bool>>,
    ) -> std::io::Result<IoCopy> {
        nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        // A logging binary or a hook started later must not hold the console.
        nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
        let master = Arc::new(new_async_fd(master)?);
        let mut io = IoCopy { console: Some(master.clone()), ..Default::default() };
        if paths.stderr != paths.stdout {
            if let Output::Fifo(p) = classify(&paths.stderr) {
                match pipe::OpenOptions::new().read_write(true).open_sender(p) {
                    Ok(fifo) => io.idle_stderr = Some(fifo),
                    // containerd 2.x's client names a stderr fifo for a terminal
                    // process but makes none (it reads no stderr then)
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let sink = console_sink(&paths.stdout, id, namespace).await?;
        match (paths.stdin.is_empty(), clients) {
            // No stdin: the caller's channel already says no client.
            (true, _) => {}
            (false, None) => {
                let fifo = pipe::OpenOptions::new().read_write(true).open_receiver(&paths.stdin)?;
                let (tx, rx) = oneshot::channel();
                io.stdin_close = Some(tx);
                tokio::spawn(copy_stdin(fifo, PtyWriter(master.clone()), rx));
            }
            (false, Some(clients)) => {
                let (tx, rx) = oneshot::channel();
                io.stdin_close = Some(tx);
                tokio::spawn(copy_stdin_tracking(paths.stdin.clone(), PtyWriter(master.clone()), rx, clients));
            }
        }
        // With no stdout the console is read all the same, into nothing: the
        // other side would block once the pty's buffer fills, and its hang-up
        // (the end of an RTOS) is seen only by reading.
        let (sink, keep) = sink.unwrap_or_else(|| (Box::new(tokio::io::sink()), None));
        let hangup = io.hangup.clone();
        let stderr = io.idle_stderr.take();
        io.outputs.push(tokio::spawn(async move {
            copy_out(PtyReader(master), sink).await;
            drop((stderr, keep));
            hangup.notify_one();
        }));
        Ok(io)
    }

    /// Wakes whoever waits on it once the console's output has ended (a stored
    /// permit, so a hang-up before anyone waits is not lost).
    pub fn hangup(&self) -> Arc<Notify> {
        self.hangup.clone()
    }

    /// The slot of a process whose console is attached later (`attach`).
    pub fn awaiting_console() -> IoCopy {
        IoCopy { early: Some(Early::default()), ..Default::default() }
    }

    /// Takes the console's IO into a slot made by `awaiting_console`, with
    /// the resize and stdin close that came before it.
    pub fn attach(&mut self, mut io: IoCopy) -> std::io::Result<()> {
        let early = self.early.take().unwrap_or_default();
        if let Some((w, h)) = early.winsize {
            io.resize(w, h)?;
        }
        if early.stdin_closed {
            io.close_stdin();
        }
        *self = io;
        Ok(())
    }

    pub fn resize(&mut self, width: u32, height: u32) -> std::io::Result<()> {
        match (&self.console, &mut self.early) {
            (Some(m), _) => set_winsize(m.get_ref().as_raw_fd(), width, height),
            (None, Some(early)) => {
                early.winsize = Some((width, height));
                Ok(())
            }
            (None, None) => Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "process has no terminal")),
        }
    }

    /// Closes the process's stdin once what containerd already wrote is delivered.
    pub fn close_stdin(&mut self) {
        if let Some(tx) = self.stdin_close.take() {
            let _ = tx.send(());
        } else if let Some(early) = &mut self.early {
            early.stdin_closed = true;
        }
    }

    /// Waits (bounded) until the process's output reached containerd.
    pub async fn drain(&mut self, bound: std::time::Duration) {
        let mut outputs = std::mem::take(&mut self.outputs);
        let deadline = tokio::time::Instant::now() + bound;
        for h in outputs.iter_mut() {
            if tokio::time::timeout_at(deadline, h).await.is_err() {
                break;
            }
        }
        // A copy still running is stuck on a reader that stopped reading (a
        // fifo opened read-write never fails its writer): left alone it would
        // hold its descriptors for the life of the shim.
        for h in &outputs {
            h.abort();
        }
        self.console = None;
        self.idle_stderr = None;
    }
}

/// A console's one output stream, for stdout's URI: a fifo, a file (appended
/// to) or a logging binary (its stderr pipe, which a console never writes, is
/// kept open until the output ends, as the binary waits for both to close).
type ConsoleSink = (Box<dyn AsyncWrite + Send + Unpin>, Option<OwnedFd>);

async fn console_sink(stdout: &str, id: &str, namespace: &str) -> std::io::Result<Option<ConsoleSink>> {
    Ok(match classify(stdout) {
        Output::None => None,
        Output::Fifo(p) => Some((Box::new(pipe::OpenOptions::new().read_write(true).open_sender(p)?), None)),
        Output::File(p) => Some((Box::new(tokio::fs::File::from_std(open_append(p)?)), None)),
        Output::Binary(spec) => {
            let (out_w, err_w) = log_binary(spec, id, namespace).await?;
            Some((Box::new(pipe::Sender::from_owned_fd(out_w)?), Some(err_w)))
        }
    })
}

/// A `file://` output: created with its directory, appended to.
fn open_append(path: &str) -> std::io::Result<std::fs::File> {
    if let Some(dir) = Path::new(path).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// Starts a `binary://` logger; the write ends of its stdout and stderr pipes.
async fn log_binary(spec: &str, id: &str, namespace: &str) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (out_r, out_w) = pipe_pair()?;
    let (err_r, err_w) = pipe_pair()?;
    start_log_binary(spec, id, namespace, out_r, err_r).await?;
    Ok((out_w, err_w))
}

fn pipe_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

async fn copy_out<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(mut from: R, mut to: W) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.flush().await;
}

/// How often a stdin fifo with no writer is checked for a new one.
const CLIENT_PROBE: std::time::Duration = std::time::Duration::from_millis(200);

/// Stdin of a console whose client may leave and come back (`ctr run -d`
/// then `ctr task attach`, nerdctl's detach and attach). The fifo is read
/// read-only, so the last writer leaving reads as end of file: `clients`
/// turns false, and the fifo is checked every `CLIENT_PROBE` (a read that
/// waits means a writer is back). Two kernel and tokio facts shape it: a
/// fifo opened read-only while no writer has it polls as hung up only for
/// writers that come later, and tokio keeps a hang-up it saw for good (every
/// later poll is ready). So each time a writer is back the fifo is opened
/// anew while that writer has it, and the first look at each opening is a
/// plain read. CloseIO ends the copy, and with it every client.
async fn copy_stdin_tracking<W: AsyncWrite + Unpin>(
    path: String,
    mut to: W,
    mut close: oneshot::Receiver<()>,
    clients: watch::Sender<bool>,
) {
    let mut buf = vec![0u8; 8192];
    let mut fifo = match pipe::OpenOptions::new().open_receiver(&path) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(path, error = %e, "console stdin: cannot open the fifo; no input reaches the RTOS");
            None
        }
    };
    // `fresh`: this opening was not read yet. `stale`: it was opened with no
    // writer, or tokio saw its hang-up; it must be opened anew before its
    // readiness can be waited on.
    let (mut fresh, mut stale) = (true, false);
    while let Some(f) = &fifo {
        let attached = *clients.borrow();
        let got = if fresh {
            read_now(f, &mut buf)
        } else if attached {
            tokio::select! {
                r = async { f.readable().await?; f.try_read(&mut buf) } => r,
                _ = &mut close => break,
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(CLIENT_PROBE) => read_now(f, &mut buf),
                _ = &mut close => break,
            }
        };
        match got {
            Ok(0) => {
                stale |= fresh || attached;
                clients.send_if_modified(|c| std::mem::replace(c, false));
            }
            Ok(n) => {
                clients.send_if_modified(|c| !std::mem::replace(c, true));
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                clients.send_if_modified(|c| !std::mem::replace(c, true));
            }
            Err(_) => break,
        }
        let writer_seen = *clients.borrow();
        if std::mem::take(&mut fresh) && writer_seen {
            stale = false;
        }
        if writer_seen && stale {
            // A writer is back: an opening made while it has the fifo polls
            // as hung up when it leaves.
            fifo = pipe::OpenOptions::new().open_receiver(&path).ok();
            fresh = true;
        }
    }
    if let Some(f) = &fifo {
        deliver_rest(f, &mut buf, &mut to).await;
    }
    clients.send_replace(false);
    let _ = to.shutdown().await;
}

/// One read(2) whatever tokio last saw: its `try_read` answers WouldBlock
/// without reading while it holds no readiness, and a fifo at end of file
/// with no writer since it was opened never becomes ready.
fn read_now(fifo: &pipe::Receiver, buf: &mut [u8]) -> std::io::Result<usize> {
    nix::unistd::read(fifo.as_fd(), buf).map_err(std::io::Error::from)
}

/// Delivers what the client wrote before it asked us to close stdin.
async fn deliver_rest<W: AsyncWrite + Unpin>(fifo: &pipe::Receiver, buf: &mut [u8], to: &mut W) {
    while let Ok(n) = read_now(fifo, buf) {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

async fn copy_stdin<W: AsyncWrite + Unpin>(mut fifo: pipe::Receiver, mut to: W, mut close: oneshot::Receiver<()>) {
    let mut buf = vec![0u8; 8192];
    loop {
        tokio::select! {
            n = fifo.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => if to.write_all(&buf[..n]).await.is_err() { return },
            },
            _ = &mut close => {
                deliver_rest(&fifo, &mut buf, &mut to).await;
                break;
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Starts a containerd logging binary: stdout on fd 3, stderr on fd 4, and it
/// closes fd 5 when ready.
async fn start_log_binary(spec: &str, id: &str, namespace: &str, out: OwnedFd, err: OwnedFd) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let (path, query) = spec.split_once('?').unwrap_or((spec, ""));
    let mut cmd = std::process::Command::new(percent_decode(path));
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        cmd.arg(percent_decode(k));
        if !v.is_empty() {
            cmd.arg(percent_decode(v));
        }
    }
    let (ready_r, ready_w) = pipe_pair()?;
    let fds: [RawFd; 3] = [out.as_raw_fd(), err.as_raw_fd(), ready_w.as_raw_fd()];
    cmd.env("CONTAINER_ID", id).env("CONTAINER_NAMESPACE", namespace);
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut high = [0; 3];
            for (i, fd) in fds.iter().enumerate() {
                high[i] = nix::libc::fcntl(*fd, nix::libc::F_DUPFD_CLOEXEC, 10);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in high.iter().enumerate() {
                if nix::libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    drop((out, err, ready_w));
    let mut ready = pipe::Receiver::from_owned_fd(ready_r)?;
    let mut sink = Vec::new();
    match tokio::time::timeout(std::time::Duration::from_secs(10), ready.read_to_end(&mut sink)).await {
        Ok(r) => r.map(drop),
        Err(_) => {
            // A failed Create leaves no process behind.
            let _ = child.kill();
            Err(std::io::Error::other(format!("logging binary {path} did not signal ready (close fd 5) within 10s")))
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Registers a descriptor we own exclusively with the reactor.
#[allow(deprecated)] // `AsyncFd::new` is unsound only for shared descriptors; these are ours alone.
pub fn new_async_fd<T: AsRawFd>(fd: T) -> std::io::Result<AsyncFd<T>> {
    AsyncFd::new(fd)
}

pub fn set_winsize(fd: RawFd, width: u32, height: u32) -> std::io::Result<()> {
    let ws = nix::libc::winsize { ws_row: height as u16, ws_col: width as u16, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize struct from the pointer.
    let r = unsafe { nix::libc::ioctl(fd, nix::libc::TIOCSWINSZ, &ws) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Reading side of a pty master; EIO (all slaves closed) is end of file.
struct PtyReader(Arc<AsyncFd<OwnedFd>>);
struct PtyWriter(Arc<AsyncFd<OwnedFd>>);

impl AsyncRead for PtyReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        loop {
            let mut guard = std::task::ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), unfilled).map_err(std::io::Error::from)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return std::task::Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => return std::task::Poll::Ready(Ok(())),
                Ok(Err(e)) => return std::task::Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyWriter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        loop {
            let mut guard = std::task::ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref().as_fd(), data).map_err(std::io::Error::from)) {
                Ok(r) => return std::task::Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }
    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
#[path = "stdio_tests.rs"]
mod tests;

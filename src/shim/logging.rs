//! tracing into containerd's shim log: the `log` fifo in a bundle, which
//! containerd reads and copies into its own log. A grouped shim serves several
//! bundles; containerd stops reading a bundle's fifo when that container is
//! deleted, so the log moves to a live member's fifo then.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

struct Target {
    /// The container whose bundle holds the fifo ("" until the first Create).
    owner: String,
    fifo: Option<std::fs::File>,
    /// The owner was deleted with no member left to move to: the next Create takes over.
    stale: bool,
}

static TARGET: Mutex<Target> = Mutex::new(Target { owner: String::new(), fifo: None, stale: false });

fn open_fifo(path: &Path) -> Option<std::fs::File> {
    // Non-blocking: a line is dropped rather than the shim stalled when
    // containerd is not reading (e.g. while it restarts).
    std::fs::OpenOptions::new().write(true).custom_flags(nix::libc::O_NONBLOCK).open(path).ok()
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut t = TARGET.lock().unwrap_or_else(|e| e.into_inner());
        match t.fifo.as_mut().map(|f| f.write(buf)) {
            Some(Err(e)) if e.kind() != std::io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct MakeLogWriter;

impl<'a> MakeWriter<'a> for MakeLogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

/// Starts logging into the `log` fifo of the bundle the shim started in (its cwd).
pub fn init(debug: bool, first_id: &str) {
    let level = if debug {
        LevelFilter::DEBUG
    } else {
        crate::config::Config::load_default().ok().and_then(|c| c.log_level.parse().ok()).unwrap_or(LevelFilter::INFO)
    };
    {
        let mut t = TARGET.lock().unwrap_or_else(|e| e.into_inner());
        t.owner = first_id.to_string();
        t.fifo = open_fifo(Path::new("log"));
    }
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false)
        .with_writer(MakeLogWriter)
        .try_init();
}

/// A container was created: its fifo takes over if nobody's fifo is open.
pub fn adopt(id: &str, bundle: &Path) {
    let mut t = TARGET.lock().unwrap_or_else(|e| e.into_inner());
    if t.fifo.is_none() || t.stale {
        t.fifo = open_fifo(&bundle.join("log"));
        t.owner = id.to_string();
        t.stale = false;
    }
}

/// A container was deleted: if its fifo carried the log, move to `next`. With
/// no member left the fifo stays: containerd reads it until Delete has been
/// answered, so the lines about the Delete itself still arrive.
pub fn released(id: &str, next: Option<(&str, &Path)>) {
    let mut t = TARGET.lock().unwrap_or_else(|e| e.into_inner());
    if t.owner != id {
        return;
    }
    let Some((next_id, bundle)) = next else {
        t.stale = true;
        return;
    };
    t.fifo = open_fifo(&bundle.join("log"));
    t.owner = next_id.to_string();
}

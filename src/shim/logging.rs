//! tracing into containerd's shim log: the `log` fifo in the bundle, which
//! containerd reads and copies into its own log.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use tracing_subscriber::filter::LevelFilter;

/// A fifo writer that drops a line rather than block the shim when containerd is
/// not reading (e.g. while it restarts).
struct LogFifo(std::fs::File);

impl Write for LogFifo {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(buf.len()),
            r => r,
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn init(debug: bool) {
    let level = if debug {
        LevelFilter::DEBUG
    } else {
        crate::config::Config::load_default()
            .ok()
            .and_then(|c| c.log_level.parse().ok())
            .unwrap_or(LevelFilter::INFO)
    };
    let fifo = std::fs::OpenOptions::new().write(true).custom_flags(nix::libc::O_NONBLOCK).open("log");
    let builder = tracing_subscriber::fmt().with_max_level(level).with_ansi(false).with_target(false);
    let _ = match fifo {
        Ok(f) => builder.with_writer(std::sync::Mutex::new(LogFifo(f))).try_init(),
        Err(_) => builder.with_writer(std::io::stderr).try_init(),
    };
}

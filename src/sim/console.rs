//! The simulated rpmsg tty. As in micad, the console is a pty whose slave is what
//! users open (through the `ttyRPMSG_*` link) and whose master is the RTOS side.
//! The simulator keeps the slave open so readers never see EIO while the RTOS lives.
//! Both ptys are raw: an RTOS console does its own echo and line endings, and an
//! echoing line discipline here would bounce the firmware's output back into it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

/// A raw pty pair; `slave_path` is the device the link points at.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    pub slave_path: PathBuf,
}

impl Pty {
    pub fn open_raw() -> std::io::Result<Pty> {
        let pair = nix::pty::openpty(None, None)?;
        // openpty(3) leaves both ends inheritable; a firmware started later would
        // then hold this console open and its reader would never see the hang-up.
        // The simulator forks only from this thread, so nothing forks in between.
        for fd in [&pair.master, &pair.slave] {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        }
        let mut t = tcgetattr(&pair.slave)?;
        cfmakeraw(&mut t);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &t)?;
        let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", pair.slave.as_raw_fd()))?;
        Ok(Pty { master: pair.master, slave: pair.slave, slave_path })
    }
}

/// A master end registered with tokio.
pub type Master = Arc<AsyncFd<OwnedFd>>;

#[allow(deprecated)] // `AsyncFd::new` is unsound only for shared descriptors; a pty master is ours alone.
pub fn async_master(fd: OwnedFd) -> std::io::Result<Master> {
    let flags = OFlag::from_bits_retain(fcntl(&fd, FcntlArg::F_GETFL)?);
    fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(Arc::new(AsyncFd::new(fd)?))
}

async fn read_some(fd: &Master, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|f| nix::unistd::read(f.get_ref().as_fd(), buf).map_err(Into::into)) {
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

async fn write_all(fd: &Master, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let mut guard = fd.writable().await?;
        match guard.try_io(|f| nix::unistd::write(f.get_ref(), data).map_err(Into::into)) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}

/// Copies bytes from one master to another until either side fails (the firmware
/// exiting makes its master read EIO).
pub fn pump(from: Master, to: Master) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = read_some(&from, &mut buf).await {
            if n == 0 || write_all(&to, &buf[..n]).await.is_err() {
                break;
            }
        }
    })
}

/// The console of firmware the host cannot run: a banner, then an echo of input.
pub fn emulated(console: Master, name: String, machine: u16) -> JoinHandle<()> {
    tokio::spawn(async move {
        let banner = format!(
            "*** micrun sim: emulated console for {name} (ELF machine {machine} does not run on this host) ***\r\n"
        );
        if write_all(&console, banner.as_bytes()).await.is_err() {
            return;
        }
        let mut buf = [0u8; 1024];
        while let Ok(n) = read_some(&console, &mut buf).await {
            if n == 0 || write_all(&console, &buf[..n]).await.is_err() {
                break;
            }
        }
    })
}

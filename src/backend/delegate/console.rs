//! The `--console-socket` handshake: the runtime connects and sends the pty master
//! as SCM_RIGHTS.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::net::UnixListener;

use crate::backend::{Error, Result};

static SEQ: AtomicU32 = AtomicU32::new(0);

pub struct Listener {
    path: PathBuf,
    listener: UnixListener,
}

impl Listener {
    /// Binds a fresh socket in `dir` (kept short: socket paths are limited to 108 bytes).
    pub async fn bind(dir: &Path) -> Result<Listener> {
        crate::state::private_dir(dir).map_err(|e| Error::failed("create console socket dir", e))?;
        let path = dir.join(format!("pty-{}-{}.sock", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|e| Error::failed(&format!("bind {}", path.display()), e))?;
        Ok(Listener { path, listener })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts the runtime's connection and takes the pty master from it.
    pub async fn receive(self) -> Result<OwnedFd> {
        let r = tokio::time::timeout(Duration::from_secs(10), self.accept_fd()).await;
        r.map_err(|_| Error::Failed("runtime did not send the console within 10s".into()))?
    }

    async fn accept_fd(&self) -> Result<OwnedFd> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let (stream, _) = self.listener.accept().await.map_err(|e| Error::failed("accept console socket", e))?;
        loop {
            stream.readable().await.map_err(|e| Error::failed("console socket", e))?;
            let mut buf = [0u8; 4096];
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
            match recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(msg) => {
                    for c in msg.cmsgs().map_err(|e| Error::failed("console message", e))? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            if let Some(fd) = fds.first() {
                                // SAFETY: the kernel just installed this descriptor for us.
                                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
                            }
                        }
                    }
                    return Err(Error::Failed("console socket message carried no descriptor".into()));
                }
                Err(nix::errno::Errno::EAGAIN) => continue,
                Err(e) => return Err(Error::failed("receive console", e)),
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

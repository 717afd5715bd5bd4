//! The simulator's sockets: the socket dir wiped at start-up, `mica-create.socket`
//! and one `<name>.socket` per client. Every request is read with a single recv
//! and handled to completion under the registry lock, one at a time.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::requests::{self, After, Answer};
use super::faults::{self, Faults};
use super::{Live, Options, Shared};
use crate::backend::mica::protocol::{CREATE_MSG_LEN, CREATE_SOCKET, FAILED, REQUEST_BUF_LEN, SUCCESS};

/// micad blocks in recv until the peer sends; the simulator gives up after this
/// long so one silent peer cannot wedge a test run.
const RECV_WAIT: Duration = Duration::from_secs(5);

pub struct Simulator {
    shared: Arc<Shared>,
    create: UnixListener,
}

impl Simulator {
    /// Prepares the directories and binds `mica-create.socket`.
    pub async fn bind(opts: Options) -> Result<Simulator, String> {
        wipe_socket_dir(&opts.socket_dir)?;
        std::fs::create_dir_all(&opts.tty_dir).map_err(|e| format!("cannot create {}: {e}", opts.tty_dir.display()))?;
        let create = bind_0600(&opts.socket_dir.join(CREATE_SOCKET))?;
        let faults = Faults::new(&opts.faults);
        let shared = Arc::new(Shared { opts, registry: Default::default(), live: Arc::new(Live::default()), faults });
        Ok(Simulator { shared, create })
    }

    /// Serves until the create socket fails.
    pub async fn serve(&self) -> Result<(), String> {
        loop {
            let (mut conn, _) = self.create.accept().await.map_err(|e| format!("accept on {CREATE_SOCKET}: {e}"))?;
            let mut reg = self.shared.registry.lock().await;
            let mut buf = vec![0u8; CREATE_MSG_LEN];
            let Some(n) = recv_once(&mut conn, &mut buf).await else { continue };
            self.shared.faults.delay("create").await;
            let answer = match requests::create(&self.shared, &reg, &buf[..n]) {
                Err(answer) => answer,
                Ok(client) => {
                    let name = client.msg.name.clone();
                    let path = self.shared.opts.socket_dir.join(format!("{name}.socket"));
                    match bind_0600(&path) {
                        Ok(listener) => {
                            reg.clients.insert(name.clone(), client);
                            tokio::spawn(serve_client(self.shared.clone(), name, path, listener));
                            Answer::ok("")
                        }
                        Err(e) => {
                            tracing::warn!("MICA-FAILED: {e}");
                            Answer::failed("")
                        }
                    }
                }
            };
            if self.shared.faults.take_hang("create") {
                faults::hang(conn, &answer, "create");
                continue;
            }
            reply(conn, &answer).await;
        }
    }

    /// Kills the firmware we started and removes our tty links. Sockets stay, as
    /// a dead micad leaves them: connecting then fails with "connection refused".
    pub fn shut_down(&self) {
        self.shared.live.clean_up();
    }
}

async fn serve_client(shared: Arc<Shared>, name: String, path: PathBuf, listener: UnixListener) {
    loop {
        let mut conn = match listener.accept().await {
            Ok((c, _)) => c,
            Err(e) => {
                tracing::warn!("accept on {}: {e}", path.display());
                return;
            }
        };
        let mut reg = shared.registry.lock().await;
        let mut buf = [0u8; REQUEST_BUF_LEN];
        let Some(n) = recv_once(&mut conn, &mut buf).await else { continue };
        let kind = faults::control_kind(&buf[..n]);
        shared.faults.delay(kind).await;
        let (answer, after) = requests::control(&shared, &mut reg, &name, &buf[..n]);
        tracing::debug!(client = %name, request = %String::from_utf8_lossy(&buf[..n]), ok = answer.ok);
        if shared.faults.take_hang(kind) {
            drop(reg);
            faults::hang(conn, &answer, kind);
        } else {
            reply(conn, &answer).await;
        }
        if after == After::Unlink {
            let _ = std::fs::remove_file(&path);
            return;
        }
    }
}

/// One recv, as micad does: no loop, whatever arrived is the request.
async fn recv_once(conn: &mut UnixStream, buf: &mut [u8]) -> Option<usize> {
    match tokio::time::timeout(RECV_WAIT, conn.read(buf)).await {
        Ok(Ok(n)) => Some(n),
        Ok(Err(e)) => {
            tracing::warn!("recv: {e}");
            None
        }
        Err(_) => {
            tracing::warn!("peer sent nothing within {RECV_WAIT:?}; dropping the connection");
            None
        }
    }
}

/// The text (if any), then the terminator, then close.
async fn reply(mut conn: UnixStream, answer: &Answer) {
    if !answer.text.is_empty() {
        let _ = conn.write_all(answer.text.as_bytes()).await;
    }
    let _ = conn.write_all(if answer.ok { SUCCESS } else { FAILED }).await;
    let _ = conn.shutdown().await;
}

fn bind_0600(path: &Path) -> Result<UnixListener, String> {
    let l = UnixListener::bind(path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
    Ok(l)
}

/// micad removes and recreates its socket dir. The simulator only removes what a
/// micad (or the simulator) leaves there, and refuses a dir holding anything else,
/// so a mistyped `--socket-dir` cannot delete someone's files.
fn wipe_socket_dir(dir: &Path) -> Result<(), String> {
    let err = |e: std::io::Error| format!("socket dir {}: {e}", dir.display());
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut ours = Vec::new();
            for entry in entries {
                let entry = entry.map_err(err)?;
                let (path, ty) = (entry.path(), entry.file_type().map_err(err)?);
                let is_exit_file = ty.is_file() && path.extension().is_some_and(|x| x == "exit");
                if !ty.is_socket() && !is_exit_file {
                    return Err(format!(
                        "refusing to wipe socket dir {}: {} is not a micad socket",
                        dir.display(),
                        path.display()
                    ));
                }
                ours.push(path);
            }
            for p in ours {
                std::fs::remove_file(&p).map_err(err)?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dir).map_err(err)?,
        Err(e) => return Err(err(e)),
    }
    // micad uses 0600, which only root can traverse; 0700 keeps the same owner-only
    // access and lets a non-root test run the simulator.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)
}

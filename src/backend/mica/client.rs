//! An async client of micad: one request per connection, every wait bounded.

use std::io::ErrorKind;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::protocol::{self, CreateMsg, ProtocolError, Reply, Request, SetKey, StatusLine, CREATE_SOCKET};
use crate::config::MicaConfig;

/// MICA's own clients read in chunks of this size.
const READ_CHUNK: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum MicadError {
    #[error("micad is not running at {}: {detail}", socket_dir.display())]
    NotRunning { socket_dir: PathBuf, detail: String },
    #[error("micad has no client {name:?} (no {})", socket.display())]
    NoSuchClient { name: String, socket: PathBuf },
    #[error("micad did not answer `{request}` within {} ms", after.as_millis())]
    Timeout { request: String, after: Duration },
    #[error("micad refused `{request}`: {}", if text.is_empty() { "MICA-FAILED without a reason (see micad's syslog)" } else { text.as_str() })]
    Failed { request: String, text: String },
    #[error("micad protocol error on `{request}`: {source}")]
    Protocol { request: String, source: ProtocolError },
    #[error("talking to micad about `{request}`: {source}")]
    Io { request: String, source: std::io::Error },
}

pub type Result<T> = std::result::Result<T, MicadError>;

#[derive(Debug, Clone)]
pub struct MicadClient {
    socket_dir: PathBuf,
    timeout: Duration,
    start_timeout: Duration,
}

impl MicadClient {
    pub fn new(cfg: &MicaConfig) -> MicadClient {
        MicadClient {
            socket_dir: cfg.socket_dir.clone(),
            timeout: Duration::from_millis(cfg.timeout_ms),
            start_timeout: Duration::from_millis(cfg.start_timeout_ms),
        }
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn client_socket(&self, name: &str) -> PathBuf {
        self.socket_dir.join(format!("{name}.socket"))
    }

    /// micad has a client `name` exactly when `<dir>/<name>.socket` is a socket.
    pub fn exists(&self, name: &str) -> bool {
        std::fs::metadata(self.client_socket(name)).is_ok_and(|m| m.file_type().is_socket())
    }

    /// Creates a client; returns micad's text (usually empty).
    pub async fn create(&self, msg: &CreateMsg) -> Result<String> {
        let request = format!("create {}", msg.name);
        let bytes = msg.encode().map_err(|source| MicadError::Protocol { request: request.clone(), source })?;
        let socket = self.socket_dir.join(CREATE_SOCKET);
        self.exchange(&socket, &request, &bytes, self.timeout).await
    }

    /// Boots the client; Xen needs the longer start timeout.
    pub async fn start(&self, name: &str) -> Result<()> {
        self.control(name, &Request::Start, self.start_timeout).await.map(drop)
    }

    pub async fn stop(&self, name: &str) -> Result<()> {
        self.control(name, &Request::Stop, self.timeout).await.map(drop)
    }

    pub async fn rm(&self, name: &str) -> Result<()> {
        self.control(name, &Request::Rm, self.timeout).await.map(drop)
    }

    /// Asks for the status line. Note micad's side effect: a client whose RTOS
    /// halted is stopped by this very request and reported Offline.
    pub async fn status(&self, name: &str) -> Result<StatusLine> {
        let text = self.control(name, &Request::Status, self.timeout).await?;
        StatusLine::parse(&text).map_err(|source| MicadError::Protocol { request: "status".into(), source })
    }

    pub async fn set(&self, name: &str, key: SetKey, value: &str) -> Result<()> {
        let req = Request::Set { key, value: value.to_string() };
        self.control(name, &req, self.timeout).await.map(drop)
    }

    /// The gdb command line for a debug client.
    pub async fn gdb(&self, name: &str) -> Result<String> {
        self.control(name, &Request::Gdb, self.timeout).await
    }

    async fn control(&self, name: &str, req: &Request, timeout: Duration) -> Result<String> {
        let text = req.encode().map_err(|source| MicadError::Protocol { request: format!("{req:?}"), source })?;
        let request = format!("{text} ({name})");
        self.exchange(&self.client_socket(name), &request, text.as_bytes(), timeout).await
    }

    /// Connects, sends the whole request in one write, reads to a terminator.
    async fn exchange(&self, socket: &Path, request: &str, bytes: &[u8], timeout: Duration) -> Result<String> {
        let io = |source| MicadError::Io { request: request.to_string(), source };
        let work = async {
            let mut stream = UnixStream::connect(socket).await.map_err(|e| self.connect_error(socket, e))?;
            stream.write_all(bytes).await.map_err(io)?;
            let mut received = Vec::new();
            let mut chunk = [0u8; READ_CHUNK];
            loop {
                if let Some(reply) = protocol::parse_reply(&received) {
                    return Ok(reply);
                }
                let n = stream.read(&mut chunk).await.map_err(io)?;
                if n == 0 {
                    return protocol::parse_final_reply(&received)
                        .map_err(|source| MicadError::Protocol { request: request.to_string(), source });
                }
                received.extend_from_slice(&chunk[..n]);
            }
        };
        let began = std::time::Instant::now();
        let result = match tokio::time::timeout(timeout, work).await {
            Err(_) => Err(MicadError::Timeout { request: request.to_string(), after: timeout }),
            Ok(Err(e)) => Err(e),
            Ok(Ok(Reply::Success(text))) => Ok(text),
            Ok(Ok(Reply::Failed(text))) => Err(MicadError::Failed { request: request.to_string(), text }),
        };
        log_request(request, &result, began.elapsed());
        result
    }

    fn connect_error(&self, socket: &Path, e: std::io::Error) -> MicadError {
        let create = self.socket_dir.join(CREATE_SOCKET);
        let daemon_there = socket != create && std::fs::metadata(&create).is_ok_and(|m| m.file_type().is_socket());
        match e.kind() {
            ErrorKind::NotFound if daemon_there => MicadError::NoSuchClient {
                name: socket.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
                socket: socket.to_path_buf(),
            },
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => MicadError::NotRunning {
                socket_dir: self.socket_dir.clone(),
                detail: format!("{}: {e}", socket.display()),
            },
            _ => MicadError::Io { request: format!("connect {}", socket.display()), source: e },
        }
    }
}

/// One line per request; status polls are routine, so they log at debug.
fn log_request(request: &str, result: &Result<String>, took: Duration) {
    let us = took.as_micros() as u64;
    match result {
        Ok(_) if request.starts_with("status") => tracing::debug!(request, us, "micad ok"),
        Ok(text) => tracing::info!(request, us, reply = %text, "micad ok"),
        Err(e) => tracing::info!(request, us, error = %e, "micad failed"),
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;

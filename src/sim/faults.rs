//! Test-only faults of `micrun sim`: `--delay <request>=<ms>` holds every such
//! request that long before handling it (with the registry locked, as a busy
//! micad would), so a test can kill the simulator while a request is in
//! flight; `--hang <request>` handles the next such request, sends only part of
//! its reply and then keeps the connection open without a word, once.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use super::requests::Answer;

/// The request kinds the knobs name: micad's socket a request came on
/// (`create`) or the first word of a control request.
pub const KINDS: [&str; 7] = ["create", "start", "stop", "rm", "status", "set", "gdb"];

#[derive(Debug, Clone, Default)]
pub struct FaultOptions {
    pub delays: HashMap<String, Duration>,
    pub hangs: HashSet<String>,
}

/// Parses one `--delay` value, `<request>=<ms>`.
pub fn parse_delay(s: &str) -> Result<(String, Duration), String> {
    let (kind, ms) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected <request>=<ms>"))?;
    let ms: u64 = ms.parse().map_err(|_| format!("{s:?}: {ms:?} is not a number of milliseconds"))?;
    Ok((parse_kind(kind)?, Duration::from_millis(ms)))
}

/// Parses one `--hang` value: a request kind.
pub fn parse_kind(s: &str) -> Result<String, String> {
    if KINDS.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!("unknown request {s:?}: use one of {}", KINDS.join(", ")))
    }
}

/// The kind of a control request: its bytes up to the first NUL, space or
/// argument, as `client_ctrl_handler` tells them apart.
pub fn control_kind(raw: &[u8]) -> &'static str {
    let raw = raw.split(|&b| b == 0).next().unwrap_or_default();
    let word = raw.split(|&b| b == b' ').next().unwrap_or_default();
    match word {
        b"start" => "start",
        b"stop" => "stop",
        b"rm" => "rm",
        b"status" => "status",
        b"gdb" => "gdb",
        w if w.starts_with(b"set") => "set",
        _ => "other",
    }
}

/// The knobs while the simulator runs: each `--hang` fires once.
#[derive(Default)]
pub struct Faults {
    delays: HashMap<String, Duration>,
    hangs: Mutex<HashSet<String>>,
}

impl Faults {
    pub fn new(opts: &FaultOptions) -> Faults {
        Faults { delays: opts.delays.clone(), hangs: Mutex::new(opts.hangs.clone()) }
    }

    pub async fn delay(&self, kind: &str) {
        if let Some(d) = self.delays.get(kind) {
            tracing::info!("fault: holding `{kind}` for {d:?}");
            tokio::time::sleep(*d).await;
        }
    }

    /// True (once per kind) when this request's reply is to hang.
    pub fn take_hang(&self, kind: &str) -> bool {
        self.hangs.lock().expect("faults lock").remove(kind)
    }
}

/// Writes the answer's text and half its terminator, then holds the connection
/// open for good, off the registry lock: the request was handled, its peer
/// never learns how.
pub fn hang(mut conn: UnixStream, answer: &Answer, kind: &str) {
    let mut partial = answer.text.clone().into_bytes();
    partial.extend_from_slice(b"MICA-");
    tracing::info!("fault: `{kind}` handled (ok={}), reply cut after {} bytes and left hanging", answer.ok, partial.len());
    tokio::spawn(async move {
        let _ = conn.write_all(&partial).await;
        std::future::pending::<()>().await;
        drop(conn);
    });
}

//! Every mica annotation, typed. `Annotations::parse` collects the keys of both
//! prefixes (prefix stripped, aliases resolved); this turns them into values the
//! backend uses, so no other module reads `Annotations.mica` by hand. A malformed
//! value fails Create naming the full annotation, its value and what is expected;
//! a key we do not know is logged and ignored, since upstream keeps adding keys.

use std::collections::BTreeMap;
use std::time::Duration;

use super::protocol::Pedestal;
use crate::annotations::{Annotations, MICA_PREFIXES};
use crate::backend::{Error, Result};

pub const OS: &str = "container.os";
pub const FIRMWARE_PATH: &str = "container.firmware_path";
pub const FIRMWARE_HASH: &str = "container.firmware_hash";
pub const MIN_MEMORY_MB: &str = "container.min_memory_mb";
pub const MAX_VCPU_NUM: &str = "container.max_vcpu_num";
pub const AUTO_CLOSE: &str = "container.auto_close";
pub const AUTO_CLOSE_TIMEOUT: &str = "container.auto_close_timeout";
/// Upstream's old name of `auto_close_timeout`, which upstream ignores with an error.
pub const AUTO_DISCONNECT_TIMEOUT: &str = "container.auto_disconnect_timeout";
/// Ours: micad's debug (gdb) service. Upstream has no key for it.
pub const GDB: &str = "container.gdb";
pub const PEDESTAL: &str = "ped.pedestal";
pub const PEDESTAL_CONF: &str = "ped.conf";
/// Upstream's runtime debug flag, which no code of upstream reads further.
pub const RUNTIME_DEBUG: &str = "runtime.debug";

/// Every key (after the prefix) this module understands.
pub const KNOWN: [&str; 12] = [
    OS,
    FIRMWARE_PATH,
    FIRMWARE_HASH,
    MIN_MEMORY_MB,
    MAX_VCPU_NUM,
    AUTO_CLOSE,
    AUTO_CLOSE_TIMEOUT,
    AUTO_DISCONNECT_TIMEOUT,
    GDB,
    PEDESTAL,
    PEDESTAL_CONF,
    RUNTIME_DEBUG,
];

/// Upstream's timeout when `auto_close=true` names none.
pub const AUTO_CLOSE_DEFAULT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MicaSettings {
    /// The RTOS kind (`zephyr`, `uniproton`, ...), lowercased. Informational: micad
    /// does not take it, the log and `micrun explain` show it.
    pub os: Option<String>,
    /// Firmware path inside the rootfs, as annotated (firmware.rs resolves it).
    pub firmware_path: Option<String>,
    /// Expected sha256 of the firmware: 64 lowercase hex digits.
    pub firmware_hash: Option<String>,
    /// Boot memory in MiB when the OCI spec gives no `memory.reservation`.
    pub min_memory_mib: Option<i32>,
    /// The create message's `max_vcpu_num` (Xen uses it when > 0).
    pub max_vcpu_num: Option<i32>,
    /// Upstream's auto-close: once no console client is left, the RTOS is
    /// closed after this long (exit 0). None: off (our default, upstream's is
    /// 30 s). With it, a halted RTOS's micad client is also removed at once.
    pub auto_close: Option<Duration>,
    pub pedestal: Pedestal,
    pub pedestal_conf: Option<String>,
    /// micad also creates the debug (gdb) service.
    pub gdb: bool,
    /// Upstream's `runtime.debug`, accepted and logged.
    pub runtime_debug: bool,
    /// Full names of mica annotations this version does not know.
    pub unknown: Vec<String>,
}

impl MicaSettings {
    pub fn parse(ann: &Annotations) -> Result<MicaSettings> {
        let p = Parser { mica: &ann.mica, keys: &ann.mica_keys };
        let unknown = ann
            .mica
            .keys()
            .filter(|k| !KNOWN.contains(&k.as_str()))
            .map(|k| p.full(k))
            .collect();
        if p.mica.contains_key(AUTO_DISCONNECT_TIMEOUT) {
            return Err(Error::InvalidArgument(format!(
                "annotation {} is upstream micrun's old name, which upstream ignores; use {}{AUTO_CLOSE_TIMEOUT} instead",
                p.full(AUTO_DISCONNECT_TIMEOUT),
                MICA_PREFIXES[1]
            )));
        }
        Ok(MicaSettings {
            os: p.get(OS, "an RTOS name such as zephyr or uniproton", parse_os)?,
            firmware_path: p.get(FIRMWARE_PATH, "a path inside the image", |v| Some(v.to_string()))?,
            firmware_hash: p.get(FIRMWARE_HASH, "a sha256 digest (64 hex digits, optionally prefixed sha256:)", parse_hash)?,
            min_memory_mib: p.get(MIN_MEMORY_MB, "a positive whole number of MiB", parse_positive)?,
            max_vcpu_num: p.get(MAX_VCPU_NUM, "a positive whole number of vCPUs", parse_positive)?,
            auto_close: p.auto_close()?,
            pedestal: p.get(PEDESTAL, "baremetal, xen, jailhouse or hetero", parse_pedestal)?.unwrap_or(Pedestal::BareMetal),
            pedestal_conf: p.get(PEDESTAL_CONF, "the pedestal's config", |v| Some(v.to_string()))?,
            gdb: p.get(GDB, BOOL, parse_bool)?.unwrap_or(false),
            runtime_debug: p.get(RUNTIME_DEBUG, BOOL, parse_bool)?.unwrap_or(false),
            unknown,
        })
    }

    /// Logs the mica annotations that are ignored.
    pub fn warn_unknown(&self, id: &str) {
        if !self.unknown.is_empty() {
            tracing::warn!(id, keys = ?self.unknown, "ignoring mica annotations this micrun does not know");
        }
    }
}

const BOOL: &str = "true or false (also 1/0, t/f)";

struct Parser<'a> {
    mica: &'a BTreeMap<String, String>,
    keys: &'a BTreeMap<String, String>,
}

impl Parser<'_> {
    /// The annotation as the user wrote it (whichever prefix), for messages.
    fn full(&self, key: &str) -> String {
        self.keys.get(key).cloned().unwrap_or_else(|| format!("{}{key}", MICA_PREFIXES[0]))
    }

    fn get<T>(&self, key: &str, expected: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>> {
        let Some(v) = self.mica.get(key) else { return Ok(None) };
        if v.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "annotation {} is empty: expected {expected}, or remove the annotation",
                self.full(key)
            )));
        }
        parse(v).map(Some).ok_or_else(|| {
            Error::InvalidArgument(format!("annotation {}={v:?}: expected {expected}", self.full(key)))
        })
    }

    /// Upstream's precedence: a timeout wins (`0` turns auto-close off, even
    /// with `auto_close=true`); else `auto_close=true` means 30 s; else off.
    fn auto_close(&self) -> Result<Option<Duration>> {
        let timeout = self.get(AUTO_CLOSE_TIMEOUT, "a duration such as 30s, 5m or 1h30m, or whole seconds; 0 turns auto-close off", parse_duration)?;
        let on = self.get(AUTO_CLOSE, BOOL, parse_bool).map_err(|e| match self.mica.get(AUTO_CLOSE) {
            Some(v) if parse_duration(v).is_some() => Error::InvalidArgument(format!(
                "{e}; a duration belongs in {}{AUTO_CLOSE_TIMEOUT}",
                MICA_PREFIXES[1]
            )),
            _ => e,
        })?;
        Ok(match (timeout, on) {
            (Some(t), _) if t.is_zero() => None,
            (Some(t), Some(false)) => {
                tracing::warn!(timeout = ?t, "{AUTO_CLOSE}=false is overridden by {AUTO_CLOSE_TIMEOUT}, as upstream does");
                Some(t)
            }
            (Some(t), _) => Some(t),
            (None, Some(true)) => Some(AUTO_CLOSE_DEFAULT),
            (None, _) => None,
        })
    }
}

fn parse_os(v: &str) -> Option<String> {
    v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)).then(|| v.to_ascii_lowercase())
}

fn parse_hash(v: &str) -> Option<String> {
    let hex = v.strip_prefix("sha256:").unwrap_or(v).to_ascii_lowercase();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// 1..=i32::MAX: micad's fields are int32.
fn parse_positive(v: &str) -> Option<i32> {
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<i32>().ok().filter(|n| *n > 0)
}

/// Go's strconv.ParseBool, which upstream uses, in any case.
fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Some(true),
        "false" | "f" | "0" => Some(false),
        _ => None,
    }
}

/// Upstream's timeout forms: whole seconds (`60`) or a Go duration (`1h30m`,
/// `1.5s`, `500ms`, `1ns`); no sign, so no negative value.
fn parse_duration(v: &str) -> Option<Duration> {
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().ok().map(Duration::from_secs);
    }
    let mut rest = v;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * unit;
    }
    Duration::try_from_secs_f64(total).ok()
}

fn parse_pedestal(v: &str) -> Option<Pedestal> {
    match v.to_ascii_lowercase().as_str() {
        "baremetal" | "bare-metal" => Some(Pedestal::BareMetal),
        "xen" => Some(Pedestal::Xen),
        "jailhouse" => Some(Pedestal::Jailhouse),
        "hetero" => Some(Pedestal::Hetero),
        _ => None,
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;

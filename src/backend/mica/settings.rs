//! Every mica annotation, typed. `Annotations::parse` collects the keys of both
//! prefixes (prefix stripped, aliases resolved); this turns them into values the
//! backend uses, so no other module reads `Annotations.mica` by hand. A malformed
//! value fails Create naming the full annotation, its value and what is expected;
//! a key we do not know is logged and ignored, since upstream keeps adding keys.

use std::collections::BTreeMap;

use super::protocol::Pedestal;
use crate::annotations::{Annotations, MICA_PREFIXES};
use crate::backend::{Error, Result};

pub const OS: &str = "container.os";
pub const FIRMWARE_PATH: &str = "container.firmware_path";
pub const FIRMWARE_HASH: &str = "container.firmware_hash";
pub const MIN_MEMORY_MB: &str = "container.min_memory_mb";
pub const MAX_VCPU_NUM: &str = "container.max_vcpu_num";
pub const AUTO_CLOSE: &str = "container.auto_close";
pub const PEDESTAL: &str = "ped.pedestal";
pub const PEDESTAL_CONF: &str = "ped.conf";
pub const DEBUG: &str = "runtime.debug";

/// Every key (after the prefix) this module understands.
pub const KNOWN: [&str; 9] =
    [OS, FIRMWARE_PATH, FIRMWARE_HASH, MIN_MEMORY_MB, MAX_VCPU_NUM, AUTO_CLOSE, PEDESTAL, PEDESTAL_CONF, DEBUG];

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
    /// Remove the micad client as soon as the RTOS halts by itself, not at Delete.
    pub auto_close: bool,
    pub pedestal: Pedestal,
    pub pedestal_conf: Option<String>,
    /// micad also creates the debug (gdb) service.
    pub debug: bool,
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
        Ok(MicaSettings {
            os: p.get(OS, "an RTOS name such as zephyr or uniproton", parse_os)?,
            firmware_path: p.get(FIRMWARE_PATH, "a path inside the image", |v| Some(v.to_string()))?,
            firmware_hash: p.get(FIRMWARE_HASH, "a sha256 digest (64 hex digits, optionally prefixed sha256:)", parse_hash)?,
            min_memory_mib: p.get(MIN_MEMORY_MB, "a positive whole number of MiB", parse_positive)?,
            max_vcpu_num: p.get(MAX_VCPU_NUM, "a positive whole number of vCPUs", parse_positive)?,
            auto_close: p.get(AUTO_CLOSE, "true, false, 1 or 0", parse_bool)?.unwrap_or(false),
            pedestal: p.get(PEDESTAL, "baremetal, xen, jailhouse or hetero", parse_pedestal)?.unwrap_or(Pedestal::BareMetal),
            pedestal_conf: p.get(PEDESTAL_CONF, "the pedestal's config", |v| Some(v.to_string()))?,
            debug: p.get(DEBUG, "true, false, 1 or 0", parse_bool)?.unwrap_or(false),
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

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
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

//! OCI `linux.resources` → micad's create-message fields and `set` requests
//! (README, "RTOS containers"). Pure functions, so every rule is tested here.

use super::protocol::{Pedestal, SetKey};
use crate::backend::{Error, Result};
use crate::spec::Resources;

const MIB: i64 = 1 << 20;
/// Xen's credit scheduler weight for a default domain.
const XEN_DEFAULT_WEIGHT: u64 = 256;
/// The cgroup v1 / docker default `cpu.shares`.
const DEFAULT_SHARES: u64 = 1024;
/// Xen's weight range.
const XEN_WEIGHT_MAX: u64 = 65535;

/// The integer fields and CPU list of a create message; -1 means "no value".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub cpu: String,
    pub vcpu_num: i32,
    pub cpu_weight: i32,
    pub cpu_capacity: i32,
    pub memory_mib: i32,
    pub max_memory_mib: i32,
}

/// Maps resources for a create. `online_cpus` is the host's online CPU list
/// (`/sys/devices/system/cpu/online`), used when bare metal needs a CPU and none was given.
/// `min_memory_mib` (annotation `container.min_memory_mb`) is the boot size when the
/// spec has no `memory.reservation`.
pub fn plan(res: Option<&Resources>, pedestal: Pedestal, online_cpus: &str, min_memory_mib: Option<i32>) -> Result<Plan> {
    let cpu = res.and_then(|r| r.cpu.as_ref());
    let mem = res.and_then(|r| r.memory.as_ref());
    let listed = match cpu.and_then(|c| c.cpus.as_deref()).map(str::trim).filter(|s| !s.is_empty()) {
        Some(list) => Some(parse_cpu_list(list).ok_or_else(|| bad(format!("linux.resources.cpu.cpus {list:?} is not a CPU list")))?),
        None => None,
    };
    let capacity = match cpu {
        Some(c) => capacity(c.quota, c.period)?,
        None => -1,
    };
    let cpu_str = match (pedestal, &listed) {
        // Bare metal boots the RTOS on exactly one core, and micad reads an empty
        // list as CPU 0 (Linux's boot CPU), so one is always chosen here.
        (Pedestal::BareMetal, Some(cpus)) => {
            let chosen = cpus[0];
            if cpus.len() > 1 {
                tracing::info!(cpus = ?cpus, chosen, "bare metal runs an RTOS on one CPU: using the lowest listed");
            }
            chosen.to_string()
        }
        (Pedestal::BareMetal, None) => {
            let chosen = parse_cpu_list(online_cpus.trim()).and_then(|c| c.last().copied()).ok_or_else(|| {
                bad("bare metal needs a CPU: set linux.resources.cpu.cpus (ctr --cpuset-cpus)".to_string())
            })?;
            tracing::info!(chosen, "no cpuset given: bare metal uses the highest online CPU");
            chosen.to_string()
        }
        (_, Some(_)) => cpu.and_then(|c| c.cpus.clone()).unwrap_or_default().trim().to_string(),
        (_, None) => String::new(),
    };
    let vcpu_num = match (&listed, capacity) {
        (Some(cpus), _) => cpus.len() as i32,
        (None, c) if c > 0 => ((c + 99) / 100).max(1),
        _ => 1,
    };
    let cpu_weight = cpu.and_then(|c| c.shares).map(weight_from_shares).unwrap_or(-1);
    let limit = mem.and_then(|m| m.limit).map(|b| mib("memory.limit", b)).transpose()?.flatten();
    let reservation = mem.and_then(|m| m.reservation).map(|b| mib("memory.reservation", b)).transpose()?.flatten();
    let reservation = match (reservation, min_memory_mib, limit) {
        (Some(r), _, _) => Some(r),
        (None, Some(min), Some(l)) if min > l => {
            return Err(bad(format!(
                "annotation container.min_memory_mb={min} is above the memory limit of {l} MiB; lower one of them"
            )))
        }
        (None, min, _) => min,
    };
    // The reservation is the boot size where it is below the limit; the limit the ceiling.
    let (memory_mib, max_memory_mib) = match (reservation, limit) {
        (Some(r), Some(l)) if r < l => (r, l),
        (_, Some(l)) => (l, l),
        (Some(r), None) => (r, -1),
        (None, None) => (-1, -1),
    };
    Ok(Plan { cpu: cpu_str, vcpu_num, cpu_weight, cpu_capacity: capacity, memory_mib, max_memory_mib })
}

/// The `set` requests an Update asks for, in micad's exact keys. Only what the
/// update names is sent.
pub fn set_requests(res: &Resources) -> Result<Vec<(SetKey, String)>> {
    let mut out = Vec::new();
    if let Some(c) = &res.cpu {
        if let Some(list) = c.cpus.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let cpus = parse_cpu_list(list).ok_or_else(|| bad(format!("linux.resources.cpu.cpus {list:?} is not a CPU list")))?;
            out.push((SetKey::Cpu, list.to_string()));
            out.push((SetKey::Vcpu, cpus.len().to_string()));
        }
        let cap = capacity(c.quota, c.period)?;
        if cap >= 0 {
            out.push((SetKey::CpuCapacity, cap.to_string()));
        }
        if let Some(s) = c.shares {
            out.push((SetKey::CpuWeight, weight_from_shares(s).to_string()));
        }
    }
    if let Some(m) = &res.memory {
        if let Some(l) = m.limit.map(|b| mib("memory.limit", b)).transpose()?.flatten() {
            out.push((SetKey::Memory, l.to_string()));
        }
    }
    if out.is_empty() {
        return Err(bad("the update names no resource micad can change (cpu.cpus, cpu.quota/period, cpu.shares, memory.limit)".into()));
    }
    Ok(out)
}

/// Xen credit weight from cgroup `cpu.shares`: proportional, so that the default
/// 1024 shares give Xen's default weight 256 (`weight = shares / 4`), clamped to
/// Xen's range 1..=65535. One formula for create and update.
pub fn weight_from_shares(shares: u64) -> i32 {
    (shares.saturating_mul(XEN_DEFAULT_WEIGHT) / DEFAULT_SHARES).clamp(1, XEN_WEIGHT_MAX) as i32
}

/// Percent of one CPU: `quota * 100 / period`; -1 when either is unset or quota is unlimited.
fn capacity(quota: Option<i64>, period: Option<u64>) -> Result<i32> {
    match (quota, period) {
        (Some(q), Some(p)) if q > 0 && p > 0 => {
            let pct = (q as i128 * 100 / p as i128).max(1);
            i32::try_from(pct).map_err(|_| bad(format!("cpu quota {q}/period {p} is out of range")))
        }
        _ => Ok(-1),
    }
}

/// Bytes to MiB (rounded down: a limit is a ceiling). None for "no limit" (<= 0).
fn mib(what: &str, bytes: i64) -> Result<Option<i32>> {
    if bytes <= 0 {
        return Ok(None);
    }
    if bytes < MIB {
        return Err(bad(format!("{what} {bytes} bytes is below 1 MiB, the unit micad works in")));
    }
    i32::try_from(bytes / MIB).map(Some).map_err(|_| bad(format!("{what} {bytes} bytes is too large for micad")))
}

fn bad(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// `0-2,5` → [0, 1, 2, 5], sorted and deduplicated. None if malformed or empty.
pub fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b || b - a > 4096 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    out.sort_unstable();
    out.dedup();
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
#[path = "resources_tests.rs"]
mod tests;

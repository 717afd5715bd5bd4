//! The pod's sandbox held by the shim itself (`[sandbox] mode = "holder"`): for
//! a pod's infra container no pause image runs and no OCI runtime is asked. A
//! holder process joins the network namespace CRI made, makes the pod's IPC,
//! UTS (and pid) namespaces, sets the hostname and sysctls, enters the pod's
//! cgroup and waits; the pod's Linux containers join its namespaces through
//! `/proc/<pid>/ns/*`, as they would join pause's. Its exit ends the sandbox task.

pub mod cgroup;
pub mod plan;
pub mod process;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use self::plan::Plan;
use crate::backend::{Backend, CreateContext, Error, Instance, Result, Stats};
use crate::cgroup::ContainerCgroup;
use crate::spawn::ChildStdio;

pub struct HolderBackend;

/// What `shim delete` needs after the shim died: the holder (it dies with the
/// shim, but is checked) and the cgroup the shim made for it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct HolderRecord {
    pub pid: u32,
    /// The holder's start time (/proc/<pid>/stat), so a reused pid is never signalled.
    pub start_time: u64,
    pub cgroups: Vec<PathBuf>,
}

pub struct HolderContainer {
    id: String,
    record: HolderRecord,
    cgroup: Option<ContainerCgroup>,
    work: PathBuf,
}

#[async_trait]
impl Backend for HolderBackend {
    fn name(&self) -> &'static str {
        "holder"
    }

    /// The pause image's rootfs is never used.
    fn needs_rootfs(&self) -> bool {
        false
    }

    async fn create(&self, ctx: &CreateContext<'_>) -> Result<Arc<dyn Instance>> {
        let mut plan = Plan::from_spec(ctx.spec).map_err(Error::InvalidArgument)?;
        let cgroups = match ctx.spec.cgroups_path().filter(|p| !p.is_empty()) {
            Some(p) => {
                let rel = cgroup::relative_path(p, crate::cgroup::systemd_booted()).map_err(Error::InvalidArgument)?;
                cgroup::make(&rel, ctx.spec.resources()).map_err(Error::FailedPrecondition)?
            }
            None => Vec::new(),
        };
        plan.cgroup_procs = cgroup::procs_files(&cgroups);
        let pid = match start(&plan).await {
            Ok(pid) => pid,
            Err(e) => {
                cgroup::remove(&cgroups);
                return Err(e);
            }
        };
        let record = HolderRecord { pid, start_time: start_time(pid).unwrap_or(0), cgroups };
        tracing::info!(id = ctx.id, pid, joined = ?plan.join, made = ?plan.new, cgroups = ?record.cgroups, "sandbox holder started");
        let cgroup = (!record.cgroups.is_empty()).then(|| ContainerCgroup::of_pid(pid)).flatten();
        Ok(Arc::new(HolderContainer { id: ctx.id.into(), record, cgroup, work: ctx.work_dir.clone() }))
    }

    async fn cleanup(&self, record: serde_json::Value, _bundle: &Path, id: &str) -> Result<()> {
        let record: HolderRecord =
            serde_json::from_value(record).map_err(|e| Error::failed("read the holder's record in the container state", e))?;
        stop(&record, id).await;
        Ok(())
    }
}

/// Runs the shim binary in holder mode with the plan on stdin; its answer is
/// the holder's pid. Spawned from the runtime's one thread, which the holder
/// takes as its parent for PDEATHSIG.
async fn start(plan: &Plan) -> Result<u32> {
    let input = memfd_with(&serde_json::to_vec(plan).expect("a plan is plain data"))
        .map_err(|e| Error::failed("hand the plan to the holder", e))?;
    // The binary by name, so `ps` shows what the holder is; /proc/self/exe
    // when that file was replaced or removed since the shim started.
    let exe = std::env::current_exe().ok().filter(|p| p.is_file()).unwrap_or_else(|| "/proc/self/exe".into());
    let mut cmd = std::process::Command::new(exe);
    cmd.arg(process::ARG);
    let done = crate::spawn::run(cmd, ChildStdio { stdin: Some(input), ..Default::default() })
        .await
        .map_err(|e| Error::failed("start the sandbox holder", e))?;
    let stdout = String::from_utf8_lossy(&done.stdout);
    match (done.code, stdout.trim().parse::<u32>()) {
        (0, Ok(pid)) if pid > 0 => Ok(pid),
        _ => Err(Error::Failed(format!(
            "start the sandbox holder: {}",
            String::from_utf8_lossy(&done.stderr).trim().to_string() + &format!(" (exit code {})", done.code)
        ))),
    }
}

fn memfd_with(bytes: &[u8]) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::io::{Seek, Write};
    let fd = nix::sys::memfd::memfd_create("holder-plan", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(bytes)?;
    f.rewind()?;
    Ok(f.into())
}

/// Fields 22 (when the process started, in clock ticks) and 3 (its state)
/// of /proc/<pid>/stat.
fn proc_stat(pid: u32) -> Option<(u64, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) may hold spaces; fields after it are plain
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((fields.nth(18)?.parse().ok()?, state))
}

fn start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(t, _)| t)
}

/// The recorded holder, if that very process still exists (a zombie too).
fn alive(record: &HolderRecord) -> bool {
    record.pid > 0 && start_time(record.pid).is_some_and(|t| t == record.start_time)
}

/// Kills the holder if it still runs and removes its cgroup.
async fn stop(record: &HolderRecord, id: &str) {
    if alive(record) {
        let _ = nix::sys::signal::kill(Pid::from_raw(record.pid as i32), Signal::SIGKILL);
        for _ in 0..100 {
            match proc_stat(record.pid) {
                Some((t, state)) if t == record.start_time && state != 'Z' => {}
                _ => break,
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    cgroup::remove(&record.cgroups);
    tracing::info!(id, pid = record.pid, "sandbox holder removed");
}

#[async_trait]
impl Instance for HolderContainer {
    fn pid(&self) -> u32 {
        self.record.pid
    }

    fn record(&self) -> serde_json::Value {
        serde_json::to_value(&self.record).expect("a holder record is plain data")
    }

    /// The holder already holds everything from create on.
    async fn start(&self) -> Result<()> {
        if alive(&self.record) {
            Ok(())
        } else {
            Err(Error::Failed(format!("the sandbox holder (pid {}) exited before the sandbox started", self.record.pid)))
        }
    }

    async fn kill(&self, exec_id: Option<&str>, signal: u32, _all: bool) -> Result<()> {
        if let Some(x) = exec_id {
            return Err(Error::NotFound(format!("exec {x} not found: the pod sandbox has no processes to exec into")));
        }
        let sig = Signal::try_from(signal as i32).map_err(|_| Error::InvalidArgument(format!("signal {signal} is not a valid signal number")))?;
        if !alive(&self.record) {
            return Err(Error::NotFound(format!("the sandbox holder of {} is not running", self.id)));
        }
        nix::sys::signal::kill(Pid::from_raw(self.record.pid as i32), sig)
            .map_err(|e| Error::NotFound(format!("the sandbox holder of {} (pid {}): {e}", self.id, self.record.pid)))
    }

    async fn delete(&self) -> Result<()> {
        stop(&self.record, &self.id).await;
        let _ = std::fs::remove_dir_all(&self.work);
        Ok(())
    }

    async fn pids(&self) -> Result<Vec<u32>> {
        match &self.cgroup {
            Some(cg) => cg.pids().map_err(|e| Error::failed("read the sandbox's cgroup.procs", e)),
            None => Ok(if alive(&self.record) { vec![self.record.pid] } else { Vec::new() }),
        }
    }

    async fn stats(&self) -> Result<Stats> {
        let cg = self.cgroup.as_ref().ok_or_else(|| {
            Error::FailedPrecondition("the sandbox has no cgroup of its own: its spec names no cgroupsPath".into())
        })?;
        cg.stats().map_err(|e| Error::Failed(format!("read cgroup statistics: {e}")))
    }

    async fn exec(&self, _exec_id: &str, _process: Vec<u8>, _stdio: crate::stdio::StdioPaths, _io: crate::stdio::IoSlot) -> Result<()> {
        Err(Error::Unimplemented("the pod sandbox is micrun's namespace holder: it has no processes to exec into".into()))
    }
}

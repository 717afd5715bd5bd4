//! A container's cgroup, read directly: process list, statistics and OOM kills.
//! Read here rather than through `<runtime> events`, which crun does not have;
//! shared by the delegate's containers and the pod's holder.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use tokio::io::unix::AsyncFd;

use crate::stdio::new_async_fd;

const ROOT: &str = "/sys/fs/cgroup";

/// systemd manages this host (sd_booted(3): /run/systemd/system exists).
pub fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

#[derive(Debug, Clone)]
pub enum ContainerCgroup {
    /// cgroup v1: the container's directory in each hierarchy, by controller name.
    V1 { dirs: Vec<(String, PathBuf)> },
    /// cgroup v2 (unified): the container's directory.
    V2 { dir: PathBuf },
}

impl ContainerCgroup {
    /// Finds the cgroup of `pid` as the kernel reports it.
    pub fn of_pid(pid: u32) -> Option<ContainerCgroup> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let unified_root = is_cgroup2(Path::new(ROOT));
        let mut dirs = Vec::new();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            let rel = path.trim_start_matches('/');
            if unified_root && ctrls.is_empty() {
                return Some(ContainerCgroup::V2 { dir: Path::new(ROOT).join(rel) });
            }
            for c in ctrls.split(',').filter(|c| !c.is_empty() && !c.starts_with("name=")) {
                // Co-mounted controllers (cpu,cpuacct) share one directory named after the mount.
                let mount = Path::new(ROOT).join(c);
                let mount = if mount.exists() { mount } else { Path::new(ROOT).join(ctrls) };
                dirs.push((c.to_string(), mount.join(rel)));
            }
        }
        (!unified_root && !dirs.is_empty()).then_some(ContainerCgroup::V1 { dirs })
    }

    fn v1_dir(&self, controller: &str) -> Option<&Path> {
        match self {
            ContainerCgroup::V1 { dirs } => dirs.iter().find(|(c, _)| c == controller).map(|(_, d)| d.as_path()),
            ContainerCgroup::V2 { dir } => Some(dir),
        }
    }

    fn memory_dir(&self) -> PathBuf {
        match self {
            ContainerCgroup::V1 { .. } => self.v1_dir("memory").or_else(|| self.v1_dir("pids")).map(Path::to_path_buf).unwrap_or_default(),
            ContainerCgroup::V2 { dir } => dir.clone(),
        }
    }

    pub fn pids(&self) -> std::io::Result<Vec<u32>> {
        let text = std::fs::read_to_string(self.memory_dir().join("cgroup.procs"))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// How many processes the kernel OOM-killed in this cgroup so far.
    pub fn oom_kills(&self) -> u64 {
        let file = match self {
            ContainerCgroup::V1 { .. } => "memory.oom_control",
            ContainerCgroup::V2 { .. } => "memory.events",
        };
        let text = std::fs::read_to_string(self.memory_dir().join(file)).unwrap_or_default();
        keyed(&text, "oom_kill").unwrap_or(0)
    }

    pub fn stats(&self) -> Result<Any, String> {
        match self {
            ContainerCgroup::V1 { .. } => pack(&self.v1_metrics(), "io.containerd.cgroups.v1.Metrics"),
            ContainerCgroup::V2 { dir } => pack(&v2_metrics(dir), "io.containerd.cgroups.v2.Metrics"),
        }
    }

    /// Publishes every new OOM kill as it happens, until the cgroup goes away.
    pub async fn watch_oom(self, reported: Arc<AtomicU64>, on_oom: impl Fn() + Send + 'static) {
        let Ok(wake) = self.oom_wakeups() else {
            tracing::warn!(cgroup = %self.memory_dir().display(), "cannot watch for OOM kills; only exits will be checked");
            return;
        };
        let dir = self.memory_dir();
        let mut buf = [0u8; 4096];
        loop {
            let Ok(mut guard) = wake.readable().await else { return };
            let _ = guard.try_io(|fd| nix::unistd::read(fd.get_ref(), &mut buf).map_err(std::io::Error::from));
            if !dir.exists() {
                return;
            }
            if report_new(&self, &reported) {
                on_oom();
            }
        }
    }

    /// A descriptor that becomes readable when the OOM counters may have changed:
    /// an eventfd registered on memory.oom_control (v1), inotify on memory.events (v2).
    fn oom_wakeups(&self) -> std::io::Result<AsyncFd<OwnedFd>> {
        let dir = self.memory_dir();
        let fd = match self {
            ContainerCgroup::V1 { .. } => {
                // SAFETY: eventfd returns a new descriptor we own, or -1.
                let efd = unsafe { nix::libc::eventfd(0, nix::libc::EFD_CLOEXEC | nix::libc::EFD_NONBLOCK) };
                if efd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let efd = unsafe { OwnedFd::from_raw_fd(efd) };
                let ctl = std::fs::File::open(dir.join("memory.oom_control"))?;
                std::fs::write(dir.join("cgroup.event_control"), format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd()))?;
                efd
            }
            ContainerCgroup::V2 { .. } => {
                use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
                let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
                ino.add_watch(&dir.join("memory.events"), AddWatchFlags::IN_MODIFY)?;
                OwnedFd::from(ino)
            }
        };
        new_async_fd(fd)
    }
}

/// Marks OOM kills up to now as reported; true if there were new ones.
pub fn report_new(cg: &ContainerCgroup, reported: &AtomicU64) -> bool {
    let now = cg.oom_kills();
    reported.fetch_max(now, Ordering::SeqCst) < now
}

fn is_cgroup2(p: &Path) -> bool {
    nix::sys::statfs::statfs(p).map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC).unwrap_or(false)
}

fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

fn read_u64(p: &Path) -> u64 {
    std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

fn pack<M: Message>(m: &M, type_url: &str) -> Result<Any, String> {
    Ok(Any {
        type_url: type_url.into(),
        value: m.write_to_bytes().map_err(|e| e.to_string())?,
        ..Default::default()
    })
}

fn v2_metrics(dir: &Path) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let max = |f: &str| std::fs::read_to_string(dir.join(f)).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let mut pids = v2::PidsStat::new();
    pids.current = read_u64(&dir.join("pids.current"));
    pids.limit = max("pids.max");
    m.pids = Some(pids).into();
    let cpu_text = std::fs::read_to_string(dir.join("cpu.stat")).unwrap_or_default();
    let c = |k| keyed(&cpu_text, k).unwrap_or(0);
    let mut cpu = v2::CPUStat::new();
    cpu.usage_usec = c("usage_usec");
    cpu.user_usec = c("user_usec");
    cpu.system_usec = c("system_usec");
    cpu.nr_periods = c("nr_periods");
    cpu.nr_throttled = c("nr_throttled");
    cpu.throttled_usec = c("throttled_usec");
    m.cpu = Some(cpu).into();
    let mem_text = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
    let s = |k| keyed(&mem_text, k).unwrap_or(0);
    let mut mem = v2::MemoryStat::new();
    mem.usage = read_u64(&dir.join("memory.current"));
    mem.usage_limit = max("memory.max");
    mem.swap_usage = read_u64(&dir.join("memory.swap.current"));
    mem.anon = s("anon");
    mem.file = s("file");
    mem.kernel_stack = s("kernel_stack");
    mem.sock = s("sock");
    mem.shmem = s("shmem");
    mem.file_mapped = s("file_mapped");
    mem.file_dirty = s("file_dirty");
    mem.pgfault = s("pgfault");
    mem.pgmajfault = s("pgmajfault");
    mem.inactive_anon = s("inactive_anon");
    mem.active_anon = s("active_anon");
    mem.inactive_file = s("inactive_file");
    mem.active_file = s("active_file");
    m.memory = Some(mem).into();
    let ev = std::fs::read_to_string(dir.join("memory.events")).unwrap_or_default();
    let mut events = v2::MemoryEvents::new();
    events.low = keyed(&ev, "low").unwrap_or(0);
    events.high = keyed(&ev, "high").unwrap_or(0);
    events.max = keyed(&ev, "max").unwrap_or(0);
    events.oom = keyed(&ev, "oom").unwrap_or(0);
    events.oom_kill = keyed(&ev, "oom_kill").unwrap_or(0);
    m.memory_events = Some(events).into();
    m
}

impl ContainerCgroup {
    fn v1_metrics(&self) -> v1::Metrics {
        let file = |ctrl: &str, f: &str| self.v1_dir(ctrl).map(|d| d.join(f)).unwrap_or_default();
        let text = |ctrl: &str, f: &str| std::fs::read_to_string(file(ctrl, f)).unwrap_or_default();
        let mut m = v1::Metrics::new();

        let mut pids = v1::PidsStat::new();
        pids.current = read_u64(&file("pids", "pids.current"));
        pids.limit = read_u64(&file("pids", "pids.max")); // "max" reads as 0: no limit
        m.pids = Some(pids).into();

        let mut cpu = v1::CPUStat::new();
        let mut usage = v1::CPUUsage::new();
        usage.total = read_u64(&file("cpuacct", "cpuacct.usage"));
        usage.per_cpu = text("cpuacct", "cpuacct.usage_percpu").split_whitespace().filter_map(|v| v.parse().ok()).collect();
        // cpuacct.stat is in USER_HZ ticks; containerd reports nanoseconds.
        let ticks = text("cpuacct", "cpuacct.stat");
        let tick_ns = 1_000_000_000 / clock_ticks();
        usage.user = keyed(&ticks, "user").unwrap_or(0) * tick_ns;
        usage.kernel = keyed(&ticks, "system").unwrap_or(0) * tick_ns;
        cpu.usage = Some(usage).into();
        let st = text("cpu", "cpu.stat");
        let mut th = v1::Throttle::new();
        th.periods = keyed(&st, "nr_periods").unwrap_or(0);
        th.throttled_periods = keyed(&st, "nr_throttled").unwrap_or(0);
        th.throttled_time = keyed(&st, "throttled_time").unwrap_or(0);
        cpu.throttling = Some(th).into();
        m.cpu = Some(cpu).into();

        let entry = |prefix: &str| {
            let mut e = v1::MemoryEntry::new();
            let f = |n: &str| read_u64(&file("memory", &format!("memory.{prefix}{n}")));
            e.usage = f("usage_in_bytes");
            e.limit = f("limit_in_bytes");
            e.max = f("max_usage_in_bytes");
            e.failcnt = f("failcnt");
            e
        };
        let stat = text("memory", "memory.stat");
        let s = |k: &str| keyed(&stat, k).unwrap_or(0);
        let mut mem = v1::MemoryStat::new();
        mem.cache = s("cache");
        mem.rss = s("rss");
        mem.rss_huge = s("rss_huge");
        mem.mapped_file = s("mapped_file");
        mem.dirty = s("dirty");
        mem.writeback = s("writeback");
        mem.pg_fault = s("pgfault");
        mem.pg_maj_fault = s("pgmajfault");
        mem.inactive_anon = s("inactive_anon");
        mem.active_anon = s("active_anon");
        mem.inactive_file = s("inactive_file");
        mem.active_file = s("active_file");
        mem.unevictable = s("unevictable");
        mem.hierarchical_memory_limit = s("hierarchical_memory_limit");
        mem.total_cache = s("total_cache");
        mem.total_rss = s("total_rss");
        mem.usage = Some(entry("")).into();
        mem.swap = Some(entry("memsw.")).into();
        mem.kernel = Some(entry("kmem.")).into();
        m.memory = Some(mem).into();

        // as containerd's own v1 stats give it: CRI's container_oom_events_total
        // metric (and its OOM check) reads oom_kill from here
        let ctl = text("memory", "memory.oom_control");
        let mut oom = v1::MemoryOomControl::new();
        oom.oom_kill_disable = keyed(&ctl, "oom_kill_disable").unwrap_or(0);
        oom.under_oom = keyed(&ctl, "under_oom").unwrap_or(0);
        oom.oom_kill = keyed(&ctl, "oom_kill").unwrap_or(0);
        m.memory_oom_control = Some(oom).into();
        m
    }
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_reads_counters() {
        let t = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(t, "oom_kill"), Some(3));
        assert_eq!(keyed("low 0\noom 1\n", "oom"), Some(1));
        assert_eq!(keyed("", "oom_kill"), None);
    }
}

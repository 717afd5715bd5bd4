//! One simulated micad client: its create message, state, and (while started) the
//! firmware process or emulated console behind its rpmsg tty.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use tokio::task::JoinHandle;

use super::console::{self, Pty};
use super::elf::{self, Firmware};
use super::Live;
use crate::backend::mica::protocol::{display_name, tty_name, ClientState, CreateMsg, Pedestal};

/// micad announces the tty some time after `start` answers; so does the simulator,
/// so clients must wait for it with a bound as they must with micad.
const TTY_DELAY: Duration = Duration::from_millis(30);

pub struct RtosClient {
    pub msg: CreateMsg,
    pub state: ClientState,
    running: Option<Running>,
}

struct Running {
    pid: Option<u32>,
    exit: Arc<OnceLock<i32>>,
    tasks: Vec<JoinHandle<()>>,
    link: PathBuf,
    link_ready: Arc<AtomicBool>,
    /// Held so readers of the link never see EIO while the client lives.
    _slave: std::os::fd::OwnedFd,
}

/// Where the simulator writes a halted firmware's exit code (a simulator-only
/// extension: real micad cannot tell an exit code).
pub fn exit_file(socket_dir: &Path, name: &str) -> PathBuf {
    socket_dir.join(format!("{name}.exit"))
}

impl RtosClient {
    pub fn new(msg: CreateMsg) -> RtosClient {
        // OpenAMP's remoteproc_init leaves every pedestal's client Offline (none
        // of the *_rproc.c init functions sets another state).
        RtosClient { msg, state: ClientState::Offline, running: None }
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Boots the firmware. The error is logged; micad answers a failed start with
    /// MICA-FAILED alone.
    pub fn start(&mut self, socket_dir: &Path, tty_dir: &Path, live: &Arc<Live>) -> std::io::Result<()> {
        let name = self.msg.name.clone();
        // micad reads the ELF at start (load_client_image), not at create.
        let firmware = elf::inspect(Path::new(&self.msg.firmware_path)).map_err(std::io::Error::other)?;
        let _ = std::fs::remove_file(exit_file(socket_dir, &name));
        let user_side = Pty::open_raw()?;
        let master = console::async_master(user_side.master)?;
        let exit = Arc::new(OnceLock::new());
        let mut tasks = Vec::new();
        let mut pid = None;
        match firmware {
            Firmware::Host => {
                let rtos_side = Pty::open_raw()?;
                let mut child = self.spawn_host(&rtos_side.slave)?;
                drop(rtos_side.slave);
                let id = child.id().unwrap_or_default();
                pid = Some(id);
                live.pids.lock().expect("live lock").insert(id);
                let fw_master = console::async_master(rtos_side.master)?;
                tasks.push(console::pump(fw_master.clone(), master.clone()));
                tasks.push(console::pump(master.clone(), fw_master));
                let (exit, live, path, client) = (exit.clone(), live.clone(), exit_file(socket_dir, &name), name.clone());
                tasks.push(tokio::spawn(async move {
                    let code = match child.wait().await {
                        Ok(st) => st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)),
                        Err(_) => 255,
                    };
                    live.pids.lock().expect("live lock").remove(&id);
                    tracing::info!(%client, code, "firmware halted");
                    let _ = std::fs::write(&path, format!("{code}\n"));
                    let _ = exit.set(code);
                }));
            }
            Firmware::Foreign { machine } => tasks.push(console::emulated(master, name.clone(), machine)),
        }
        let link = tty_dir.join(tty_name(&name, 0));
        let link_ready = Arc::new(AtomicBool::new(false));
        let (target, l, ready, live2) = (user_side.slave_path, link.clone(), link_ready.clone(), live.clone());
        // rpmsg_pty.c create_tty_device refuses an empty client name: no tty then.
        if !name.is_empty() {
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(TTY_DELAY).await;
                let _ = std::fs::remove_file(&l);
                match std::os::unix::fs::symlink(&target, &l) {
                    Ok(()) => {
                        live2.links.lock().expect("live lock").insert(l);
                        ready.store(true, Ordering::SeqCst);
                    }
                    Err(e) => tracing::warn!("cannot link {} -> {}: {e}", l.display(), target.display()),
                }
            }));
        }
        self.running = Some(Running { pid, exit, tasks, link, link_ready, _slave: user_side.slave });
        self.state = ClientState::Running;
        Ok(())
    }

    fn spawn_host(&self, stdio: &std::os::fd::OwnedFd) -> std::io::Result<tokio::process::Child> {
        // Bare metal boots the one CPU strtoul(cpu_str, NULL, 0) names
        // (baremetal_rproc.c rproc_init); other pedestals take the list.
        let pin = if self.msg.pedestal == Pedestal::BareMetal {
            cpus_to_pin(&strtoul0(&self.msg.cpu).to_string())
        } else {
            cpus_to_pin(&self.msg.cpu)
        };
        let mut cmd = std::process::Command::new(&self.msg.firmware_path);
        cmd.stdin(stdio.try_clone()?).stdout(stdio.try_clone()?).stderr(stdio.try_clone()?);
        cmd.env("MICRUN_SIM_CLIENT", &self.msg.name);
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Whatever the simulator holds (other clients' consoles, sockets,
                // descriptors it inherited) must not live on in the firmware.
                cloexec_from_3()?;
                nix::unistd::setsid()?;
                // Make the pty the firmware's controlling terminal, like a console.
                if libc_ioctl_sctty() != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(set) = &pin {
                    sched_setaffinity(Pid::from_raw(0), set)?;
                }
                Ok(())
            });
        }
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        cmd.spawn()
    }

    /// Stops the client (micad's `stop`, and what `status` does for a halted RTOS).
    pub fn stop(&mut self, live: &Live) {
        let Some(run) = self.running.take() else { return };
        // Abort the tasks first so a firmware killed here is not reported as halted.
        for t in &run.tasks {
            t.abort();
        }
        if let Some(pid) = run.pid {
            if run.exit.get().is_none() {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            }
            live.pids.lock().expect("live lock").remove(&pid);
        }
        let _ = std::fs::remove_file(&run.link);
        live.links.lock().expect("live lock").remove(&run.link);
        // As micad's rpmsg_tty_unbind: the link goes and the pty closes, which is
        // the hang-up a reader of the console sees.
        drop(run);
        tracing::info!(client = %self.msg.name, "console closed");
        self.state = ClientState::Offline;
    }

    /// True once the firmware exited by itself (the RTOS powered its core off).
    pub fn halted(&self) -> bool {
        self.running.as_ref().is_some_and(|r| r.exit.get().is_some())
    }

    /// show_status's `%-30s%-20s%-20s%s`. The services are those `start`
    /// registers, in its order, each followed by a space (rpmsg_service.c
    /// print_device_of_service): the debug service, the tty once the RTOS has
    /// announced it (`rpmsg-tty(<link>) `), rpc and umt. A stopped client has none.
    pub fn status_line(&self) -> String {
        let mut services = String::new();
        if let Some(run) = &self.running {
            if self.msg.debug {
                services.push_str("debug-rtos-kernel ");
            }
            if run.link_ready.load(Ordering::SeqCst) {
                services.push_str(&format!("rpmsg-tty({}) ", run.link.display()));
            }
            services.push_str("rpmsg-rpc rpmsg-umt ");
        }
        crate::backend::mica::status::columns(&display_name(&self.msg.name), &self.msg.cpu, self.state) + &services
    }
}

/// Marks every descriptor above stdio close-on-exec, between fork and exec (so
/// async-signal-safe only). Marking rather than closing keeps std's own
/// exec-error pipe working.
fn cloexec_from_3() -> std::io::Result<()> {
    use nix::libc;
    // SAFETY: close_range(2) takes no pointers.
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if r == 0 {
        return Ok(());
    }
    // Kernels before 5.11: one fcntl per possible descriptor.
    // SAFETY: getrlimit writes into the struct we pass; fcntl takes no pointers.
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur.min(1 << 20) } else { 1024 };
    for fd in 3..max as i32 {
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

fn libc_ioctl_sctty() -> i32 {
    nix::ioctl_write_int_bad!(tiocsctty, nix::libc::TIOCSCTTY);
    // SAFETY: TIOCSCTTY on stdin (the pty slave) with arg 0 touches no memory.
    match unsafe { tiocsctty(0, 0) } {
        Ok(_) => 0,
        Err(_) => -1,
    }
}

/// The CPU set to pin host firmware to, or None (logged) when the list names a CPU
/// this machine does not have, so the simulator runs on small machines too.
fn cpus_to_pin(cpu_list: &str) -> Option<CpuSet> {
    let allowed = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let ids = match parse_cpu_list(if cpu_list.is_empty() { "0" } else { cpu_list }) {
        Some(ids) => ids,
        None => {
            tracing::warn!("cpu list {cpu_list:?} is not parsable; firmware runs unpinned");
            return None;
        }
    };
    let mut set = CpuSet::new();
    for id in ids {
        if !allowed.is_set(id).unwrap_or(false) || set.set(id).is_err() {
            tracing::warn!("cpu {id} (from {cpu_list:?}) is not available here; firmware runs unpinned");
            return None;
        }
    }
    Some(set)
}

/// strtoul(s, NULL, 0): leading blanks, an optional sign, then a decimal, `0x`
/// hex or `0` octal number, read as far as it goes; 0 when there is none.
pub fn strtoul0(s: &str) -> u64 {
    let s = s.trim_start();
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).filter(|h| h.starts_with(|c: char| c.is_ascii_hexdigit())) {
        (16, h)
    } else if s.starts_with('0') {
        (8, s)
    } else {
        (10, s)
    };
    let mut n: u64 = 0;
    for c in digits.chars() {
        let Some(d) = c.to_digit(radix) else { break };
        n = n.saturating_mul(radix as u64).saturating_add(d as u64);
    }
    if neg {
        n.wrapping_neg()
    } else {
        n
    }
}

/// `3`, `1-3`, `0,2-3` to CPU ids.
pub fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut ids = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b {
                    return None;
                }
                ids.extend(a..=b);
            }
            None => ids.push(part.trim().parse().ok()?),
        }
    }
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list("1-3"), Some(vec![1, 2, 3]));
        assert_eq!(parse_cpu_list("0,2-3"), Some(vec![0, 2, 3]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert!(cpus_to_pin("0").is_some());
        assert!(cpus_to_pin("4095").is_none());
    }

    #[test]
    fn strtoul_as_micad_reads_a_bare_metal_cpu() {
        for (s, n) in [("3", 3), ("1-3", 1), ("0,2", 0), ("", 0), ("x", 0), (" 2", 2), ("0x10", 16), ("010", 8), ("09", 0)] {
            assert_eq!(strtoul0(s), n, "{s:?}");
        }
    }
}

//! The holder process itself: the shim binary run as `containerd-shim-mica-v2
//! holder`, single-threaded from its first instruction (no async runtime, no
//! threads), so it may fork freely. It reads its `Plan` on stdin, enters the
//! pod's namespaces and cgroup, then clones the holder proper as a child of
//! the shim (CLONE_PARENT: the shim reaps it, and it dies with the shim via
//! PDEATHSIG), prints that child's pid and exits. With a new pid namespace the
//! child is its pid 1 and reaps the pod's orphans, as the pause process does.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::signal::{self, SigHandler, SigSet, Signal};
use nix::unistd::Pid;

use super::plan::{sysctl_file, Plan};

/// The first argument that makes the shim binary a holder.
pub const ARG: &str = "holder";

/// Runs the holder set-up; never returns.
pub fn main() -> ! {
    match set_up() {
        Ok(pid) => {
            let mut out = std::io::stdout().lock();
            let ok = writeln!(out, "{pid}").and_then(|()| out.flush()).is_ok();
            std::process::exit(if ok { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}

fn set_up() -> Result<i32, String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(|e| format!("read the holder plan: {e}"))?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| format!("parse the holder plan: {e}"))?;

    for (kind, path) in &plan.join {
        let file = std::fs::File::open(path).map_err(|e| format!("open the pod's {kind:?} namespace {}: {e}", path.display()))?;
        nix::sched::setns(file.as_fd(), kind.clone_flag())
            .map_err(|e| format!("join the pod's {kind:?} namespace {}: {e}", path.display()))?;
    }
    let flags = plan.new.iter().fold(nix::sched::CloneFlags::empty(), |f, k| f | k.clone_flag());
    nix::sched::unshare(flags).map_err(|e| format!("make the pod's namespaces {:?}: {e}", plan.new))?;
    if let Some(name) = &plan.hostname {
        nix::unistd::sethostname(name).map_err(|e| format!("set the pod's hostname {name:?}: {e}"))?;
    }
    // /proc/sys answers for the namespaces of the process writing it: ours now.
    for (key, value) in &plan.sysctl {
        std::fs::write(sysctl_file(key), value).map_err(|e| format!("set sysctl {key}={value}: {e}"))?;
    }
    if let Some(adj) = plan.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| format!("set oom_score_adj {adj}: {e}"))?;
    }
    let me = std::process::id().to_string();
    for procs in &plan.cgroup_procs {
        std::fs::write(procs, &me).map_err(|e| format!("enter the pod's cgroup {}: {e}", procs.display()))?;
    }

    let shim = nix::unistd::getppid();
    // SAFETY: a raw clone without a new stack behaves as fork; this process
    // has one thread, so the child may run any code.
    let pid = unsafe {
        nix::libc::syscall(nix::libc::SYS_clone, (nix::libc::CLONE_PARENT | nix::libc::SIGCHLD) as nix::libc::c_ulong, 0, 0, 0, 0)
    };
    match pid {
        -1 => Err(format!("start the holder: {}", std::io::Error::last_os_error())),
        0 => hold(shim),
        pid => Ok(pid as i32),
    }
}

extern "C" fn wake(_: nix::libc::c_int) {}

/// The holder proper: keeps the namespaces alive until told to stop.
fn hold(shim: Pid) -> ! {
    // Dies with the shim; if the shim is already gone, do not linger. In a new
    // pid namespace getppid() says 0 (the shim is outside it), but /proc is
    // still the host's.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() || !std::path::Path::new(&format!("/proc/{shim}/stat")).exists() {
        std::process::exit(1);
    }
    let _ = nix::sys::prctl::set_name(c"micrun-holder");
    let _ = nix::unistd::setsid();
    let _ = std::env::set_current_dir("/");
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which we own.
            unsafe { nix::libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    // SAFETY: closes inherited descriptors above stderr; none is used below.
    unsafe { nix::libc::syscall(nix::libc::SYS_close_range, 3u32, u32::MAX, 0u32) };

    // A pid 1 gets only the signals it handles: TERM and INT need a handler to
    // arrive at all; they stay blocked and are taken by sigwait.
    let mut set = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD] {
        set.add(sig);
        // SAFETY: the handler does nothing.
        let _ = unsafe { signal::signal(sig, SigHandler::Handler(wake)) };
    }
    let _ = set.thread_block();
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => reap(),
            Ok(_) => std::process::exit(0),
            Err(_) => continue,
        }
    }
}

/// Reaps whatever ended: as pid 1 of the pod, orphans of the pod's containers.
fn reap() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

//! Processes seen through /proc: liveness, parents, command lines, and the
//! shims our containerd started (found, held, killed when wedged).

use std::path::Path;
use std::time::Duration;

use super::leftovers::{log_tail, CLEANUP_BOUND};
use super::{wait_until, Env, Guard, Run, SHIM_NAME};

/// (state, ppid) from /proc/<pid>/stat; None when the process is gone.
pub fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may hold spaces and parentheses: fields follow the last ')'
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Running (not gone, not a zombie waiting to be reaped).
pub fn alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

pub fn parent(pid: u32) -> Option<u32> {
    proc_stat(pid).map(|(_, ppid)| ppid)
}

pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| b.split(|c| *c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
        .unwrap_or_default()
}

/// `-flag value` in an argument list.
pub fn flag_value<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.iter().position(|a| a == flag).and_then(|i| argv.get(i + 1)).map(String::as_str)
}

pub fn kill(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
}

pub fn is_our_shim(env: &Env, argv: &[String]) -> bool {
    argv.first().is_some_and(|a| a.ends_with(SHIM_NAME)) && flag_value(argv, "-address") == Some(env.address.as_str())
}

/// Live shim processes of our containerd started with `-id <id>`.
pub fn shims_with_id(env: &Env, id: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let argv = cmdline(*pid);
            is_our_shim(env, &argv) && flag_value(&argv, "-id") == Some(id) && alive(*pid)
        })
        .collect()
}

/// The shim holding a task: the parent of the task's pid (the shim is a subreaper,
/// so the container's init is its child once the runtime CLI exited).
pub fn shim_of_task(env: &Env, id: &str) -> u32 {
    let pid = env.task_pid(id).unwrap_or_else(|| panic!("task {id} has no pid in `ctr task ls`"));
    let shim = parent(pid).unwrap_or_else(|| panic!("task {id} pid {pid} has no /proc entry"));
    let argv = cmdline(shim);
    assert!(is_our_shim(env, &argv), "parent {shim} of task {id} (pid {pid}) is not our shim: {argv:?}");
    shim
}

/// A detached container removed at the end of the test. When the test failed
/// and the container's shim no longer answers, the shim is killed first (it was
/// started for this container only): containerd then cleans up through
/// `shim delete`, and one hung shim does not slow every later `ctr task ls`
/// (containerd asks each shim for its state) in the shared namespace.
pub struct Held<'a> {
    guard: Guard<'a>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let (env, id) = (self.guard.env, self.guard.id.as_str());
        let r = env.ctr_timeout(5, &["task", "ps", id]);
        if r.code != -1 && r.code != 124 {
            return;
        }
        if let Some(pid) = shims_with_id(env, id).first().copied() {
            eprintln!("the shim of {id} (pid {pid}) does not answer; killing it");
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            wait_until(Duration::from_secs(5), || !Path::new(&format!("/proc/{pid}")).exists());
        }
    }
}

/// `ctr run -d`, removed (and its shim killed if it hangs) at the end of the test.
pub fn detached<'a>(env: &'a Env, id: &str, extra: &[&str], cmd: &[&str]) -> Held<'a> {
    Held { guard: env.run_detached(id, extra, cmd) }
}

/// `ctr task exec` with a bound. If it does not finish, the shim is wedged: kill it
/// (so containerd cleans up and the test's guards do not wait 30 s per call) and
/// fail with what was seen.
pub fn exec_bounded(env: &Env, shim: u32, id: &str, exec_id: &str, cmd: &[&str]) -> Run {
    let mut args = vec!["task", "exec", "--exec-id", exec_id, id];
    args.extend_from_slice(cmd);
    let r = env.ctr_timeout(10, &args);
    if r.code == 0 {
        return r;
    }
    let state = env.task_status(id);
    let log = log_tail(env, id);
    if alive(shim) {
        kill(shim, nix::sys::signal::Signal::SIGKILL);
        wait_until(CLEANUP_BOUND, || !matches!(env.task_status(id).as_deref(), Some("RUNNING") | Some("UNKNOWN")));
    }
    panic!(
        "ctr task exec {exec_id} {cmd:?} in {id} failed or hung (code {}, 137 = killed after 10 s): {}\n\
         task status afterwards: {state:?} (UNKNOWN = the shim no longer answers State); shim {shim} was killed to clean up\n{log}",
        r.code, r.stderr
    );
}

/// The long-running shim processes of `env`'s containerd (not the short
/// `start`/`delete` invocations containerd makes).
pub fn serving_shims(env: &Env) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let argv = cmdline(*pid);
            is_our_shim(env, &argv) && !matches!(argv.last().map(String::as_str), Some("start" | "delete")) && alive(*pid)
        })
        .collect()
}

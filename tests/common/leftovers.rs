//! What a container may leave behind ("nothing lost, nothing left
//! behind"): rootfs mounts, work dir, micrun.json, delegate state, cgroups and
//! shim processes, checked present while it runs and gone after its cleanup.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::procs::shims_with_id;
use super::{bundle_dir, mounts_under, wait_until, Env, STATE_ROOT};

/// How long containerd may take to finish cleaning up after a failed Create or a
/// dead shim (it runs the shim's `delete` action asynchronously).
pub const CLEANUP_BOUND: Duration = Duration::from_secs(10);

/// Every trace of container `id` that should be gone: rootfs mounts under its
/// bundle, our work dir, micrun.json, delegate state under any delegate root, its
/// cgroups (ctr's default cgroups path is /<namespace>/<id>), a shim process and
/// the socket that shim served on.
pub fn leftovers(env: &Env, id: &str) -> Vec<String> {
    let mut out = files_left(env, id);
    for pid in shims_with_id(env, id) {
        out.push(format!("shim process {pid}"));
    }
    let socket = shim_socket(env, id);
    if socket.exists() {
        out.push(format!("shim socket {}", socket.display()));
    }
    out
}

/// The socket of the shim containerd started for `key`: a container id, or the
/// group or pod a container belongs to.
pub fn shim_socket(env: &Env, key: &str) -> PathBuf {
    let address = containerd_shim::socket_address(&env.address, &env.namespace, key);
    PathBuf::from(address.strip_prefix("unix://").unwrap_or(&address))
}

/// `leftovers` but the shim process: a group's shim carries the first member's id
/// and rightly outlives it while other members run.
pub fn files_left(env: &Env, id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bundle = bundle_dir(env, id);
    for m in mounts_under(&bundle) {
        out.push(format!("mount {m}"));
    }
    let work = env.work_dir(id);
    if work.exists() {
        out.push(format!("work dir {}", work.display()));
    }
    let state = bundle.join("micrun.json");
    if state.exists() {
        out.push(format!("state file {}", state.display()));
    }
    let roots = Path::new(STATE_ROOT).join(&env.namespace).join("delegates");
    for root in std::fs::read_dir(&roots).into_iter().flatten().flatten() {
        let held = root.path().join(id);
        if held.exists() {
            out.push(format!("delegate state {}", held.display()));
        }
    }
    for ctrl in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let cg = ctrl.path().join(&env.namespace).join(id);
        if cg.is_dir() {
            out.push(format!("cgroup {}", cg.display()));
        }
    }
    out
}

/// The positive control for `leftovers`: a running container shows every kind of
/// trace the cleanup checks look for, so their absence later means something.
pub fn assert_held(env: &Env, id: &str) {
    let held = leftovers(env, id);
    for kind in ["mount ", "work dir ", "state file ", "delegate state ", "cgroup ", "shim process ", "shim socket "] {
        assert!(held.iter().any(|h| h.starts_with(kind)), "running container {id} shows no {kind}trace: {held:#?}");
    }
}

pub fn assert_nothing_left(env: &Env, id: &str) {
    wait_until(CLEANUP_BOUND, || leftovers(env, id).is_empty());
    let left = leftovers(env, id);
    assert!(left.is_empty(), "container {id} left behind: {left:#?}\n{}", log_tail(env, id));
}

/// `ctr c ls -q` lists it, and `ctr c rm` removes it.
pub fn remove_record(env: &Env, id: &str) {
    let ls = env.ctr(&["containers", "ls", "-q"]);
    assert!(ls.stdout.lines().any(|l| l.trim() == id), "ctr c ls lacks {id}: {}", ls.stdout);
    let rm = env.ctr(&["containers", "rm", id]);
    assert_eq!(rm.code, 0, "ctr c rm {id}: {}", rm.stderr);
    let ls = env.ctr(&["containers", "ls", "-q"]);
    assert!(!ls.stdout.lines().any(|l| l.trim() == id), "ctr c rm left {id}: {}", ls.stdout);
}

/// A failed Create: nothing left, and the container record can be removed.
pub fn assert_failed_create_clean(env: &Env, id: &str) {
    assert_nothing_left(env, id);
    remove_record(env, id);
}

/// The lines of containerd's log (our shim logs into it).
fn log_lines(env: &Env) -> String {
    let log = std::fs::read(env.state.join("containerd.log")).unwrap_or_default();
    String::from_utf8_lossy(&log).into_owned()
}

/// containerd's log lines about `id` (our shim logs into it), for failure messages.
pub fn log_tail(env: &Env, id: &str) -> String {
    let log = log_lines(env);
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(id)).collect();
    format!("containerd log about {id}:\n{}", lines[lines.len().saturating_sub(30)..].join("\n"))
}

/// A line our shim wrote (tracing format, not containerd's `time=...` lines)
/// with `message` about container `id`.
pub fn shim_logged(env: &Env, message: &str, id: &str) -> bool {
    let needle = format!(" {message} id={id} ");
    log_lines(env).lines().any(|l| !l.starts_with("time=") && l.contains(&needle))
}

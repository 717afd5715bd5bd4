//! Helpers for the fault tests against `micrun sim`'s fault knobs (`--delay`,
//! `--hang`): waiting for the simulator to hold a request, a `ctr` running in
//! the background while it does, counting exit events, and reusing an id.
//! Pulled in with `#[path = "common/sim_faults.rs"] mod sim_faults;` after
//! `mod common;` and the `mica_common` module.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::events::Events;
use crate::common::{leftovers, show, wait_until, Env, Run};
use crate::mica_common::{self, Sim};

/// How long any answer the user waits for may take while a fault is in place.
pub const ANSWER_BOUND: Duration = Duration::from_secs(5);

/// The `/tasks/exit` events of container `id`'s init process seen so far.
pub fn exits(events: &Events, id: &str) -> usize {
    process_exits(events, id, id)
}

/// The `/tasks/exit` events of process `process` (an exec id, or the container
/// id for its init) in container `id`.
pub fn process_exits(events: &Events, id: &str, process: &str) -> usize {
    events.about(id).iter().filter(|(_, topic, v)| topic == "/tasks/exit" && v["id"].as_str() == Some(process)).count()
}

/// Waits for the simulator to log `needle` (its fault lines say when a request
/// is held or left hanging).
pub fn wait_sim_logged(sim: &Sim, needle: &str) {
    assert!(
        wait_until(Duration::from_secs(15), || sim.log().contains(needle)),
        "the simulator never logged {needle:?}:\n{}",
        sim.log()
    );
}

/// `ctr ARGS` started in the background (stdin null, both streams kept).
pub fn spawn_ctr(env: &Env, secs: u32, args: &[&str]) -> Child {
    env.ctr_command(secs).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn ctr")
}

/// Waits (bounded) for a background `ctr` and collects what it said.
pub fn finish(mut child: Child, bound: Duration) -> Run {
    let code = mica_common::wait_child(&mut child, bound).unwrap_or(-1);
    let mut run = Run { code, stdout: String::new(), stderr: String::new() };
    let _ = child.stdout.take().unwrap().read_to_string(&mut run.stdout);
    let _ = child.stderr.take().unwrap().read_to_string(&mut run.stderr);
    let _ = child.wait();
    run
}

/// Runs `f`, failing unless it returns within `bound`.
pub fn within<T>(bound: Duration, what: &str, f: impl FnOnce() -> T) -> T {
    let began = Instant::now();
    let out = f();
    assert!(began.elapsed() < bound, "{what} took {:?}, more than {bound:?}", began.elapsed());
    out
}

/// Waits until containerd reports `id` STOPPED.
pub fn wait_stopped(env: &Env, id: &str, why: &str) {
    assert!(
        wait_until(Duration::from_secs(15), || env.task_status(id).as_deref() == Some("STOPPED")),
        "{id} not STOPPED {why}: {:?}\n{}",
        env.task_status(id),
        leftovers::log_tail(env, id)
    );
}

/// `ctr task rm ID` then `ctr c rm ID`, each expected to succeed.
pub fn delete(env: &Env, id: &str) {
    let rm = env.ctr(&["task", "rm", id]);
    assert_eq!(rm.code, 0, "ctr task rm {id}: {}", show(&rm));
    let rm = env.ctr(&["containers", "rm", id]);
    assert_eq!(rm.code, 0, "ctr c rm {id}: {}", show(&rm));
}

/// Nothing of `id` left: micad client, work dir, task (mica.rs), then mounts,
/// state, shim (leftovers.rs).
pub fn assert_clean(env: &Env, sim: &Sim, id: &str) {
    assert!(wait_until(leftovers::CLEANUP_BOUND, || !sim.has_client(id)), "micad client {id} left behind");
    mica_common::assert_nothing_left(env, sim, id);
    leftovers::assert_nothing_left(env, id);
    let ls = env.ctr(&["containers", "ls", "-q"]);
    assert!(!ls.stdout.lines().any(|l| l.trim() == id), "container record {id} left behind");
}

/// The same id works again on a healthy simulator: run, kill, one more exit
/// event, delete, nothing left.
pub fn assert_reusable(env: &Env, sim: &Sim, events: &Events, image: &str, id: &str) {
    let before = exits(events, id);
    let r = env.ctr(&sim.run_args(&["-d"], &[], image, id));
    assert_eq!(r.code, 0, "second run of {id}: {}", show(&r));
    assert_eq!(env.task_status(id).as_deref(), Some("RUNNING"));
    let k = env.ctr(&["task", "kill", id]);
    assert_eq!(k.code, 0, "kill {id}: {}", show(&k));
    wait_stopped(env, id, "after the second run's kill");
    delete(env, id);
    assert_clean(env, sim, id);
    assert!(wait_until(Duration::from_secs(5), || exits(events, id) > before), "no exit event for the second run of {id}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(exits(events, id), before + 1, "exit events of the second run of {id}:\n{}", events.dump());
}

//! The shim dying in the middle of a step, or a client giving up on one,
//! through a real containerd, our shim and real crun: a crun wrapper
//! (tests/common/faults.rs) holds the shim inside create, start, exec or delete
//! while the test kills the shim with -9, or lets ctr's timeout expire. Each test asserts what the user sees, then the one consistency
//! check: no task, one /tasks/exit per process that ran, nothing left behind,
//! the id reusable.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::events::Events;
use common::faults::{assert_consistent, Wrapper};
use common::leftovers::{log_tail, CLEANUP_BOUND};
use common::procs::{cmdline, kill, shims_with_id};
use common::{kill_and_wait_stopped, show, strs, wait_until, Env, Guard, Run, RUNTIME};
use nix::sys::signal::Signal;

/// How long the wrapper holds a step: far longer than any test waits for it,
/// so only the fault can end it.
const HOLD: u32 = 60;

fn ctr_run_args<'a>(env: &'a Env, cfg: &'a [String], id: &'a str) -> Vec<&'a str> {
    let mut args = vec!["run", "-d", "--null-io", "--runtime", RUNTIME];
    args.extend(strs(cfg));
    args.extend([env.image.as_str(), id, "sleep", "600"]);
    args
}

/// Starts `ctr ARGS` in the background (bounded: it must not outlive the test).
fn ctr_spawn(env: &Env, args: &[&str]) -> Child {
    env.ctr_command(90).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn ctr")
}

fn finish(child: Child) -> Run {
    child.wait_with_output().expect("wait for ctr").into()
}

/// The serving shim of `id` (not a `start` or `delete` invocation).
fn serving_shim(env: &Env, id: &str) -> u32 {
    let shims: Vec<u32> = shims_with_id(env, id)
        .into_iter()
        .filter(|p| !matches!(cmdline(*p).last().map(String::as_str), Some("start" | "delete")))
        .collect();
    assert_eq!(shims.len(), 1, "want one serving shim of {id}, found {shims:?}");
    shims[0]
}

/// Holds `step` in the wrapper while `ctr` runs in the background, kills the
/// shim with -9 once the step is held, and returns what ctr said.
fn kill_shim_in(env: &Env, w: &Wrapper, id: &str, step: &str, how: &str, args: &[&str]) -> Run {
    w.arm(step, how, HOLD);
    let child = ctr_spawn(env, args);
    assert!(w.wait_held(Duration::from_secs(30)), "the wrapper never held {step}\n{}", log_tail(env, id));
    kill(serving_shim(env, id), Signal::SIGKILL);
    let r = finish(child);
    assert!(wait_until(CLEANUP_BOUND, || shims_with_id(env, id).is_empty()), "shim of {id} still runs after kill -9");
    r
}

fn running(env: &Env, w: &Wrapper, id: &str) {
    let cfg = w.run_args();
    let r = env.ctr(&ctr_run_args(env, &cfg, id));
    assert_eq!(r.code, 0, "ctr run -d {id}: {}", show(&r));
}

/// containerd's cleanup after the dead shim removed the task.
fn assert_task_cleaned_up(env: &Env, id: &str) {
    assert!(
        wait_until(CLEANUP_BOUND, || env.task_status(id).is_none()),
        "containerd still lists task {id} as {:?} after its shim died\n{}",
        env.task_status(id),
        log_tail(env, id)
    );
}

// ---------------------------------------------------------------------------
// 1. kill -9 of the shim inside each step

#[test]
fn fault_shim_killed_in_create() {
    // crun create has made the container; the shim is killed before it
    // records or reports it
    let env = common::env();
    let id = common::unique_id("fs-create");
    let w = Wrapper::new(&env, &id);
    // dropped before the wrapper: a failed test still removes its container through it
    let _guard = Guard { env: &env, id: id.clone() };
    let events = Events::start(&env);
    let cfg = w.run_args();
    let r = kill_shim_in(&env, &w, &id, "create", "sleep-after", &ctr_run_args(&env, &cfg, &id));
    assert_ne!(r.code, 0, "ctr run succeeded although its shim died in create: {}", show(&r));
    eprintln!("ctr run, shim killed in create: {}", show(&r));
    assert_task_cleaned_up(&env, &id);
    assert_consistent(&env, &events, &w, &id, &[]);
}

#[test]
fn fault_shim_killed_in_start() {
    // crun start has run the init; the shim is killed before it reports it
    let env = common::env();
    let id = common::unique_id("fs-start");
    let w = Wrapper::new(&env, &id);
    // dropped before the wrapper: a failed test still removes its container through it
    let _guard = Guard { env: &env, id: id.clone() };
    let events = Events::start(&env);
    let cfg = w.run_args();
    let r = kill_shim_in(&env, &w, &id, "start", "sleep-after", &ctr_run_args(&env, &cfg, &id));
    assert_ne!(r.code, 0, "ctr run succeeded although its shim died in start: {}", show(&r));
    eprintln!("ctr run, shim killed in start: {}", show(&r));
    assert_task_cleaned_up(&env, &id);
    assert_consistent(&env, &events, &w, &id, &[&id]);
}

#[test]
fn fault_shim_killed_in_exec() {
    let env = common::env();
    let id = common::unique_id("fs-exec");
    let w = Wrapper::new(&env, &id);
    // dropped before the wrapper: a failed test still removes its container through it
    let _guard = Guard { env: &env, id: id.clone() };
    let events = Events::start(&env);
    running(&env, &w, &id);
    let r = kill_shim_in(&env, &w, &id, "exec", "sleep-after", &["task", "exec", "--exec-id", "x1", &id, "sleep", "600"]);
    assert_ne!(r.code, 0, "ctr task exec succeeded although its shim died: {}", show(&r));
    eprintln!("ctr task exec, shim killed in exec: {}", show(&r));
    assert_task_cleaned_up(&env, &id);
    // containerd reports the task's end for the dead shim; nobody is left to
    // report the exec's, which died with the container
    assert_consistent(&env, &events, &w, &id, &[&id]);
}

#[test]
fn fault_shim_killed_in_delete() {
    let env = common::env();
    let id = common::unique_id("fs-delete");
    let w = Wrapper::new(&env, &id);
    // dropped before the wrapper: a failed test still removes its container through it
    let _guard = Guard { env: &env, id: id.clone() };
    let events = Events::start(&env);
    running(&env, &w, &id);
    kill_and_wait_stopped(&env, &id);
    let r = kill_shim_in(&env, &w, &id, "delete", "sleep-before", &["task", "rm", &id]);
    eprintln!("ctr task rm, shim killed in delete: {}", show(&r));
    if env.task_status(&id).is_some() {
        let rm = env.ctr(&["task", "rm", "-f", &id]);
        eprintln!("ctr task rm -f, retried: {}", show(&rm));
    }
    assert_task_cleaned_up(&env, &id);
    // Two exits, and not ours to avoid: the shim reported the init's exit
    // when it was killed; then the shim died with the task still in
    // containerd's list, and containerd's cleanup after a dead shim
    // (cleanupAfterDeadShim) publishes a /tasks/exit for any task it still lists.
    let twice = [id.as_str(), id.as_str()];
    assert_consistent(&env, &events, &w, &id, &twice);
}

// ---------------------------------------------------------------------------
// 2. a delete slower than the client's timeout, retried

#[test]
fn fault_slow_delete_past_client_timeout_then_retried() {
    let env = common::env();
    let id = common::unique_id("fs-slow-rm");
    let w = Wrapper::new(&env, &id);
    // dropped before the wrapper: a failed test still removes its container through it
    let _guard = Guard { env: &env, id: id.clone() };
    let events = Events::start(&env);
    running(&env, &w, &id);
    kill_and_wait_stopped(&env, &id);
    w.arm("delete", "sleep-before", 8);
    let first = env.ctr(&["--timeout", "2s", "task", "rm", &id]);
    assert!(w.fired(), "the delete never reached the wrapper: {}", show(&first));
    assert_ne!(first.code, 0, "ctr task rm within 2 s of an 8 s delete: {}", show(&first));
    assert!(first.stderr.contains("deadline exceeded"), "ctr's timeout is not named: {}", show(&first));
    let retry = env.ctr(&["task", "rm", &id]);
    eprintln!("ctr task rm, retried while the first delete is held: {}", show(&retry));
    assert_eq!(retry.code, 0, "retried ctr task rm: {}\n{}", show(&retry), log_tail(&env, &id));
    assert!(wait_until(Duration::from_secs(15), || w.running().is_empty()), "the held delete never ended");
    let deletes = events.about(&id).into_iter().filter(|(_, t, _)| t == "/tasks/delete").count();
    assert_eq!(deletes, 1, "/tasks/delete events of {id}:\n{}", events.dump());
    assert_consistent(&env, &events, &w, &id, &[&id]);
}

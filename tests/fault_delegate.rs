//! Faults of the OCI runtime under the exec delegate, through a real containerd,
//! our shim and real crun: a crun wrapper (tests/common/faults.rs) fails, or
//! kills the process it just made, once at one step (create, start, exec,
//! delete). Each test asserts what the user sees from ctr, then the one
//! consistency check: no task, one /tasks/exit per process that ran and none
//! for one that never started, nothing left behind, the id reusable.

mod common;

use std::time::Duration;

use common::events::Events;
use common::faults::{assert_consistent, exits, Wrapper};
use common::leftovers::log_tail;
use common::{kill_and_wait_stopped, assert_mentions, show, strs, wait_until, Env, Guard, Run, RUNTIME};

/// `ctr run -d --null-io` through the wrapper.
fn run_detached(env: &Env, w: &Wrapper, id: &str, cmd: &[&str]) -> Run {
    let cfg = w.run_args();
    let mut args = vec!["run", "-d", "--null-io", "--runtime", RUNTIME];
    args.extend(strs(&cfg));
    args.extend([env.image.as_str(), id]);
    args.extend_from_slice(cmd);
    env.ctr(&args)
}

fn task_rm(env: &Env, id: &str) {
    let rm = env.ctr(&["task", "rm", id]);
    assert_eq!(rm.code, 0, "ctr task rm {id}: {}\n{}", show(&rm), log_tail(env, id));
}

/// The failure names the step, the runtime and the wrapper's own message.
fn assert_names_fault(r: &Run, step: &str) {
    assert_ne!(r.code, 0, "the injected {step} failure did not reach the user: {}", show(r));
    assert_mentions(&r.stderr, &["crun", &format!("{step} failed"), &format!("injected fault: {step} fails")]);
}

#[test]
fn fault_create_fails() {
    let env = common::env();
    let id = common::unique_id("f-create-fail");
    let w = Wrapper::new(&env, &id);
    // dropped before the wrapper: a failed test still removes its container through it
    let _guard = Guard { env: &env, id: id.clone() };
    let events = Events::start(&env);
    w.arm("create", "fail", 0);
    let r = run_detached(&env, &w, &id, &["sleep", "600"]);
    assert!(w.fired(), "the create fault never fired: {}", show(&r));
    assert_names_fault(&r, "create");
    assert_consistent(&env, &events, &w, &id, &[]);
}

#[test]
fn fault_init_killed_after_create() {
    // crun create succeeded, then the init died before Start: Start must fail
    // (there is nothing to start) and the init's death be reported once.
    let env = common::env();
    let id = common::unique_id("f-create-kill");
    let w = Wrapper::new(&env, &id);
    // dropped before the wrapper: a failed test still removes its container through it
    let _guard = Guard { env: &env, id: id.clone() };
    let events = Events::start(&env);
    w.arm("create", "kill", 0);
    let r = run_detached(&env, &w, &id, &["sleep", "600"]);
    assert!(w.fired(), "the create fault never fired: {}", show(&r));
    assert_ne!(r.code, 0, "ctr run started a container whose init was killed: {}", show(&r));
    assert_mentions(&r.stderr, &["start"]);
    assert_eq!(env.task_status(&id).as_deref(), Some("STOPPED"), "task of {id}: {}", show(&r));
    let exit = events.wait_for(&id, "/tasks/exit", Duration::from_secs(5));
    assert_eq!(exit.as_ref().map(|v| v["exit_status"].as_u64()), Some(Some(137)), "exit of {id}: {exit:?}");
    task_rm(&env, &id);
    assert_consistent(&env, &events, &w, &id, &[&id]);
}

#[test]
fn fault_start_fails() {
    let env = common::env();
    let id = common::unique_id("f-start-fail");
    let w = Wrapper::new(&env, &id);
    // dropped before the wrapper: a failed test still removes its container through it
    let _guard = Guard { env: &env, id: id.clone() };
    let events = Events::start(&env);
    w.arm("start", "fail", 0);
    let r = run_detached(&env, &w, &id, &["sleep", "600"]);
    assert!(w.fired(), "the start fault never fired: {}", show(&r));
    assert_names_fault(&r, "start");
    // the init was created and never started: the task stays CREATED until removed
    assert_eq!(env.task_status(&id).as_deref(), Some("CREATED"), "task of {id} after a failed start");
    let rm = env.ctr(&["task", "rm", "-f", &id]);
    assert_eq!(rm.code, 0, "ctr task rm -f {id}: {}", show(&rm));
    assert_consistent(&env, &events, &w, &id, &[&id]);
}

#[test]
fn fault_init_killed_after_start() {
    let env = common::env();
    let id = common::unique_id("f-start-kill");
    let w = Wrapper::new(&env, &id);
    // dropped before the wrapper: a failed test still removes its container through it
    let _guard = Guard { env: &env, id: id.clone() };
    let events = Events::start(&env);
    w.arm("start", "kill", 0);
    let r = run_detached(&env, &w, &id, &["sleep", "600"]);
    assert!(w.fired(), "the start fault never fired: {}", show(&r));
    assert_eq!(r.code, 0, "ctr run -d: {}", show(&r));
    assert!(
        wait_until(Duration::from_secs(10), || env.task_status(&id).as_deref() == Some("STOPPED")),
        "task {id} not STOPPED after its init was killed: {:?}",
        env.task_status(&id)
    );
    let exit = events.wait_for(&id, "/tasks/exit", Duration::from_secs(5));
    assert_eq!(exit.as_ref().map(|v| v["exit_status"].as_u64()), Some(Some(137)), "exit of {id}: {exit:?}");
    task_rm(&env, &id);
    assert_consistent(&env, &events, &w, &id, &[&id]);
}

#[test]
fn fault_exec_fails() {
    let env = common::env();
    let id = common::unique_id("f-exec-fail");
    let w = Wrapper::new(&env, &id);
    // dropped before the wrapper: a failed test still removes its container through it
    let _guard = Guard { env: &env, id: id.clone() };
    let events = Events::start(&env);
    let r = run_detached(&env, &w, &id, &["sleep", "600"]);
    assert_eq!(r.code, 0, "ctr run -d: {}", show(&r));
    w.arm("exec", "fail", 0);
    let x = env.ctr(&["task", "exec", "--exec-id", "x1", &id, "true"]);
    assert!(w.fired(), "the exec fault never fired: {}", show(&x));
    assert_names_fault(&x, "exec");
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"), "a failed exec changed the task");
    // the exec id is free again: a second exec of that id runs
    let again = env.ctr(&["task", "exec", "--exec-id", "x1", &id, "echo", "ok"]);
    assert_eq!((again.code, again.stdout.trim()), (0, "ok"), "exec x1 after its failure: {}", show(&again));
    kill_and_wait_stopped(&env, &id);
    task_rm(&env, &id);
    // x1's failed start ran nothing; its second start ran once
    assert_consistent(&env, &events, &w, &id, &[&id, "x1"]);
}

#[test]
fn fault_exec_process_killed_after_exec() {
    let env = common::env();
    let id = common::unique_id("f-exec-kill");
    let w = Wrapper::new(&env, &id);
    // dropped before the wrapper: a failed test still removes its container through it
    let _guard = Guard { env: &env, id: id.clone() };
    let events = Events::start(&env);
    let r = run_detached(&env, &w, &id, &["sleep", "600"]);
    assert_eq!(r.code, 0, "ctr run -d: {}", show(&r));
    w.arm("exec", "kill", 0);
    let x = env.ctr(&["task", "exec", "--exec-id", "x1", &id, "sleep", "600"]);
    assert!(w.fired(), "the exec fault never fired: {}", show(&x));
    assert_eq!(x.code, 137, "ctr task exec of a process killed by -9: {}", show(&x));
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"), "the exec's death changed the task");
    kill_and_wait_stopped(&env, &id);
    task_rm(&env, &id);
    assert_consistent(&env, &events, &w, &id, &[&id, "x1"]);
}

#[test]
fn fault_delete_fails_then_retry_succeeds() {
    let env = common::env();
    let id = common::unique_id("f-delete-fail");
    let w = Wrapper::new(&env, &id);
    // dropped before the wrapper: a failed test still removes its container through it
    let _guard = Guard { env: &env, id: id.clone() };
    let events = Events::start(&env);
    let r = run_detached(&env, &w, &id, &["sleep", "600"]);
    assert_eq!(r.code, 0, "ctr run -d: {}", show(&r));
    kill_and_wait_stopped(&env, &id);
    w.arm("delete", "fail", 0);
    let rm = env.ctr(&["task", "rm", &id]);
    assert!(w.fired(), "the delete fault never fired: {}", show(&rm));
    assert_names_fault(&rm, "delete");
    assert_eq!(env.task_status(&id).as_deref(), Some("STOPPED"), "task of {id} after a failed delete");
    assert_eq!(exits(&events, &id).get(&id), Some(&1), "exit of {id} before the retry");
    task_rm(&env, &id);
    assert_consistent(&env, &events, &w, &id, &[&id]);
}

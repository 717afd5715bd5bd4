//! Which OCI runtime runs a Linux container delegated through a real containerd
//! (started by scripts/test.sh) with `ctr`, proven by the delegate's own state
//! directory and CLI; exit codes and signals through each of crun, runc and youki.

mod common;

use std::path::Path;
use std::time::Duration;

use common::delegates::{assert_held_by, pick, runtime_binary};
use common::events::Events;
use common::procs::detached;
use common::{env, in_container, per_delegate, show, strs, unique_id, wait_until, Env, DELEGATES};

// --------------------------------------------------------------------------
// 1. which runtime runs the container

/// `echo hello` through `--rm` prints hello via the chosen delegate and leaves
/// nothing in its root; a detached `sleep` with the same choice is held by that
/// delegate and no other.
fn check_runs_through(delegate: &str, extra: &[&str]) {
    let env = env();
    let id = unique_id(&format!("hello-{delegate}"));
    let r = env.run_rm(&id, extra, &["echo", "hello"]);
    assert_eq!(r.code, 0, "ctr run {id}: {}", show(&r));
    assert_eq!(r.stdout, "hello\n", "{}", show(&r));
    for d in DELEGATES {
        let dir = env.delegate_root(d).join(&id);
        assert!(!dir.exists(), "ctr run --rm left {} behind", dir.display());
    }

    let id = unique_id(&format!("held-{delegate}"));
    let _g = detached(&env, &id, extra, &["sleep", "1000"]);
    assert_held_by(&env, &id, delegate);
}

#[test]
fn echo_hello_runs_through_crun_by_default() {
    check_runs_through("crun", &[]);
}

#[test]
fn echo_hello_runs_through_crun_chosen_by_annotation() {
    let a = pick("crun");
    check_runs_through("crun", &strs(&a));
}

#[test]
fn echo_hello_runs_through_runc_chosen_by_annotation() {
    let a = pick("runc");
    check_runs_through("runc", &strs(&a));
}

#[test]
fn echo_hello_runs_through_youki_chosen_by_annotation() {
    let a = pick("youki");
    check_runs_through("youki", &strs(&a));
}

fn check_config_default(delegate: &str) {
    runtime_binary(delegate);
    let env = env();
    let cfg = env.config_file(&unique_id(&format!("default-{delegate}")), &format!("[delegate]\ndefault = \"{delegate}\"\n"));
    let cfg = cfg.to_string_lossy().into_owned();
    check_runs_through(delegate, &["--runtime-config-path", &cfg]);
}

#[test]
fn echo_hello_runs_through_runc_chosen_by_config_default() {
    check_config_default("runc");
}

#[test]
fn echo_hello_runs_through_youki_chosen_by_config_default() {
    check_config_default("youki");
}

#[test]
fn annotation_wins_over_config_default() {
    let env = env();
    let a = pick("youki");
    let cfg = env.config_file(&unique_id("default-runc"), "[delegate]\ndefault = \"runc\"\n");
    let cfg = cfg.to_string_lossy().into_owned();
    let mut extra = vec!["--runtime-config-path", cfg.as_str()];
    extra.extend(strs(&a));
    check_runs_through("youki", &extra);
}

// --------------------------------------------------------------------------
// 2. exit codes

fn check_exit_code(delegate: &str) {
    let env = env();
    let a = pick(delegate);
    for code in [3, 0, 42] {
        let id = unique_id(&format!("exit{code}-{delegate}"));
        let r = env.run_rm(&id, &strs(&a), &["sh", "-c", &format!("echo before-exit; exit {code}")]);
        assert_eq!(r.code, code, "sh -c 'exit {code}' under {delegate}: {}", show(&r));
        assert_eq!(r.stdout, "before-exit\n", "{}", show(&r));
    }
}

per_delegate!(check_exit_code: exit_code_propagates_crun, exit_code_propagates_runc, exit_code_propagates_youki);

// --------------------------------------------------------------------------
// 3. signals

/// The task stopped and its exit status is `want`, seen in containerd's
/// /tasks/exit event, in `ctr task ls` and in `ctr task rm`'s report.
fn assert_stopped_with(env: &Env, events: &Events, id: &str, pid: u32, want: i64) {
    let exit = events
        .wait_for(id, "/tasks/exit", Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no /tasks/exit for {id} within 20 s; events:\n{}", events.dump()));
    assert_eq!(exit["exit_status"].as_i64().unwrap_or(0), want, "exit event {exit}");
    assert_eq!(exit["pid"].as_u64(), Some(pid as u64), "exit event {exit}");
    assert!(
        wait_until(Duration::from_secs(10), || env.task_status(id).as_deref() == Some("STOPPED")),
        "{id} is {:?}, not STOPPED",
        env.task_status(id)
    );
    let rm = env.ctr(&["task", "rm", id]);
    assert_eq!(rm.code, 0, "ctr task rm {id}: {}", show(&rm));
    assert!(rm.stderr.contains(&format!("exit code {want}")), "ctr task rm should report exit code {want}: {}", show(&rm));
}

fn check_sigterm_trapped(delegate: &str) {
    let env = env();
    let a = pick(delegate);
    let id = unique_id(&format!("term-{delegate}"));
    let events = Events::start(&env);
    let _g = detached(&env, &id, &strs(&a), &["sh", "-c", "trap 'exit 7' TERM; touch /tmp/ready; while :; do sleep 0.1; done"]);
    let pid = env.task_pid(&id).expect("task pid");
    // the trap is installed before the marker is written
    assert!(wait_until(Duration::from_secs(15), || in_container(pid, "/tmp/ready").exists()), "{id} never became ready");
    let k = env.ctr(&["task", "kill", &id]);
    assert_eq!(k.code, 0, "ctr task kill {id}: {}", show(&k));
    assert_stopped_with(&env, &events, &id, pid, 7);
}

per_delegate!(check_sigterm_trapped: sigterm_reaches_trap_exit_7_crun, sigterm_reaches_trap_exit_7_runc, sigterm_reaches_trap_exit_7_youki);

fn check_sigkill(delegate: &str) {
    let env = env();
    let a = pick(delegate);
    let id = unique_id(&format!("kill-{delegate}"));
    let events = Events::start(&env);
    let _g = detached(&env, &id, &strs(&a), &["sleep", "1000"]);
    let pid = env.task_pid(&id).expect("task pid");
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
    let k = env.ctr(&["task", "kill", "-s", "SIGKILL", &id]);
    assert_eq!(k.code, 0, "ctr task kill -s SIGKILL {id}: {}", show(&k));
    assert_stopped_with(&env, &events, &id, pid, 137);
    assert!(
        wait_until(Duration::from_secs(5), || !Path::new(&format!("/proc/{pid}")).exists()),
        "pid {pid} still exists after SIGKILL and task rm"
    );
}

per_delegate!(check_sigkill: sigkill_gives_exit_137_crun, sigkill_gives_exit_137_runc, sigkill_gives_exit_137_youki);


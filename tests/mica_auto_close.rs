//! Upstream micrun's auto-close, through a real containerd against `micrun sim`:
//! `container.auto_close_timeout` closes an RTOS (micad `rm`, exit 0) once that
//! long has passed with no console client, i.e. with nobody holding the write
//! end of its stdin fifo (`ctr run -d` leaves none; `ctr run` and `ctr task
//! attach` hold it until their input ends or they exit); a client coming back
//! stops the count; `0` turns it off. The firmware is /bin/cat, which runs
//! until stopped.

mod common;
#[path = "common/mica.rs"]
mod mica_common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::events::Events;
use common::firmware::firmware_image;
use common::{unique_id, wait_until};
use mica_common::{assert_nothing_left, wait_child, Sim};

const TIMEOUT: &str = "org.openeuler.micrun.container.auto_close_timeout";

fn exits(events: &Events, id: &str) -> Vec<serde_json::Value> {
    events.about(id).into_iter().filter(|(_, t, _)| t == "/tasks/exit").map(|(_, _, v)| v).collect()
}

#[test]
fn detached_rtos_is_closed_after_the_timeout_with_exit_0() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let events = Events::start(&env);
    let id = unique_id("rtos-ac");
    let annotation = format!("{TIMEOUT}=1s");
    let r = env.ctr(&sim.run_args(&["-d"], &["--annotation", &annotation], &image, &id));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let started = Instant::now();
    assert!(wait_until(Duration::from_secs(10), || env.task_status(&id).as_deref() == Some("STOPPED")), "never closed");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}, before its 1 s timeout");
    assert!(took < Duration::from_secs(4), "closed after {took:?}, long after its 1 s timeout");
    // Closing is micad's rm, before Delete.
    assert!(!sim.has_client(&id), "the micad client is still there after auto-close");
    let exit = events.wait_for(&id, "/tasks/exit", Duration::from_secs(5)).expect("no /tasks/exit");
    assert_eq!(exit["exit_status"].as_u64().unwrap_or(0), 0, "auto-close reports exit 0: {exit}");
    assert_eq!(env.ctr(&["task", "rm", &id]).code, 0);
    env.ctr(&["container", "rm", &id]);
    assert_eq!(exits(&events, &id).len(), 1, "one /tasks/exit: {}", events.dump());
    assert!(
        common::leftovers::shim_logged(&env, "auto_close: no console client for the timeout; closing the RTOS", &id),
        "no auto_close line in the shim log: {}",
        common::leftovers::log_tail(&env, &id)
    );
    assert_nothing_left(&env, &sim, &id);
}

#[test]
fn timeout_0_turns_auto_close_off_even_with_auto_close_true() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let id = unique_id("rtos-ac0");
    let timeout = format!("{TIMEOUT}=0");
    let flags = ["--annotation", "org.openeuler.micrun.container.auto_close=true", "--annotation", &timeout];
    let r = env.ctr(&sim.run_args(&["-d"], &flags, &image, &id));
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
    assert!(sim.has_client(&id));
    assert_eq!(env.ctr(&["task", "kill", "-s", "SIGKILL", &id]).code, 0);
    assert!(wait_until(Duration::from_secs(10), || env.task_status(&id).as_deref() == Some("STOPPED")));
    env.ctr(&["task", "rm", &id]);
    env.ctr(&["container", "rm", &id]);
    assert_nothing_left(&env, &sim, &id);
}

/// While `ctr run` holds the console (its stdin open), nothing is counted;
/// once its input ends (ctr closes the fifo and sends CloseIO) the timeout
/// runs from there.
#[test]
fn attached_rtos_counts_from_the_clients_stdin_close() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let id = unique_id("rtos-aca");
    let annotation = format!("{TIMEOUT}=1");
    let mut ctr = Command::new("ctr")
        .args(["--address", &env.address, "-n", &env.namespace])
        .args(sim.run_args(&["--rm"], &["--annotation", &annotation], &image, &id))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = ctr.stdin.take().unwrap();
    stdin.write_all(b"still here\n").unwrap();
    assert!(wait_until(Duration::from_secs(15), || env.task_status(&id).as_deref() == Some("RUNNING")), "never RUNNING");
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"), "closed while its client still held stdin");
    drop(stdin);
    let closed = Instant::now();
    let status = wait_child(&mut ctr, Duration::from_secs(15));
    let took = closed.elapsed();
    assert_eq!(status, Some(0), "ctr run's exit code after auto-close");
    assert!(took >= Duration::from_millis(900), "closed {took:?} after stdin closed, before the 1 s timeout");
    assert!(took < Duration::from_secs(5), "closed {took:?} after stdin closed");
    assert!(wait_until(Duration::from_secs(5), || env.task_status(&id).is_none()), "task left after ctr run --rm");
    assert!(
        common::leftovers::shim_logged(&env, "auto_close: no console client; counting", &id),
        "no counting line in the shim log: {}",
        common::leftovers::log_tail(&env, &id)
    );
    assert_nothing_left(&env, &sim, &id);
}

/// Upstream's later lifecycle case 6 the other way round: a detached RTOS
/// counts, `ctr task attach` stops the count while it holds stdin, and the
/// count starts again when the attach's input ends.
#[test]
fn an_attached_client_stops_the_count_until_it_leaves() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let id = unique_id("rtos-acr");
    let annotation = format!("{TIMEOUT}=3");
    let r = env.ctr(&sim.run_args(&["-d"], &["--annotation", &annotation], &image, &id));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        wait_until(Duration::from_secs(5), || common::leftovers::shim_logged(&env, "auto_close: no console client; counting", &id)),
        "a detached RTOS is not counting: {}",
        common::leftovers::log_tail(&env, &id)
    );
    let mut attach = env.ctr_command(60).args(["task", "attach", &id]).stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let stdin = attach.stdin.take().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || common::leftovers::shim_logged(&env, "auto_close: a console client is back; not counting", &id)),
        "the attach was not seen: {}",
        common::leftovers::log_tail(&env, &id)
    );
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"), "closed while ctr task attach held stdin");
    drop(stdin);
    let left = Instant::now();
    // ctr task attach ends with the task and deletes it.
    let status = wait_child(&mut attach, Duration::from_secs(15));
    let took = left.elapsed();
    assert_eq!(status, Some(0), "ctr task attach's exit code after auto-close");
    assert!(took >= Duration::from_millis(2900), "closed {took:?} after the client left, before the 3 s timeout");
    assert!(took < Duration::from_secs(7), "closed {took:?} after the client left");
    env.ctr(&["task", "delete", &id]);
    env.ctr(&["container", "delete", &id]);
    assert_nothing_left(&env, &sim, &id);
}

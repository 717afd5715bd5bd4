//! micad failing in the middle of a step, through a real containerd: the
//! simulator killed while it holds a request (`micrun sim --delay`), and a
//! simulator that handles a request but never finishes its reply (`--hang`).
//! Each test then checks what the user saw, the exit events (one per RTOS that
//! started, none otherwise), that nothing is left, and that the same id works
//! again once micad is back. Killing the simulator is the harness's restart,
//! which also models micad coming back (its clients are gone).

mod common;
#[path = "common/mica.rs"]
mod mica_common;
#[path = "common/sim_faults.rs"]
mod sim_faults;

use std::time::{Duration, Instant};

use common::events::Events;
use common::firmware::firmware_image;
use common::{assert_mentions, show, unique_id, wait_until, Env};
use mica_common::Sim;
use sim_faults::{assert_clean, assert_reusable, delete, exits, finish, spawn_ctr, wait_sim_logged, wait_stopped, within, ANSWER_BOUND};

/// Status polls often enough that a lost client is noticed at once.
const POLL: &str = "status_interval_ms = 100\n";
/// Short micad timeouts, so a hung request fails well inside a test's patience.
const SHORT: &str = "status_interval_ms = 100\ntimeout_ms = 3000\nstart_timeout_ms = 3000\n";

fn cat(env: &Env) -> String {
    firmware_image(env, "/bin/cat")
}

/// A running RTOS on a healthy simulator of its own, which must keep answering
/// while the other simulator misbehaves.
struct Bystander {
    sim: Sim,
    id: String,
}

impl Bystander {
    fn start(env: &Env) -> Bystander {
        let sim = Sim::start(env, "baremetal");
        let id = unique_id("fault-bystander");
        let r = env.ctr(&sim.run_args(&["-d"], &[], &cat(env), &id));
        assert_eq!(r.code, 0, "bystander: {}", show(&r));
        Bystander { sim, id }
    }

    /// `ctr task ls` answers in time and shows the bystander still RUNNING.
    fn answers(&self, env: &Env) {
        let status = within(ANSWER_BOUND, "ctr task ls during the fault", || env.task_status(&self.id));
        assert_eq!(status.as_deref(), Some("RUNNING"), "bystander {}", self.id);
    }

    /// Killed and deleted in time: one exit event, nothing left.
    fn finish(self, env: &Env, events: &Events) {
        let k = within(ANSWER_BOUND, "killing the bystander", || env.ctr(&["task", "kill", &self.id]));
        assert_eq!(k.code, 0, "kill bystander: {}", show(&k));
        wait_stopped(env, &self.id, "after kill");
        within(ANSWER_BOUND, "deleting the bystander", || delete(env, &self.id));
        assert_clean(env, &self.sim, &self.id);
        assert_eq!(exits(events, &self.id), 1, "bystander exit events:\n{}", events.dump());
    }
}

// ---------------------------------------------------------------------------
// micad killed while it holds a request

#[test]
fn micad_killed_during_create_fails_it_and_the_id_works_again() {
    let env = common::env();
    let mut sim = Sim::start_with(&env, "baremetal", &["--delay", "create=4000"], POLL);
    let image = cat(&env);
    let events = Events::start(&env);
    let id = unique_id("fault-kill-create");
    let ctr = spawn_ctr(&env, 60, &sim.run_args(&["--rm"], &[], &image, &id));
    wait_sim_logged(&sim, "holding `create`");
    sim.restart_with("baremetal", &[]);
    let r = finish(ctr, Duration::from_secs(30));
    assert_ne!(r.code, 0, "create survived micad's death: {}", show(&r));
    assert_mentions(&r.stderr, &["micad", &format!("create {id}")]);
    assert_clean(&env, &sim, &id);
    assert_eq!(exits(&events, &id), 0, "exit events of a task that never started:\n{}", events.dump());
    assert_reusable(&env, &sim, &events, &image, &id);
}

#[test]
fn micad_killed_during_start_fails_it_and_the_id_works_again() {
    let env = common::env();
    let mut sim = Sim::start_with(&env, "baremetal", &["--delay", "start=4000"], POLL);
    let image = cat(&env);
    let events = Events::start(&env);
    let id = unique_id("fault-kill-start");
    let ctr = spawn_ctr(&env, 60, &sim.run_args(&["-d"], &[], &image, &id));
    wait_sim_logged(&sim, "holding `start`");
    sim.restart_with("baremetal", &[]);
    let r = finish(ctr, Duration::from_secs(30));
    assert_ne!(r.code, 0, "start survived micad's death: {}", show(&r));
    assert_mentions(&r.stderr, &["micad", &format!("start ({id})")]);
    within(ANSWER_BOUND, "deleting the task whose start failed", || delete(&env, &id));
    assert_clean(&env, &sim, &id);
    assert_eq!(exits(&events, &id), 0, "exit events of a task that never started:\n{}", events.dump());
    assert_reusable(&env, &sim, &events, &image, &id);
}

#[test]
fn micad_killed_during_stop_still_ends_the_task_once() {
    let env = common::env();
    let mut sim = Sim::start_with(&env, "baremetal", &["--delay", "stop=4000"], POLL);
    let image = cat(&env);
    let events = Events::start(&env);
    let id = unique_id("fault-kill-stop");
    let r = env.ctr(&sim.run_args(&["-d"], &[], &image, &id));
    assert_eq!(r.code, 0, "{}", show(&r));
    let kill = spawn_ctr(&env, 60, &["task", "kill", &id]);
    wait_sim_logged(&sim, "holding `stop`");
    sim.restart_with("baremetal", &[]);
    let k = finish(kill, Duration::from_secs(30));
    if k.code != 0 {
        assert_mentions(&k.stderr, &["micad", &format!("stop ({id})")]);
    }
    wait_stopped(&env, &id, "after micad died during its stop");
    delete(&env, &id);
    assert_clean(&env, &sim, &id);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(exits(&events, &id), 1, "exit events:\n{}", events.dump());
    assert_reusable(&env, &sim, &events, &image, &id);
}

#[test]
fn micad_killed_during_rm_leaves_nothing_once_deleted() {
    let env = common::env();
    let mut sim = Sim::start_with(&env, "baremetal", &["--delay", "rm=4000"], POLL);
    let image = cat(&env);
    let events = Events::start(&env);
    let id = unique_id("fault-kill-rm");
    let r = env.ctr(&sim.run_args(&["-d"], &[], &image, &id));
    assert_eq!(r.code, 0, "{}", show(&r));
    assert_eq!(env.ctr(&["task", "kill", &id]).code, 0);
    wait_stopped(&env, &id, "after kill");
    let rm = spawn_ctr(&env, 60, &["task", "rm", &id]);
    wait_sim_logged(&sim, "holding `rm`");
    sim.restart_with("baremetal", &[]);
    let r = finish(rm, Duration::from_secs(30));
    if r.code != 0 {
        // The outcome was unknown: a second delete finds the client gone.
        assert_mentions(&r.stderr, &["micad", &format!("rm ({id})")]);
        let again = env.ctr(&["task", "rm", &id]);
        assert_eq!(again.code, 0, "second ctr task rm: {}", show(&again));
    }
    assert_eq!(env.ctr(&["containers", "rm", &id]).code, 0);
    assert_clean(&env, &sim, &id);
    assert_eq!(exits(&events, &id), 1, "exit events:\n{}", events.dump());
    assert_reusable(&env, &sim, &events, &image, &id);
}

// ---------------------------------------------------------------------------
// micad handles a request and hangs in the middle of its reply

/// The request hangs, `ctr task ls` answers meanwhile, and `ctr` then fails
/// within the shim's timeout naming micad and the request.
fn hung_step(env: &Env, sim: &Sim, bystander: &Bystander, args: &[&str], kind: &str, request: &str) {
    let began = Instant::now();
    let ctr = spawn_ctr(env, 60, args);
    wait_sim_logged(sim, &format!("`{kind}` handled"));
    bystander.answers(env);
    let r = finish(ctr, Duration::from_secs(30));
    assert_ne!(r.code, 0, "{args:?} succeeded though micad never finished its reply: {}", show(&r));
    assert_mentions(&r.stderr, &[&format!("micad did not answer `{request}` within 3000 ms")]);
    assert!(began.elapsed() < Duration::from_secs(15), "{args:?} took {:?}", began.elapsed());
}

#[test]
fn micad_hanging_in_create_fails_it_in_time_and_leaves_no_client() {
    let env = common::env();
    let sim = Sim::start_with(&env, "baremetal", &["--hang", "create"], SHORT);
    let bystander = Bystander::start(&env);
    let image = cat(&env);
    let events = Events::start(&env);
    let id = unique_id("fault-hang-create");
    hung_step(&env, &sim, &bystander, &sim.run_args(&["--rm"], &[], &image, &id), "create", &format!("create {id}"));
    assert_clean(&env, &sim, &id);
    assert_eq!(exits(&events, &id), 0, "exit events:\n{}", events.dump());
    assert_reusable(&env, &sim, &events, &image, &id);
    bystander.finish(&env, &events);
}

#[test]
fn micad_hanging_in_start_fails_it_in_time_and_delete_leaves_nothing() {
    let env = common::env();
    let sim = Sim::start_with(&env, "baremetal", &["--hang", "start"], SHORT);
    let bystander = Bystander::start(&env);
    let image = cat(&env);
    let events = Events::start(&env);
    let id = unique_id("fault-hang-start");
    hung_step(&env, &sim, &bystander, &sim.run_args(&["-d"], &[], &image, &id), "start", &format!("start ({id})"));
    within(ANSWER_BOUND, "deleting the task whose start hung", || delete(&env, &id));
    assert_clean(&env, &sim, &id);
    assert_eq!(exits(&events, &id), 0, "exit events:\n{}", events.dump());
    assert_reusable(&env, &sim, &events, &image, &id);
    bystander.finish(&env, &events);
}

#[test]
fn micad_hanging_in_stop_fails_kill_in_time_and_the_task_ends_once() {
    let env = common::env();
    let sim = Sim::start_with(&env, "baremetal", &["--hang", "stop"], SHORT);
    let bystander = Bystander::start(&env);
    let image = cat(&env);
    let events = Events::start(&env);
    let id = unique_id("fault-hang-stop");
    let r = env.ctr(&sim.run_args(&["-d"], &[], &image, &id));
    assert_eq!(r.code, 0, "{}", show(&r));
    hung_step(&env, &sim, &bystander, &["task", "kill", &id], "stop", &format!("stop ({id})"));
    // micad did stop it: the task ends on its own, or a second kill ends it.
    if !wait_until(Duration::from_secs(3), || env.task_status(&id).as_deref() == Some("STOPPED")) {
        let k = env.ctr(&["task", "kill", &id]);
        assert_eq!(k.code, 0, "second kill: {}", show(&k));
    }
    wait_stopped(&env, &id, "after micad stopped it");
    within(ANSWER_BOUND, "deleting", || delete(&env, &id));
    assert_clean(&env, &sim, &id);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(exits(&events, &id), 1, "exit events:\n{}", events.dump());
    assert_reusable(&env, &sim, &events, &image, &id);
    bystander.finish(&env, &events);
}

#[test]
fn micad_hanging_in_rm_fails_delete_in_time_and_a_second_delete_cleans_up() {
    let env = common::env();
    let sim = Sim::start_with(&env, "baremetal", &["--hang", "rm"], SHORT);
    let bystander = Bystander::start(&env);
    let image = cat(&env);
    let events = Events::start(&env);
    let id = unique_id("fault-hang-rm");
    let r = env.ctr(&sim.run_args(&["-d"], &[], &image, &id));
    assert_eq!(r.code, 0, "{}", show(&r));
    assert_eq!(env.ctr(&["task", "kill", &id]).code, 0);
    wait_stopped(&env, &id, "after kill");
    hung_step(&env, &sim, &bystander, &["task", "rm", &id], "rm", &format!("rm ({id})"));
    let again = within(ANSWER_BOUND, "the second delete", || env.ctr(&["task", "rm", &id]));
    assert_eq!(again.code, 0, "second ctr task rm: {}", show(&again));
    assert_eq!(env.ctr(&["containers", "rm", &id]).code, 0);
    assert_clean(&env, &sim, &id);
    assert_eq!(exits(&events, &id), 1, "exit events:\n{}", events.dump());
    assert_reusable(&env, &sim, &events, &image, &id);
    bystander.finish(&env, &events);
}

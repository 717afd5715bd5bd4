//! Upstream micrun's own scenarios (the openEuler mcs repository,
//! `micrun/tests/io/test_suite.sh` and its later `test-qemu-lifecycle` cases),
//! ported to our shim and `micrun sim` where they need no Xen: each test names
//! the upstream case it follows. The firmware is /bin/cat, which echoes its
//! console and runs until stopped. README's "Upstream's test scenarios" lists
//! the cases not ported and why.

mod common;
#[path = "common/mica.rs"]
mod mica_common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use common::events::Events;
use common::firmware::firmware_image;
use common::{unique_id, wait_until, Env, RUNTIME};
use mica_common::{assert_nothing_left, wait_child, Sim, OS_ANNOTATION};

/// `ctr container create` of an RTOS container on this simulator.
fn create(env: &Env, sim: &Sim, image: &str, id: &str) {
    let config = sim.config.to_str().unwrap();
    let r = env.ctr(&["container", "create", "--runtime", RUNTIME, "--runtime-config-path", config, "--annotation", OS_ANNOTATION, image, id]);
    assert_eq!(r.code, 0, "container create: {}", r.stderr);
}

fn exit_codes(events: &Events, id: &str) -> Vec<u64> {
    events
        .about(id)
        .into_iter()
        .filter(|(_, t, _)| t == "/tasks/exit")
        .map(|(_, _, v)| v["exit_status"].as_u64().unwrap_or(0))
        .collect()
}

/// Upstream IO #8 (ctr lifecycle status) and #14 (the same container started
/// again after its task ended): create, `task start -d`, one micad client while
/// RUNNING, `kill -s 9`, `task delete`, start again, and nothing left at the end.
#[test]
fn ctr_lifecycle_then_the_same_container_starts_again() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let events = Events::start(&env);
    let id = unique_id("up-life");
    create(&env, &sim, &image, &id);
    for round in 1..=2 {
        let r = env.ctr(&["task", "start", "-d", &id]);
        assert_eq!(r.code, 0, "round {round}: task start -d: {}", r.stderr);
        assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"), "round {round}");
        assert!(sim.has_client(&id), "round {round}: no micad client while RUNNING");
        assert_eq!(env.ctr(&["task", "kill", "-s", "9", &id]).code, 0);
        assert!(wait_until(Duration::from_secs(10), || env.task_status(&id).as_deref() == Some("STOPPED")), "round {round}");
        let d = env.ctr(&["task", "delete", &id]);
        assert_eq!(d.code, 0, "round {round}: task delete: {}", d.stderr);
        assert!(!sim.has_client(&id), "round {round}: micad client left after task delete");
        assert_eq!(env.task_status(&id), None);
        assert!(wait_until(Duration::from_secs(5), || exit_codes(&events, &id).len() == round), "round {round}: {}", events.dump());
    }
    assert_eq!(exit_codes(&events, &id), [137, 137], "one /tasks/exit per life: {}", events.dump());
    assert_eq!(env.ctr(&["container", "delete", &id]).code, 0);
    assert_nothing_left(&env, &sim, &id);
}

/// Upstream IO #1 and #10 (ctr background attach, several commands): a
/// detached RTOS answers input typed through `ctr task attach`.
#[test]
fn ctr_task_attach_reaches_a_detached_rtos() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let id = unique_id("up-attach");
    let r = env.ctr(&sim.run_args(&["-d"], &[], &image, &id));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut attach = env.ctr_command(60).args(["task", "attach", &id]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = attach.stdin.take().unwrap();
    let mut stdout = attach.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&out);
            if text.contains("first-line") && text.contains("second-line") {
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    // ctr attaches some time after it starts: type until the answers show.
    for _ in 0..20 {
        if reader.is_finished() {
            break;
        }
        stdin.write_all(b"first-line\nsecond-line\n").unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(wait_until(Duration::from_secs(10), || reader.is_finished()), "no answer through ctr task attach");
    let out = reader.join().unwrap();
    assert!(out.contains("first-line") && out.contains("second-line"), "the RTOS did not answer through attach: {out:?}");
    assert_eq!(env.ctr(&["task", "kill", &id]).code, 0);
    drop(stdin);
    assert_eq!(wait_child(&mut attach, Duration::from_secs(15)), Some(143), "ctr task attach ends with the task's code");
    // ctr task attach deletes the task it attached to once it ended.
    assert!(wait_until(Duration::from_secs(10), || env.task_status(&id).is_none()), "task left after ctr task attach");
    env.ctr(&["container", "delete", &id]);
    assert_nothing_left(&env, &sim, &id);
}

/// Upstream's later lifecycle case 13: a signal with no meaning for an RTOS
/// is refused with an error and the RTOS keeps running.
#[test]
fn unmapped_signal_is_refused_and_the_rtos_keeps_running() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let id = unique_id("up-usr1");
    let r = env.ctr(&sim.run_args(&["-d"], &[], &image, &id));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let k = env.ctr(&["task", "kill", "-s", "SIGUSR1", &id]);
    assert_ne!(k.code, 0, "SIGUSR1 was accepted: {}", k.stdout);
    assert!(k.stderr.contains("signal 10 has no meaning for an RTOS"), "{}", k.stderr);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
    assert!(sim.has_client(&id));
    assert_eq!(env.ctr(&["task", "kill", "-s", "SIGTERM", &id]).code, 0);
    assert!(wait_until(Duration::from_secs(10), || env.task_status(&id).as_deref() == Some("STOPPED")));
    env.ctr(&["task", "delete", &id]);
    env.ctr(&["container", "delete", &id]);
    assert_nothing_left(&env, &sim, &id);
}

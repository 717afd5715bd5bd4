//! RTOS containers through a real containerd against `micrun sim`: console round
//! trip, kill, halting firmware, bad input at Create, Update on Xen and bare metal.
//! Each test starts its own simulator in temp dirs and points the shim at it with
//! `ctr run --runtime-config-path`. The images are packed by `micrun image build`
//! around a host ELF (the simulator runs host ELFs as the RTOS): /bin/cat echoes
//! the console back, /bin/false halts at once with code 1. The demo firmware is
//! in mica_demo.rs.

mod common;
#[path = "common/mica.rs"]
mod mica_common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::pty::ctr_pty_command;
use common::firmware::firmware_image;
use common::tasks_api::update;
use common::{unique_id, wait_until, Env, RUNTIME};
use mica_common::{assert_nothing_left, ctr_run, wait_child, Sim, OS_ANNOTATION};

#[test]
fn console_round_trip_then_kill_ends_with_143() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let id = unique_id("rtos-cat");
    let mut ctr = Command::new("ctr")
        .args(["--address", &env.address, "-n", &env.namespace])
        .args(sim.run_args(&["--rm"], &[], &image, &id))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = ctr.stdin.take().unwrap();
    stdin.write_all(b"hello from the host\n").unwrap();
    stdin.flush().unwrap();
    assert!(wait_until(Duration::from_secs(15), || env.task_status(&id).as_deref() == Some("RUNNING")), "never RUNNING");
    assert!(sim.has_client(&id));
    assert_eq!(env.task_pid(&id), Some(0), "an RTOS has no host pid");

    let k = env.ctr(&["task", "kill", &id]);
    assert_eq!(k.code, 0, "kill: {}", k.stderr);
    drop(stdin);
    let status = wait_child(&mut ctr, Duration::from_secs(20));
    let mut out = String::new();
    ctr.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(out.contains("hello from the host"), "the RTOS did not echo stdin: {out:?}");
    assert_eq!(status, Some(143), "ctr run exit code after SIGTERM");
    assert!(wait_until(Duration::from_secs(5), || !sim.has_client(&id)), "client not removed");
    assert_nothing_left(&env, &sim, &id);
}

#[test]
fn halting_firmware_ends_the_task_with_its_code() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/false");
    let id = unique_id("rtos-false");
    let r = ctr_run(&env, &sim, &[], &image, &id);
    assert_eq!(r.code, 1, "exit code of a firmware that halted with 1: {}{}", r.stdout, r.stderr);
    assert_nothing_left(&env, &sim, &id);
}

#[test]
fn halting_firmware_shows_stopped_and_publishes_an_exit_event() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/false");
    let id = unique_id("rtos-stopped");
    let mut events = Command::new("ctr")
        .args(["--address", &env.address, "-n", &env.namespace, "events"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let r = env.ctr(&sim.run_args(&["-d"], &[], &image, &id));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(wait_until(Duration::from_secs(15), || env.task_status(&id).as_deref() == Some("STOPPED")), "never STOPPED");
    env.ctr(&["task", "rm", &id]);
    env.ctr(&["container", "rm", &id]);
    let _ = events.kill();
    let mut text = String::new();
    events.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    let _ = events.wait();
    assert!(
        text.lines().any(|l| l.contains("/tasks/exit") && l.contains(&id)),
        "no /tasks/exit event for {id}: {text}"
    );
    assert_nothing_left(&env, &sim, &id);
}

#[test]
fn micad_not_running_fails_create_and_leaves_nothing() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let empty = tempfile::Builder::new().prefix("mrnomicad").tempdir_in("/tmp").unwrap();
    let config = env.config_file("no-micad", &format!("[mica]\nsocket_dir = {:?}\n", empty.path()));
    let id = unique_id("rtos-nomicad");
    let args = [
        "run", "--rm", "--runtime", RUNTIME, "--runtime-config-path", config.to_str().unwrap(),
        "--annotation", OS_ANNOTATION, &image, &id,
    ];
    let r = env.ctr(&args);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("micad is not running"), "{}", r.stderr);
    assert_nothing_left(&env, &sim, &id);
}

#[test]
fn firmware_path_with_dot_dot_is_refused_before_micad() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let id = unique_id("rtos-dotdot");
    let flags = ["--annotation", "org.openeuler.micran.container.firmware_path=/../../etc/passwd"];
    let r = ctr_run(&env, &sim, &flags, &image, &id);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("`..` is not allowed"), "{}", r.stderr);
    assert!(!sim.log().contains(&id), "the simulator heard of {id}: {}", sim.log());
    assert_nothing_left(&env, &sim, &id);
}

/// auto_close is opt-in: by default a halted RTOS keeps its micad client until
/// Delete; with `container.auto_close=true` the client is gone once the task is STOPPED.
#[test]
fn auto_close_removes_the_client_at_halt_and_only_when_asked() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/false");
    for (flags, removed_at_halt) in [(&[][..], false), (&["--annotation", "org.openeuler.micrun.container.auto_close=true"][..], true)] {
        let id = unique_id("rtos-autoclose");
        let r = env.ctr(&sim.run_args(&["-d"], flags, &image, &id));
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(wait_until(Duration::from_secs(15), || env.task_status(&id).as_deref() == Some("STOPPED")), "never STOPPED");
        assert_eq!(sim.has_client(&id), !removed_at_halt, "auto_close={removed_at_halt}: client present after halt");
        assert_eq!(env.ctr(&["task", "rm", &id]).code, 0);
        env.ctr(&["container", "rm", &id]);
        assert_nothing_left(&env, &sim, &id);
    }
}

fn run_detached_cat(env: &Env, sim: &Sim, id: &str, flags: &[&str]) {
    let image = firmware_image(env, "/bin/cat");
    let r = env.ctr(&sim.run_args(&["-d"], flags, &image, id));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// What micad's Xen pedestal cannot boot without: a memory size and its config.
const XEN: [&str; 6] = [
    "--annotation",
    "org.openeuler.micran.ped.pedestal=xen",
    "--annotation",
    "org.openeuler.micran.ped.conf=/boot/zephyr.bin",
    "--memory-limit",
    "67108864",
];

#[test]
fn update_memory_reaches_micad_on_xen() {
    let env = common::env();
    let sim = Sim::start(&env, "xen");
    let id = unique_id("rtos-xen");
    run_detached_cat(&env, &sim, &id, &XEN);
    let r = update(&env, &id, &format!("{{\"memory\":{{\"limit\":{}}}}}", 96u64 << 20));
    assert_eq!(r.code, 0, "update: {}", r.stderr);
    assert!(sim.log().contains("set memory 96"), "simulator log: {}", sim.log());
    env.remove(&id);
    assert_nothing_left(&env, &sim, &id);
}

/// micad reports no usage: the metrics are empty, not an error (containerd
/// 2.x's CRI collects them every second and logs every error).
#[test]
fn metrics_of_an_rtos_are_empty_not_an_error() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let id = unique_id("rtos-metrics");
    run_detached_cat(&env, &sim, &id, &[]);
    let r = env.ctr(&["task", "metrics", "--format", "json", &id]);
    assert_eq!(r.code, 0, "ctr task metrics: {}", common::show(&r));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    let figures = v.as_object().map(|o| o.values().filter(|x| !x.is_null()).count()).unwrap_or(0);
    assert_eq!(figures, 0, "an RTOS has no usage figures, got {}", r.stdout);
    env.remove(&id);
    assert_nothing_left(&env, &sim, &id);
}

#[test]
fn update_on_bare_metal_fails_clearly() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let id = unique_id("rtos-bm-update");
    run_detached_cat(&env, &sim, &id, &[]);
    let r = update(&env, &id, &format!("{{\"memory\":{{\"limit\":{}}}}}", 96u64 << 20));
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("only on the Xen pedestal"), "{}", r.stderr);
    env.remove(&id);
    assert_nothing_left(&env, &sim, &id);
}

/// Our shim processes serving `id` (an ungrouped container's shim runs with `-id <id>`).
fn shims_of(env: &Env, id: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| b.split(|c| *c == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
                .unwrap_or_default();
            let flag = |f: &str| argv.iter().position(|a| a == f).and_then(|i| argv.get(i + 1)).cloned();
            argv.first().is_some_and(|a| a.ends_with("containerd-shim-mica-v2"))
                && flag("-address").as_deref() == Some(env.address.as_str())
                && flag("-id").as_deref() == Some(id)
        })
        .collect()
}

#[test]
fn dead_shim_cleanup_removes_the_micad_client_and_firmware_copy() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let id = unique_id("rtos-dead-shim");
    run_detached_cat(&env, &sim, &id, &[]);
    assert!(sim.has_client(&id));
    assert!(env.work_dir(&id).join("firmware.elf").exists(), "firmware copy missing");
    let shims = shims_of(&env, &id);
    assert_eq!(shims.len(), 1, "shims of {id}: {shims:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shims[0]), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(wait_until(Duration::from_secs(10), || !sim.has_client(&id)), "micad client survived the dead shim");
    assert!(wait_until(Duration::from_secs(10), || !env.work_dir(&id).exists()), "firmware copy survived the dead shim");
    env.remove(&id);
}

#[test]
fn micad_restart_ends_the_task_with_a_reason() {
    let env = common::env();
    let mut sim = Sim::start(&env, "baremetal");
    let id = unique_id("rtos-micad-restart");
    run_detached_cat(&env, &sim, &id, &[]);
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
    sim.restart("baremetal");
    assert!(
        wait_until(Duration::from_secs(10), || env.task_status(&id).as_deref() == Some("STOPPED")),
        "task still {:?} after micad lost its client",
        env.task_status(&id)
    );
    let log = std::fs::read_to_string(env.state.join("containerd.log")).unwrap_or_default();
    assert!(log.contains("micad no longer has this RTOS client"), "no reason in the shim log");
    env.remove(&id);
    assert_nothing_left(&env, &sim, &id);
}

#[test]
fn console_hangup_ends_the_task_without_waiting_for_the_next_poll() {
    let env = common::env();
    // Polling every 10 minutes: only the console hang-up can notice the end in time.
    let mut sim = Sim::start_polling_every(&env, "baremetal", 600_000);
    let id = unique_id("rtos-hangup");
    run_detached_cat(&env, &sim, &id, &[]);
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
    // Start answers before the RTOS announces its console: wait for the attach.
    assert!(
        wait_until(Duration::from_secs(10), || common::leftovers::shim_logged(&env, "RTOS console attached", &id)),
        "console never attached: {}",
        common::leftovers::log_tail(&env, &id)
    );
    sim.stop();
    assert!(
        wait_until(Duration::from_secs(10), || env.task_status(&id).as_deref() == Some("STOPPED")),
        "task still {:?} 10 s after micad closed the console",
        env.task_status(&id)
    );
    let log = std::fs::read_to_string(env.state.join("containerd.log")).unwrap_or_default();
    assert!(log.contains("RTOS console hung up"), "the hang-up path did not run");
    env.remove(&id);
}

/// Create must fail with `needle` in containerd's error and leave nothing.
fn assert_create_refused(env: &Env, sim: &Sim, image: &str, flags: &[&str], needle: &str) {
    let id = unique_id("rtos-bad");
    let r = ctr_run(env, sim, flags, image, &id);
    assert_ne!(r.code, 0, "create succeeded with {flags:?}");
    assert!(r.stderr.contains(needle), "expected {needle:?} in: {}", r.stderr);
    assert_nothing_left(env, sim, &id);
}

#[test]
fn bad_firmware_fails_create_clearly() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let key = |k: &str, v: &str| format!("org.openeuler.micran.container.{k}={v}");
    let missing = key("firmware_path", "/no/such.elf");
    assert_create_refused(&env, &sim, &image, &["--annotation", &missing], "does not exist in the image");
    let wrong = key("firmware_hash", &"0".repeat(64));
    assert_create_refused(&env, &sim, &image, &["--annotation", &wrong], "expects");
    let garbage = key("firmware_hash", "md5:abc");
    assert_create_refused(&env, &sim, &image, &["--annotation", &garbage], "firmware_hash=\"md5:abc\": expected a sha256 digest");
    let memory = key("min_memory_mb", "0");
    assert_create_refused(&env, &sim, &image, &["--annotation", &memory], "min_memory_mb=\"0\": expected a positive");
    let pedestal = "org.openeuler.micran.ped.pedestal=kvm";
    assert_create_refused(&env, &sim, &image, &["--annotation", pedestal], "expected baremetal, xen");
}

#[test]
fn pedestal_mismatch_is_micads_error_and_leaves_nothing() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    assert_create_refused(&env, &sim, &image, &XEN, "micad refused");
}

/// micad's Xen pedestal fails a create without memory or config with no text
/// (xen_rproc.c generate_xen_cfg); the shim refuses it first, in words.
#[test]
fn xen_without_memory_or_config_is_refused_before_micad() {
    let env = common::env();
    let sim = Sim::start(&env, "xen");
    let image = firmware_image(&env, "/bin/cat");
    let no_memory = &XEN[..4];
    assert_create_refused(&env, &sim, &image, no_memory, "fixed memory size");
    let no_conf = [XEN[0], XEN[1], XEN[4], XEN[5]];
    assert_create_refused(&env, &sim, &image, &no_conf, "org.openeuler.micran.ped.conf");
}

#[test]
fn micad_not_answering_fails_create_within_the_timeout() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    // A socket nobody reads: the kernel accepts the connection, no reply comes.
    let dir = tempfile::Builder::new().prefix("mrmute").tempdir_in("/tmp").unwrap();
    let _mute = std::os::unix::net::UnixListener::bind(dir.path().join("mica-create.socket")).unwrap();
    let config = env.config_file("mute-micad", &format!("[mica]\nsocket_dir = {:?}\ntimeout_ms = 500\n", dir.path()));
    let id = unique_id("rtos-mute");
    let args = [
        "run", "--rm", "--runtime", RUNTIME, "--runtime-config-path", config.to_str().unwrap(),
        "--annotation", OS_ANNOTATION, &image, &id,
    ];
    let began = std::time::Instant::now();
    let r = env.ctr(&args);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("did not answer"), "{}", r.stderr);
    assert!(began.elapsed() < Duration::from_secs(10), "took {:?}", began.elapsed());
    assert_nothing_left(&env, &sim, &id);
}

#[test]
fn tty_mode_console_answers_typed_input() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let id = unique_id("rtos-tty");
    // `ctr run -t` needs a terminal: script(1) gives it one.
    let mut script = ctr_pty_command(&env, "", &sim.run_args(&["-t", "--rm"], &[], &image, &id), None)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(15), || env.task_status(&id).as_deref() == Some("RUNNING")), "never RUNNING");
    let mut stdin = script.stdin.take().unwrap();
    stdin.write_all(b"typed-in-tty\r").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(env.ctr(&["task", "kill", &id]).code, 0);
    let status = wait_child(&mut script, Duration::from_secs(20));
    drop(stdin);
    let mut out = String::new();
    script.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(out.contains("typed-in-tty"), "the RTOS did not answer on its tty: {out:?}");
    assert_eq!(status, Some(143), "ctr run -t exit code after SIGTERM");
    assert_nothing_left(&env, &sim, &id);
}

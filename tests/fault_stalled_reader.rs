//! A reader that stops reading a container's stdout, through a real containerd.
//! The stalled reader is an attached `ctr run` whose own stdout is a pipe this
//! test never reads: once that pipe is full, ctr stops draining containerd's
//! stdout fifo, the fifo fills, and the shim's copy of the container's stdout
//! blocks. Meanwhile the other containers, served by the same shim (a group) or
//! the same containerd and micad, must keep answering, and the stalled one
//! must still be killed and deleted, with one exit event each and nothing
//! left. Deleting the stalled one takes up to the shim's drain bound (Delete
//! waits that long for output to reach containerd, and this output never
//! will), so its mate is checked again while that Delete waits.

mod common;
#[path = "common/mica.rs"]
mod mica_common;
#[path = "common/sim_faults.rs"]
mod sim_faults;

use std::os::fd::AsRawFd;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::events::Events;
use common::firmware::firmware_image;
use common::leftovers::{assert_nothing_left, files_left, CLEANUP_BOUND};
use common::procs::shim_of_task;
use common::{show, unique_id, wait_until, Env, GROUP_ANNOTATION, RUNTIME};
use mica_common::Sim;
use sim_faults::{assert_clean, delete, exits, finish, process_exits, spawn_ctr, within, ANSWER_BOUND};

nix::ioctl_read_bad!(fionread, nix::libc::FIONREAD, nix::libc::c_int);

/// Bytes waiting unread in a pipe.
fn unread(child: &Child) -> i32 {
    let fd = child.stdout.as_ref().expect("piped stdout").as_raw_fd();
    let mut n: nix::libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through a pointer to a live local.
    unsafe { fionread(fd, &mut n) }.expect("FIONREAD");
    n
}

/// `ctr ARGS` attached, its stdout a pipe nobody reads; returns once that pipe
/// is full, i.e. once the stall reaches back to containerd's fifo.
fn stalled_ctr(env: &Env, args: &[&str]) -> Child {
    let child = env.ctr_command(300).args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn ctr");
    // A pipe holds up to 64 KiB, less when writes straddle its pages: full is
    // tens of KiB unread that stop growing while the writer runs on.
    let mut last = -1;
    let full = wait_until(Duration::from_secs(20), || {
        let n = unread(&child);
        let still = n >= 32 * 1024 && n == last;
        last = n;
        std::thread::sleep(Duration::from_millis(500));
        still
    });
    assert!(full, "ctr's stdout never filled: {} bytes", unread(&child));
    // Let the fifo behind ctr fill as well.
    std::thread::sleep(Duration::from_secs(1));
    child
}

/// Ends the stalled reader (a process this test started).
fn end(mut ctr: Child) {
    let _ = ctr.kill();
    let _ = ctr.wait();
}

fn kill_in_time(env: &Env, id: &str) {
    let k = within(ANSWER_BOUND, &format!("ctr task kill {id}"), || env.ctr(&["task", "kill", "-s", "SIGKILL", id]));
    assert_eq!(k.code, 0, "kill {id}: {}", show(&k));
    assert!(
        wait_until(ANSWER_BOUND, || env.task_status(id).as_deref() == Some("STOPPED")),
        "{id} not STOPPED within {ANSWER_BOUND:?} of its kill: {:?}",
        env.task_status(id)
    );
}

/// The shim's stdio.rs DRAIN_BOUND, plus room for the rest of a Delete.
const STALLED_DELETE_BOUND: Duration = Duration::from_secs(5 + 5);

/// Deletes the stalled `id` in the background and runs `meanwhile` while that
/// Delete waits on output that cannot drain.
fn delete_stalled_while(env: &Env, id: &str, meanwhile: impl FnOnce()) {
    let began = std::time::Instant::now();
    let rm = spawn_ctr(env, 60, &["task", "rm", id]);
    meanwhile();
    let r = finish(rm, Duration::from_secs(30));
    assert_eq!(r.code, 0, "ctr task rm {id}: {}", show(&r));
    assert!(began.elapsed() < STALLED_DELETE_BOUND, "deleting {id} took {:?}", began.elapsed());
    let c = env.ctr(&["containers", "rm", id]);
    assert_eq!(c.code, 0, "ctr c rm {id}: {}", show(&c));
}

fn exactly_one_exit(events: &Events, id: &str) {
    assert!(wait_until(Duration::from_secs(5), || exits(events, id) >= 1), "no exit event for {id}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(exits(events, id), 1, "exit events of {id}:\n{}", events.dump());
}

#[test]
fn stalled_stdout_reader_does_not_stop_its_group_mate() {
    let env = common::env();
    let events = Events::start(&env);
    let group_name = unique_id("gstall");
    let group = format!("{GROUP_ANNOTATION}={group_name}");
    let (a, b) = (unique_id("stall-a"), unique_id("stall-b"));
    let rb = env.ctr(&["run", "-d", "--null-io", "--runtime", RUNTIME, "--annotation", &group, &env.image, &b, "sleep", "600"]);
    assert_eq!(rb.code, 0, "run {b}: {}", show(&rb));
    let line = "x".repeat(200);
    let script = format!("while :; do echo {line}; done");
    let ctr = stalled_ctr(&env, &["run", "--runtime", RUNTIME, "--annotation", &group, &env.image, &a, "sh", "-c", &script]);
    let shim = shim_of_task(&env, &b);
    assert_eq!(shim_of_task(&env, &a), shim, "{a} and {b} are not served by one shim");

    // The group mate, and the stalled container's other streams, answer.
    let ls = within(ANSWER_BOUND, "ctr task ls", || env.ctr(&["task", "ls"]));
    for id in [&a, &b] {
        assert!(ls.stdout.lines().any(|l| l.starts_with(id.as_str()) && l.contains("RUNNING")), "ctr task ls: {}", ls.stdout);
    }
    for id in [&b, &a] {
        let x = within(ANSWER_BOUND, &format!("ctr task exec in {id}"), || {
            env.ctr_timeout(10, &["task", "exec", "--exec-id", "probe", id, "echo", "answered"])
        });
        assert_eq!(x.stdout.trim(), "answered", "exec in {id}: {}", show(&x));
    }
    for id in [&a, &b] {
        wait_until(Duration::from_secs(5), || process_exits(&events, id, "probe") >= 1);
        assert_eq!(process_exits(&events, id, "probe"), 1, "exit events of exec probe in {id}:\n{}", events.dump());
    }

    // The stalled one is killed and deleted while its reader still stalls;
    // its group mate answers meanwhile.
    kill_in_time(&env, &a);
    delete_stalled_while(&env, &a, || {
        let x = within(ANSWER_BOUND, &format!("ctr task exec in {b} during {a}'s delete"), || {
            env.ctr_timeout(10, &["task", "exec", "--exec-id", "probe2", &b, "echo", "answered"])
        });
        assert_eq!(x.stdout.trim(), "answered", "exec in {b}: {}", show(&x));
    });
    exactly_one_exit(&events, &a);
    end(ctr);
    wait_until(CLEANUP_BOUND, || files_left(&env, &a).is_empty());
    assert_eq!(files_left(&env, &a), Vec::<String>::new(), "{a} left behind");

    kill_in_time(&env, &b);
    within(ANSWER_BOUND, &format!("deleting {b}"), || delete(&env, &b));
    exactly_one_exit(&events, &b);
    assert_nothing_left(&env, &b);
    assert!(wait_until(CLEANUP_BOUND, || !common::procs::alive(shim)), "group shim {shim} outlived its members");
}

#[test]
fn stalled_rtos_console_reader_does_not_stop_another_rtos() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let events = Events::start(&env);
    let (a, b) = (unique_id("stall-rtos-a"), unique_id("stall-rtos-b"));
    let rb = env.ctr(&sim.run_args(&["-d"], &[], &firmware_image(&env, "/bin/cat"), &b));
    assert_eq!(rb.code, 0, "run {b}: {}", show(&rb));
    // `yes` writes its console without end.
    let yes = firmware_image(&env, "/usr/bin/yes");
    let ctr = stalled_ctr(&env, &sim.run_args(&[], &[], &yes, &a));

    let ls = within(ANSWER_BOUND, "ctr task ls", || env.ctr(&["task", "ls"]));
    for id in [&a, &b] {
        assert!(ls.stdout.lines().any(|l| l.starts_with(id.as_str()) && l.contains("RUNNING")), "ctr task ls: {}", ls.stdout);
    }
    assert!(within(ANSWER_BOUND, "micad status", || sim.status(&b)).contains("MICA-SUCCESS"), "micad stopped answering");

    kill_in_time(&env, &a);
    delete_stalled_while(&env, &a, || {
        let status = within(ANSWER_BOUND, "ctr task ls during the stalled delete", || env.task_status(&b));
        assert_eq!(status.as_deref(), Some("RUNNING"), "{b} during {a}'s delete");
    });
    exactly_one_exit(&events, &a);
    end(ctr);

    kill_in_time(&env, &b);
    within(ANSWER_BOUND, &format!("deleting {b}"), || delete(&env, &b));
    assert_clean(&env, &sim, &b);
    exactly_one_exit(&events, &b);
    assert_clean(&env, &sim, &a);
}

//! Two RTOS containers side by side on one `micrun sim`, through a real
//! containerd: the first halts (`halt 7` typed to the demo firmware) while the
//! second runs. micad closes a client's console when it stops the client (the
//! `status` that finds the core powered off runs mica_stop, whose
//! rpmsg_tty_unbind closes the pty: mica/micad/services/pty/rpmsg_pty.c); the
//! shim must see that hang-up and containerd the exit at once. Before the
//! simulator marked its descriptors close-on-exec, the second firmware inherited
//! the first one's console and the hang-up never arrived: `ctr run --rm` waited
//! for the shim's 5 s drain bound.
//!
//! Times are compared on one clock (UTC wall time): the simulator's log stamps
//! its "console closed" line, this test stamps each `ctr events` line as it
//! arrives and the moment `ctr run` returns.

mod common;
#[path = "common/mica.rs"]
mod mica_common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::firmware::demo_image;
use common::events::Events;
use common::{unique_id, wait_until, Env};
use mica_common::{assert_nothing_left, wait_child, Sim};

const PROMPT: &str = "demo:~$ ";
const BOUND: Duration = Duration::from_millis(200);

/// `2026-12-02T17:55:56.123456Z` (tracing's default stamp) as a SystemTime.
fn parse_utc(stamp: &str) -> Option<SystemTime> {
    let (date, time) = stamp.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // days from civil (proleptic Gregorian), as in Howard Hinnant's algorithm
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + hh * 3600 + mm * 60 + ss;
    let nanos: u32 = format!("{frac:0<9}")[..9].parse().ok()?;
    Some(UNIX_EPOCH + Duration::new(secs as u64, nanos))
}

/// When the simulator logged `what` for client `id`.
fn logged_at(log: &str, id: &str, what: &str) -> Option<SystemTime> {
    log.lines().find(|l| l.contains(what) && l.contains(id)).and_then(|l| parse_utc(l.split_whitespace().next()?))
}

fn spawn_run(env: &Env, sim: &Sim, image: &str, id: &str, out: &std::path::Path) -> Child {
    let f = std::fs::File::create(out).unwrap();
    Command::new("ctr")
        .args(["--address", &env.address, "-n", &env.namespace])
        .args(sim.run_args(&["--rm"], &[], image, id))
        .stdin(Stdio::piped())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap()
}

fn ms(later: SystemTime, earlier: SystemTime) -> f64 {
    match later.duration_since(earlier) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

#[test]
fn sim_two_rtos_first_halt_reaches_containerd_at_its_console_hangup() {
    let env = common::env();
    // The shim's default status interval, as a new user runs it.
    let sim = Sim::start_polling_every(&env, "baremetal", 1000);
    let image = demo_image(&env);
    let scratch = tempfile::tempdir().unwrap();
    let (first, second) = (unique_id("hangup-a"), unique_id("hangup-b"));
    let (out_a, out_b) = (scratch.path().join("a.out"), scratch.path().join("b.out"));
    let text = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let events = Events::start(&env);

    // The first starts first: a firmware started later is the one that could
    // inherit an earlier client's console.
    let mut run_a = spawn_run(&env, &sim, &image, &first, &out_a);
    assert!(wait_until(Duration::from_secs(30), || text(&out_a).contains(PROMPT)), "first: no prompt: {:?}", text(&out_a));
    let mut run_b = spawn_run(&env, &sim, &image, &second, &out_b);
    assert!(wait_until(Duration::from_secs(30), || text(&out_b).contains(PROMPT)), "second: no prompt: {:?}", text(&out_b));

    let mut stdin_a = run_a.stdin.take().unwrap();
    let waiter = std::thread::spawn(move || {
        let st = run_a.wait().unwrap();
        (st.code(), SystemTime::now())
    });
    stdin_a.write_all(b"halt 7\n").unwrap();
    stdin_a.flush().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !waiter.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(waiter.is_finished(), "ctr run of the first RTOS did not return 30 s after `halt 7`: {:?}", text(&out_a));
    let (code, ctr_returned) = waiter.join().unwrap();
    drop(stdin_a);
    assert_eq!(code, Some(7), "first: {:?}", text(&out_a));
    assert_eq!(env.task_status(&second).as_deref(), Some("RUNNING"), "the second RTOS stopped with the first");

    let log = sim.log();
    let halted = logged_at(&log, &first, "firmware halted").unwrap_or_else(|| panic!("no halt logged for {first}: {log}"));
    let hangup = logged_at(&log, &first, "console closed").unwrap_or_else(|| panic!("no console hang-up logged for {first}: {log}"));
    assert!(wait_until(Duration::from_secs(10), || events.arrival("/tasks/delete", &first).is_some()), "no /tasks/delete");
    let exit = events.arrival("/tasks/exit", &first).expect("a /tasks/exit event for the first RTOS");
    let delete = events.arrival("/tasks/delete", &first).unwrap();
    eprintln!(
        "firmware exit -> console hang-up {:.0} ms; hang-up -> /tasks/exit {:.0} ms, -> /tasks/delete {:.0} ms, -> ctr run returned {:.0} ms",
        ms(hangup, halted),
        ms(exit, hangup),
        ms(delete, hangup),
        ms(ctr_returned, hangup)
    );
    for (what, t) in [("/tasks/exit", exit), ("/tasks/delete", delete)] {
        assert!(ms(t, hangup) <= BOUND.as_secs_f64() * 1000.0, "{what} came {:.0} ms after the console hang-up", ms(t, hangup));
    }

    assert_eq!(env.ctr(&["task", "kill", &second]).code, 0);
    assert_eq!(wait_child(&mut run_b, Duration::from_secs(20)), Some(143), "second: {:?}", text(&out_b));
    assert_nothing_left(&env, &sim, &first);
    assert_nothing_left(&env, &sim, &second);
}

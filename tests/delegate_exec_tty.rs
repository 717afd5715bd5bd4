//! Exec with and without a tty, `run -t` with a console resize, and stdin, for
//! containers delegated to crun, runc and youki through a real containerd
//! (started by scripts/test.sh) with `ctr`.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::delegates::pick;
use common::procs::detached;
use common::pty::{ctr_on_pty, pts_name, PRINT_SIZE};
use common::{env, per_delegate, show, strs, unique_id, Run, RUNTIME};

// --------------------------------------------------------------------------
// 4. exec

fn check_exec_without_tty(delegate: &str) {
    let env = env();
    let a = pick(delegate);
    let id = unique_id(&format!("exec-{delegate}"));
    let _g = detached(&env, &id, &strs(&a), &["sleep", "1000"]);
    let r = env.ctr(&["task", "exec", "--exec-id", "e1", &id, "sh", "-c", "echo from-exec; echo err-exec >&2; exit 5"]);
    assert_eq!(r.code, 5, "exec exit code: {}", show(&r));
    assert_eq!(r.stdout, "from-exec\n", "{}", show(&r));
    assert!(r.stderr.contains("err-exec"), "exec stderr: {}", show(&r));
    // the exec ran inside the container: it sees the init process as pid 1
    let r = env.ctr(&["task", "exec", "--exec-id", "e1", &id, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"]);
    assert_eq!(r.code, 0, "second exec reusing id e1: {}", show(&r));
    assert_eq!(r.stdout.trim(), "sleep 1000", "{}", show(&r));
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"), "the execs must not disturb init");
}

per_delegate!(check_exec_without_tty: exec_without_tty_output_and_exit_code_crun, exec_without_tty_output_and_exit_code_runc, exec_without_tty_output_and_exit_code_youki);

/// An exec whose process is gone before the runtime's `exec --detach` returns
/// (its exit is reaped before the shim has read the pid file) must still be
/// reported: `ctr task exec` returns its exit code, and the shim keeps answering.
fn check_exec_exits_at_once(delegate: &str) {
    let env = env();
    let a = pick(delegate);
    let id = unique_id(&format!("quickexec-{delegate}"));
    let _g = detached(&env, &id, &strs(&a), &["sleep", "1000"]);
    // `true` and `false` are gone in a few ms: most rounds the exit is reaped while
    // the runtime's `exec --detach` is still returning.
    for n in 0..30 {
        let (cmd, code) = if n % 2 == 0 { ("true", 0) } else { ("false", 1) };
        let x = format!("q{n}");
        let r = env.ctr_timeout(15, &["task", "exec", "--exec-id", &x, &id, cmd]);
        assert_eq!(
            r.code,
            code,
            "exec #{n} (`{cmd}`, exits at once) under {delegate}: ctr task exec should return {code} \
             (-1 = it hung and was killed after 15 s): {}",
            show(&r)
        );
    }
    let r = env.ctr_timeout(10, &["task", "ps", &id]);
    assert_eq!(r.code, 0, "the shim stopped answering after quick execs: {}", show(&r));
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
}

per_delegate!(check_exec_exits_at_once: exec_that_exits_at_once_is_reported_crun, exec_that_exits_at_once_is_reported_runc, exec_that_exits_at_once_is_reported_youki);

fn check_exec_with_tty(delegate: &str) {
    let env = env();
    let a = pick(delegate);
    let id = unique_id(&format!("exect-{delegate}"));
    let _g = detached(&env, &id, &strs(&a), &["sleep", "1000"]);
    let r = ctr_on_pty(&env, "", &["task", "exec", "-t", "--exec-id", "t1", &id, "sh", "-c", "tty; exit 4"]);
    assert_eq!(r.code, 4, "exec -t exit code: {}", show(&r));
    assert!(pts_name(&r.stdout).is_some(), "exec -t: `tty` should print /dev/pts/N: {}", show(&r));
    // a resize reaches the exec's console
    let r = ctr_on_pty(&env, "stty cols 123 rows 45", &["task", "exec", "-t", "--exec-id", "t2", &id, "sh", "-c", PRINT_SIZE]);
    assert_eq!(r.code, 0, "{}", show(&r));
    assert!(r.stdout.contains("size:45 123"), "exec -t console should be 45 rows x 123 cols: {}", show(&r));
}

per_delegate!(check_exec_with_tty: exec_with_tty_gets_a_pty_crun, exec_with_tty_gets_a_pty_runc, exec_with_tty_gets_a_pty_youki);

// --------------------------------------------------------------------------
// 5. run -t and resize

fn check_run_tty_resize(delegate: &str) {
    let env = env();
    let a = pick(delegate);
    for (rows, cols) in [(30, 100), (45, 123)] {
        let id = unique_id(&format!("tty-{delegate}"));
        let mut args = vec!["run", "-t", "--rm", "--runtime", RUNTIME];
        args.extend(strs(&a));
        args.extend([env.image.as_str(), id.as_str(), "sh", "-c"]);
        let script = format!("tty; {PRINT_SIZE}; exit 6");
        args.push(&script);
        let r = ctr_on_pty(&env, &format!("stty cols {cols} rows {rows}"), &args);
        assert_eq!(r.code, 6, "ctr run -t exit code: {}", show(&r));
        assert!(pts_name(&r.stdout).is_some(), "run -t: `tty` should print /dev/pts/N: {}", show(&r));
        let want = format!("size:{rows} {cols}");
        assert!(r.stdout.contains(&want), "run -t console should be {rows} rows x {cols} cols ({want}): {}", show(&r));
    }
}

per_delegate!(check_run_tty_resize: run_tty_resize_reaches_container_crun, run_tty_resize_reaches_container_runc, run_tty_resize_reaches_container_youki);

// --------------------------------------------------------------------------
// 11. stdin

#[test]
fn stdin_lines_reach_the_container() {
    let env = env();
    let id = unique_id("stdin");
    // ctr never delivers EOF to the container (README, "Using it with containerd"), so the container
    // reads exactly two lines and does not wait for the end of its input.
    let mut child = env
        .ctr_command(30)
        .args(["run", "--rm", "--runtime", RUNTIME, &env.image, &id, "sh", "-c", "read a; read b; echo got:$b:$a"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ctr run");
    child.stdin.take().unwrap().write_all(b"one\ntwo\n").unwrap();
    let r: Run = child.wait_with_output().expect("wait for ctr run").into();
    if r.code != 0 {
        env.remove(&id);
    }
    assert_eq!(r.code, 0, "{}", show(&r));
    assert_eq!(r.stdout, "got:two:one\n", "{}", show(&r));
}

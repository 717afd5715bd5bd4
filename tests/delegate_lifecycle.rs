//! Lifecycle of Linux containers delegated to crun, runc and youki, driven through
//! a real containerd (started by scripts/test.sh) with `ctr`: routing (and proof of
//! which runtime holds the container), exit codes, signals, exec with and without a
//! tty, console resize, ps, pause/resume, metrics, update, OOM events and stdin.
//!
//! Every check looks at the real thing: the delegate's own state directory and
//! CLI, the container's cgroup files under /sys/fs/cgroup, the container's
//! processes under /proc, containerd's event stream.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{env, unique_id, wait_until, Env, Guard, Run, RUNTIME};

const DELEGATES: [&str; 3] = ["crun", "runc", "youki"];
const DELEGATE_ANNOTATION: &str = "io.containerd.mica.v2.delegate";

// --------------------------------------------------------------------------
// helpers local to this file

/// Finds a runtime binary the way the test machine installs them: on PATH, or in
/// ~/.cargo/bin (youki). A missing runtime fails the test loudly: a test that
/// cannot see its runtime must not pass.
fn runtime_binary(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let cargo_bin = std::env::var("HOME").map(|h| format!("{h}/.cargo/bin")).unwrap_or_default();
    for dir in path.split(':').chain(std::iter::once(cargo_bin.as_str())) {
        if dir.is_empty() {
            continue;
        }
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    let how = if name == "youki" { "cargo install youki --features v1".to_string() } else { format!("apt-get install {name}") };
    panic!("{name} not found on PATH ({path}) or in ~/.cargo/bin: install it with `{how}` (scripts/test.sh does)")
}

/// `--annotation io.containerd.mica.v2.delegate=<d>`, after making sure the runtime exists.
fn pick(delegate: &str) -> [String; 2] {
    runtime_binary(delegate);
    ["--annotation".into(), format!("{DELEGATE_ANNOTATION}={delegate}")]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn show(r: &Run) -> String {
    format!("exit {}\n--- stdout\n{}\n--- stderr\n{}", r.code, r.stdout, r.stderr)
}

/// Runs `<delegate> --root <its root> ARGS` (bounded).
fn delegate_cli(env: &Env, delegate: &str, args: &[&str]) -> Run {
    let out = Command::new("timeout")
        .args(["-s", "KILL", "20"])
        .arg(runtime_binary(delegate))
        .arg("--root")
        .arg(env.delegate_root(delegate))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the delegate CLI");
    out.into()
}

/// Proves that `delegate`, and no other, holds the running container `id`: its
/// state directory is under that delegate's root (crun keeps `status`, runc and
/// youki `state.json`), the delegate's own `state` and `list` know the id with the
/// pid containerd reports, and the other delegates' roots know nothing of it.
fn assert_held_by(env: &Env, id: &str, delegate: &str) {
    let pid = env.task_pid(id).unwrap_or_else(|| panic!("task {id} not in `ctr task ls`"));
    for d in DELEGATES {
        let dir = env.delegate_root(d).join(id);
        if d != delegate {
            assert!(!dir.exists(), "{id} should be held by {delegate} only, but {} exists", dir.display());
            continue;
        }
        assert!(dir.is_dir(), "{delegate} should hold {id}: {} is missing", dir.display());
        let marker = if d == "crun" { "status" } else { "state.json" };
        assert!(dir.join(marker).is_file(), "{delegate}'s state dir {} lacks {marker}", dir.display());

        let st = delegate_cli(env, d, &["state", id]);
        assert_eq!(st.code, 0, "{d} state {id}: {}", show(&st));
        let v: serde_json::Value =
            serde_json::from_str(&st.stdout).unwrap_or_else(|e| panic!("{d} state output is not JSON ({e}): {}", st.stdout));
        assert_eq!(v["id"].as_str(), Some(id), "{d} state: {v}");
        assert_eq!(v["pid"].as_u64(), Some(pid as u64), "{d} state reports another pid than containerd: {v}");
        assert_eq!(v["status"].as_str().map(str::to_ascii_lowercase).as_deref(), Some("running"), "{d} state: {v}");

        let list = delegate_cli(env, d, &["list"]);
        assert_eq!(list.code, 0, "{d} list: {}", show(&list));
        assert!(
            list.stdout.lines().any(|l| l.split_whitespace().next() == Some(id)),
            "{d} list does not show {id}:\n{}",
            list.stdout
        );
    }
}

/// Pid of the shim serving container `id` for our containerd, found by its
/// command line (`-id ID ... -address SOCK`).
fn shim_pid(env: &Env, id: &str) -> Option<i32> {
    let dir = std::fs::read_dir("/proc").ok()?;
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()).find(|pid| {
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
        let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
        let has = |flag: &str, value: &str| args.windows(2).any(|w| w[0] == flag.as_bytes() && w[1] == value.as_bytes());
        args.first().is_some_and(|a| a.ends_with(b"containerd-shim-mica-v2")) && has("-id", id) && has("-address", &env.address)
    })
}

/// A detached container removed at the end of the test. When the test failed
/// and the container's shim no longer answers, the shim is killed first (it was
/// started for this container only): containerd then cleans up through
/// `shim delete`, and one hung shim does not slow every later `ctr task ls`
/// (containerd asks each shim for its state) in the shared namespace.
struct Held<'a> {
    guard: Guard<'a>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let (env, id) = (self.guard.env, self.guard.id.as_str());
        let r = env.ctr_timeout(5, &["task", "ps", id]);
        if r.code != -1 && r.code != 124 {
            return;
        }
        if let Some(pid) = shim_pid(env, id) {
            eprintln!("the shim of {id} (pid {pid}) does not answer; killing it");
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            wait_until(Duration::from_secs(5), || !Path::new(&format!("/proc/{pid}")).exists());
        }
    }
}

fn detached<'a>(env: &'a Env, id: &str, extra: &[&str], cmd: &[&str]) -> Held<'a> {
    Held { guard: env.run_detached(id, extra, cmd) }
}

/// The container's v1 cgroup directory for `controller`, after checking that
/// `pid` really is in `/<namespace>/<id>` (ctr's default cgroups path).
fn v1_cgroup(env: &Env, id: &str, pid: u32, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let want = format!("/{}/{id}", env.namespace);
    let line = text
        .lines()
        .find(|l| l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == controller)))
        .unwrap_or_else(|| panic!("no v1 {controller} controller in /proc/{pid}/cgroup:\n{text}"));
    assert_eq!(line.splitn(3, ':').nth(2), Some(want.as_str()), "pid {pid} of {id} is not in cgroup {want}: {line}");
    let dir = Path::new("/sys/fs/cgroup").join(controller).join(want.trim_start_matches('/'));
    assert!(dir.is_dir(), "{} missing", dir.display());
    dir
}

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())).trim().to_string()
}

fn read_u64(p: &Path) -> u64 {
    let s = read_trim(p);
    s.parse().unwrap_or_else(|_| panic!("{} holds no number: {s:?}", p.display()))
}

/// A file inside the container's root, seen from the host through its init pid.
fn in_container(pid: u32, path: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root{path}"))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs `ctr ARGS` on a real pseudo-terminal (`script`), after the shell
/// commands in `setup` (e.g. `stty cols 100 rows 30`) ran on that terminal.
/// Exit code is ctr's (`script -e`); output is the terminal's (CR LF line ends).
fn ctr_on_pty(env: &Env, setup: &str, args: &[&str]) -> Run {
    let mut cmd = format!("timeout -s KILL 30 ctr --address {} -n {}", shell_quote(&env.address), shell_quote(&env.namespace));
    for a in args {
        cmd.push(' ');
        cmd.push_str(&shell_quote(a));
    }
    let full = if setup.is_empty() { cmd } else { format!("{setup}; {cmd}") };
    Command::new("timeout")
        .args(["-s", "KILL", "40", "script", "-qec", &full, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script")
        .into()
}

/// The `/dev/pts/N` a `tty` command printed, if any.
fn pts_name(out: &str) -> Option<String> {
    let at = out.find("/dev/pts/")?;
    let digits: String = out[at + 9..].chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| format!("/dev/pts/{digits}"))
}

/// A container command that prints `size:ROWS COLS` once the console has a size
/// (ctr resizes right after start, so the very first `stty size` may see 0 0).
const PRINT_SIZE: &str = "i=0; while :; do s=$(stty size 2>/dev/null); case \"$s\" in ''|'0 0') ;; *) break ;; esac; \
                          i=$((i+1)); [ $i -ge 100 ] && break; sleep 0.1; done; echo \"size:$s\"";

/// `ctr task ps ID` as (pid, info) rows.
fn task_ps(env: &Env, id: &str) -> Vec<(u32, String)> {
    let r = env.ctr(&["task", "ps", id]);
    assert_eq!(r.code, 0, "ctr task ps {id}: {}", show(&r));
    r.stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (pid, info) = l.trim().split_once(char::is_whitespace).unwrap_or((l.trim(), ""));
            Some((pid.parse().ok()?, info.trim().to_string()))
        })
        .collect()
}

/// containerd's event stream (`ctr events`), collected by a thread. Started
/// before the action it observes; synchronised so that no event after `start`
/// returns can be missed.
struct Events {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Events {
    fn start(env: &Env) -> Events {
        // `timeout` bounds ctr even if this test process dies; on drop it is sent
        // TERM, which it forwards to ctr.
        let mut child = Command::new("timeout")
            .args(["-s", "KILL", "300", "ctr", "--address", &env.address, "events"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ctr events");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            let mut out = BufReader::new(out);
            let mut buf = Vec::new();
            // bytes, not `lines()`: one line that is not UTF-8 must not end the stream
            while out.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                sink.lock().unwrap().push(line);
                buf.clear();
            }
        });
        let ev = Events { child, lines };
        // An event of our own making: once one shows, the subscription is live.
        // ctr subscribes some time after it starts, so keep making them until one arrives.
        let start = Instant::now();
        let mut tokens = Vec::new();
        loop {
            let token = unique_id("sync");
            let r = env.ctr(&["namespaces", "label", &env.namespace, &format!("micrun.test/events-sync={token}")]);
            assert_eq!(r.code, 0, "ctr namespaces label: {}", show(&r));
            tokens.push(token);
            let seen = || ev.lines.lock().unwrap().iter().any(|l| tokens.iter().any(|t| l.contains(t.as_str())));
            if wait_until(Duration::from_millis(500), seen) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "ctr events showed none of our /namespaces/update events within 20 s: {:?}",
                ev.lines.lock().unwrap()
            );
        }
        ev
    }

    /// (index, topic, payload) of the events about container `id`, in order.
    fn about(&self, id: &str) -> Vec<(usize, String, serde_json::Value)> {
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let brace = l.find('{')?;
                let topic = l[..brace].split_whitespace().last()?.to_string();
                let v: serde_json::Value = serde_json::from_str(&l[brace..]).ok()?;
                (v["container_id"].as_str() == Some(id)).then_some((i, topic, v))
            })
            .collect()
    }

    fn wait_for(&self, id: &str, topic: &str, bound: Duration) -> Option<serde_json::Value> {
        let mut found = None;
        wait_until(bound, || {
            found = self.about(id).into_iter().find(|(_, t, _)| t == topic).map(|(_, _, v)| v);
            found.is_some()
        });
        found
    }

    fn dump(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

#[test]
fn exit_code_propagates_crun() {
    check_exit_code("crun");
}

#[test]
fn exit_code_propagates_runc() {
    check_exit_code("runc");
}

#[test]
fn exit_code_propagates_youki() {
    check_exit_code("youki");
}

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

#[test]
fn sigterm_reaches_trap_exit_7_crun() {
    check_sigterm_trapped("crun");
}

#[test]
fn sigterm_reaches_trap_exit_7_runc() {
    check_sigterm_trapped("runc");
}

#[test]
fn sigterm_reaches_trap_exit_7_youki() {
    check_sigterm_trapped("youki");
}

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

#[test]
fn sigkill_gives_exit_137_crun() {
    check_sigkill("crun");
}

#[test]
fn sigkill_gives_exit_137_runc() {
    check_sigkill("runc");
}

#[test]
fn sigkill_gives_exit_137_youki() {
    check_sigkill("youki");
}

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

#[test]
fn exec_without_tty_output_and_exit_code_crun() {
    check_exec_without_tty("crun");
}

#[test]
fn exec_without_tty_output_and_exit_code_runc() {
    check_exec_without_tty("runc");
}

#[test]
fn exec_without_tty_output_and_exit_code_youki() {
    check_exec_without_tty("youki");
}

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

#[test]
fn exec_that_exits_at_once_is_reported_crun() {
    check_exec_exits_at_once("crun");
}

#[test]
fn exec_that_exits_at_once_is_reported_runc() {
    check_exec_exits_at_once("runc");
}

#[test]
fn exec_that_exits_at_once_is_reported_youki() {
    check_exec_exits_at_once("youki");
}

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

#[test]
fn exec_with_tty_gets_a_pty_crun() {
    check_exec_with_tty("crun");
}

#[test]
fn exec_with_tty_gets_a_pty_runc() {
    check_exec_with_tty("runc");
}

#[test]
fn exec_with_tty_gets_a_pty_youki() {
    check_exec_with_tty("youki");
}

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

#[test]
fn run_tty_resize_reaches_container_crun() {
    check_run_tty_resize("crun");
}

#[test]
fn run_tty_resize_reaches_container_runc() {
    check_run_tty_resize("runc");
}

#[test]
fn run_tty_resize_reaches_container_youki() {
    check_run_tty_resize("youki");
}

// --------------------------------------------------------------------------
// 6. ps

#[test]
fn task_ps_lists_init_and_exec_pids() {
    let env = env();
    let id = unique_id("ps");
    let _g = detached(&env, &id, &[], &["sleep", "1000"]);
    let init = env.task_pid(&id).expect("task pid");
    let ps = task_ps(&env, &id);
    assert_eq!(ps.iter().map(|p| p.0).collect::<Vec<_>>(), vec![init], "ps of a lone `sleep`: {ps:?}");

    let r = env.ctr(&["task", "exec", "-d", "--exec-id", "e4", &id, "sleep", "500"]);
    assert_eq!(r.code, 0, "exec -d: {}", show(&r));
    let mut ps = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            ps = task_ps(&env, &id);
            ps.len() == 2
        }),
        "ps should list init and the exec: {ps:?}"
    );
    assert!(ps.iter().any(|p| p.0 == init), "init pid {init} missing from ps: {ps:?}");
    let (exec_pid, info) = ps.iter().find(|p| p.0 != init).cloned().unwrap();
    let cmdline = std::fs::read(format!("/proc/{exec_pid}/cmdline")).unwrap_or_default();
    assert_eq!(cmdline, b"sleep\0500\0", "pid {exec_pid} from ps is not the exec's `sleep 500`");
    assert!(info.contains("e4"), "ps should name the exec id of pid {exec_pid}: {info:?}");

    let k = env.ctr(&["task", "kill", "-s", "SIGKILL", "--exec-id", "e4", &id]);
    assert_eq!(k.code, 0, "kill the exec: {}", show(&k));
    assert!(
        wait_until(Duration::from_secs(10), || {
            ps = task_ps(&env, &id);
            ps.iter().map(|p| p.0).collect::<Vec<_>>() == vec![init]
        }),
        "after the exec was killed ps should list init only: {ps:?}"
    );
}

// --------------------------------------------------------------------------
// 7. pause / resume

/// The counter the container writes to /tmp/n (replaced by rename, so never half written).
fn counter(pid: u32) -> Option<u64> {
    std::fs::read_to_string(in_container(pid, "/tmp/n")).ok()?.trim().parse().ok()
}

fn check_pause_resume(delegate: &str) {
    let env = env();
    let a = pick(delegate);
    let id = unique_id(&format!("pause-{delegate}"));
    let _g = detached(
        &env,
        &id,
        &strs(&a),
        &["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/n.new; mv /tmp/n.new /tmp/n; sleep 0.05; done"],
    );
    let pid = env.task_pid(&id).expect("task pid");
    let freezer = v1_cgroup(&env, &id, pid, "freezer").join("freezer.state");
    assert!(wait_until(Duration::from_secs(15), || counter(pid).is_some_and(|n| n >= 2)), "the counter never ran");
    assert_eq!(read_trim(&freezer), "THAWED");

    let r = env.ctr(&["task", "pause", &id]);
    assert_eq!(r.code, 0, "pause: {}", show(&r));
    assert_eq!(env.task_status(&id).as_deref(), Some("PAUSED"));
    assert!(wait_until(Duration::from_secs(10), || read_trim(&freezer) == "FROZEN"), "freezer.state is {}", read_trim(&freezer));
    let mut before = None;
    assert!(wait_until(Duration::from_secs(5), || {
        before = counter(pid);
        before.is_some()
    }));
    // frozen means no progress at all: a fixed wait is the point here
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(counter(pid), before, "the counter moved while the container was paused");
    assert_eq!(env.task_status(&id).as_deref(), Some("PAUSED"));

    let r = env.ctr(&["task", "resume", &id]);
    assert_eq!(r.code, 0, "resume: {}", show(&r));
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
    assert_eq!(read_trim(&freezer), "THAWED");
    let before = before.unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || counter(pid).is_some_and(|n| n > before + 2)),
        "the counter did not move after resume (stuck at {:?})",
        counter(pid)
    );
}

#[test]
fn pause_freezes_and_resume_thaws_crun() {
    check_pause_resume("crun");
}

#[test]
fn pause_freezes_and_resume_thaws_runc() {
    check_pause_resume("runc");
}

#[test]
fn pause_freezes_and_resume_thaws_youki() {
    check_pause_resume("youki");
}

// --------------------------------------------------------------------------
// 8. metrics

#[test]
fn metrics_report_the_containers_cgroup() {
    let env = env();
    let id = unique_id("metrics");
    let limit: u64 = 128 << 20;
    let _g = env.run_detached(
        &id,
        &["--memory-limit", &limit.to_string()],
        &["sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; touch /tmp/done; sleep 1000 & sleep 1000 & wait"],
    );
    let pid = env.task_pid(&id).expect("task pid");
    let mem = v1_cgroup(&env, &id, pid, "memory");
    let cpu = v1_cgroup(&env, &id, pid, "cpuacct");
    let pids = v1_cgroup(&env, &id, pid, "pids");
    assert!(
        wait_until(Duration::from_secs(120), || in_container(pid, "/tmp/done").exists()),
        "the CPU burner did not finish within 120 s"
    );

    // sh and its two background sleeps
    assert!(
        wait_until(Duration::from_secs(10), || read_u64(&pids.join("pids.current")) == 3),
        "pids.current of the container's cgroup is {}, expected 3",
        read_u64(&pids.join("pids.current"))
    );
    let pids_before = read_u64(&pids.join("pids.current"));
    let mem_before = read_u64(&mem.join("memory.usage_in_bytes"));
    let cpu_before = read_u64(&cpu.join("cpuacct.usage"));
    let r = env.ctr(&["task", "metrics", "--format", "json", &id]);
    let mem_after = read_u64(&mem.join("memory.usage_in_bytes"));
    let cpu_after = read_u64(&cpu.join("cpuacct.usage"));
    let pids_after = read_u64(&pids.join("pids.current"));
    assert_eq!(r.code, 0, "ctr task metrics: {}", show(&r));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("metrics not JSON ({e}): {}", r.stdout));

    let usage = v["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
    assert!(usage > 0, "memory usage is 0: {v}");
    let (lo, hi) = (mem_before.min(mem_after), mem_before.max(mem_after));
    assert!(
        usage * 4 >= lo * 3 && usage * 4 <= hi * 5,
        "metrics memory usage {usage} is not the cgroup's memory.usage_in_bytes ({mem_before}..{mem_after})"
    );
    assert_eq!(v["memory"]["usage"]["limit"].as_u64(), Some(limit), "memory limit in metrics: {v}");

    let total = v["cpu"]["usage"]["total"].as_u64().unwrap_or(0);
    assert!(total >= 20_000_000, "200000 shell iterations should use at least 20 ms of CPU, metrics say {total} ns: {v}");
    assert!(
        cpu_before <= total && total <= cpu_after,
        "metrics cpu total {total} is not the cgroup's cpuacct.usage ({cpu_before}..{cpu_after})"
    );

    let current = v["pids"]["current"].as_u64().unwrap_or(0);
    assert_eq!(current, 3, "pids.current in metrics (sh + 2 sleeps): {v}");
    assert!(
        pids_before.min(pids_after) <= current && current <= pids_before.max(pids_after),
        "metrics pids.current {current} is not the cgroup's pids.current ({pids_before}..{pids_after})"
    );
}

// --------------------------------------------------------------------------
// 9. update

fn update(env: &Env, id: &str, resources: &str) -> Run {
    Command::new("timeout")
        .args(["-s", "KILL", "60", "python3", "tests/tools/update_task.py", &env.address, &env.namespace, id, resources])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .expect("run tests/tools/update_task.py")
        .into()
}

fn check_update_memory(delegate: &str) {
    let env = env();
    let a = pick(delegate);
    let id = unique_id(&format!("update-{delegate}"));
    let _g = detached(&env, &id, &strs(&a), &["sleep", "1000"]);
    let pid = env.task_pid(&id).expect("task pid");
    let limit_file = v1_cgroup(&env, &id, pid, "memory").join("memory.limit_in_bytes");
    let before = read_u64(&limit_file);
    for limit in [67108864u64, 33554432] {
        assert_ne!(before, limit);
        let r = update(&env, &id, &format!("{{\"memory\":{{\"limit\":{limit}}}}}"));
        assert_eq!(r.code, 0, "Tasks.Update memory.limit={limit} via {delegate}: {}", show(&r));
        assert_eq!(read_u64(&limit_file), limit, "{} after update", limit_file.display());
    }
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
}

#[test]
fn update_sets_memory_limit_crun() {
    check_update_memory("crun");
}

#[test]
fn update_sets_memory_limit_runc() {
    check_update_memory("runc");
}

#[test]
fn update_sets_memory_limit_youki() {
    check_update_memory("youki");
}

// --------------------------------------------------------------------------
// 10. OOM

fn check_oom(delegate: &str) {
    let env = env();
    let a = pick(delegate);
    let id = unique_id(&format!("oom-{delegate}"));
    let events = Events::start(&env);
    let mut extra = vec!["--memory-limit", "16777216"];
    extra.extend(strs(&a));
    let r = env.run_rm(&id, &extra, &["sh", "-c", "x=a; while :; do x=$x$x; done"]);
    assert_eq!(r.code, 137, "a container over its memory limit should be OOM-killed: {}", show(&r));
    assert!(
        events.wait_for(&id, "/tasks/exit", Duration::from_secs(20)).is_some(),
        "no /tasks/exit for {id}; events:\n{}",
        events.dump()
    );
    let seen = events.about(&id);
    let at = |topic: &str| seen.iter().find(|(_, t, _)| t == topic).map(|(i, _, v)| (*i, v.clone()));
    let (oom_at, _) = at("/tasks/oom").unwrap_or_else(|| panic!("no /tasks/oom for {id}; events:\n{}", events.dump()));
    let (exit_at, exit) = at("/tasks/exit").unwrap();
    assert!(oom_at < exit_at, "/tasks/oom must come before /tasks/exit; events:\n{}", events.dump());
    assert_eq!(exit["exit_status"].as_i64(), Some(137), "{exit}");
}

#[test]
fn oom_event_precedes_exit_crun() {
    check_oom("crun");
}

#[test]
fn oom_event_precedes_exit_runc() {
    check_oom("runc");
}

#[test]
fn oom_event_precedes_exit_youki() {
    check_oom("youki");
}

// --------------------------------------------------------------------------
// 11. stdin

#[test]
fn stdin_lines_reach_the_container() {
    let env = env();
    let id = unique_id("stdin");
    // ctr never delivers EOF to the container (see TESTING.md), so the container
    // reads exactly two lines and does not wait for the end of its input.
    let mut child = Command::new("timeout")
        .args(["-s", "KILL", "30", "ctr", "--address", &env.address, "-n", &env.namespace])
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

//! Acceptance of the RTOS route with the demo firmware (examples/demo-firmware)
//! packed by `micrun image build`, through a real containerd against `micrun sim`:
//! the boot banner reaches stdout, typed `help` is answered on a tty, `halt 7`
//! ends the task with 7 and a /tasks/exit event while `ctr task ls` goes from
//! RUNNING to STOPPED. Also: firmware symlinks that leave the rootfs are refused
//! at Create and leave nothing behind.
//!
//! Needs make and a C compiler with static libc for the demo firmware.

mod common;
#[path = "common/mica.rs"]
mod mica_common;

use common::firmware::demo_image;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::pty::ctr_pty_command;
use common::{unique_id, wait_until, Env};
use mica_common::{assert_nothing_left, ctr_run, wait_child, Sim};

const BANNER: &str = "*** Booting micrun demo RTOS v1 (native_sim) ***";
const PROMPT: &str = "demo:~$ ";
/// A line of the demo's `help` text (not something a typed command echoes).
const HELP_LINE: &str = "halt [N]   halt the RTOS with exit code N";

fn scratch() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mica-demo");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A file to collect a child's output in, readable while the child runs.
struct Capture(tempfile::NamedTempFile);

impl Capture {
    fn new() -> Capture {
        Capture(tempfile::NamedTempFile::new_in(scratch()).unwrap())
    }
    fn stdio(&self) -> Stdio {
        Stdio::from(self.0.reopen().unwrap())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.0.path()).unwrap_or_default()).into_owned()
    }
    fn wait_for(&self, needle: &str, bound: Duration) -> bool {
        wait_until(bound, || self.text().contains(needle))
    }
}

/// `ctr run [flags] --runtime mica ... DEMO_IMAGE ID` with piped stdin and captured stdout.
fn spawn_ctr_run(env: &Env, sim: &Sim, flags: &[&str], image: &str, id: &str, out: &Capture) -> Child {
    Command::new("ctr")
        .args(["--address", &env.address, "-n", &env.namespace])
        .args(sim.run_args(flags, &[], image, id))
        .stdin(Stdio::piped())
        .stdout(out.stdio())
        .stderr(out.stdio())
        .spawn()
        .unwrap()
}

#[test]
fn demo_banner_reaches_stdout_and_kill_ends_with_143() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = demo_image(&env);
    let id = unique_id("demo-banner");
    let out = Capture::new();
    let mut ctr = spawn_ctr_run(&env, &sim, &["--rm"], &image, &id, &out);
    assert!(out.wait_for(PROMPT, Duration::from_secs(20)), "no prompt: {:?}", out.text());
    assert!(out.text().starts_with(BANNER), "the banner is not the first output: {:?}", out.text());
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
    assert!(sim.has_client(&id));

    assert_eq!(env.ctr(&["task", "kill", &id]).code, 0);
    assert_eq!(wait_child(&mut ctr, Duration::from_secs(20)), Some(143), "ctr run exit code after SIGTERM: {}", out.text());
    assert_nothing_left(&env, &sim, &id);
}

#[test]
fn demo_answers_typed_help_on_a_tty() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = demo_image(&env);
    let id = unique_id("demo-tty");
    // `ctr run -t` needs a terminal: script(1) gives it one; we type into script's stdin.
    let args = sim.run_args(&["-t", "--rm"], &[], &image, &id);
    let out = Capture::new();
    let mut script = ctr_pty_command(&env, "", &args, None)
        .stdin(Stdio::piped())
        .stdout(out.stdio())
        .spawn()
        .unwrap();
    let mut stdin = script.stdin.take().unwrap();
    assert!(out.wait_for(PROMPT, Duration::from_secs(20)), "no prompt: {:?}", out.text());
    assert!(out.text().contains(BANNER), "{:?}", out.text());
    stdin.write_all(b"help\r").unwrap();
    stdin.flush().unwrap();
    assert!(out.wait_for(HELP_LINE, Duration::from_secs(10)), "help not answered: {:?}", out.text());

    assert_eq!(env.ctr(&["task", "kill", &id]).code, 0);
    let status = wait_child(&mut script, Duration::from_secs(20));
    drop(stdin);
    assert_eq!(status, Some(143), "ctr run -t exit code after SIGTERM: {:?}", out.text());
    assert_nothing_left(&env, &sim, &id);
}

/// `ctr events` for the test namespace, collected until `finish`.
struct Events(Child);

impl Events {
    fn start(env: &Env) -> Events {
        let c = Command::new("ctr")
            .args(["--address", &env.address, "-n", &env.namespace, "events"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        Events(c)
    }
    fn finish(mut self) -> String {
        let _ = self.0.kill();
        let mut text = String::new();
        self.0.stdout.take().unwrap().read_to_string(&mut text).unwrap();
        let _ = self.0.wait();
        text
    }
}

fn exit_event<'a>(events: &'a str, id: &str) -> Option<&'a str> {
    events.lines().find(|l| l.contains("/tasks/exit") && l.contains(&format!("\"{id}\"")))
}

#[test]
fn demo_halt_7_ends_ctr_run_with_7_and_an_exit_event() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = demo_image(&env);
    let id = unique_id("demo-halt");
    let events = Events::start(&env);
    let out = Capture::new();
    let mut ctr = spawn_ctr_run(&env, &sim, &["--rm"], &image, &id, &out);
    assert!(out.wait_for(PROMPT, Duration::from_secs(20)), "no prompt: {:?}", out.text());
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
    let mut stdin = ctr.stdin.take().unwrap();
    stdin.write_all(b"halt 7\n").unwrap();
    stdin.flush().unwrap();
    let status = wait_child(&mut ctr, Duration::from_secs(20));
    drop(stdin);
    assert!(out.text().contains("halting with code 7"), "{:?}", out.text());
    assert_eq!(status, Some(7), "ctr run exit code after `halt 7`: {:?}", out.text());
    let text = events.finish();
    let exit = exit_event(&text, &id).unwrap_or_else(|| panic!("no /tasks/exit event for {id}: {text}"));
    assert!(exit.contains("\"exit_status\":7"), "{exit}");
    assert_nothing_left(&env, &sim, &id);
}

/// The stdin fifo `ctr run -d --fifo-dir DIR` left for task `id` (ctr makes a
/// random subdirectory holding `<id>-stdin`).
fn stdin_fifo(dir: &Path, id: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()).map(|e| e.path().join(format!("{id}-stdin"))).find(|p| p.exists())
}

#[test]
fn demo_halt_shows_running_then_stopped_with_its_code() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = demo_image(&env);
    let id = unique_id("demo-stopped");
    let events = Events::start(&env);
    // Detached, so the stopped task stays in `ctr task ls` until we delete it.
    // Its stdin is a fifo ctr leaves in --fifo-dir; ctr's own stdin is a pipe we
    // hold open, so ctr never sees end of input and never closes the task's stdin.
    let fifos = tempfile::Builder::new().prefix("fifo").tempdir_in(scratch()).unwrap();
    let out = Capture::new();
    let mut ctr = spawn_ctr_run(&env, &sim, &["-d", "--fifo-dir", fifos.path().to_str().unwrap()], &image, &id, &out);
    let held = ctr.stdin.take();
    assert_eq!(wait_child(&mut ctr, Duration::from_secs(30)), Some(0), "ctr run -d: {}", out.text());
    drop(held);
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
    let fifo = stdin_fifo(fifos.path(), &id).expect("ctr left no stdin fifo");
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(b"halt 7\n").unwrap();
    drop(w);
    assert!(
        wait_until(Duration::from_secs(15), || env.task_status(&id).as_deref() == Some("STOPPED")),
        "still {:?} after `halt 7`",
        env.task_status(&id)
    );
    // Stopped but not deleted: the micad client is gone only at delete (`rm`).
    let r = env.ctr(&["task", "rm", &id]);
    assert_eq!(r.code, 0, "task rm: {}", r.stderr);
    env.ctr(&["container", "rm", &id]);
    let text = events.finish();
    let exit = exit_event(&text, &id).unwrap_or_else(|| panic!("no /tasks/exit event for {id}: {text}"));
    assert!(exit.contains("\"exit_status\":7"), "{exit}");
    assert_nothing_left(&env, &sim, &id);
}

/// An image whose firmware symlinks would leave the rootfs on the host:
/// /firmware.elf is `../../../../etc/passwd`, /boot/escape.elf is
/// `../../../etc/passwd`, /abs.elf is `/etc/passwd`. Resolved as the container
/// sees them, all three name the image's /etc/passwd, which it lacks.
/// `micrun image build` packs regular files only, so this is packed with
/// scripts/lib.sh's image writer.
fn escaping_image(env: &Env) -> String {
    let reference = "localhost/micrun-test/rtos-escape:1".to_string();
    if env.ctr(&["images", "ls", "-q"]).stdout.lines().any(|l| l == reference) {
        return reference;
    }
    let tar = scratch().join(format!("rtos-escape-{}.tar", std::process::id()));
    let script = r#". scripts/lib.sh && w=$(mktemp -d /tmp/micrun-img.XXXXXX) && mkdir -p "$w/rootfs/boot" &&
        ln -s ../../../../etc/passwd "$w/rootfs/firmware.elf" &&
        ln -s ../../../etc/passwd "$w/rootfs/boot/escape.elf" &&
        ln -s /etc/passwd "$w/rootfs/abs.elf" &&
        micrun__pack_image "$w/rootfs" "$w" "$1" "$2" "micrun test: escaping firmware symlinks" '"/firmware.elf"' &&
        rm -rf "$w""#;
    let ok = Command::new("bash")
        .args(["-c", script, "build", tar.to_str().unwrap(), &reference])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(ok.success(), "build the escaping image");
    let r = env.ctr(&["images", "import", tar.to_str().unwrap()]);
    assert_eq!(r.code, 0, "import: {}", r.stderr);
    let _ = std::fs::remove_file(&tar);
    reference
}

#[test]
fn firmware_symlinks_out_of_the_rootfs_fail_create_and_leave_nothing() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = escaping_image(&env);
    let cases: [(&[&str], &str); 3] = [
        (&[], "does not exist in the image"),
        (&["--annotation", "org.openeuler.micran.container.firmware_path=/boot/escape.elf"], "does not exist in the image"),
        (&["--annotation", "org.openeuler.micran.container.firmware_path=/abs.elf"], "does not exist in the image"),
    ];
    for (flags, needle) in cases {
        let id = unique_id("rtos-escape");
        let r = ctr_run(&env, &sim, flags, &image, &id);
        assert_ne!(r.code, 0, "create succeeded with {flags:?}");
        assert!(r.stderr.contains(needle), "expected {needle:?} for {flags:?} in: {}", r.stderr);
        assert!(!sim.log().contains(&id), "the simulator heard of {id}: {}", sim.log());
        assert!(std::fs::read_dir(sim.socket_dir()).unwrap().all(|e| e.unwrap().file_name() == "mica-create.socket"), "a micad client socket exists");
        assert_nothing_left(&env, &sim, &id);
    }
}

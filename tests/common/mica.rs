//! Helpers for the RTOS (mica) tests: a `micrun sim` per test, `ctr run`
//! arguments that point the shim at it, and the "nothing left" check.
//! Not part of common/mod.rs: a test file pulls it in with
//! `#[path = "common/mica.rs"] mod mica_common;` next to `mod common;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::common::{wait_until, Env, Run, RUNTIME};

pub const OS_ANNOTATION: &str = "org.openeuler.micran.container.os=zephyr";

/// A running simulator with its own socket and tty dirs; killed on drop.
pub struct Sim {
    child: Child,
    dir: tempfile::TempDir,
    pub config: PathBuf,
    /// `micrun sim` flags beyond the dirs and pedestal (fault knobs).
    args: Vec<String>,
}

impl Sim {
    pub fn start(env: &Env, pedestal: &str) -> Sim {
        Self::start_polling_every(env, pedestal, 100)
    }

    /// A simulator whose shim config polls micad's `status` every `status_interval_ms`.
    pub fn start_polling_every(env: &Env, pedestal: &str, status_interval_ms: u64) -> Sim {
        Self::start_with(env, pedestal, &[], &format!("status_interval_ms = {status_interval_ms}\n"))
    }

    /// A simulator run with extra `micrun sim` flags, and a shim config with
    /// extra `[mica]` lines.
    pub fn start_with(env: &Env, pedestal: &str, args: &[&str], mica_config: &str) -> Sim {
        let dir = tempfile::Builder::new().prefix("mrsim").tempdir_in("/tmp").unwrap();
        let (sock, tty) = (dir.path().join("sock"), dir.path().join("tty"));
        std::fs::create_dir_all(&tty).unwrap();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let child = Self::spawn(dir.path(), pedestal, &args);
        let config = env.config_file(
            &format!("sim-{}", child.id()),
            &format!("[mica]\nsocket_dir = {sock:?}\ntty_dir = {tty:?}\n{mica_config}"),
        );
        Sim { child, dir, config, args }
    }

    /// Like micad going away: it closes every console pty it held.
    pub fn stop(&mut self) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        let _ = self.child.wait();
    }

    /// Like micad restarting: the new simulator wipes the sockets of the old one's clients.
    pub fn restart(&mut self, pedestal: &str) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
        let _ = self.child.wait();
        self.child = Self::spawn(self.dir.path(), pedestal, &self.args);
    }

    /// Like `restart`, the new simulator run with `args` (no fault knobs: `&[]`).
    pub fn restart_with(&mut self, pedestal: &str, args: &[&str]) {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self.restart(pedestal);
    }

    fn spawn(dir: &Path, pedestal: &str, args: &[String]) -> Child {
        let (sock, tty) = (dir.join("sock"), dir.join("tty"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("sim.log")).unwrap();
        let _ = std::fs::remove_file(sock.join("mica-create.socket"));
        let child = Command::new(env!("CARGO_BIN_EXE_micrun"))
            .args(["sim", "--pedestal", pedestal, "--socket-dir"])
            .arg(&sock)
            .arg("--tty-dir")
            .arg(&tty)
            .arg("--pid-file")
            .arg(dir.join("sim.pid"))
            .args(args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start micrun sim");
        assert!(wait_until(Duration::from_secs(10), || sock.join("mica-create.socket").exists()), "simulator did not start");
        child
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sim.log")).unwrap_or_default()
    }

    pub fn has_client(&self, id: &str) -> bool {
        self.socket_dir().join(format!("{id}.socket")).exists()
    }

    /// micad's reply to `status` on client `id`'s socket (one request per
    /// connection; the reply ends when the daemon closes it).
    pub fn status(&self, id: &str) -> String {
        use std::io::{Read, Write};
        let path = self.socket_dir().join(format!("{id}.socket"));
        let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"status").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap_or_else(|e| panic!("status of {id}: {e}"));
        out
    }

    /// `ctr` args `run MODE.. --runtime mica --runtime-config-path .. --annotation os EXTRA.. IMAGE ID`:
    /// an RTOS container on this simulator.
    pub fn run_args<'a>(&'a self, mode: &[&'a str], extra: &[&'a str], image: &'a str, id: &'a str) -> Vec<&'a str> {
        let mut a = vec!["run"];
        a.extend_from_slice(mode);
        a.extend(["--runtime", RUNTIME, "--runtime-config-path", self.config.to_str().unwrap(), "--annotation", OS_ANNOTATION]);
        a.extend_from_slice(extra);
        a.extend([image, id]);
        a
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ctr run --rm` against the simulator, bounded by `ctr`'s usual timeout.
pub fn ctr_run(env: &Env, sim: &Sim, flags: &[&str], image: &str, id: &str) -> Run {
    env.ctr(&sim.run_args(&["--rm"], flags, image, id))
}

/// The child's exit code, or None (and the child killed) after `bound`.
pub fn wait_child(c: &mut Child, bound: Duration) -> Option<i32> {
    let start = std::time::Instant::now();
    while start.elapsed() < bound {
        if let Some(s) = c.try_wait().unwrap() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    None
}

/// No micad client, no work dir (firmware copy, state), no task.
pub fn assert_nothing_left(env: &Env, sim: &Sim, id: &str) {
    assert!(!sim.has_client(id), "micad client {id} left behind");
    assert!(!env.work_dir(id).exists(), "work dir {} left behind", env.work_dir(id).display());
    assert!(env.task_status(id).is_none(), "task {id} left behind");
}

//! Shared harness for the integration tests: they drive a real containerd (started
//! by scripts/test.sh) through `ctr`, with our shim as the runtime.
//!
//! Each test file compiles this module on its own and uses only part of it, so
//! unused items are expected here.
#![allow(dead_code, unused_imports, unused_macros)]

pub mod cgroups;
pub mod containerd;
pub mod delegates;
pub mod events;
pub mod faults;
pub mod firmware;
pub mod leftovers;
pub mod procs;
pub mod pty;
pub mod tasks_api;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const RUNTIME: &str = "io.containerd.mica.v2";
pub const SHIM_NAME: &str = "containerd-shim-mica-v2";
pub const DELEGATE_ANNOTATION: &str = "io.containerd.mica.v2.delegate";
pub const GROUP_ANNOTATION: &str = "io.containerd.mica.v2.group";
/// The delegates every per-runtime test runs against.
pub const DELEGATES: [&str; 3] = ["crun", "runc", "youki"];
/// The shim's default state root (tests do not override it unless they say so).
pub const STATE_ROOT: &str = "/run/micrun";

pub struct Env {
    pub address: String,
    pub namespace: String,
    pub image: String,
    pub state: PathBuf,
    pub shim: PathBuf,
}

/// The private containerd the test script started. Without it the tests fail
/// loudly rather than pass without testing anything.
pub fn env() -> Env {
    let get = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: integration tests need a private containerd; run them with `bash scripts/test.sh`")
        })
    };
    Env {
        address: get("MICRUN_TEST_ADDRESS"),
        namespace: get("MICRUN_TEST_NAMESPACE"),
        image: get("MICRUN_TEST_IMAGE"),
        state: get("MICRUN_TEST_STATE").into(),
        shim: get("MICRUN_SHIM").into(),
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A container id unique to this test run.
pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Exit code and both streams, for assertion messages.
pub fn show(r: &Run) -> String {
    format!("exit {}\n--- stdout\n{}\n--- stderr\n{}", r.code, r.stdout, r.stderr)
}

pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `timeout -s KILL SECS PROGRAM`: the program is killed after `secs` seconds,
/// even if the test process dies. Stdin is /dev/null unless the caller says otherwise.
pub fn bounded(secs: u32, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", &secs.to_string()]).arg(program).stdin(Stdio::null());
    cmd
}

impl Env {
    /// `timeout -s KILL SECS ctr --address A -n NS`, arguments still to add.
    pub fn ctr_command(&self, secs: u32) -> Command {
        let mut cmd = bounded(secs, "ctr");
        cmd.args(["--address", &self.address, "-n", &self.namespace]);
        cmd
    }

    /// `ctr --address A -n NS ARGS...`, killed after `secs` seconds.
    pub fn ctr_timeout(&self, secs: u32, args: &[&str]) -> Run {
        self.ctr_command(secs).args(args).output().expect("run ctr").into()
    }

    pub fn ctr(&self, args: &[&str]) -> Run {
        self.ctr_timeout(30, args)
    }

    /// `ctr run --rm --runtime io.containerd.mica.v2 [extra] IMAGE ID CMD...`
    pub fn run_rm(&self, id: &str, extra: &[&str], cmd: &[&str]) -> Run {
        let mut args = vec!["run", "--rm", "--runtime", RUNTIME];
        args.extend_from_slice(extra);
        args.push(&self.image);
        args.push(id);
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }

    /// Starts a detached container and returns a guard that removes it.
    pub fn run_detached(&self, id: &str, extra: &[&str], cmd: &[&str]) -> Guard<'_> {
        let mut args = vec!["run", "-d", "--runtime", RUNTIME];
        args.extend_from_slice(extra);
        args.push(&self.image);
        args.push(id);
        args.extend_from_slice(cmd);
        let r = self.ctr(&args);
        assert_eq!(r.code, 0, "ctr run -d {id} failed: {}{}", r.stdout, r.stderr);
        Guard { env: self, id: id.to_string() }
    }

    /// The task's status column in `ctr task ls` (RUNNING, STOPPED, PAUSED, ...).
    pub fn task_status(&self, id: &str) -> Option<String> {
        let r = self.ctr(&["task", "ls"]);
        r.stdout.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| f.get(2).unwrap_or(&"").to_string())
        })
    }

    /// The task's pid from `ctr task ls`.
    pub fn task_pid(&self, id: &str) -> Option<u32> {
        let r = self.ctr(&["task", "ls"]);
        r.stdout.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| f.get(1).and_then(|p| p.parse().ok())).flatten()
        })
    }

    /// Removes a container whatever state it is in.
    pub fn remove(&self, id: &str) {
        self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
        wait_until(Duration::from_secs(5), || self.task_status(id).as_deref() != Some("RUNNING"));
        self.ctr(&["task", "rm", "-f", id]);
        self.ctr(&["container", "rm", id]);
    }

    /// Writes a micrun config file for `--runtime-config-path`.
    pub fn config_file(&self, name: &str, toml: &str) -> PathBuf {
        let p = self.state.join(format!("micrun-{name}.toml"));
        std::fs::write(&p, toml).unwrap();
        p
    }

    /// The delegate's `--root` for this namespace.
    pub fn delegate_root(&self, delegate: &str) -> PathBuf {
        Path::new(STATE_ROOT).join(&self.namespace).join("delegates").join(delegate)
    }

    /// Our per-container work directory.
    pub fn work_dir(&self, id: &str) -> PathBuf {
        Path::new(STATE_ROOT).join(&self.namespace).join("containers").join(id)
    }
}

/// Removes its container when dropped, so a failing test leaves nothing behind.
pub struct Guard<'a> {
    pub env: &'a Env,
    pub id: String,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.env.remove(&self.id);
    }
}

/// `ctr task kill -s SIGKILL`, then waits until containerd reports the task stopped.
pub fn kill_and_wait_stopped(env: &Env, id: &str) {
    let k = env.ctr(&["task", "kill", "-s", "SIGKILL", id]);
    assert_eq!(k.code, 0, "ctr task kill {id}: {}", show(&k));
    assert!(
        wait_until(Duration::from_secs(10), || env.task_status(id).as_deref() == Some("STOPPED")),
        "task {id} not STOPPED after SIGKILL: {:?}",
        env.task_status(id)
    );
}

pub fn wait_until(bound: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < bound {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Mount points under `dir` (from /proc/self/mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let d = dir.to_string_lossy();
    text.lines().filter_map(|l| l.split_whitespace().nth(4)).filter(|m| m.starts_with(&*d)).map(String::from).collect()
}

/// containerd's bundle directory for a task in the test namespace.
pub fn bundle_dir(env: &Env, id: &str) -> PathBuf {
    env.state.join("state").join("io.containerd.runtime.v2.task").join(&env.namespace).join(id)
}

/// Each word appears in `text` (an error message names what is wrong and the fix).
pub fn assert_mentions(text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "error text lacks {w:?}: {text}");
    }
}

/// A file inside the container's root, seen from the host through its init pid.
pub fn in_container(pid: u32, path: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root{path}"))
}

/// One `#[test]` per delegate, each calling `check("<delegate>")`:
/// `per_delegate!(check_x: test_crun, test_runc, test_youki);`
macro_rules! per_delegate {
    ($check:ident: $crun:ident, $runc:ident, $youki:ident) => {
        #[test]
        fn $crun() {
            $check("crun");
        }

        #[test]
        fn $runc() {
            $check("runc");
        }

        #[test]
        fn $youki() {
            $check("youki");
        }
    };
}
pub(crate) use per_delegate;

/// The route the shim chose for `id` and why, from the `micrun.json` it keeps in
/// the bundle: ("delegate crun" | "mica", reason).
pub fn route(env: &Env, id: &str) -> (String, String) {
    let path = bundle_dir(env, id).join("micrun.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let d = &v["decision"];
    let kind = d["route"]["kind"].as_str().unwrap_or_default();
    let route = match d["route"]["delegate"].as_str() {
        Some(name) => format!("{kind} {name}"),
        None => kind.to_string(),
    };
    (route, d["reason"].as_str().unwrap_or_default().to_string())
}

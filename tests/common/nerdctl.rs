//! nerdctl 2.x (built by scripts/lib-nerdctl.sh, found through MICRUN_NERDCTL)
//! driving a test containerd with the mica runtime: its own data root (name
//! store, container state dirs, logs) in a temp dir, no network beyond what a
//! test asks for. And a containerd of a test's own whose environment names a
//! micrun config: nerdctl passes no runtime options to a runtime that is not
//! runc's (so no `--runtime-config-path`), which leaves the shim the config
//! in containerd's environment (MICRUN_CONFIG) or /etc/micrun/config.toml.
//! Not part of common/mod.rs: a test file pulls it in with
//! `#[path = "common/nerdctl.rs"] mod nerdctl_common;` next to `mod common;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{bounded, show, wait_until, Env, Run, RUNTIME};

/// The nerdctl binary scripts/test.sh built; without it the test fails loudly.
pub fn nerdctl_binary() -> PathBuf {
    let p = std::env::var("MICRUN_NERDCTL").unwrap_or_else(|_| {
        panic!("MICRUN_NERDCTL is not set: the nerdctl tests need nerdctl 2.x built by scripts/lib-nerdctl.sh; run them with `bash scripts/test.sh nerdctl`")
    });
    assert!(!p.is_empty(), "MICRUN_NERDCTL is empty: scripts/lib-nerdctl.sh could not build nerdctl (its error is in the log of `bash scripts/test.sh`)");
    let p = PathBuf::from(p);
    assert!(p.is_file(), "MICRUN_NERDCTL={} does not exist; run `bash scripts/test.sh nerdctl`, which builds it", p.display());
    p
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// nerdctl against one containerd and namespace, with a data root of its own.
pub struct Nerdctl {
    pub bin: PathBuf,
    pub address: String,
    pub namespace: String,
    data_root: tempfile::TempDir,
}

impl Nerdctl {
    pub fn new(env: &Env) -> Nerdctl {
        let data_root = tempfile::Builder::new().prefix("mrnerdctl").tempdir_in("/tmp").unwrap();
        Nerdctl { bin: nerdctl_binary(), address: env.address.clone(), namespace: env.namespace.clone(), data_root }
    }

    pub fn data_root(&self) -> &Path {
        self.data_root.path()
    }

    /// The global flags every call carries: our containerd and namespace, our
    /// data root, CNI config under it (the hooks lock and create it even with
    /// `--network none`), cgroupfs (containerd's default /<namespace>/<id>).
    pub fn global_args(&self) -> Vec<String> {
        let root = self.data_root.path();
        vec![
            format!("--address={}", self.address),
            format!("--namespace={}", self.namespace),
            format!("--data-root={}", root.display()),
            format!("--cni-netconfpath={}", root.join("net.d").display()),
            "--cni-path=/usr/lib/cni".into(),
            "--cgroup-manager=cgroupfs".into(),
        ]
    }

    /// `timeout -s KILL SECS nerdctl GLOBALS`, arguments still to add. No host
    /// nerdctl.toml applies.
    pub fn command(&self, secs: u32) -> Command {
        let mut cmd = bounded(secs, &self.bin);
        cmd.args(self.global_args()).env("NERDCTL_TOML", self.data_root.path().join("nerdctl.toml"));
        cmd
    }

    pub fn run_timeout(&self, secs: u32, args: &[&str]) -> Run {
        self.command(secs).args(args).output().expect("run nerdctl").into()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_timeout(60, args)
    }

    /// Runs and asserts exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "nerdctl {args:?}: {}", show(&r));
        r.stdout
    }

    /// `nerdctl run MODE.. --runtime io.containerd.mica.v2 --network none EXTRA.. IMAGE CMD..`
    pub fn run_args<'a>(mode: &[&'a str], extra: &[&'a str], image: &'a str, cmd: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["run"];
        a.extend_from_slice(mode);
        a.extend(["--runtime", RUNTIME, "--network", "none"]);
        a.extend_from_slice(extra);
        a.push(image);
        a.extend_from_slice(cmd);
        a
    }

    /// `nerdctl inspect --format FORMAT NAME`, trimmed.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, name]).trim().to_string()
    }

    /// The full id of a container named `name`.
    pub fn id_of(&self, name: &str) -> String {
        let id = self.inspect(name, "{{.ID}}");
        assert_eq!(id.len(), 64, "nerdctl inspect {name}: id {id:?}");
        id
    }

    /// `nerdctl ps [-a]` as (name, status) pairs.
    pub fn ps(&self, all: bool) -> Vec<(String, String)> {
        let mut args = vec!["ps", "--format", "{{.Names}}\t{{.Status}}"];
        if all {
            args.push("-a");
        }
        self.ok(&args)
            .lines()
            .filter_map(|l| l.split_once('\t').map(|(n, s)| (n.to_string(), s.to_string())))
            .collect()
    }

    pub fn ps_status(&self, name: &str, all: bool) -> Option<String> {
        self.ps(all).into_iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// nerdctl's data store for our containerd: DATA_ROOT/<8 hex digits of the
    /// address's sha256>, made by nerdctl's first command.
    pub fn data_store(&self) -> PathBuf {
        let dirs: Vec<PathBuf> = std::fs::read_dir(self.data_root.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.len() == 8 && n.to_string_lossy().bytes().all(|b| b.is_ascii_hexdigit())))
            .collect();
        assert_eq!(dirs.len(), 1, "one data store expected under {}: {dirs:?}", self.data_root.path().display());
        dirs.into_iter().next().unwrap()
    }

    /// The name store's reservation of `name` (a file holding the container id).
    pub fn name_file(&self, name: &str) -> PathBuf {
        self.data_store().join("names").join(&self.namespace).join(name)
    }

    /// The container's state dir (its hook logs, lifecycle state, json log).
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.data_store().join("containers").join(&self.namespace).join(id)
    }

    /// The name is reserved for `id` in nerdctl's name store.
    pub fn assert_name_held(&self, name: &str, id: &str) {
        let f = self.name_file(name);
        let held = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("name store {}: {e}", f.display()));
        assert_eq!(held.trim(), id, "name {name} is reserved for another id");
    }

    /// No reservation of the name, no state dir, nothing in `ps -a`.
    pub fn assert_forgotten(&self, name: &str, id: &str) {
        let f = self.name_file(name);
        assert!(!f.exists(), "name store still reserves {name}: {} holds {:?}", f.display(), std::fs::read_to_string(&f));
        let d = self.state_dir(id);
        assert!(!d.exists(), "state dir {} left behind", d.display());
        assert!(self.ps_status(name, true).is_none(), "nerdctl ps -a still lists {name}: {:?}", self.ps(true));
    }

    /// `script` running `nerdctl ARGS` on a fresh pseudo-terminal, nerdctl
    /// killed after `secs`. nerdctl must stay in the terminal's foreground
    /// process group (its raw mode would stop it with SIGTTOU otherwise): see
    /// common/pty.rs.
    pub fn pty_command(&self, args: &[&str], secs: u32) -> Command {
        let mut line = format!("timeout --foreground -s KILL {secs} {}", shell_quote(&self.bin.to_string_lossy()));
        for a in self.global_args().iter().map(String::as_str).chain(args.iter().copied()) {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        let mut cmd = bounded(secs + 10, "script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env("SHELL", "/bin/sh")
            .env("NERDCTL_TOML", self.data_root.path().join("nerdctl.toml"));
        cmd
    }

    /// `nerdctl ARGS` on a pseudo-terminal, to its end. Exit code is
    /// nerdctl's; output is the terminal's (CR LF).
    pub fn on_pty(&self, args: &[&str], secs: u32) -> Run {
        self.pty_command(args, secs).output().expect("run script").into()
    }

    /// `nerdctl ARGS` on a pseudo-terminal, running: type into `stdin`, read
    /// the terminal's output with `output.text()`.
    pub fn spawn_on_pty(&self, args: &[&str], secs: u32) -> PtySession {
        let mut child = self.pty_command(args, secs).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("run script");
        let stdin = child.stdin.take().unwrap();
        let output = Background::read(child.stdout.take().unwrap());
        PtySession { child, stdin, output }
    }
}

/// nerdctl running on a pseudo-terminal (`Nerdctl::spawn_on_pty`); killed on drop.
pub struct PtySession {
    pub child: std::process::Child,
    pub stdin: std::process::ChildStdin,
    pub output: Background,
}

impl PtySession {
    /// Types `text` into the terminal.
    pub fn type_in(&mut self, text: &str) {
        use std::io::Write;
        self.stdin.write_all(text.as_bytes()).expect("write to script");
        self.stdin.flush().unwrap();
    }

    pub fn wait_for(&self, needle: &str, bound: Duration) -> bool {
        wait_until(bound, || self.output.text().contains(needle))
    }

    /// nerdctl's exit code, or None (and killed) after `bound`.
    pub fn wait(&mut self, bound: Duration) -> Option<i32> {
        let start = std::time::Instant::now();
        while start.elapsed() < bound {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        None
    }
}

impl Drop for PtySession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child's output collected by a thread, readable while the child runs.
pub struct Background(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Background {
    pub fn read(mut out: impl std::io::Read + Send + 'static) -> Background {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(k) = out.read(&mut chunk) {
                if k == 0 {
                    break;
                }
                b.lock().unwrap().extend_from_slice(&chunk[..k]);
            }
        });
        Background(buf)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A containerd of the test's own (scripts/lib.sh's micrun_start_containerd,
/// same series and shim as the test containerd), started with extra
/// environment: the way to give nerdctl's containers a micrun config. Stopped,
/// with its shims, on drop.
pub struct OwnContainerd {
    dir: tempfile::TempDir,
    pub env: Env,
}

fn lib_sh(script: &str, dir: &Path, extra_env: &[(&str, &str)]) -> Run {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lib.sh");
    let mut cmd = bounded(120, "bash");
    cmd.arg("-c").arg(format!(". {} && {script} \"$1\"", shell_quote(&lib.to_string_lossy()))).arg("bash").arg(dir);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).output().expect("run bash").into()
}

impl OwnContainerd {
    pub fn start(test_env: &Env, extra_env: &[(&str, &str)]) -> OwnContainerd {
        let dir = tempfile::Builder::new().prefix("mrctd").tempdir_in("/tmp").unwrap();
        let r = lib_sh("micrun_start_containerd", dir.path(), extra_env);
        assert_eq!(r.code, 0, "micrun_start_containerd {}: {}", dir.path().display(), show(&r));
        let env = Env {
            address: dir.path().join("containerd.sock").to_string_lossy().into_owned(),
            namespace: test_env.namespace.clone(),
            image: test_env.image.clone(),
            state: dir.path().to_path_buf(),
            shim: test_env.shim.clone(),
        };
        assert!(wait_until(Duration::from_secs(10), || env.ctr_timeout(5, &["version"]).code == 0), "own containerd does not answer");
        OwnContainerd { dir, env }
    }

    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.path().join("containerd.log")).unwrap_or_default()).into_owned()
    }

    /// containerd's log lines (our shim's included) that mention `needle`.
    pub fn log_about(&self, needle: &str) -> String {
        self.log().lines().filter(|l| l.contains(needle)).collect::<Vec<_>>().join("\n")
    }
}

impl Drop for OwnContainerd {
    fn drop(&mut self) {
        let r = lib_sh("micrun_stop_containerd", self.dir.path(), &[]);
        if r.code != 0 {
            eprintln!("micrun_stop_containerd {}: {}", self.dir.path().display(), show(&r));
        }
    }
}

//! The test containerd itself: its PATH, and restarting it in place.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::procs::{alive, cmdline, kill};
use super::{wait_until, Env, SHIM_NAME};

/// The PATH of the test containerd (the one in its pid file).
pub fn containerd_path(env: &Env) -> String {
    let pid = std::fs::read_to_string(env.state.join("containerd.pid")).unwrap();
    let environ = std::fs::read(format!("/proc/{}/environ", pid.trim())).unwrap();
    environ
        .split(|c| *c == 0)
        .find_map(|kv| kv.strip_prefix(b"PATH="))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_else(|| panic!("containerd {} has no PATH", pid.trim()))
}

/// Restarts the test containerd in place: same argv, environment (PATH keeps
/// target/release first) and cwd, output appended to its log, pid file updated
/// so that scripts/lib.sh's micrun_stop_containerd stops the new one.
pub fn restart_containerd(env: &Env) {
    let pid_file = env.state.join("containerd.pid");
    let old: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let argv = cmdline(old);
    let config = env.state.join("config.toml").display().to_string();
    assert!(argv.iter().any(|a| *a == config), "pid {old} from {} is not our containerd: {argv:?}", pid_file.display());
    let environ: Vec<(OsString, OsString)> = std::fs::read(format!("/proc/{old}/environ"))
        .unwrap()
        .split(|c| *c == 0)
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.iter().position(|c| *c == b'=') {
            Some(i) => (OsString::from_vec(kv[..i].to_vec()), OsString::from_vec(kv[i + 1..].to_vec())),
            None => (OsString::from_vec(kv.to_vec()), OsString::new()),
        })
        .collect();
    let path = containerd_path(env);
    // the shim containerd runs is the first on its PATH: the build output
    let first = path.split(':').next().unwrap_or_default();
    assert!(Path::new(first).join(SHIM_NAME).is_file(), "containerd's PATH does not start with the shim's dir: {path}");
    let cwd = std::fs::read_link(format!("/proc/{old}/cwd")).unwrap();

    kill(old, nix::sys::signal::Signal::SIGTERM);
    assert!(wait_until(Duration::from_secs(15), || !alive(old)), "containerd {old} did not stop on SIGTERM");

    let log = std::fs::OpenOptions::new().create(true).append(true).open(env.state.join("containerd.log")).unwrap();
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(environ)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // its own session, as if started from the script: not tied to the test process
    unsafe {
        cmd.pre_exec(|| {
            nix::libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().expect("restart containerd");
    std::fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || env.ctr_timeout(2, &["version"]).code == 0),
        "restarted containerd (pid {}) does not answer",
        child.id()
    );
    assert_eq!(containerd_path(env), path, "the restarted containerd has another PATH");
}

/// The version the containerd at `address` reports (`ctr version`'s Server part), e.g. "v2.3.7".
pub fn server_version(address: &str) -> String {
    let out = super::bounded(10, "ctr").args(["--address", address, "version"]).output().expect("run ctr version");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let server = text.split("Server:").nth(1).unwrap_or_default();
    server.lines().find_map(|l| l.trim().strip_prefix("Version:")).map(|v| v.trim().to_string()).unwrap_or_default()
}

/// containerd 2.x (which asks a shim to shut down after every task delete).
pub fn is_v2(address: &str) -> bool {
    server_version(address).trim_start_matches('v').starts_with('2')
}

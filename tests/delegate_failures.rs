//! Failure paths of the exec delegate, through a real containerd, our shim and real
//! OCI runtimes: bad annotations, no runtime, bad config, a shim killed with -9, a
//! containerd restart, shim grouping and containerd's runc runtime options.
//!
//! Principle checked throughout (DESIGN.md, "Nothing lost, nothing left behind"):
//! a failed Create, or the cleanup after a dead shim, leaves no rootfs mount, no
//! work dir, no micrun.json, no delegate state, no cgroup and no shim process.
//!
//! Run with `bash scripts/test.sh` (tests run one at a time: one of them restarts
//! the test containerd).

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bundle_dir, mounts_under, wait_until, Env, Guard, Run, RUNTIME, STATE_ROOT};

const DELEGATE_ANNOTATION: &str = "io.containerd.mica.v2.delegate";
const GROUP_ANNOTATION: &str = "io.containerd.mica.v2.group";
const SHIM_NAME: &str = "containerd-shim-mica-v2";
/// How long containerd may take to finish cleaning up after a failed Create or a
/// dead shim (it runs the shim's `delete` action asynchronously).
const CLEANUP_BOUND: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// helpers: processes

/// (state, ppid) from /proc/<pid>/stat; None when the process is gone.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name may hold spaces and parentheses: fields follow the last ')'
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Running (not gone, not a zombie waiting to be reaped).
fn alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

fn parent(pid: u32) -> Option<u32> {
    proc_stat(pid).map(|(_, ppid)| ppid)
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| b.split(|c| *c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect())
        .unwrap_or_default()
}

/// `-flag value` in an argument list.
fn flag_value<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.iter().position(|a| a == flag).and_then(|i| argv.get(i + 1)).map(String::as_str)
}

fn is_our_shim(env: &Env, argv: &[String]) -> bool {
    argv.first().is_some_and(|a| a.ends_with(SHIM_NAME)) && flag_value(argv, "-address") == Some(env.address.as_str())
}

/// Live shim processes of our containerd started with `-id <id>`.
fn shims_with_id(env: &Env, id: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let argv = cmdline(*pid);
            is_our_shim(env, &argv) && flag_value(&argv, "-id") == Some(id) && alive(*pid)
        })
        .collect()
}

/// The shim holding a task: the parent of the task's pid (the shim is a subreaper,
/// so the container's init is its child once the runtime CLI exited).
fn shim_of_task(env: &Env, id: &str) -> u32 {
    let pid = env.task_pid(id).unwrap_or_else(|| panic!("task {id} has no pid in `ctr task ls`"));
    let shim = parent(pid).unwrap_or_else(|| panic!("task {id} pid {pid} has no /proc entry"));
    let argv = cmdline(shim);
    assert!(is_our_shim(env, &argv), "parent {shim} of task {id} (pid {pid}) is not our shim: {argv:?}");
    shim
}

/// `ctr task exec` with a bound. If it does not finish, the shim is wedged: kill it
/// (so containerd cleans up and the test's guards do not wait 30 s per call) and
/// fail with what was seen.
fn exec_bounded(env: &Env, shim: u32, id: &str, exec_id: &str, cmd: &[&str]) -> Run {
    let mut args = vec!["task", "exec", "--exec-id", exec_id, id];
    args.extend_from_slice(cmd);
    let r = env.ctr_timeout(10, &args);
    if r.code == 0 {
        return r;
    }
    let state = env.task_status(id);
    let log = log_tail(env, id);
    if alive(shim) {
        kill(shim, nix::sys::signal::Signal::SIGKILL);
        wait_until(CLEANUP_BOUND, || !matches!(env.task_status(id).as_deref(), Some("RUNNING") | Some("UNKNOWN")));
    }
    panic!(
        "ctr task exec {exec_id} {cmd:?} in {id} failed or hung (code {}, 137 = killed after 10 s): {}\n\
         task status afterwards: {state:?} (UNKNOWN = the shim no longer answers State); shim {shim} was killed to clean up\n{log}",
        r.code, r.stderr
    );
}

fn kill(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
}

// ---------------------------------------------------------------------------
// helpers: what a container may leave behind

/// Every trace of container `id` that should be gone: rootfs mounts under its
/// bundle, our work dir, micrun.json, delegate state under any delegate root, its
/// cgroups (ctr's default cgroups path is /<namespace>/<id>) and a shim process.
fn leftovers(env: &Env, id: &str) -> Vec<String> {
    let mut out = files_left(env, id);
    for pid in shims_with_id(env, id) {
        out.push(format!("shim process {pid}"));
    }
    out
}

/// `leftovers` but the shim process: a group's shim carries the first member's id
/// and rightly outlives it while other members run.
fn files_left(env: &Env, id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bundle = bundle_dir(env, id);
    for m in mounts_under(&bundle) {
        out.push(format!("mount {m}"));
    }
    let work = env.work_dir(id);
    if work.exists() {
        out.push(format!("work dir {}", work.display()));
    }
    let state = bundle.join("micrun.json");
    if state.exists() {
        out.push(format!("state file {}", state.display()));
    }
    let roots = Path::new(STATE_ROOT).join(&env.namespace).join("delegates");
    for root in std::fs::read_dir(&roots).into_iter().flatten().flatten() {
        let held = root.path().join(id);
        if held.exists() {
            out.push(format!("delegate state {}", held.display()));
        }
    }
    for ctrl in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let cg = ctrl.path().join(&env.namespace).join(id);
        if cg.is_dir() {
            out.push(format!("cgroup {}", cg.display()));
        }
    }
    out
}

/// The positive control for `leftovers`: a running container shows every kind of
/// trace the cleanup checks look for, so their absence later means something.
fn assert_held(env: &Env, id: &str) {
    let held = leftovers(env, id);
    for kind in ["mount ", "work dir ", "state file ", "delegate state ", "cgroup ", "shim process "] {
        assert!(held.iter().any(|h| h.starts_with(kind)), "running container {id} shows no {kind}trace: {held:#?}");
    }
}

fn assert_nothing_left(env: &Env, id: &str) {
    wait_until(CLEANUP_BOUND, || leftovers(env, id).is_empty());
    let left = leftovers(env, id);
    assert!(left.is_empty(), "container {id} left behind: {left:#?}\n{}", log_tail(env, id));
}

/// containerd's log lines about `id` (our shim logs into it), for failure messages.
fn log_tail(env: &Env, id: &str) -> String {
    let log = std::fs::read(env.state.join("containerd.log")).unwrap_or_default();
    let log = String::from_utf8_lossy(&log);
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(id)).collect();
    format!("containerd log about {id}:\n{}", lines[lines.len().saturating_sub(30)..].join("\n"))
}

/// `ctr c ls -q` lists it, and `ctr c rm` removes it.
fn remove_record(env: &Env, id: &str) {
    let ls = env.ctr(&["containers", "ls", "-q"]);
    assert!(ls.stdout.lines().any(|l| l.trim() == id), "ctr c ls lacks {id}: {}", ls.stdout);
    let rm = env.ctr(&["containers", "rm", id]);
    assert_eq!(rm.code, 0, "ctr c rm {id}: {}", rm.stderr);
    let ls = env.ctr(&["containers", "ls", "-q"]);
    assert!(!ls.stdout.lines().any(|l| l.trim() == id), "ctr c rm left {id}: {}", ls.stdout);
}

/// `ctr run` (no --rm, so the record stays for the checks) that must fail at Create.
fn run_must_fail(env: &Env, id: &str, extra: &[&str]) -> Run {
    let mut args = vec!["run", "--null-io", "--runtime", RUNTIME];
    args.extend_from_slice(extra);
    args.extend([env.image.as_str(), id, "true"]);
    let r = env.ctr(&args);
    assert_ne!(r.code, 0, "ctr run {id} {extra:?} should fail but succeeded: {}{}", r.stdout, r.stderr);
    assert!(env.task_status(id).is_none(), "failed create of {id} left a task: {:?}", env.task_status(id));
    r
}

/// A failed Create: nothing left, and the container record can be removed.
fn assert_failed_create_clean(env: &Env, id: &str) {
    assert_nothing_left(env, id);
    remove_record(env, id);
}

fn assert_mentions(text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "error text lacks {w:?}: {text}");
    }
}

/// Kills a task and waits until containerd reports it stopped.
fn kill_and_wait_stopped(env: &Env, id: &str) {
    let k = env.ctr(&["task", "kill", "-s", "SIGKILL", id]);
    assert_eq!(k.code, 0, "ctr task kill {id}: {}", k.stderr);
    assert!(
        wait_until(Duration::from_secs(10), || env.task_status(id).as_deref() == Some("STOPPED")),
        "task {id} not STOPPED after SIGKILL: {:?}",
        env.task_status(id)
    );
}

fn remove_stopped(env: &Env, id: &str) {
    let rm = env.ctr(&["task", "rm", id]);
    assert_eq!(rm.code, 0, "ctr task rm {id}: {}", rm.stderr);
    let rm = env.ctr(&["containers", "rm", id]);
    assert_eq!(rm.code, 0, "ctr c rm {id}: {}", rm.stderr);
}

/// `<runtime> --root <root> list` names the container.
fn runtime_lists(runtime: &str, root: &Path, id: &str) -> bool {
    let out = Command::new(runtime).arg("--root").arg(root).arg("list").stdin(Stdio::null()).output();
    let out = out.unwrap_or_else(|e| panic!("run {runtime} list: {e}"));
    String::from_utf8_lossy(&out.stdout).lines().any(|l| l.split_whitespace().next() == Some(id))
}

// ---------------------------------------------------------------------------
// 1. the delegate annotation names a profile, never a path or an unknown runtime

fn bad_delegate_annotation(value: &str) {
    let env = common::env();
    let id = common::unique_id("bad-anno");
    let anno = format!("{DELEGATE_ANNOTATION}={value}");
    let r = run_must_fail(&env, &id, &["--annotation", &anno]);
    // what is wrong (the annotation and its value) and the fix (the allowed names)
    assert_mentions(&r.stderr, &[DELEGATE_ANNOTATION, value, "allowed", "crun", "runc", "youki"]);
    assert_failed_create_clean(&env, &id);
}

#[test]
fn delegate_annotation_with_a_path_fails_and_leaves_nothing() {
    bad_delegate_annotation("/bin/sh");
}

#[test]
fn delegate_annotation_with_an_unknown_name_fails_and_leaves_nothing() {
    bad_delegate_annotation("runsc");
}

// ---------------------------------------------------------------------------
// 2. no OCI runtime at all

/// A profile dir whose crun, runc and youki profiles name binaries that exist nowhere.
fn missing_binaries_profile_dir(env: &Env, id: &str) -> PathBuf {
    let dir = env.state.join(format!("profiles-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["crun", "runc", "youki"] {
        let text = format!("name = \"{name}\"\nbinary = \"{name}-not-installed-{id}\"\n");
        std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
    }
    dir
}

#[test]
fn no_runtime_on_path_fails_naming_what_and_where() {
    // Honest note: this does not empty containerd's PATH (the shim inherits it, and
    // crun/runc/youki really are installed). It simulates an empty PATH by
    // overriding the three profiles' `binary` with names that exist nowhere, so the
    // shim's PATH search finds none of them — the same code path as a board with
    // no runtime installed.
    let env = common::env();
    let id = common::unique_id("no-runtime");
    let dir = missing_binaries_profile_dir(&env, &id);
    let cfg = env.config_file(&id, &format!("[delegate]\nprofile_dir = {:?}\n", dir.display().to_string()));
    let r = run_must_fail(&env, &id, &["--runtime-config-path", cfg.to_str().unwrap()]);
    // names the runtimes looked for and the PATH searched: the shim's, which is
    // containerd's (containerd may prepend its opt/bin dir)
    let path = containerd_path(&env);
    assert_mentions(&r.stderr, &["crun", "runc", "youki", "PATH", &path]);
    assert_failed_create_clean(&env, &id);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&cfg).unwrap();
}

#[test]
fn runtime_failing_at_create_leaves_nothing_behind() {
    // The delegate is found but its `create` fails, i.e. after the shim mounted the
    // rootfs and made the work dir: Create's own cleanup must undo both.
    let env = common::env();
    let id = common::unique_id("rt-fails");
    let dir = env.state.join(format!("profiles-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("crun.toml"), "name = \"crun\"\nbinary = \"/bin/false\"\n").unwrap();
    let cfg = env.config_file(
        &id,
        &format!("[delegate]\ndefault = \"crun\"\nprofile_dir = {:?}\n", dir.display().to_string()),
    );
    let r = run_must_fail(&env, &id, &["--runtime-config-path", cfg.to_str().unwrap()]);
    assert_mentions(&r.stderr, &["crun", "create"]);
    assert_failed_create_clean(&env, &id);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&cfg).unwrap();
}

// ---------------------------------------------------------------------------
// 3. a bad config

#[test]
fn unknown_config_key_fails_naming_the_key() {
    let env = common::env();
    let id = common::unique_id("bad-cfg");
    let cfg = env.config_file(&id, "[delegate]\ndefualt = \"crun\"\n");
    let r = run_must_fail(&env, &id, &["--runtime-config-path", cfg.to_str().unwrap()]);
    // the key, and which file holds it
    assert_mentions(&r.stderr, &["defualt", cfg.to_str().unwrap()]);
    assert_failed_create_clean(&env, &id);
    std::fs::remove_file(&cfg).unwrap();
}

// ---------------------------------------------------------------------------
// 4. kill -9 of the shim while its container runs

/// Starts `sleep` in a container, kills its shim with SIGKILL, and returns the
/// container's init pid once containerd no longer lists the task as running.
fn kill_shim_under_running_container(env: &Env, runtime: &str, id: &str) -> u32 {
    let r = env.ctr(&["run", "-d", "--null-io", "--runtime", runtime, &env.image, id, "sleep", "600"]);
    assert_eq!(r.code, 0, "ctr run -d {id} ({runtime}): {}", r.stderr);
    if runtime == RUNTIME {
        assert_held(env, id);
    }
    let pid = env.task_pid(id).unwrap();
    let shim = parent(pid).unwrap();
    let argv = cmdline(shim);
    assert!(argv.first().is_some_and(|a| a.contains("containerd-shim")), "parent {shim} of {pid} is no shim: {argv:?}");
    assert_eq!(flag_value(&argv, "-id"), Some(id), "shim {shim} of {id}: {argv:?}");
    kill(shim, nix::sys::signal::Signal::SIGKILL);
    assert!(
        wait_until(CLEANUP_BOUND, || !matches!(env.task_status(id).as_deref(), Some("RUNNING") | Some("CREATED"))),
        "task {id} ({runtime}) still {:?} after its shim was killed",
        env.task_status(id)
    );
    pid
}

#[test]
fn killed_shim_is_cleaned_up_by_containerd_and_id_is_reusable() {
    let env = common::env();
    let id = common::unique_id("kill9");
    let _guard = Guard { env: &env, id: id.clone() };
    let pid = kill_shim_under_running_container(&env, RUNTIME, &id);

    // containerd ran our `shim delete`: the delegate no longer holds it, and
    // nothing else is left
    assert_nothing_left(&env, &id);
    assert!(!runtime_lists("crun", &env.delegate_root("crun"), &id), "crun still lists {id}");
    let status = env.task_status(&id);
    assert!(matches!(status.as_deref(), None | Some("STOPPED")), "task {id} after cleanup: {status:?}");

    // the container's own process does not survive as an orphan: `crun delete
    // --force` killed it (a zombie until its new parent reaps it counts as dead)
    assert!(wait_until(CLEANUP_BOUND, || !alive(pid)), "container init {pid} of {id} survived its shim: {:?}", proc_stat(pid));

    // the id is free again
    remove_record(&env, &id);
    let again = env.run_rm(&id, &[], &["echo", "again"]);
    assert_eq!((again.code, again.stdout.trim()), (0, "again"), "re-run of {id}: {}", again.stderr);
    assert_nothing_left(&env, &id);
}

#[test]
fn killed_shim_leaves_no_orphan_just_like_the_runc_shim() {
    // Reference: containerd's own Go runc shim, killed the same way. Its `delete`
    // action also runs `runc delete --force`, so its container dies with it. Ours
    // must behave the same (and the test above checks ours is dead).
    let env = common::env();
    let ours = common::unique_id("orphan-mica");
    let theirs = common::unique_id("orphan-runc");
    let _g1 = Guard { env: &env, id: ours.clone() };
    let _g2 = Guard { env: &env, id: theirs.clone() };
    let our_pid = kill_shim_under_running_container(&env, RUNTIME, &ours);
    let their_pid = kill_shim_under_running_container(&env, "io.containerd.runc.v2", &theirs);
    // let both cleanups finish
    assert_nothing_left(&env, &ours);
    wait_until(CLEANUP_BOUND, || !alive(their_pid));
    wait_until(CLEANUP_BOUND, || !alive(our_pid));
    assert_eq!(
        alive(our_pid),
        alive(their_pid),
        "orphan behaviour differs: our container init {our_pid} alive={}, runc shim's {their_pid} alive={}",
        alive(our_pid),
        alive(their_pid)
    );
    assert!(!alive(our_pid), "our container init {our_pid} survived");
}

// ---------------------------------------------------------------------------
// 5. containerd restarted while a container runs

/// Restarts the test containerd in place: same argv, environment (PATH keeps
/// target/release first) and cwd, output appended to its log, pid file updated
/// so that scripts/lib.sh's micrun_stop_containerd stops the new one.
fn restart_containerd(env: &Env) {
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

/// The PATH of the test containerd (the one in its pid file).
fn containerd_path(env: &Env) -> String {
    let pid = std::fs::read_to_string(env.state.join("containerd.pid")).unwrap();
    let environ = std::fs::read(format!("/proc/{}/environ", pid.trim())).unwrap();
    environ
        .split(|c| *c == 0)
        .find_map(|kv| kv.strip_prefix(b"PATH="))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_else(|| panic!("containerd {} has no PATH", pid.trim()))
}

#[test]
fn task_survives_containerd_restart_and_can_be_killed_and_deleted() {
    let env = common::env();
    let id = common::unique_id("restart");
    let _guard = env.run_detached(&id, &["--null-io"], &["sleep", "600"]);
    let pid = env.task_pid(&id).unwrap();
    let shim = shim_of_task(&env, &id);
    assert_held(&env, &id);

    restart_containerd(&env);

    // containerd reconnected to the same shim, which still holds the container
    assert!(alive(shim), "shim {shim} died with containerd");
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"), "task {id} after the restart");
    assert_eq!(env.task_pid(&id), Some(pid));
    kill_and_wait_stopped(&env, &id);
    assert!(!alive(pid), "container init {pid} survived SIGKILL");
    remove_stopped(&env, &id);
    assert_nothing_left(&env, &id);
    assert!(wait_until(CLEANUP_BOUND, || !alive(shim)), "shim {shim} still running after its only container was removed");
}

// ---------------------------------------------------------------------------
// 6. grouping: one shim per group, its own shim without

#[test]
fn grouped_containers_share_one_shim_until_the_last_is_removed() {
    let env = common::env();
    let group = format!("{GROUP_ANNOTATION}={}", common::unique_id("g"));
    let (a, b, c) = (common::unique_id("grp-a"), common::unique_id("grp-b"), common::unique_id("solo"));
    let ga = env.run_detached(&a, &["--null-io", "--annotation", &group], &["sleep", "600"]);
    let gb = env.run_detached(&b, &["--null-io", "--annotation", &group], &["sleep", "600"]);
    let gc = env.run_detached(&c, &["--null-io"], &["sleep", "600"]);

    let (shim_a, shim_b, shim_c) = (shim_of_task(&env, &a), shim_of_task(&env, &b), shim_of_task(&env, &c));
    assert_eq!(shim_a, shim_b, "grouped containers {a} and {b} run under different shims");
    assert_ne!(shim_a, shim_c, "ungrouped {c} shares the group's shim");
    assert_eq!(flag_value(&cmdline(shim_c), "-id"), Some(c.as_str()));

    // remove the first: the shim stays for the second, which keeps working
    kill_and_wait_stopped(&env, &a);
    remove_stopped(&env, &a);
    std::mem::forget(ga);
    wait_until(CLEANUP_BOUND, || files_left(&env, &a).is_empty());
    assert_eq!(files_left(&env, &a), Vec::<String>::new(), "{a} left behind");
    assert!(alive(shim_a), "group shim {shim_a} exited while {b} still runs");
    assert_eq!(env.task_status(&b).as_deref(), Some("RUNNING"));
    let exec = exec_bounded(&env, shim_a, &b, "still", &["echo", "still here"]);
    assert_eq!(exec.stdout.trim(), "still here", "exec in {b}");

    // remove the last: the group's shim exits; the solo shim is not affected
    kill_and_wait_stopped(&env, &b);
    remove_stopped(&env, &b);
    std::mem::forget(gb);
    assert_nothing_left(&env, &b);
    assert!(wait_until(CLEANUP_BOUND, || !alive(shim_a)), "group shim {shim_a} still runs after its last container was removed");
    assert!(alive(shim_c), "solo shim {shim_c} exited with the group");
    assert_eq!(env.task_status(&c).as_deref(), Some("RUNNING"));

    kill_and_wait_stopped(&env, &c);
    remove_stopped(&env, &c);
    std::mem::forget(gc);
    assert!(wait_until(CLEANUP_BOUND, || !alive(shim_c)), "solo shim {shim_c} still runs after its container was removed");
    assert_nothing_left(&env, &c);
}

#[test]
fn grouped_shim_logs_reach_containerd_after_its_first_member_is_removed() {
    // The shim logs into the `log` fifo of the bundle it was started in: the
    // group's first member. containerd stops reading that fifo when that member
    // is deleted, so the shim must keep its log reaching containerd for the
    // members still running (e.g. through their own bundles' fifos).
    let env = common::env();
    let group = format!("{GROUP_ANNOTATION}={}", common::unique_id("glog"));
    let (a, b) = (common::unique_id("glog-a"), common::unique_id("glog-b"));
    let _ga = env.run_detached(&a, &["--null-io", "--annotation", &group], &["sleep", "600"]);
    let _gb = env.run_detached(&b, &["--null-io", "--annotation", &group], &["sleep", "600"]);
    assert_eq!(shim_of_task(&env, &a), shim_of_task(&env, &b));
    // control: while the first member exists, the shim's kill line reaches the log
    kill_and_wait_stopped(&env, &a);
    assert!(
        wait_until(Duration::from_secs(5), || shim_logged(&env, "kill", &a)),
        "no shim log line `kill id={a}` in containerd's log\n{}",
        log_tail(&env, &a)
    );
    remove_stopped(&env, &a);
    kill_and_wait_stopped(&env, &b);
    assert!(
        wait_until(Duration::from_secs(5), || shim_logged(&env, "kill", &b)),
        "the group's shim logged nothing about {b} after {a} (the member whose bundle it started in) was removed:\n{}",
        log_tail(&env, &b)
    );
}

/// A line our shim wrote (tracing format, not containerd's `time=...` lines)
/// with `message` about container `id`.
fn shim_logged(env: &Env, message: &str, id: &str) -> bool {
    let log = std::fs::read(env.state.join("containerd.log")).unwrap_or_default();
    let needle = format!(" {message} id={id} ");
    String::from_utf8_lossy(&log).lines().any(|l| !l.starts_with("time=") && l.contains(&needle))
}

// ---------------------------------------------------------------------------
// an exec that exits at once (found while testing grouping)

#[test]
fn execs_that_exit_at_once_never_wedge_the_shim() {
    // `true` often exits before `crun exec --detach` has returned its pid, so the
    // shim sees the exit before it knows whose it is and must claim it later.
    // Thirty in a row make that race near-certain to happen at least once.
    let env = common::env();
    let id = common::unique_id("quick-exec");
    let _guard = env.run_detached(&id, &["--null-io"], &["sleep", "600"]);
    let shim = shim_of_task(&env, &id);
    for n in 0..30 {
        exec_bounded(&env, shim, &id, &format!("q{n}"), &["true"]);
    }
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"), "task {id} after 30 execs");
}

// ---------------------------------------------------------------------------
// 7. containerd's runc runtime options (`binary_name`)
//
// `ctr run --runc-binary runc --runtime io.containerd.mica.v2` cannot be used:
// ctr 1.6 refuses it client-side ("specifying runc-binary and runc-systemd-cgroup
// is only supported for "io.containerd.runc.v2" runtime") before containerd is
// asked. So the test does what ctr would send: `ctr c create`, then the Tasks API
// (Create with an Any of type containerd.runc.v1.Options carrying binary_name,
// then Start), through the Python `containerd` bindings scripts/lib.sh installs.

const CREATE_TASK_PY: &str = r#"
import os, sys
os.environ["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
import grpc
from google.protobuf import any_pb2
from containerd.services.containers.v1 import containers_pb2, containers_pb2_grpc
from containerd.services.snapshots.v1 import snapshots_pb2, snapshots_pb2_grpc
from containerd.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc

address, ns, cid, binary = sys.argv[1:5]
md = [("containerd-namespace", ns)]
name = binary.encode()
assert len(name) < 128
# containerd.runc.v1.Options { ... string binary_name = 6; ... }
options = any_pb2.Any(type_url="containerd.runc.v1.Options", value=bytes([6 << 3 | 2, len(name)]) + name)
try:
    with grpc.insecure_channel("unix:" + address) as ch:
        c = containers_pb2_grpc.ContainersStub(ch).Get(
            containers_pb2.GetContainerRequest(id=cid), metadata=md, timeout=30).container
        mounts = snapshots_pb2_grpc.SnapshotsStub(ch).Mounts(
            snapshots_pb2.MountsRequest(snapshotter=c.snapshotter, key=c.snapshot_key), metadata=md, timeout=30).mounts
        tasks = tasks_pb2_grpc.TasksStub(ch)
        created = tasks.Create(tasks_pb2.CreateTaskRequest(container_id=cid, rootfs=mounts, options=options),
                               metadata=md, timeout=60)
        tasks.Start(tasks_pb2.StartRequest(container_id=cid), metadata=md, timeout=60)
        print(created.pid)
except grpc.RpcError as e:
    print(f"{e.code().name}: {e.details()}", file=sys.stderr)
    sys.exit(1)
"#;

/// `ctr c create` + Tasks.Create(options = runc Options{binary_name}) + Start.
fn run_with_binary_name(env: &Env, id: &str, binary: &str) -> Run {
    let c = env.ctr(&["containers", "create", "--runtime", RUNTIME, &env.image, id, "sleep", "600"]);
    assert_eq!(c.code, 0, "ctr c create {id}: {}", c.stderr);
    let script = env.state.join("micrun-create-task-with-options.py");
    std::fs::write(&script, CREATE_TASK_PY).unwrap();
    Command::new("timeout")
        .args(["-s", "KILL", "90", "python3"])
        .arg(&script)
        .args([env.address.as_str(), env.namespace.as_str(), id, binary])
        .stdin(Stdio::null())
        .output()
        .expect("run python3")
        .into()
}

#[test]
fn runc_binary_option_runs_the_container_through_runc() {
    let env = common::env();
    let id = common::unique_id("opt-runc");
    let _guard = Guard { env: &env, id: id.clone() };
    let r = run_with_binary_name(&env, &id, "runc");
    assert_eq!(r.code, 0, "create+start with binary_name=runc: {}{}", r.stderr, log_tail(&env, &id));
    assert_eq!(env.task_status(&id).as_deref(), Some("RUNNING"));
    // runc holds it under its own root; crun (the default delegate here) does not
    let runc_root = env.delegate_root("runc");
    assert!(runtime_lists("runc", &runc_root, &id), "runc --root {} list lacks {id}", runc_root.display());
    assert!(!env.delegate_root("crun").join(&id).exists(), "crun holds {id} too");
    assert!(!runtime_lists("crun", &env.delegate_root("crun"), &id), "crun lists {id}");
    kill_and_wait_stopped(&env, &id);
    remove_stopped(&env, &id);
    assert_nothing_left(&env, &id);
}

fn binary_name_refused(binary: &str, words: &[&str]) {
    let env = common::env();
    let id = common::unique_id("opt-bad");
    let _guard = Guard { env: &env, id: id.clone() };
    let r = run_with_binary_name(&env, &id, binary);
    assert_ne!(r.code, 0, "binary_name={binary} was accepted: {}", r.stdout);
    assert_mentions(&r.stderr, &["binary_name", binary]);
    assert_mentions(&r.stderr, words);
    assert!(env.task_status(&id).is_none(), "refused create left a task");
    assert_failed_create_clean(&env, &id);
}

#[test]
fn runc_binary_option_with_a_path_is_refused() {
    binary_name_refused("/bin/sh", &["crun", "runc", "youki"]);
}

#[test]
fn runc_binary_option_with_a_name_not_allowed_is_refused() {
    binary_name_refused("runsc", &["allowed", "crun", "runc", "youki"]);
}

//! Recovery of the exec delegate, through a real containerd, our shim and real
//! OCI runtimes: a shim killed with -9, a containerd restart, shim grouping,
//! quick execs and containerd's runc runtime options.
//!
//! Principle checked throughout ("nothing lost, nothing left behind"):
//! the cleanup after a dead shim or a removed container leaves no rootfs mount, no
//! work dir, no micrun.json, no delegate state, no cgroup and no shim process.
//!
//! Run with `bash scripts/test.sh` (tests run one at a time: one of them restarts
//! the test containerd).

mod common;

use std::time::Duration;

use common::containerd::restart_containerd;
use common::delegates::runtime_lists;
use common::leftovers::{
    assert_failed_create_clean, assert_held, assert_nothing_left, files_left, log_tail, remove_record, shim_logged, shim_socket, CLEANUP_BOUND,
};
use common::procs::{alive, cmdline, exec_bounded, flag_value, kill, parent, proc_stat, shim_of_task};
use common::tasks_api::run_with_binary_name;
use common::{kill_and_wait_stopped, assert_mentions, wait_until, Env, Guard, GROUP_ANNOTATION, RUNTIME};

fn remove_stopped(env: &Env, id: &str) {
    let rm = env.ctr(&["task", "rm", id]);
    assert_eq!(rm.code, 0, "ctr task rm {id}: {}", rm.stderr);
    let rm = env.ctr(&["containers", "rm", id]);
    assert_eq!(rm.code, 0, "ctr c rm {id}: {}", rm.stderr);
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
    // The Go shim, killed outright, leaves its socket behind (ours does not:
    // assert_nothing_left checks it); remove it so a test run leaves the host clean.
    let theirs_socket = shim_socket(&env, &theirs);
    if theirs_socket.exists() && std::os::unix::net::UnixStream::connect(&theirs_socket).is_err() {
        let _ = std::fs::remove_file(&theirs_socket);
    }
}

// ---------------------------------------------------------------------------
// 5. containerd restarted while a container runs

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
    let group_name = common::unique_id("g");
    let group = format!("{GROUP_ANNOTATION}={group_name}");
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
    if common::containerd::is_v2(&env.address) {
        // containerd 2.x asked the shim to shut down after deleting a: it declined
        assert!(
            wait_until(Duration::from_secs(5), || shim_logged(&env, "shutdown declined", &a)),
            "containerd 2.x sent no Shutdown after deleting {a}, or the shim did not decline it:\n{}",
            log_tail(&env, &a)
        );
    }
    assert_eq!(env.task_status(&b).as_deref(), Some("RUNNING"));
    let exec = exec_bounded(&env, shim_a, &b, "still", &["echo", "still here"]);
    assert_eq!(exec.stdout.trim(), "still here", "exec in {b}");

    // remove the last: the group's shim exits; the solo shim is not affected
    kill_and_wait_stopped(&env, &b);
    remove_stopped(&env, &b);
    std::mem::forget(gb);
    assert_nothing_left(&env, &b);
    assert!(wait_until(CLEANUP_BOUND, || !alive(shim_a)), "group shim {shim_a} still runs after its last container was removed");
    // Its socket is named after the group and it ran in a's bundle, long deleted.
    let socket = shim_socket(&env, &group_name);
    assert!(!socket.exists(), "group shim {shim_a} left its socket {}", socket.display());
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

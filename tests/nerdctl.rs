//! nerdctl 2.x end to end through micrun, Linux containers: the real nerdctl
//! binary (MICRUN_NERDCTL, built by scripts/lib-nerdctl.sh) against the test
//! containerd with `--runtime io.containerd.mica.v2`, its own data root and
//! `--network none` (nothing leaves the host). nerdctl brings its own habits:
//! createRuntime/postStop OCI hooks (`nerdctl internal oci-hook`) in every
//! spec, stdout/stderr through a `binary://` logging URI (itself), and ids it
//! makes up (64 hex digits) behind names it reserves in a name store.
//! RTOS containers through nerdctl are in nerdctl_rtos.rs.

mod common;
#[path = "common/nerdctl.rs"]
mod nerdctl_common;

use std::time::Duration;

use common::cgroups::{read_u64, v1_cgroup};
use common::delegates::assert_held_by;
use common::leftovers::{assert_held, assert_nothing_left, shim_logged};
use common::{bundle_dir, show, unique_id, wait_until, DELEGATE_ANNOTATION};
use nerdctl_common::Nerdctl;

/// The shim logged its route decision for `id`: the container went through micrun.
fn assert_through_micrun(env: &common::Env, id: &str) {
    assert!(
        wait_until(Duration::from_secs(5), || shim_logged(env, "route", id)),
        "our shim logged no route for {id}: did the container go through {}?\n{}",
        common::RUNTIME,
        common::leftovers::log_tail(env, id)
    );
}

/// A Linux container that says it started, and on SIGTERM says goodbye and
/// exits 0 (busybox sh as pid 1 would otherwise ignore SIGTERM).
const SERVICE: &str = "trap 'echo goodbye; exit 0' TERM; echo started-$HOSTNAME; while :; do sleep 0.2; done";

#[test]
fn nerdctl_run_rm_prints_output_keeps_the_exit_code_and_leaves_nothing() {
    let env = common::env();
    let n = Nerdctl::new(&env);
    let name = unique_id("nerdctl-rm");
    let cidfile = n.data_root().join("cid");
    let cid = cidfile.to_string_lossy().into_owned();
    let r = n.run(&Nerdctl::run_args(
        &["--rm", "--name", &name, "--cidfile", &cid],
        &[],
        &env.image,
        &["sh", "-c", "echo hello-from-nerdctl; echo to-stderr >&2; exit 3"],
    ));
    assert_eq!(r.code, 3, "nerdctl run --rm: the container's exit code: {}", show(&r));
    assert!(r.stdout.contains("hello-from-nerdctl"), "stdout: {}", show(&r));
    assert!(r.stderr.contains("to-stderr"), "stderr: {}", show(&r));
    let id = std::fs::read_to_string(&cidfile).unwrap().trim().to_string();
    assert_eq!(id.len(), 64, "cidfile: {id:?}");
    assert_through_micrun(&env, &id);
    assert_nothing_left(&env, &id);
    n.assert_forgotten(&name, &id);
}

#[test]
fn nerdctl_detached_exec_logs_ps_update_stop_rm() {
    let env = common::env();
    let n = Nerdctl::new(&env);
    let name = unique_id("nerdctl-d");
    let out = n.ok(&Nerdctl::run_args(&["-d", "--name", &name], &[], &env.image, &["sh", "-c", SERVICE]));
    let id = out.trim().to_string();
    assert_eq!(id.len(), 64, "nerdctl run -d prints the id: {out:?}");
    let _cleanup = Remove(&n, &name);
    assert_through_micrun(&env, &id);
    n.assert_name_held(&name, &id);
    // crun is the default delegate, and the container holds everything a
    // container holds while it runs (the control for the checks after rm)
    assert_held_by(&env, &id, "crun");
    assert_held(&env, &id);

    // ps: the name, running
    let st = n.ps_status(&name, false).unwrap_or_else(|| panic!("nerdctl ps lacks {name}: {:?}", n.ps(true)));
    assert!(st.starts_with("Up"), "nerdctl ps status of {name}: {st:?}");

    // logs: through nerdctl's binary:// logging driver
    let hostname = &id[..12];
    assert!(
        wait_until(Duration::from_secs(10), || n.run(&["logs", &name]).stdout.contains(&format!("started-{hostname}"))),
        "nerdctl logs {name}: {}",
        show(&n.run(&["logs", &name]))
    );

    // exec: output and exit code (nerdctl exits 1 and names the code, unlike docker)
    let r = n.run(&["exec", &name, "sh", "-c", "echo exec-out-$HOSTNAME; cat /proc/1/cmdline | tr '\\0' ' '; exit 7"]);
    assert!(r.code != 0 && r.stderr.contains("exec failed with exit code 7"), "nerdctl exec exit code: {}", show(&r));
    assert!(r.stdout.contains(&format!("exec-out-{hostname}")), "nerdctl exec output: {}", show(&r));
    assert!(r.stdout.contains("sh -c trap"), "exec ran outside the container (its pid 1 is not our sh): {}", show(&r));

    // update --memory: the container's memory cgroup
    let pid: u32 = n.inspect(&name, "{{.State.Pid}}").parse().expect("pid");
    let memcg = v1_cgroup(&env, &id, pid, "memory");
    n.ok(&["update", "--memory", "48m", &name]);
    assert_eq!(read_u64(&memcg.join("memory.limit_in_bytes")), 48 << 20, "memory.limit_in_bytes after nerdctl update --memory 48m");

    // stop: SIGTERM, the trap's exit 0
    let r = n.run_timeout(40, &["stop", &name]);
    assert_eq!(r.code, 0, "nerdctl stop: {}", show(&r));
    assert_eq!(n.inspect(&name, "{{.State.Status}}"), "exited");
    assert_eq!(n.inspect(&name, "{{.State.ExitCode}}"), "0", "exit code after SIGTERM (the trap exits 0)");
    assert!(n.run(&["logs", &name]).stdout.contains("goodbye"), "the trap's output is not in the log");
    let st = n.ps_status(&name, true).unwrap_or_else(|| panic!("nerdctl ps -a lacks the stopped {name}"));
    assert!(st.starts_with("Exited (0)"), "nerdctl ps -a status of {name}: {st:?}");
    assert!(n.ps_status(&name, false).is_none(), "nerdctl ps lists the stopped {name}");

    // rm: nothing of it anywhere
    n.ok(&["rm", &name]);
    assert_nothing_left(&env, &id);
    n.assert_forgotten(&name, &id);
    assert!(!bundle_dir(&env, &id).exists(), "bundle {} left", bundle_dir(&env, &id).display());
}

#[test]
fn nerdctl_delegate_annotation_runs_the_container_with_runc() {
    let env = common::env();
    let n = Nerdctl::new(&env);
    let name = unique_id("nerdctl-runc");
    let annotation = format!("{DELEGATE_ANNOTATION}=runc");
    let out = n.ok(&Nerdctl::run_args(&["-d", "--name", &name], &["--annotation", &annotation], &env.image, &["sleep", "60"]));
    let id = out.trim().to_string();
    let _cleanup = Remove(&n, &name);
    assert_through_micrun(&env, &id);
    assert_held_by(&env, &id, "runc");
    let r = n.run(&["exec", &name, "cat", "/proc/1/cmdline"]);
    assert_eq!(r.code, 0, "exec through runc: {}", show(&r));
    assert!(r.stdout.starts_with("sleep"), "exec through runc: {}", show(&r));
    n.ok(&["rm", "-f", &name]);
    assert_nothing_left(&env, &id);
    n.assert_forgotten(&name, &id);
}

#[test]
fn nerdctl_run_it_gets_a_terminal() {
    let env = common::env();
    let n = Nerdctl::new(&env);
    let name = unique_id("nerdctl-it");
    let cidfile = n.data_root().join("cid");
    let cid = cidfile.to_string_lossy().into_owned();
    let r = n.on_pty(
        &Nerdctl::run_args(
            &["-it", "--rm", "--name", &name, "--cidfile", &cid],
            &[],
            &env.image,
            &["sh", "-c", "tty; [ -t 0 ] && [ -t 1 ] && echo both-on-tty; exit 4"],
        ),
        40,
    );
    assert_eq!(r.code, 4, "nerdctl run -it exit code: {}", show(&r));
    assert!(common::pty::pts_name(&r.stdout).is_some(), "the container has no terminal: {}", show(&r));
    assert!(r.stdout.contains("both-on-tty"), "stdin and stdout are not the terminal: {}", show(&r));
    let id = std::fs::read_to_string(&cidfile).unwrap().trim().to_string();
    assert_through_micrun(&env, &id);
    assert_nothing_left(&env, &id);
    n.assert_forgotten(&name, &id);
}

/// `nerdctl run -d -t`: the output of a terminal goes to nerdctl's binary://
/// logging driver as well (nerdctl's own runc shim does this).
#[test]
fn nerdctl_run_dt_logs_the_terminal_output() {
    let env = common::env();
    let n = Nerdctl::new(&env);
    let name = unique_id("nerdctl-dt");
    let out = n.ok(&Nerdctl::run_args(&["-d", "-t", "--name", &name], &[], &env.image, &["sh", "-c", "echo tty-out-$HOSTNAME; sleep 60"]));
    let id = out.trim().to_string();
    let _cleanup = Remove(&n, &name);
    assert_through_micrun(&env, &id);
    let want = format!("tty-out-{}", &id[..12]);
    assert!(
        wait_until(Duration::from_secs(10), || n.run(&["logs", &name]).stdout.contains(&want)),
        "nerdctl logs of a -d -t container lacks {want:?}: {}",
        show(&n.run(&["logs", &name]))
    );
    n.ok(&["rm", "-f", &name]);
    assert_nothing_left(&env, &id);
    n.assert_forgotten(&name, &id);
}

/// The pitfall: since nerdctl 2.0 `--label` stays a containerd label and never
/// reaches the OCI spec, which is all the shim reads. An RTOS "label" is
/// therefore ignored and the container runs as Linux; `--annotation` is the way.
#[test]
fn nerdctl_label_does_not_reach_the_spec_so_the_container_runs_as_linux() {
    let env = common::env();
    let n = Nerdctl::new(&env);
    let name = unique_id("nerdctl-label");
    let key = "org.openeuler.micran.container.os";
    let label = format!("{key}=zephyr");
    let out = n.ok(&Nerdctl::run_args(&["-d", "--name", &name], &["--label", &label], &env.image, &["sleep", "60"]));
    let id = out.trim().to_string();
    let _cleanup = Remove(&n, &name);
    assert_eq!(n.inspect(&name, &format!("{{{{index .Config.Labels \"{key}\"}}}}")), "zephyr", "nerdctl kept the label");
    let spec = std::fs::read_to_string(bundle_dir(&env, &id).join("config.json")).expect("the bundle's config.json");
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    assert!(spec["annotations"].get(key).is_none(), "the label reached the OCI spec: {}", spec["annotations"]);
    // so the route is the default delegate: a Linux process runs
    assert_held_by(&env, &id, "crun");
    let r = n.run(&["exec", &name, "cat", "/proc/1/cmdline"]);
    assert!(r.stdout.starts_with("sleep"), "{}", show(&r));
}

/// `nerdctl rm -f NAME` when dropped, so a failing test leaves nothing running.
struct Remove<'a>(&'a Nerdctl, &'a str);

impl Drop for Remove<'_> {
    fn drop(&mut self) {
        let _ = self.0.run_timeout(30, &["rm", "-f", self.1]);
    }
}

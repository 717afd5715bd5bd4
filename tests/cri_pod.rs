//! Kubernetes CRI end to end: containerd's own CRI plugin (1.6, 1.7 or 2.3),
//! driven over its socket by a CRI v1 client, runs pods through the runtime
//! handler `mica` (examples/containerd-config.toml, or -v3.toml on 2.x;
//! runtime_type io.containerd.mica.v2). The
//! product's headline: one RuntimeClass for a pod that mixes Linux containers
//! (crun, in the pod's namespaces) and an RTOS container (a client of micad,
//! here `micrun sim`), all under one shim process, and nothing left once the
//! pod is removed; the pod's sandbox held by micrun's holder (the default) or,
//! with `[sandbox] mode = "delegate"`, by a pause container run by crun.
//! tests/cri_holder.rs has the holder's own cases.
//!
//! Needs the CRI-enabled containerd that `bash scripts/test.sh` starts
//! (scripts/lib-cri.sh), and make and a C compiler for the demo firmware.

mod common;
#[path = "common/cri.rs"]
mod cri;
#[path = "common/mica.rs"]
mod mica_common;
#[path = "common/pods.rs"]
mod pods;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_cri::v1::{ContainerState, PodSandboxState};

use common::delegates::assert_held_by;
use common::leftovers::{assert_nothing_left, files_left, log_tail, CLEANUP_BOUND};
use common::procs::{alive, cmdline, flag_value, parent, serving_shims};
use common::{bundle_dir, route, wait_until, Env, DELEGATES, RUNTIME};
use cri::{container_config, cri_env, pod_config, Pod, HANDLER};
use pods::*;

/// A Linux container serving the pod's loopback: what arrives on port 7777
/// is appended to /tmp/got.
const SERVER_CMD: [&str; 3] = ["sh", "-c", "trap 'exit 0' TERM; while true; do nc -l -p 7777 >>/tmp/got; done & wait"];

/// The kinds of trace `files_left` finds for a running container.
fn held_kinds(env: &Env, id: &str) -> Vec<String> {
    files_left(env, id).iter().map(|t| t.split(' ').next().unwrap_or_default().to_string()).collect()
}

fn exec_ok(s: &Setup, id: &str, cmd: &str) -> String {
    let r = s.cri.exec_sync(id, &["sh", "-c", cmd], 10).unwrap_or_else(|e| panic!("ExecSync {cmd:?} in {id}: {e}"));
    assert_eq!(r.exit_code, 0, "ExecSync {cmd:?} in {id}: {}", String::from_utf8_lossy(&r.stderr));
    String::from_utf8_lossy(&r.stdout).into_owned()
}

#[test]
fn cri_pod_mixing_linux_and_rtos_on_the_holder_runs_under_one_shim_and_leaves_nothing() {
    mixed_pod(None);
}

#[test]
fn cri_pod_mixing_linux_and_rtos_on_a_delegate_sandbox_still_works() {
    mixed_pod(Some(SandboxMode::Delegate));
}

/// The headline pod: two Linux containers (a server and its peer on the
/// pod's loopback) and an RTOS container, with the sandbox held as `mode`
/// says (None: the shipped default, the holder).
fn mixed_pod(mode: Option<SandboxMode>) {
    let s = setup(cri_env(), mode);
    let holder = mode != Some(SandboxMode::Delegate);
    let env = &s.ce.env;
    let t0 = Instant::now();
    let mut pod = Pod::run(&s.cri, pod_config("mixed", s.logs.path(), &[(SELECTOR, "rtos")]));
    let t_sandbox = t0.elapsed();
    let app = pod.start(&container_config("app", &env.image, &SERVER_CMD, &[]));
    let peer = pod.start(&container_config("peer", &env.image, &APP_CMD, &[]));
    let rtos = pod.start(&container_config("rtos", &s.demo, &[], &[(OS_KEY, "zephyr")]));
    let t_started = t0.elapsed();

    // CRI's view: the pod is ready on our runtime, both containers run.
    let (ps, pinfo) = s.cri.pod_status(&pod.id);
    assert_eq!(ps.state(), PodSandboxState::SandboxReady, "{ps:?}");
    assert_eq!(ps.runtime_handler, HANDLER);
    assert_eq!(pinfo["runtimeType"], RUNTIME, "sandbox info: {pinfo}");
    let sandbox_pid = pid_of(&pinfo, "the sandbox");
    let mut pids = Vec::new();
    for (name, id) in [("app", &app), ("peer", &peer), ("rtos", &rtos)] {
        let (st, info) = s.cri.container_status(id);
        assert_eq!(st.state(), ContainerState::ContainerRunning, "{name}: {st:?}\n{}", log_tail(env, id));
        pids.push(pid_of(&info, name));
    }
    let (app_pid, peer_pid) = (pids[0], pids[1]);
    assert_eq!(pids[2], 0, "an RTOS container has no host process, so no pid");

    // Routing, as the shim recorded it: the infra container to the holder (or
    // through the delegate with [sandbox] mode = "delegate"), app and peer
    // through the delegate because the selector does not list them, rtos to
    // mica because it does.
    let (r, why) = route(env, &pod.id);
    if holder {
        assert!(r == "holder" && why == "infra container, [sandbox] mode = \"holder\"", "sandbox: {r} ({why})");
    } else {
        assert!(r == "delegate crun" && why.starts_with("infra container, [sandbox] mode = \"delegate\""), "sandbox: {r} ({why})");
    }
    for (name, id) in [("app", &app), ("peer", &peer)] {
        let (r, why) = route(env, id);
        let listed = format!("\"{name}\" not listed in org.openeuler.micran.containers");
        assert!(r == "delegate crun" && why.contains(&listed), "{name}: {r} ({why})");
    }
    let (r, why) = route(env, &rtos);
    assert!(r == "mica" && why.contains("\"rtos\" listed in org.openeuler.micran.containers"), "rtos: {r} ({why})");

    // One shim process serves the pod: it is the only one of this containerd,
    // it was started for the sandbox, it is the parent of both Linux processes,
    // and containerd reaches all three containers at the one address.
    let shims = serving_shims(env);
    assert_eq!(shims.len(), 1, "shim processes of the CRI containerd: {shims:?}");
    let shim = shims[0];
    assert_eq!(flag_value(&cmdline(shim), "-id"), Some(pod.id.as_str()), "the shim was not started for the sandbox");
    assert_eq!(parent(sandbox_pid), Some(shim), "sandbox pid {sandbox_pid} is not the shim's child");
    assert_eq!(parent(app_pid), Some(shim), "app pid {app_pid} is not the shim's child");
    assert_eq!(parent(peer_pid), Some(shim), "peer pid {peer_pid} is not the shim's child");
    let address = |id: &str| {
        std::fs::read_to_string(bundle_dir(env, id).join("address")).unwrap_or_else(|e| panic!("address of {id}: {e}"))
    };
    assert!(!address(&pod.id).is_empty());
    for id in [&app, &peer, &rtos] {
        assert_eq!(address(id), address(&pod.id), "{id} is served at another shim address");
    }

    // The holder (or crun) holds the sandbox; crun holds app and peer (state
    // under the crun delegate root, crun's own `state` agrees on the pid); no
    // delegate knows rtos.
    if holder {
        assert_holder(env, &pod.id, sandbox_pid, shim);
    } else {
        assert_held_by(env, &pod.id, "crun");
        assert_eq!(cmdline(sandbox_pid), PAUSE_CMD, "the sandbox is not the pause process");
    }
    assert_held_by(env, &app, "crun");
    assert_held_by(env, &peer, "crun");
    for d in DELEGATES {
        assert!(!env.delegate_root(d).join(&rtos).exists(), "delegate {d} holds the RTOS container");
    }

    // app and peer live in the pod's network, IPC and UTS namespaces (not the
    // host's), each with a PID namespace of its own (what kubelet asks for by
    // default).
    for (name, pid) in [("app", app_pid), ("peer", peer_pid)] {
        for ns in ["net", "ipc", "uts"] {
            assert_eq!(ns_link(pid, ns), ns_link(sandbox_pid, ns), "{name} does not share the sandbox's {ns} namespace");
            assert_ne!(ns_link(sandbox_pid, ns), ns_link(std::process::id(), ns), "the sandbox is in the host's {ns} namespace");
        }
        assert_ne!(ns_link(pid, "pid"), ns_link(sandbox_pid, "pid"), "{name} shares the sandbox's pid namespace");
    }
    // They talk over the pod's loopback, and see one /dev/shm (the pod's IPC).
    assert!(
        wait_until(Duration::from_secs(10), || {
            let _ = s.cri.exec_sync(&peer, &["sh", "-c", "echo ping-from-peer | nc 127.0.0.1 7777"], 10);
            exec_ok(&s, &app, "cat /tmp/got 2>/dev/null || true").contains("ping-from-peer")
        }),
        "peer's message never reached app over the pod's loopback"
    );
    exec_ok(&s, &app, "echo shared-by-app >/dev/shm/micrun-test");
    assert_eq!(exec_ok(&s, &peer, "cat /dev/shm/micrun-test"), "shared-by-app\n", "peer does not see app's /dev/shm");
    // The sandbox is in the namespace CRI made, which the test CNI plugin left
    // holding only loopback: nothing from this pod can leave the machine.
    let netns = netns_path(&pinfo);
    assert!(netns.starts_with(&env.state), "netns {} not under containerd's state dir", netns.display());
    let ino = |p: &Path| std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).ino();
    assert_eq!(ino(&netns), ino(Path::new(&format!("/proc/{sandbox_pid}/ns/net"))), "the sandbox is not in CRI's netns");
    assert_eq!(interfaces(sandbox_pid), ["lo"], "the pod's network namespace");

    // The RTOS container is a running micad client, and its console reached
    // the log file CRI keeps for it.
    assert!(s.sim.has_client(&rtos), "the simulator has no client {rtos}:\n{}", s.sim.log());
    let status = s.sim.status(&rtos);
    assert!(status.contains("Running") && status.ends_with("MICA-SUCCESS"), "micad status of rtos: {status:?}");
    let rtos_log = s.logs.path().join("rtos.log");
    assert!(
        wait_until(Duration::from_secs(20), || log_text(&rtos_log).contains(BANNER)),
        "no banner in the CRI log {}: {:?}",
        rtos_log.display(),
        log_text(&rtos_log)
    );
    let banner_line = |l: &str| l.contains(" stdout F ") && l.ends_with(BANNER);
    assert!(log_text(&rtos_log).lines().any(banner_line), "not in CRI's log format: {:?}", log_text(&rtos_log));

    // ExecSync: in app it runs in the pod's UTS namespace (the pod's hostname)
    // and brings back both streams and the exit code; in rtos it is refused.
    let t_exec = Instant::now();
    let r = s.cri.exec_sync(&app, &["sh", "-c", "hostname; echo oops >&2; exit 3"], 10).expect("ExecSync in app");
    let t_exec = t_exec.elapsed();
    assert_eq!(
        (r.exit_code, String::from_utf8_lossy(&r.stdout).as_ref(), String::from_utf8_lossy(&r.stderr).as_ref()),
        (3, "mixed\n", "oops\n"),
        "ExecSync in app"
    );
    let e = s.cri.exec_sync(&rtos, &["true"], 10).expect_err("ExecSync in the RTOS container succeeded");
    assert!(e.message().contains("no processes to exec into"), "ExecSync in rtos: {e}");

    // Positive controls for the cleanup checks below: the holder has no rootfs
    // and no delegate state, but a cgroup of its own.
    let linux: &[&str] = &["mount", "work", "state", "delegate", "cgroup"];
    let sandbox: &[&str] = if holder { &["work", "state", "cgroup"] } else { linux };
    for (id, kinds) in [(&pod.id, sandbox), (&app, linux), (&peer, linux), (&rtos, &["mount", "work", "state"][..])] {
        let held = held_kinds(env, id);
        assert!(kinds.iter().all(|k| held.iter().any(|h| h == k)), "running {id} shows {held:?}, expected {kinds:?}");
    }
    assert!(!mounts_of(env, &[&pod.id, &app, &peer, &rtos], &netns).is_empty(), "no mounts of the running pod found");

    // StopContainer sends SIGTERM: the Linux containers' traps end them with 0
    // well within the timeout; the RTOS is stopped through micad and ends with 128+15.
    let t1 = Instant::now();
    for (name, id, code) in [("app", &app, 0), ("peer", &peer, 0), ("rtos", &rtos, 143)] {
        s.cri.stop_container(id, 10).unwrap_or_else(|e| panic!("StopContainer {name}: {e}"));
        let (st, _) = s.cri.container_status(id);
        assert_eq!((st.state(), st.exit_code), (ContainerState::ContainerExited, code), "{name} after StopContainer: {st:?}");
    }
    let t_stop = t1.elapsed();
    assert!(t_stop < Duration::from_secs(5), "StopContainer of all three took {t_stop:?}: a SIGTERM went unanswered");
    let t1 = Instant::now();
    pod.stop();
    pod.remove();
    let t_down = t1.elapsed();

    assert!(!s.cri.pods().iter().any(|p| p.id == pod.id), "CRI still lists the pod");
    assert!(wait_until(CLEANUP_BOUND, || serving_shims(env).is_empty()), "shims left: {:?}", serving_shims(env));
    for pid in [shim, sandbox_pid, app_pid, peer_pid] {
        assert!(!alive(pid), "process {pid} left (shim {shim}, sandbox {sandbox_pid}, app {app_pid}, peer {peer_pid})");
    }
    assert!(!s.sim.has_client(&rtos), "the simulator still has client {rtos}");
    for id in [&pod.id, &app, &peer, &rtos] {
        assert_nothing_left(env, id);
    }
    let left = mounts_of(env, &[&pod.id, &app, &peer, &rtos], &netns);
    assert!(left.is_empty(), "mounts left: {left:#?}");
    assert!(!netns.exists(), "netns file {} left", netns.display());
    let errors = containerd_errors(env, &[&pod.id, &app, &peer, &rtos]);
    assert!(errors.is_empty(), "containerd logged errors about the pod:\n{}", errors.join("\n"));

    eprintln!(
        "CRI mixed pod (sandbox {mode:?}): RunPodSandbox {t_sandbox:?}; pod with its three containers started {t_started:?}; \
         ExecSync {t_exec:?}; StopContainer x3 {t_stop:?}; StopPodSandbox+RemovePodSandbox {t_down:?}"
    );
}

/// Without the selector, a pod-level RTOS annotation reaches every container of
/// the pod (CRI copies pod annotations into each spec). The router looks at
/// the infra container first, so the sandbox is still the holder; every other
/// container becomes an RTOS container, and a Linux sidecar fails to start
/// because its image holds no firmware. This is why mixed pods need
/// org.openeuler.micran.containers.
#[test]
fn cri_pod_annotation_without_selector_makes_every_container_but_the_sandbox_an_rtos() {
    let s = setup(cri_env(), None);
    let env = &s.ce.env;
    let mut pod = Pod::run(&s.cri, pod_config("rtos-pod", s.logs.path(), &[(OS_KEY, "zephyr")]));
    let (_, pinfo) = s.cri.pod_status(&pod.id);
    assert_eq!(pinfo["runtimeSpec"]["annotations"][OS_KEY], "zephyr", "the pod annotation did not reach the sandbox spec");
    let (r, why) = route(env, &pod.id);
    assert!(r == "holder" && why.starts_with("infra container"), "sandbox: {r} ({why})");
    let sandbox_pid = pid_of(&pinfo, "the sandbox");
    assert!(alive(sandbox_pid));

    let rtos = pod.start(&container_config("rtos", &s.demo, &[], &[]));
    let (r, why) = route(env, &rtos);
    assert_eq!((r.as_str(), why.as_str()), ("mica", "annotation org.openeuler.micran.container.os"), "rtos");
    assert!(s.sim.has_client(&rtos), "the simulator has no client {rtos}");
    let rtos_log = s.logs.path().join("rtos.log");
    assert!(wait_until(Duration::from_secs(20), || log_text(&rtos_log).contains(BANNER)), "no banner: {:?}", log_text(&rtos_log));

    // CRI creates the container record at CreateContainer; the shim is asked
    // only at StartContainer, which fails, and CRI keeps the container exited.
    let app = pod.create(&container_config("app", &env.image, &APP_CMD, &[])).expect("CreateContainer app");
    let e = s.cri.start_container(&app).expect_err("a busybox container started as an RTOS");
    assert!(e.message().contains("no firmware in the image"), "StartContainer app: {e}");
    let (st, _) = s.cri.container_status(&app);
    assert_eq!(st.state(), ContainerState::ContainerExited, "app after the failed start: {st:?}");
    assert!(st.message.contains("no firmware in the image"), "app status message: {st:?}");
    // The failed start reached neither micad nor a delegate and left nothing.
    assert!(!s.sim.has_client(&app) && !s.sim.log().contains(&app), "the simulator heard of {app}");
    assert_nothing_left(env, &app);

    pod.stop();
    pod.remove();
    assert!(wait_until(CLEANUP_BOUND, || serving_shims(env).is_empty()), "shims left: {:?}", serving_shims(env));
    assert!(!s.sim.has_client(&rtos), "the simulator still has client {rtos}");
    for id in [&pod.id, &rtos, &app] {
        assert_nothing_left(env, id);
    }
}

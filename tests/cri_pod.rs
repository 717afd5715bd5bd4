//! Kubernetes CRI end to end: containerd's own CRI plugin (1.6, 1.7 or 2.3),
//! driven over its socket by a CRI v1 client, runs pods through the runtime
//! handler `mica` (examples/containerd-config.toml, or -v3.toml on 2.x;
//! runtime_type io.containerd.mica.v2). The
//! product's headline: one RuntimeClass for a pod that mixes a Linux container
//! (crun, in the pod's namespaces) and an RTOS container (a client of micad,
//! here `micrun sim`), all under one shim process, and nothing left once the
//! pod is removed.
//!
//! Needs the CRI-enabled containerd that `bash scripts/test.sh` starts
//! (scripts/lib-cri.sh), and make and a C compiler for the demo firmware.

mod common;
#[path = "common/cri.rs"]
mod cri;
#[path = "common/mica.rs"]
mod mica_common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_cri::v1::{ContainerState, PodSandboxState};

use common::delegates::assert_held_by;
use common::firmware::demo_image;
use common::leftovers::{assert_nothing_left, files_left, log_tail, CLEANUP_BOUND};
use common::procs::{alive, cmdline, flag_value, parent, serving_shims};
use common::{bundle_dir, mounts_under, route, wait_until, Env, DELEGATES, RUNTIME};
use cri::{container_config, cri_env, pod_config, Cri, CriEnv, Pod, HANDLER};
use mica_common::Sim;

/// The pod-scoped selector: only the containers it names are RTOS containers.
const SELECTOR: &str = "org.openeuler.micran.containers";
const OS_KEY: &str = "org.openeuler.micran.container.os";
const BANNER: &str = "*** Booting micrun demo RTOS v1 (native_sim) ***";
/// The Linux container's pid 1 leaves on TERM at once: a pid 1 that ignores it
/// (plain `sleep`) makes StopContainer wait out its whole timeout.
const APP_CMD: [&str; 3] = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"];

struct Setup {
    ce: CriEnv,
    sim: Sim,
    cri: Cri,
    demo: String,
    logs: tempfile::TempDir,
}

/// A simulator for this test, the CRI handler's micrun config pointed at it,
/// the images in CRI's namespace, a log directory for the pod.
fn setup() -> Setup {
    let ce = cri_env();
    let sim = Sim::start(&ce.env, "baremetal");
    // The handler's ConfigPath is fixed in containerd's config; the shim reads
    // it at each Create, so this test's pods reach this test's simulator.
    std::fs::copy(&sim.config, &ce.micrun_config).unwrap();
    let cri = Cri::connect(&ce.env.address);
    let v = cri.version();
    assert_eq!(v.runtime_name, "containerd", "CRI Version: {v:?}");
    let demo = demo_image(&ce.env);
    // CRI learns of an image imported through containerd's image service from
    // containerd's ImageCreate event, asynchronously: containerd 2.3 was seen
    // answering ImageStatus before it had handled the event of an import
    // that had already returned. Give it a bounded moment.
    for image in [ce.env.image.as_str(), demo.as_str()] {
        assert!(
            wait_until(Duration::from_secs(10), || cri.image(image).is_some()),
            "CRI does not know image {image} (imported into {}) within 10 s",
            ce.env.namespace
        );
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cri-logs");
    std::fs::create_dir_all(&dir).unwrap();
    let logs = tempfile::Builder::new().prefix("pod").tempdir_in(dir).unwrap();
    Setup { ce, sim, cri, demo, logs }
}

fn ns_link(pid: u32, ns: &str) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap_or_else(|e| panic!("/proc/{pid}/ns/{ns}: {e}"))
}

/// The network interfaces a process sees (/proc/<pid>/net/dev).
fn interfaces(pid: u32) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap();
    text.lines().skip(2).filter_map(|l| l.split(':').next()).map(|n| n.trim().to_string()).collect()
}

/// The pod's network namespace file CRI made, from the sandbox's OCI spec.
fn netns_path(info: &serde_json::Value) -> PathBuf {
    let namespaces = info["runtimeSpec"]["linux"]["namespaces"].as_array().expect("sandbox spec without namespaces");
    let net = namespaces.iter().find(|n| n["type"] == "network").expect("sandbox spec without a network namespace");
    PathBuf::from(net["path"].as_str().expect("network namespace without a path"))
}

fn pid_of(info: &serde_json::Value, what: &str) -> u32 {
    info["pid"].as_u64().unwrap_or_else(|| panic!("no pid for {what} in {info}")) as u32
}

fn log_text(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// containerd's error lines about these ids, but for the ExecSync the test
/// expects to be refused.
fn containerd_errors(env: &Env, ids: &[&str]) -> Vec<String> {
    let log = String::from_utf8_lossy(&std::fs::read(env.state.join("containerd.log")).unwrap_or_default()).into_owned();
    log.lines()
        .filter(|l| l.contains("level=error") && !l.contains("msg=\"ExecSync for") && ids.iter().any(|id| l.contains(id)))
        .map(String::from)
        .collect()
}

/// The kinds of trace `files_left` finds for a running container.
fn held_kinds(env: &Env, id: &str) -> Vec<String> {
    files_left(env, id).iter().map(|t| t.split(' ').next().unwrap_or_default().to_string()).collect()
}

/// Mounts under the CRI containerd's state dir that belong to these ids or are `netns`.
fn mounts_of(env: &Env, ids: &[&str], netns: &Path) -> Vec<String> {
    let netns = netns.display().to_string();
    mounts_under(&env.state).into_iter().filter(|m| *m == netns || ids.iter().any(|id| m.contains(id))).collect()
}

#[test]
fn cri_pod_mixing_linux_and_rtos_runs_under_one_shim_and_leaves_nothing() {
    let s = setup();
    let env = &s.ce.env;
    let t0 = Instant::now();
    let mut pod = Pod::run(&s.cri, pod_config("mixed", s.logs.path(), &[(SELECTOR, "rtos")]));
    let t_sandbox = t0.elapsed();
    let app = pod.start(&container_config("app", &env.image, &APP_CMD, &[]));
    let rtos = pod.start(&container_config("rtos", &s.demo, &[], &[(OS_KEY, "zephyr")]));
    let t_started = t0.elapsed();

    // CRI's view: the pod is ready on our runtime, both containers run.
    let (ps, pinfo) = s.cri.pod_status(&pod.id);
    assert_eq!(ps.state(), PodSandboxState::SandboxReady, "{ps:?}");
    assert_eq!(ps.runtime_handler, HANDLER);
    assert_eq!(pinfo["runtimeType"], RUNTIME, "sandbox info: {pinfo}");
    let sandbox_pid = pid_of(&pinfo, "the sandbox");
    let mut pids = Vec::new();
    for (name, id) in [("app", &app), ("rtos", &rtos)] {
        let (st, info) = s.cri.container_status(id);
        assert_eq!(st.state(), ContainerState::ContainerRunning, "{name}: {st:?}\n{}", log_tail(env, id));
        pids.push(pid_of(&info, name));
    }
    let app_pid = pids[0];
    assert_eq!(pids[1], 0, "an RTOS container has no host process, so no pid");

    // Routing, as the shim recorded it: the pause container through the delegate
    // (config sandbox.mode defaults to "delegate"), app through the delegate
    // because the selector does not list it, rtos to mica because it does.
    let (r, why) = route(env, &pod.id);
    assert!(r == "delegate crun" && why.starts_with("infra container"), "sandbox: {r} ({why})");
    let (r, why) = route(env, &app);
    assert!(r == "delegate crun" && why.contains("\"app\" not listed in org.openeuler.micran.containers"), "app: {r} ({why})");
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
    let address = |id: &str| {
        std::fs::read_to_string(bundle_dir(env, id).join("address")).unwrap_or_else(|e| panic!("address of {id}: {e}"))
    };
    assert!(!address(&pod.id).is_empty());
    assert_eq!(address(&app), address(&pod.id), "app is served at another shim address");
    assert_eq!(address(&rtos), address(&pod.id), "rtos is served at another shim address");

    // crun holds the sandbox and app (state under the crun delegate root, crun's
    // own `state` agrees on the pid); no delegate knows rtos.
    assert_held_by(env, &pod.id, "crun");
    assert_held_by(env, &app, "crun");
    for d in DELEGATES {
        assert!(!env.delegate_root(d).join(&rtos).exists(), "delegate {d} holds the RTOS container");
    }

    // app lives in the pod's network, IPC and UTS namespaces (not the host's),
    // with a PID namespace of its own (what kubelet asks for by default).
    for ns in ["net", "ipc", "uts"] {
        assert_eq!(ns_link(app_pid, ns), ns_link(sandbox_pid, ns), "app does not share the sandbox's {ns} namespace");
        assert_ne!(ns_link(sandbox_pid, ns), ns_link(std::process::id(), ns), "the sandbox is in the host's {ns} namespace");
    }
    assert_ne!(ns_link(app_pid, "pid"), ns_link(sandbox_pid, "pid"), "app shares the sandbox's pid namespace");
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

    // Positive controls for the cleanup checks below.
    let linux: &[&str] = &["mount", "work", "state", "delegate", "cgroup"];
    for (id, kinds) in [(&pod.id, linux), (&app, linux), (&rtos, &["mount", "work", "state"][..])] {
        let held = held_kinds(env, id);
        assert!(kinds.iter().all(|k| held.iter().any(|h| h == k)), "running {id} shows {held:?}, expected {kinds:?}");
    }
    assert!(!mounts_of(env, &[&pod.id, &app, &rtos], &netns).is_empty(), "no mounts of the running pod found");

    // StopContainer sends SIGTERM: app's trap ends it with 0 well within the
    // timeout; the RTOS is stopped through micad and ends with 128+15.
    let t1 = Instant::now();
    for (name, id, code) in [("app", &app, 0), ("rtos", &rtos, 143)] {
        s.cri.stop_container(id, 10).unwrap_or_else(|e| panic!("StopContainer {name}: {e}"));
        let (st, _) = s.cri.container_status(id);
        assert_eq!((st.state(), st.exit_code), (ContainerState::ContainerExited, code), "{name} after StopContainer: {st:?}");
    }
    let t_stop = t1.elapsed();
    assert!(t_stop < Duration::from_secs(5), "StopContainer of both took {t_stop:?}: a SIGTERM went unanswered");
    let t1 = Instant::now();
    pod.stop();
    pod.remove();
    let t_down = t1.elapsed();

    assert!(!s.cri.pods().iter().any(|p| p.id == pod.id), "CRI still lists the pod");
    assert!(wait_until(CLEANUP_BOUND, || serving_shims(env).is_empty()), "shims left: {:?}", serving_shims(env));
    assert!(!alive(shim) && !alive(sandbox_pid) && !alive(app_pid), "processes left: shim {shim}, sandbox {sandbox_pid}, app {app_pid}");
    assert!(!s.sim.has_client(&rtos), "the simulator still has client {rtos}");
    for id in [&pod.id, &app, &rtos] {
        assert_nothing_left(env, id);
    }
    let left = mounts_of(env, &[&pod.id, &app, &rtos], &netns);
    assert!(left.is_empty(), "mounts left: {left:#?}");
    assert!(!netns.exists(), "netns file {} left", netns.display());
    let errors = containerd_errors(env, &[&pod.id, &app, &rtos]);
    assert!(errors.is_empty(), "containerd logged errors about the pod:\n{}", errors.join("\n"));

    eprintln!(
        "CRI mixed pod: RunPodSandbox {t_sandbox:?}; pod with both containers started {t_started:?}; \
         ExecSync {t_exec:?}; StopContainer x2 {t_stop:?}; StopPodSandbox+RemovePodSandbox {t_down:?}"
    );
}

/// Without the selector, a pod-level RTOS annotation reaches every container of
/// the pod (CRI copies pod annotations into each spec). The router looks at
/// the infra container first, so the sandbox still runs through the delegate;
/// every other container becomes an RTOS container, and a Linux sidecar fails
/// to start because its image holds no firmware. This is why mixed pods need
/// org.openeuler.micran.containers.
#[test]
fn cri_pod_annotation_without_selector_makes_every_container_but_the_sandbox_an_rtos() {
    let s = setup();
    let env = &s.ce.env;
    let mut pod = Pod::run(&s.cri, pod_config("rtos-pod", s.logs.path(), &[(OS_KEY, "zephyr")]));
    let (_, pinfo) = s.cri.pod_status(&pod.id);
    assert_eq!(pinfo["runtimeSpec"]["annotations"][OS_KEY], "zephyr", "the pod annotation did not reach the sandbox spec");
    let (r, why) = route(env, &pod.id);
    assert!(r == "delegate crun" && why.starts_with("infra container"), "sandbox: {r} ({why})");
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

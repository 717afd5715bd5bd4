//! containerd 2.x's Sandbox API: pods on the handler `mica-shim`
//! (examples/containerd-config-v3.toml, `sandboxer = "shim"`), where CRI runs
//! no pause container and asks the shim itself for the sandbox. The shim
//! answers with its holder and writes the pod files (hostname, hosts,
//! resolv.conf, /dev/shm) CRI's containers mount. Each test ends with nothing
//! left: no holder, shim, pod files, shm mount, cgroup, netns or state.
//! containerd 1.x has no Sandbox API: there the tests say so and return.
//!
//! Needs the CRI-enabled containerds of `bash scripts/test.sh` (scripts/lib-cri.sh).

mod common;
#[path = "common/cri.rs"]
mod cri;
#[path = "common/mica.rs"]
mod mica_common;
#[path = "common/pods.rs"]
mod pods;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1::{ContainerState, PodSandboxState};

use common::leftovers::{assert_nothing_left, CLEANUP_BOUND};
use common::procs::{alive, cmdline, flag_value, kill, serving_shims};
use common::{mounts_under, route, wait_until, Env};
use cri::{container_config, cri_bare_env, cri_env, pod_config, share_pids, CriEnv, Pod, SHIM_SANDBOXER_HANDLER};
use pods::*;

const SERVER_CMD: [&str; 3] = ["sh", "-c", "trap 'exit 0' TERM; while true; do nc -l -p 7777 >>/tmp/got; done & wait"];

/// The CRI containerd when it has the Sandbox API (2.x), or None with the
/// reason printed.
fn sandbox_api(ce: CriEnv) -> Option<Setup> {
    let s = setup(ce, None);
    let v = s.cri.version().runtime_version;
    if !(v.starts_with("v2.") || v.starts_with("2.")) {
        eprintln!("SKIP: containerd {v} has no Sandbox API (sandboxer = \"shim\" is containerd 2.x's)");
        return None;
    }
    Some(s)
}

/// The sandbox controller's bundle and CRI's two directories for the pod.
struct PodDirs {
    bundle: PathBuf,
    files: PathBuf,
    volatile: PathBuf,
}

fn pod_dirs(env: &Env, id: &str) -> PodDirs {
    let (state, root) = (env.state.join("state"), env.state.join("root"));
    PodDirs {
        bundle: state.join("io.containerd.sandbox.controller.v1.shim").join(&env.namespace).join(id),
        files: root.join("io.containerd.grpc.v1.cri/sandboxes").join(id),
        volatile: state.join("io.containerd.grpc.v1.cri/sandboxes").join(id),
    }
}

/// The holder: the one child of the shim named micrun-holder.
fn holder_of(shim: u32) -> u32 {
    let holders: Vec<u32> = children(shim).into_iter().filter(|p| comm(*p) == "micrun-holder").collect();
    assert_eq!(holders.len(), 1, "holders under shim {shim}: {holders:?} (children {:?})", children(shim));
    holders[0]
}

fn the_shim(env: &Env, pod: &str) -> u32 {
    let shims = serving_shims(env);
    assert_eq!(shims.len(), 1, "shim processes of the CRI containerd: {shims:?}");
    assert_eq!(flag_value(&cmdline(shims[0]), "-id"), Some(pod), "the shim was not started for the sandbox");
    shims[0]
}

fn exec_out(s: &Setup, id: &str, cmd: &str) -> String {
    let r = s.cri.exec_sync(id, &["sh", "-c", cmd], 10).unwrap_or_else(|e| panic!("ExecSync {cmd:?} in {id}: {e}"));
    assert_eq!(r.exit_code, 0, "ExecSync {cmd:?} in {id}: {}", String::from_utf8_lossy(&r.stderr));
    String::from_utf8_lossy(&r.stdout).into_owned()
}

/// No container record for the sandbox: nothing ran a pause image.
fn containerd_containers(env: &Env) -> Vec<String> {
    env.ctr(&["containers", "ls", "-q"]).stdout.lines().map(str::to_string).collect()
}

fn cgroups_of(env: &Env, id: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|c| c.path().join(&env.namespace).join(id))
        .filter(|p| p.is_dir())
        .collect()
}

fn assert_sandbox_gone(s: &Setup, pod: &str, dirs: &PodDirs, netns: &Path, pids: &[u32]) {
    let env = &s.ce.env;
    assert!(!s.cri.pods().iter().any(|p| p.id == pod), "CRI still lists the pod");
    assert!(wait_until(CLEANUP_BOUND, || serving_shims(env).is_empty()), "shims left: {:?}", serving_shims(env));
    for pid in pids {
        assert!(wait_until(CLEANUP_BOUND, || !alive(*pid)), "process {pid} left: {:?}", cmdline(*pid));
    }
    for d in [&dirs.bundle, &dirs.files, &dirs.volatile] {
        assert!(!d.exists(), "{} left", d.display());
    }
    assert!(mounts_under(&dirs.volatile).is_empty(), "the pod's shm is still mounted: {:?}", mounts_under(&dirs.volatile));
    assert!(cgroups_of(env, pod).is_empty(), "the holder's cgroup is left: {:?}", cgroups_of(env, pod));
    assert!(!netns.exists(), "netns file {} left", netns.display());
}

/// The netns the holder sits in, as a path CRI made (the holder's own link
/// names only an inode): found among CRI's netns files by inode.
fn netns_of(env: &Env, holder: u32) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(format!("/proc/{holder}/ns/net")).unwrap().ino();
    let dir = env.state.join("state/io.containerd.grpc.v1.cri/netns");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.ino() == ino))
        .unwrap_or_else(|| panic!("the holder {holder} is in none of CRI's netns files under {}", dir.display()))
}

/// A mixed pod with no pause container: the holder from CreateSandbox, two
/// Linux containers on the pod's loopback and /dev/shm with the pod's
/// hostname and DNS files, an RTOS container; then everything goes.
#[test]
fn cri_sandbox_api_mixed_pod_runs_with_no_pause_container_and_leaves_nothing() {
    let Some(s) = sandbox_api(cri_env()) else { return };
    let env = &s.ce.env;
    let mut pod = Pod::run_on(&s.cri, pod_config("sbapi", s.logs.path(), &[(SELECTOR, "rtos")]), SHIM_SANDBOXER_HANDLER);
    let (ps, _) = s.cri.pod_status(&pod.id);
    assert_eq!(ps.state(), PodSandboxState::SandboxReady, "{ps:?}");
    assert_eq!(ps.runtime_handler, SHIM_SANDBOXER_HANDLER);
    let shim = the_shim(env, &pod.id);
    let holder = holder_of(shim);
    assert_eq!(cmdline(holder).get(1).map(String::as_str), Some("holder"), "{:?}", cmdline(holder));
    assert!(!containerd_containers(env).contains(&pod.id), "containerd has a container record for the sandbox");
    let dirs = pod_dirs(env, &pod.id);
    assert!(dirs.bundle.join("config.json").is_file(), "no holder spec in the sandbox bundle {}", dirs.bundle.display());
    assert!(!mounts_under(&dirs.volatile).is_empty(), "the pod's shm is not mounted under {}", dirs.volatile.display());

    let app = pod.start(&container_config("app", &env.image, &SERVER_CMD, &[]));
    let peer = pod.start(&container_config("peer", &env.image, &APP_CMD, &[]));
    let rtos = pod.start(&container_config("rtos", &s.demo, &[], &[(OS_KEY, "zephyr")]));
    assert_eq!(serving_shims(env), [shim], "the containers are not served by the sandbox's shim");
    let mut pids = Vec::new();
    for (name, id) in [("app", &app), ("peer", &peer), ("rtos", &rtos)] {
        let (st, info) = s.cri.container_status(id);
        assert_eq!(st.state(), ContainerState::ContainerRunning, "{name}: {st:?}");
        pids.push(pid_of(&info, name));
    }
    assert_eq!(route(env, &rtos).0, "mica");
    assert_eq!(route(env, &app).0, "delegate crun");
    // The Linux containers are in the holder's namespaces, and no pause
    // process runs anywhere under the shim.
    for (name, pid) in [("app", pids[0]), ("peer", pids[1])] {
        for ns in ["net", "ipc", "uts"] {
            assert_eq!(ns_link(pid, ns), ns_link(holder, ns), "{name} does not share the holder's {ns} namespace");
            assert_ne!(ns_link(holder, ns), ns_link(std::process::id(), ns), "the holder is in the host's {ns} namespace");
        }
    }
    for c in children(shim) {
        assert_ne!(cmdline(c), PAUSE_CMD, "a pause process {c} runs under the shim");
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            let _ = s.cri.exec_sync(&peer, &["sh", "-c", "echo ping-from-peer | nc 127.0.0.1 7777"], 10);
            exec_out(&s, &app, "cat /tmp/got 2>/dev/null || true").contains("ping-from-peer")
        }),
        "peer's message never reached app over the pod's loopback"
    );
    exec_out(&s, &app, "echo shared-by-app >/dev/shm/micrun-test");
    assert_eq!(exec_out(&s, &peer, "cat /dev/shm/micrun-test"), "shared-by-app\n", "peer does not see app's /dev/shm");
    assert!(
        std::fs::read_to_string(dirs.volatile.join("shm/micrun-test")).is_ok_and(|t| t == "shared-by-app\n"),
        "the pod's /dev/shm is not the shm the shim mounted"
    );
    // The pod files: hostname (also the UTS name the holder set), the node's
    // hosts and resolv.conf (the pod has no DNS config of its own).
    assert_eq!(exec_out(&s, &app, "hostname; cat /etc/hostname"), "sbapi\nsbapi\n");
    assert_eq!(exec_out(&s, &app, "cat /etc/resolv.conf"), std::fs::read_to_string("/etc/resolv.conf").unwrap());
    assert_eq!(exec_out(&s, &peer, "cat /etc/hosts"), std::fs::read_to_string("/etc/hosts").unwrap());
    let rtos_log = s.logs.path().join("rtos.log");
    assert!(wait_until(Duration::from_secs(20), || log_text(&rtos_log).contains(BANNER)), "no banner: {:?}", log_text(&rtos_log));
    assert!(!cgroups_of(env, &pod.id).is_empty(), "the holder has no cgroup (/{}/{})", env.namespace, pod.id);
    let netns = netns_of(env, holder);

    for (name, id) in [("app", &app), ("peer", &peer), ("rtos", &rtos)] {
        s.cri.stop_container(id, 10).unwrap_or_else(|e| panic!("StopContainer {name}: {e}"));
    }
    pod.stop();
    let (ps, _) = s.cri.pod_status(&pod.id);
    assert_eq!(ps.state(), PodSandboxState::SandboxNotready, "after StopPodSandbox: {ps:?}");
    assert!(wait_until(CLEANUP_BOUND, || !alive(holder)), "the holder {holder} outlived StopPodSandbox");
    pod.remove();
    assert!(!s.sim.has_client(&rtos), "the simulator still has client {rtos}");
    assert_sandbox_gone(&s, &pod.id.clone(), &dirs, &netns, &[holder, shim, pids[0], pids[1]]);
    for id in [&app, &peer, &rtos] {
        assert_nothing_left(env, id);
    }
    let errors = containerd_errors(env, &[&pod.id, &app, &peer, &rtos]);
    assert!(errors.is_empty(), "containerd logged errors about the pod:\n{}", errors.join("\n"));
}

/// The Sandbox API on a containerd with no OCI runtime on its PATH: an
/// RTOS-only pod needs neither a pause image run nor crun.
#[test]
fn cri_sandbox_api_rtos_only_pod_needs_no_oci_runtime() {
    let Some(s) = sandbox_api(cri_bare_env()) else { return };
    let env = &s.ce.env;
    let mut pod = Pod::run_on(&s.cri, pod_config("sbapi-rtos", s.logs.path(), &[]), SHIM_SANDBOXER_HANDLER);
    let shim = the_shim(env, &pod.id);
    let holder = holder_of(shim);
    let rtos = pod.start(&container_config("rtos", &s.demo, &[], &[(OS_KEY, "zephyr")]));
    let (st, _) = s.cri.container_status(&rtos);
    assert_eq!(st.state(), ContainerState::ContainerRunning, "rtos: {st:?}");
    let log = s.logs.path().join("rtos.log");
    assert!(wait_until(Duration::from_secs(20), || log_text(&log).contains(BANNER)), "no banner: {:?}", log_text(&log));
    let netns = netns_of(env, holder);
    let dirs = pod_dirs(env, &pod.id);
    s.cri.stop_container(&rtos, 10).unwrap();
    pod.stop();
    pod.remove();
    assert!(!s.sim.has_client(&rtos), "the simulator still has client {rtos}");
    assert_sandbox_gone(&s, &pod.id.clone(), &dirs, &netns, &[holder, shim]);
    assert_nothing_left(env, &rtos);
}

/// kill -9 of the shim of a Sandbox-API pod: the holder dies with it, CRI sees
/// the sandbox exit, and StopPodSandbox + RemovePodSandbox leave nothing (the
/// shim's `delete` removes the pod files and the shm mount).
#[test]
fn cri_sandbox_api_shim_killed_leaves_nothing_after_removal() {
    let Some(s) = sandbox_api(cri_env()) else { return };
    let env = &s.ce.env;
    let mut pod = Pod::run_on(&s.cri, pod_config("sbapi-kill", s.logs.path(), &[]), SHIM_SANDBOXER_HANDLER);
    let shim = the_shim(env, &pod.id);
    let holder = holder_of(shim);
    let app = pod.start(&container_config("app", &env.image, &APP_CMD, &[]));
    let netns = netns_of(env, holder);
    let dirs = pod_dirs(env, &pod.id);
    kill(shim, nix::sys::signal::Signal::SIGKILL);
    assert!(wait_until(CLEANUP_BOUND, || !alive(holder)), "the holder {holder} outlived its shim");
    // Until containerd has noticed the dead shim, its status query of the
    // sandbox fails ("ttrpc: closed"): containerd's behaviour, waited out.
    assert!(
        wait_until(Duration::from_secs(20), || s.cri.pod_state(&pod.id).is_ok_and(|st| st == PodSandboxState::SandboxNotready)),
        "CRI never saw the sandbox end: {:?}",
        s.cri.pod_state(&pod.id)
    );
    assert!(
        wait_until(Duration::from_secs(20), || s.cri.container_status(&app).0.state() == ContainerState::ContainerExited),
        "app never exited after its shim died: {:?}",
        s.cri.container_status(&app).0
    );
    pod.stop();
    pod.remove();
    assert_sandbox_gone(&s, &pod.id.clone(), &dirs, &netns, &[holder, shim]);
    assert_nothing_left(env, &app);
}

/// shareProcessNamespace and sysctls on the Sandbox API: the holder that
/// CreateSandbox starts from CRI's pod config is pid 1 of the pod's pid
/// namespace, the Linux container joins it, and the pod's sysctl is set in
/// the pod and not on the host.
#[test]
fn cri_sandbox_api_holder_is_pid_1_of_a_pod_sharing_its_pid_namespace() {
    let Some(s) = sandbox_api(cri_env()) else { return };
    let env = &s.ce.env;
    let mut config = pod_config("sbapi-pids", s.logs.path(), &[]);
    config.linux.as_mut().unwrap().sysctls = [("kernel.shmmni".to_string(), "1234".to_string())].into();
    let mut app_config = container_config("app", &env.image, &APP_CMD, &[]);
    share_pids(&mut config, &mut [&mut app_config]);
    let mut pod = Pod::run_on(&s.cri, config, SHIM_SANDBOXER_HANDLER);
    let shim = the_shim(env, &pod.id);
    let holder = holder_of(shim);
    let app = pod.start(&app_config);
    let (_, ainfo) = s.cri.container_status(&app);
    let app_pid = pid_of(&ainfo, "app");
    assert_eq!(ns_link(app_pid, "pid"), ns_link(holder, "pid"), "app is not in the pod's pid namespace");
    assert_ne!(ns_link(holder, "pid"), ns_link(std::process::id(), "pid"), "the pod's pid namespace is the host's");
    assert_eq!(exec_out(&s, &app, "cat /proc/1/comm"), "micrun-holder\n", "pid 1 of the pod");
    assert_eq!(exec_out(&s, &app, "cat /proc/sys/kernel/shmmni"), "1234\n", "the pod's sysctl");
    assert_ne!(std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap(), "1234\n", "the pod's sysctl reached the host");
    let netns = netns_of(env, holder);
    let dirs = pod_dirs(env, &pod.id);
    s.cri.stop_container(&app, 10).unwrap();
    pod.stop();
    pod.remove();
    assert_sandbox_gone(&s, &pod.id.clone(), &dirs, &netns, &[holder, shim, app_pid]);
    assert_nothing_left(env, &app);
}

//! The pod's sandbox held by micrun itself (`[sandbox] mode = "holder"`, the
//! default), through containerd's CRI: an RTOS-only pod on a containerd with
//! no OCI runtime on its PATH, a pod sharing one pid namespace with the holder
//! as its pid 1, the pod's sysctls and hostname, and a shim killed with the
//! holder alive. Each ends with nothing left: no holder, cgroup, netns, state.
//!
//! Needs the CRI-enabled containerds of `bash scripts/test.sh`
//! (scripts/lib-cri.sh: one of them has nothing but the shim on its PATH), and
//! make and a C compiler for the demo firmware.

mod common;
#[path = "common/cri.rs"]
mod cri;
#[path = "common/mica.rs"]
mod mica_common;
#[path = "common/pods.rs"]
mod pods;

use std::path::Path;
use std::time::Duration;

use k8s_cri::v1::{ContainerState, PodSandboxState};

use common::leftovers::{assert_nothing_left, files_left, CLEANUP_BOUND};
use common::procs::{alive, cmdline, kill, proc_stat, serving_shims};
use common::{route, wait_until, Env, DELEGATES};
use cri::{container_config, cri_bare_env, cri_env, pod_config, share_pids, Pod};
use pods::*;

/// The pod's cgroup (CRI's default cgroups path /<namespace>/<id>) in one v1
/// hierarchy or the unified tree.
fn pod_cgroups(env: &Env, id: &str) -> Vec<String> {
    files_left(env, id).into_iter().filter(|t| t.starts_with("cgroup ")).collect()
}

fn sandbox(s: &Setup, pod: &Pod) -> (u32, serde_json::Value) {
    let (ps, info) = s.cri.pod_status(&pod.id);
    assert_eq!(ps.state(), PodSandboxState::SandboxReady, "{ps:?}");
    (pid_of(&info, "the sandbox"), info)
}

fn the_shim(env: &Env) -> u32 {
    let shims = serving_shims(env);
    assert_eq!(shims.len(), 1, "shim processes of the CRI containerd: {shims:?}");
    shims[0]
}

fn assert_pod_gone(s: &Setup, pod: &str, ids: &[&str], netns: &Path, pids: &[u32]) {
    let env = &s.ce.env;
    assert!(!s.cri.pods().iter().any(|p| p.id == pod), "CRI still lists the pod");
    assert!(wait_until(CLEANUP_BOUND, || serving_shims(env).is_empty()), "shims left: {:?}", serving_shims(env));
    for pid in pids {
        assert!(wait_until(CLEANUP_BOUND, || !alive(*pid)), "process {pid} left: {:?}", cmdline(*pid));
    }
    for id in std::iter::once(pod).chain(ids.iter().copied()) {
        assert_nothing_left(env, id);
    }
    assert!(!netns.exists(), "netns file {} left", netns.display());
    let left = mounts_of(env, &[pod], netns);
    assert!(left.is_empty(), "mounts left: {left:#?}");
}

/// A board with no crun, runc or youki: the pod's sandbox is the holder and
/// its RTOS container a micad client, so nothing needs an OCI runtime.
#[test]
fn cri_rtos_only_pod_runs_with_no_oci_runtime_on_path() {
    let s = setup(cri_bare_env(), None);
    let env = &s.ce.env;
    let mut pod = Pod::run(&s.cri, pod_config("rtos-only", s.logs.path(), &[]));
    let (holder, info) = sandbox(&s, &pod);
    let shim = the_shim(env);
    // The shim's PATH is containerd's: nothing on it is an OCI runtime.
    let environ = std::fs::read(format!("/proc/{shim}/environ")).unwrap();
    let path = environ.split(|b| *b == 0).find_map(|v| v.strip_prefix(b"PATH=")).map(|p| String::from_utf8_lossy(p).into_owned());
    let path = path.expect("the shim has no PATH");
    for dir in path.split(':') {
        for d in DELEGATES {
            assert!(!Path::new(dir).join(d).exists(), "{d} is on the shim's PATH ({path})");
        }
    }
    assert_holder(env, &pod.id, holder, shim);

    let rtos = pod.start(&container_config("rtos", &s.demo, &[], &[(OS_KEY, "zephyr")]));
    let (r, _) = route(env, &rtos);
    assert_eq!(r, "mica");
    let (st, _) = s.cri.container_status(&rtos);
    assert_eq!(st.state(), ContainerState::ContainerRunning, "rtos: {st:?}");
    let log = s.logs.path().join("rtos.log");
    assert!(wait_until(Duration::from_secs(20), || log_text(&log).contains(BANNER)), "no banner: {:?}", log_text(&log));
    // A Linux container in this pod has nowhere to go, and says so.
    let app = pod.create(&container_config("app", &s.demo, &["sh"], &[])).expect("CreateContainer app");
    let e = s.cri.start_container(&app).expect_err("a Linux container started with no OCI runtime on PATH");
    assert!(e.message().contains("no OCI runtime found") && e.message().contains("crun, runc, youki"), "StartContainer app: {e}");
    assert!(!pod_cgroups(env, &pod.id).is_empty(), "the holder has no cgroup");

    s.cri.stop_container(&rtos, 10).unwrap();
    pod.stop();
    pod.remove();
    assert!(!s.sim.has_client(&rtos), "the simulator still has client {rtos}");
    assert_pod_gone(&s, &pod.id.clone(), &[&rtos, &app], &netns_path(&info), &[holder, shim]);
}

/// shareProcessNamespace: the holder is pid 1 of the pod's pid namespace, the
/// Linux container joins it, and orphans of the container are reaped by the
/// holder rather than left as zombies.
#[test]
fn cri_holder_is_pid_1_of_a_pod_sharing_its_pid_namespace() {
    let s = setup(cri_env(), None);
    let env = &s.ce.env;
    let mut config = pod_config("shared-pids", s.logs.path(), &[]);
    let mut app_config = container_config("app", &env.image, &APP_CMD, &[]);
    share_pids(&mut config, &mut [&mut app_config]);
    let mut pod = Pod::run(&s.cri, config);
    let (holder, info) = sandbox(&s, &pod);
    let shim = the_shim(env);
    assert_holder(env, &pod.id, holder, shim);
    let app = pod.start(&app_config);
    let (_, ainfo) = s.cri.container_status(&app);
    let app_pid = pid_of(&ainfo, "app");
    assert_eq!(ns_link(app_pid, "pid"), ns_link(holder, "pid"), "app is not in the pod's pid namespace");
    assert_ne!(ns_link(holder, "pid"), ns_link(std::process::id(), "pid"), "the pod's pid namespace is the host's");

    // Inside the pod, pid 1 is the holder.
    let r = s.cri.exec_sync(&app, &["cat", "/proc/1/comm"], 10).expect("ExecSync in app");
    assert_eq!((r.exit_code, String::from_utf8_lossy(&r.stdout).trim()), (0, "micrun-holder"), "pid 1 of the pod");
    // An orphan (its parent, the exec'd shell, leaves at once) is adopted by
    // pid 1 and reaped when it ends.
    // (its output goes elsewhere, or ExecSync would wait for it to close)
    let r = s.cri.exec_sync(&app, &["sh", "-c", "sleep 3 >/dev/null 2>&1 & echo $!"], 10).expect("ExecSync in app");
    assert_eq!(r.exit_code, 0, "{r:?}");
    let inner: u32 = String::from_utf8_lossy(&r.stdout).trim().parse().expect("the orphan's pid");
    assert!(inner > 1, "orphan pid {inner}");
    let adopted = || children(holder).into_iter().filter(|c| cmdline(*c) == ["sleep", "3"]).collect::<Vec<_>>();
    let orphans = adopted();
    assert_eq!(orphans.len(), 1, "the holder did not adopt the orphan: children {:?}", children(holder));
    let orphan = orphans[0];
    assert!(
        wait_until(Duration::from_secs(8), || proc_stat(orphan).is_none()),
        "the orphan {orphan} was not reaped: {:?}",
        proc_stat(orphan)
    );

    s.cri.stop_container(&app, 10).unwrap();
    pod.stop();
    pod.remove();
    assert_pod_gone(&s, &pod.id.clone(), &[&app], &netns_path(&info), &[holder, shim, app_pid]);
}

/// The pod's namespaced sysctls and hostname are set by the holder in the
/// pod's namespaces, seen by its containers; a sysctl that is not namespaced
/// is refused with a reason, and the refused pod leaves nothing.
#[test]
fn cri_holder_sets_the_pods_sysctls_and_hostname_and_refuses_host_ones() {
    let s = setup(cri_env(), None);
    let env = &s.ce.env;
    let mut config = pod_config("tuned", s.logs.path(), &[]);
    let sysctls = [("net.ipv4.ip_unprivileged_port_start", "101"), ("kernel.shmmni", "1234")];
    config.linux.as_mut().unwrap().sysctls = sysctls.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut pod = Pod::run(&s.cri, config.clone());
    let (holder, info) = sandbox(&s, &pod);
    let app = pod.start(&container_config("app", &env.image, &APP_CMD, &[]));
    for (key, value) in sysctls {
        let file = format!("/proc/sys/{}", key.replace('.', "/"));
        let r = s.cri.exec_sync(&app, &["cat", &file], 10).expect("ExecSync in app");
        assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), value, "{key} in the pod");
        let host = std::fs::read_to_string(&file).unwrap();
        assert_ne!(host.trim(), value, "{key} changed on the host");
    }
    let r = s.cri.exec_sync(&app, &["hostname"], 10).expect("ExecSync in app");
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "tuned", "the pod's hostname");
    s.cri.stop_container(&app, 10).unwrap();
    pod.stop();
    pod.remove();
    assert_pod_gone(&s, &pod.id.clone(), &[&app], &netns_path(&info), &[holder]);

    // kernel.panic would change the host: refused by the shim, nothing left.
    let mut bad = pod_config("host-sysctl", s.logs.path(), &[]);
    bad.linux.as_mut().unwrap().sysctls = [("kernel.panic".to_string(), "5".to_string())].into();
    let before = std::fs::read_to_string("/proc/sys/kernel/panic").unwrap();
    let e = s.cri.run_pod(&bad).expect_err("a pod setting kernel.panic started");
    assert!(e.message().contains("sysctl kernel.panic is not namespaced"), "RunPodSandbox: {e}");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/panic").unwrap(), before, "kernel.panic changed");
    assert!(wait_until(CLEANUP_BOUND, || serving_shims(env).is_empty()), "shims left: {:?}", serving_shims(env));
    let cgroups: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|c| std::fs::read_dir(c.path().join(&env.namespace)).into_iter().flatten().flatten())
        .filter(|d| d.path().is_dir())
        .map(|d| d.path().display().to_string())
        .collect();
    assert!(cgroups.is_empty(), "cgroups left under /{}: {cgroups:?}", env.namespace);
}

/// kill -9 of the shim while the holder runs: the holder dies with it
/// (PDEATHSIG), containerd runs the shim's `delete` for the sandbox, and
/// after StopPodSandbox and RemovePodSandbox nothing is left.
#[test]
fn cri_shim_killed_with_the_holder_alive_leaves_nothing() {
    let s = setup(cri_env(), None);
    let env = &s.ce.env;
    let mut pod = Pod::run(&s.cri, pod_config("killed", s.logs.path(), &[]));
    let (holder, info) = sandbox(&s, &pod);
    let shim = the_shim(env);
    let app = pod.start(&container_config("app", &env.image, &APP_CMD, &[]));
    let (_, ainfo) = s.cri.container_status(&app);
    let app_pid = pid_of(&ainfo, "app");
    assert!(!pod_cgroups(env, &pod.id).is_empty(), "the holder has no cgroup");

    kill(shim, nix::sys::signal::Signal::SIGKILL);
    assert!(wait_until(Duration::from_secs(5), || !alive(holder)), "the holder {holder} outlived its shim");
    assert!(
        wait_until(Duration::from_secs(20), || s.cri.pod_status(&pod.id).0.state() == PodSandboxState::SandboxNotready),
        "CRI still sees the pod ready after its shim died"
    );
    // containerd cleans up after the dead shim task by task (its `delete`
    // action, then a TaskExit for each): wait for app's too, as a kubelet's
    // next sync would, before taking the pod down.
    assert!(
        wait_until(Duration::from_secs(20), || s.cri.container_status(&app).0.state() == ContainerState::ContainerExited),
        "CRI still sees app running after its shim died: {:?}",
        s.cri.container_status(&app).0
    );
    pod.stop();
    pod.remove();
    assert_pod_gone(&s, &pod.id.clone(), &[&app], &netns_path(&info), &[holder, shim, app_pid]);
}

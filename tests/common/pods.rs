//! What the CRI pod tests share: a simulator and the handler's micrun config
//! for one test, the images, and looks at namespaces, logs and the holder.
//! Included by the pod tests next to `mod common;`, `mod cri;` and `mod mica_common;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::firmware::demo_image;
use crate::common::procs::{cmdline, parent};
use crate::common::{mounts_under, wait_until, Env, DELEGATES, SHIM_NAME};
use crate::cri::{Cri, CriEnv};
use crate::mica_common::Sim;

/// The pod-scoped selector: only the containers it names are RTOS containers.
pub const SELECTOR: &str = "org.openeuler.micran.containers";
pub const OS_KEY: &str = "org.openeuler.micran.container.os";
pub const BANNER: &str = "*** Booting micrun demo RTOS v1 (native_sim) ***";
/// A Linux container whose pid 1 leaves on TERM at once: a pid 1 that ignores
/// it (plain `sleep`) makes StopContainer wait out its whole timeout.
pub const APP_CMD: [&str; 3] = ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"];
/// The pause process of the test's pause image (scripts/lib-cri.sh).
pub const PAUSE_CMD: [&str; 2] = ["sleep", "2147483647"];

/// How the pod's sandbox is held: micrun's config `[sandbox] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    Holder,
    Delegate,
}

pub struct Setup {
    pub ce: CriEnv,
    pub sim: Sim,
    pub cri: Cri,
    pub demo: String,
    pub logs: tempfile::TempDir,
}

/// A simulator for this test, the CRI handler's micrun config pointed at it
/// (with the sandbox mode; None: the config's default), the images in CRI's
/// namespace, a log directory for the pod.
pub fn setup(ce: CriEnv, mode: Option<SandboxMode>) -> Setup {
    let sim = Sim::start(&ce.env, "baremetal");
    // The handler's ConfigPath is fixed in containerd's config; the shim reads
    // it at each Create, so this test's pods reach this test's simulator.
    let mut config = std::fs::read_to_string(&sim.config).unwrap();
    match mode {
        Some(SandboxMode::Holder) => config.push_str("\n[sandbox]\nmode = \"holder\"\n"),
        Some(SandboxMode::Delegate) => config.push_str("\n[sandbox]\nmode = \"delegate\"\n"),
        None => {}
    }
    std::fs::write(&ce.micrun_config, config).unwrap();
    let cri = Cri::connect(&ce.env.address);
    let v = cri.version();
    assert_eq!(v.runtime_name, "containerd", "CRI Version: {v:?}");
    let demo = demo_image(&ce.env);
    // CRI learns of an image imported through containerd's image service from
    // containerd's ImageCreate event, asynchronously: containerd 2.3 was seen
    // answering ImageStatus before it had handled the event of an import
    // that had already returned. Give it a bounded moment.
    for image in [ce.env.image.as_str(), demo.as_str()] {
        if image == ce.env.image && !has_image(&ce.env, image) {
            continue; // the bare containerd holds only the pause and demo images
        }
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

fn has_image(env: &Env, image: &str) -> bool {
    env.ctr(&["images", "ls", "-q"]).stdout.lines().any(|l| l == image)
}

pub fn ns_link(pid: u32, ns: &str) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap_or_else(|e| panic!("/proc/{pid}/ns/{ns}: {e}"))
}

/// The network interfaces a process sees (/proc/<pid>/net/dev).
pub fn interfaces(pid: u32) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap();
    text.lines().skip(2).filter_map(|l| l.split(':').next()).map(|n| n.trim().to_string()).collect()
}

/// The pod's network namespace file CRI made, from the sandbox's OCI spec.
pub fn netns_path(info: &serde_json::Value) -> PathBuf {
    let namespaces = info["runtimeSpec"]["linux"]["namespaces"].as_array().expect("sandbox spec without namespaces");
    let net = namespaces.iter().find(|n| n["type"] == "network").expect("sandbox spec without a network namespace");
    PathBuf::from(net["path"].as_str().expect("network namespace without a path"))
}

pub fn pid_of(info: &serde_json::Value, what: &str) -> u32 {
    info["pid"].as_u64().unwrap_or_else(|| panic!("no pid for {what} in {info}")) as u32
}

pub fn log_text(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// containerd's error lines about these ids, but for the ExecSync the test
/// expects to be refused.
pub fn containerd_errors(env: &Env, ids: &[&str]) -> Vec<String> {
    let log = String::from_utf8_lossy(&std::fs::read(env.state.join("containerd.log")).unwrap_or_default()).into_owned();
    log.lines()
        .filter(|l| l.contains("level=error") && !l.contains("msg=\"ExecSync for") && ids.iter().any(|id| l.contains(id)))
        .map(String::from)
        .collect()
}

/// Mounts under the CRI containerd's state dir that belong to these ids or are `netns`.
pub fn mounts_of(env: &Env, ids: &[&str], netns: &Path) -> Vec<String> {
    let netns = netns.display().to_string();
    mounts_under(&env.state).into_iter().filter(|m| *m == netns || ids.iter().any(|id| m.contains(id))).collect()
}

/// The short name the kernel keeps for a process (/proc/<pid>/comm).
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

/// Direct children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    out
}

/// The sandbox `pod` is micrun's holder: pid `pid` is the shim binary run as
/// `holder` (named micrun-holder), a child of the pod's shim `shim`; no
/// delegate knows the sandbox and no pause process runs under the shim.
pub fn assert_holder(env: &Env, pod: &str, pid: u32, shim: u32) {
    let argv = cmdline(pid);
    assert!(
        argv.len() == 2 && argv[0].ends_with(SHIM_NAME) && argv[1] == "holder",
        "sandbox pid {pid} is not the holder: {argv:?}"
    );
    assert_eq!(comm(pid), "micrun-holder", "the holder's process name");
    assert_eq!(parent(pid), Some(shim), "the holder {pid} is not the shim's child");
    for d in DELEGATES {
        let dir = env.delegate_root(d).join(pod);
        assert!(!dir.exists(), "delegate {d} holds the sandbox: {}", dir.display());
    }
    let pause: Vec<u32> = children(shim).into_iter().filter(|p| cmdline(*p) == PAUSE_CMD).collect();
    assert!(pause.is_empty(), "a pause process runs under the shim: {pause:?}");
}

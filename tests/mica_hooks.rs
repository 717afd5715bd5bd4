//! OCI hooks on the RTOS route: an RTOS has no OCI runtime to run them, so the
//! shim does, at the points the OCI runtime spec names (prestart and
//! createRuntime at Create, poststart at Start, poststop at Delete), with the
//! state JSON on stdin. nerdctl keeps its name store and networks in such
//! hooks (tests/nerdctl.rs); here a hook script records what it was given.
//!
//! The container comes from a full OCI spec (`ctr run --config`) whose root is
//! a directory holding /bin/cat as the firmware (the simulator runs host ELFs).

mod common;
#[path = "common/mica.rs"]
mod mica_common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{unique_id, wait_until, Env, Run, RUNTIME};
use mica_common::{assert_nothing_left, Sim};

struct Setup {
    dir: tempfile::TempDir,
    log: PathBuf,
    hook: PathBuf,
}

/// A hook script that appends "<point> <state JSON>" to a log, and fails with
/// a message when its point is listed in the file `fail`.
fn setup() -> Setup {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hooks");
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::Builder::new().prefix("h").tempdir_in(base).unwrap();
    let log = dir.path().join("hooks.log");
    let hook = dir.path().join("hook.sh");
    let fail = dir.path().join("fail");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nstate=$(cat)\necho \"$1 $state\" >> {log}\nif grep -qx \"$1\" {fail} 2>/dev/null; then echo \"hook $1 says no\" >&2; exit 7; fi\n",
            log = log.display(),
            fail = fail.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    Setup { dir, log, hook }
}

impl Setup {
    fn hook(&self, point: &str) -> serde_json::Value {
        serde_json::json!({"path": self.hook, "args": ["hook.sh", point], "timeout": 20})
    }

    /// `ctr oci spec` with the firmware rootfs, the RTOS annotation and a hook at every point.
    fn spec(&self, env: &Env) -> PathBuf {
        let r = env.ctr(&["oci", "spec"]);
        assert_eq!(r.code, 0, "ctr oci spec: {}", r.stderr);
        let mut spec: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let rootfs = self.dir.path().join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        std::fs::copy("/bin/cat", rootfs.join("firmware.elf")).unwrap();
        spec["root"] = serde_json::json!({"path": rootfs, "readonly": false});
        let (k, v) = mica_common::OS_ANNOTATION.split_once('=').unwrap();
        spec["annotations"] = serde_json::json!({ k: v, "test.hooks": "yes" });
        let mut hooks = serde_json::Map::new();
        for p in ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] {
            hooks.insert(p.into(), serde_json::json!([self.hook(p)]));
        }
        spec["hooks"] = serde_json::Value::Object(hooks);
        let path = self.dir.path().join("config.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
        path
    }

    /// (point, state) for every hook run so far, in order.
    fn runs(&self) -> Vec<(String, serde_json::Value)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|l| {
                let (p, s) = l.split_once(' ').unwrap_or((l, "null"));
                (p.to_string(), serde_json::from_str(s).unwrap_or_else(|e| panic!("hook {p} got bad state {s:?}: {e}")))
            })
            .collect()
    }

    fn points(&self) -> Vec<String> {
        self.runs().into_iter().map(|(p, _)| p).collect()
    }
}

fn run_d(env: &Env, sim: &Sim, spec: &Path, id: &str) -> Run {
    let config = sim.config.to_str().unwrap();
    env.ctr(&["run", "-d", "--runtime", RUNTIME, "--runtime-config-path", config, "--config", spec.to_str().unwrap(), id])
}

#[test]
fn rtos_hooks_run_at_create_start_and_delete_with_the_state() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let s = setup();
    let spec = s.spec(&env);
    let id = unique_id("rtos-hooks");
    let r = run_d(&env, &sim, &spec, &id);
    assert_eq!(r.code, 0, "ctr run -d: {}{}", r.stdout, r.stderr);
    assert!(wait_until(Duration::from_secs(10), || sim.status(&id).contains("Running")), "RTOS not running: {}", sim.status(&id));
    // poststart runs before Start answers
    assert_eq!(s.points(), ["prestart", "createRuntime", "poststart"], "createContainer/startContainer have no namespace to run in");
    let runs = s.runs();
    let bundle = common::bundle_dir(&env, &id);
    for (point, state) in &runs {
        let want = if point == "poststart" { "running" } else { "creating" };
        assert_eq!(state["status"], want, "{point}: {state}");
        assert_eq!(state["id"], id.as_str(), "{point}: {state}");
        assert_eq!(state["bundle"], bundle.to_str().unwrap(), "{point}: {state}");
        assert_eq!(state["annotations"]["test.hooks"], "yes", "{point}: {state}");
        assert!(state["ociVersion"].as_str().is_some_and(|v| v.starts_with('1')), "{point}: {state}");
        assert!(state.get("pid").is_none(), "an RTOS has no host pid to report: {state}");
    }
    let k = env.ctr(&["task", "kill", &id]);
    assert_eq!(k.code, 0, "kill: {}", k.stderr);
    assert!(wait_until(Duration::from_secs(10), || env.task_status(&id).as_deref() == Some("STOPPED")));
    assert_eq!(s.points().len(), 3, "poststop ran before Delete: {:?}", s.points());
    let d = env.ctr(&["task", "rm", &id]);
    assert_eq!(d.code, 0, "task rm: {}", d.stderr);
    let runs = s.runs();
    assert_eq!(s.points(), ["prestart", "createRuntime", "poststart", "poststop"]);
    assert_eq!(runs[3].1["status"], "stopped", "{}", runs[3].1);
    env.ctr(&["container", "rm", &id]);
    assert_nothing_left(&env, &sim, &id);
}

#[test]
fn rtos_failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let s = setup();
    std::fs::write(s.dir.path().join("fail"), "createRuntime\n").unwrap();
    let spec = s.spec(&env);
    let id = unique_id("rtos-hookfail");
    let r = run_d(&env, &sim, &spec, &id);
    assert_ne!(r.code, 0, "Create must fail when createRuntime fails: {}", r.stdout);
    for w in ["createRuntime hook #0", "exited with 7", "hook createRuntime says no"] {
        assert!(r.stderr.contains(w), "ctr's error lacks {w:?}: {}", r.stderr);
    }
    // the spec's order: destroy the container, then poststop; start never came
    assert_eq!(s.points(), ["prestart", "createRuntime", "poststop"]);
    env.ctr(&["container", "rm", &id]);
    assert_nothing_left(&env, &sim, &id);
}

#[test]
fn rtos_failing_poststart_and_poststop_hooks_are_warnings() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let s = setup();
    std::fs::write(s.dir.path().join("fail"), "poststart\npoststop\n").unwrap();
    let spec = s.spec(&env);
    let id = unique_id("rtos-hookwarn");
    let r = run_d(&env, &sim, &spec, &id);
    assert_eq!(r.code, 0, "a failing poststart hook must not fail Start: {}{}", r.stdout, r.stderr);
    assert!(wait_until(Duration::from_secs(10), || sim.status(&id).contains("Running")));
    env.ctr(&["task", "kill", &id]);
    assert!(wait_until(Duration::from_secs(10), || env.task_status(&id).as_deref() == Some("STOPPED")));
    let d = env.ctr(&["task", "rm", &id]);
    assert_eq!(d.code, 0, "a failing poststop hook must not fail Delete: {}", d.stderr);
    assert_eq!(s.points(), ["prestart", "createRuntime", "poststart", "poststop"]);
    env.ctr(&["container", "rm", &id]);
    assert_nothing_left(&env, &sim, &id);
}

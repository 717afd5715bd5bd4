//! The OCI runtimes the shim delegates to: finding them, choosing one, and
//! asking one (its own CLI, its own state root) what it holds.

use std::path::{Path, PathBuf};

use super::{bounded, show, Env, Run, DELEGATES, DELEGATE_ANNOTATION};

/// Finds a runtime binary the way the test machine installs them: on PATH, or in
/// ~/.cargo/bin (youki). A missing runtime fails the test loudly: a test that
/// cannot see its runtime must not pass.
pub fn runtime_binary(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let cargo_bin = std::env::var("HOME").map(|h| format!("{h}/.cargo/bin")).unwrap_or_default();
    for dir in path.split(':').chain(std::iter::once(cargo_bin.as_str())) {
        if dir.is_empty() {
            continue;
        }
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    let how = if name == "youki" { "cargo install youki --features v1".to_string() } else { format!("apt-get install {name}") };
    panic!("{name} not found on PATH ({path}) or in ~/.cargo/bin: install it with `{how}` (scripts/test.sh does)")
}

/// `--annotation io.containerd.mica.v2.delegate=<d>`, after making sure the runtime exists.
pub fn pick(delegate: &str) -> [String; 2] {
    runtime_binary(delegate);
    ["--annotation".into(), format!("{DELEGATE_ANNOTATION}={delegate}")]
}

/// Runs `<runtime> --root ROOT ARGS` (bounded).
fn runtime_cli(runtime: &str, root: &Path, args: &[&str]) -> Run {
    bounded(20, runtime_binary(runtime)).arg("--root").arg(root).args(args).output().expect("run the delegate CLI").into()
}

/// Runs `<delegate> --root <its root> ARGS` (bounded).
pub fn delegate_cli(env: &Env, delegate: &str, args: &[&str]) -> Run {
    runtime_cli(delegate, &env.delegate_root(delegate), args)
}

/// `list` output names the container.
fn list_has(list: &Run, id: &str) -> bool {
    list.stdout.lines().any(|l| l.split_whitespace().next() == Some(id))
}

/// `<runtime> --root <root> list` names the container.
pub fn runtime_lists(runtime: &str, root: &Path, id: &str) -> bool {
    list_has(&runtime_cli(runtime, root, &["list"]), id)
}

/// Proves that `delegate`, and no other, holds the running container `id`: its
/// state directory is under that delegate's root (crun keeps `status`, runc and
/// youki `state.json`), the delegate's own `state` and `list` know the id with the
/// pid containerd reports, and the other delegates' roots know nothing of it.
pub fn assert_held_by(env: &Env, id: &str, delegate: &str) {
    let pid = env.task_pid(id).unwrap_or_else(|| panic!("task {id} not in `ctr task ls`"));
    for d in DELEGATES {
        let dir = env.delegate_root(d).join(id);
        if d != delegate {
            assert!(!dir.exists(), "{id} should be held by {delegate} only, but {} exists", dir.display());
            continue;
        }
        assert!(dir.is_dir(), "{delegate} should hold {id}: {} is missing", dir.display());
        let marker = if d == "crun" { "status" } else { "state.json" };
        assert!(dir.join(marker).is_file(), "{delegate}'s state dir {} lacks {marker}", dir.display());

        let st = delegate_cli(env, d, &["state", id]);
        assert_eq!(st.code, 0, "{d} state {id}: {}", show(&st));
        let v: serde_json::Value =
            serde_json::from_str(&st.stdout).unwrap_or_else(|e| panic!("{d} state output is not JSON ({e}): {}", st.stdout));
        assert_eq!(v["id"].as_str(), Some(id), "{d} state: {v}");
        assert_eq!(v["pid"].as_u64(), Some(pid as u64), "{d} state reports another pid than containerd: {v}");
        assert_eq!(v["status"].as_str().map(str::to_ascii_lowercase).as_deref(), Some("running"), "{d} state: {v}");

        let list = delegate_cli(env, d, &["list"]);
        assert_eq!(list.code, 0, "{d} list: {}", show(&list));
        assert!(list_has(&list, id), "{d} list does not show {id}:\n{}", list.stdout);
    }
}

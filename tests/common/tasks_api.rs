//! containerd's Tasks API where ctr 1.6 cannot reach it (no `task update`, no
//! runc options for other runtimes), through the Python scripts in tests/tools.

use super::{bounded, Env, Run, RUNTIME};

/// `python3 tests/tools/<tool> ARGS`, killed after `secs` seconds.
fn python_tool(secs: u32, tool: &str, args: &[&str]) -> Run {
    bounded(secs, "python3")
        .arg(format!("tests/tools/{tool}"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("run tests/tools/{tool}: {e}"))
        .into()
}

/// Tasks.Update with `resources`, an OCI LinuxResources object in JSON.
pub fn update(env: &Env, id: &str, resources: &str) -> Run {
    python_tool(60, "update_task.py", &[&env.address, &env.namespace, id, resources])
}

/// `ctr c create` + Tasks.Create(options = runc Options{binary_name}) + Start.
pub fn run_with_binary_name(env: &Env, id: &str, binary: &str) -> Run {
    let c = env.ctr(&["containers", "create", "--runtime", RUNTIME, &env.image, id, "sleep", "600"]);
    assert_eq!(c.code, 0, "ctr c create {id}: {}", c.stderr);
    python_tool(90, "create_task.py", &[&env.address, &env.namespace, id, binary])
}

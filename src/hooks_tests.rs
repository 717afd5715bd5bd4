use super::*;

fn ctx(hooks: Hooks, dir: &Path) -> HookContext {
    HookContext {
        hooks,
        oci_version: "1.2.0".into(),
        id: "rtos1".into(),
        bundle: dir.to_path_buf(),
        annotations: HashMap::from([("a".to_string(), "b".to_string())]),
    }
}

fn sh(script: &str) -> Hook {
    Hook { path: "/bin/sh".into(), args: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() }
}

fn rt(f: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

#[test]
fn hook_reads_the_state_in_the_bundle_with_its_own_env() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = sh("cat > state.json; echo \"$0 $1 [$FOO] [$HOME]\" > argv");
    h.args.push("arg1".into());
    h.env = Some(vec!["FOO=bar".into()]);
    let c = ctx(Hooks { create_runtime: vec![h], ..Default::default() }, dir.path());
    rt(async { c.run(Point::CreateRuntime).await.unwrap() });
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("state.json")).unwrap()).unwrap();
    assert_eq!(state["ociVersion"], "1.2.0");
    assert_eq!(state["id"], "rtos1");
    assert_eq!(state["status"], "creating");
    assert_eq!(state["bundle"], dir.path().to_str().unwrap());
    assert_eq!(state["annotations"]["a"], "b");
    assert!(state.get("pid").is_none(), "no host process, no pid: {state}");
    // args[1..] after the script become $0 and $1; env is exactly the hook's
    assert_eq!(std::fs::read_to_string(dir.path().join("argv")).unwrap(), "arg1  [bar] []\n");
}

#[test]
fn failure_names_the_hook_and_carries_its_output_and_stops_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = Hooks {
        poststop: vec![sh("echo out; echo bad >&2; exit 3"), sh("touch second")],
        ..Default::default()
    };
    let c = ctx(hooks, dir.path());
    let e = rt_err(&c, Point::Poststop);
    assert!(e.contains("poststop hook #0 (/bin/sh)"), "{e}");
    assert!(e.contains("exited with 3"), "{e}");
    assert!(e.contains("\"out\"") && e.contains("\"bad\""), "{e}");
    assert!(!dir.path().join("second").exists());
}

fn rt_err(c: &HookContext, p: Point) -> String {
    let mut out = String::new();
    rt(async { out = c.run(p).await.unwrap_err() });
    out
}

#[test]
fn timeout_kills_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = sh("echo $$ > pid; exec sleep 30");
    h.timeout = Some(1);
    let c = ctx(Hooks { poststart: vec![h], ..Default::default() }, dir.path());
    let t = std::time::Instant::now();
    let e = rt_err(&c, Point::Poststart);
    assert!(e.contains("timeout of 1 s"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let pid: i32 = std::fs::read_to_string(dir.path().join("pid")).unwrap().trim().parse().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
    assert!(!alive, "the hook {pid} outlived its timeout");
}

#[test]
fn a_hook_that_ignores_stdin_is_fine_and_a_missing_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let c = ctx(Hooks { poststart: vec![sh("exit 0")], ..Default::default() }, dir.path());
    rt(async { c.run(Point::Poststart).await.unwrap() });
    let missing = Hook { path: "/nonexistent/hook".into(), ..Default::default() };
    let c = ctx(Hooks { poststart: vec![missing], ..Default::default() }, dir.path());
    let e = rt_err(&c, Point::Poststart);
    assert!(e.contains("/nonexistent/hook") && e.contains("cannot run it"), "{e}");
}

#[test]
fn statuses_follow_the_lifecycle() {
    assert_eq!(Point::CreateRuntime.status(), "creating");
    assert_eq!(Point::Prestart.status(), "creating");
    assert_eq!(Point::Poststart.status(), "running");
    assert_eq!(Point::Poststop.status(), "stopped");
}

#[test]
fn validate_refuses_relative_paths_and_bad_timeouts() {
    let rel = Hooks { create_runtime: vec![Hook { path: "hook".into(), ..Default::default() }], ..Default::default() };
    assert!(rel.validate().unwrap_err().contains("hooks.createRuntime[0].path \"hook\""));
    let t0 = Hooks { poststop: vec![Hook { path: "/bin/true".into(), timeout: Some(0), ..Default::default() }], ..Default::default() };
    assert!(t0.validate().unwrap_err().contains("hooks.poststop[0].timeout"));
    let spec: Hooks = serde_json::from_str(
        r#"{"createRuntime":[{"path":"/usr/bin/nerdctl","args":["nerdctl","internal","oci-hook","createRuntime"],"env":["A=1"]}],"startContainer":[{"path":"/x"}]}"#,
    )
    .unwrap();
    spec.validate().unwrap();
    assert_eq!(spec.in_container_namespace(), 1);
    assert_eq!(spec.create_runtime[0].env.as_deref(), Some(&["A=1".to_string()][..]));
}

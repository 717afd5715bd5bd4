//! `containerd-shim-mica-v2 -info`, the runtime feature probe containerd 2.x runs
//! for every CRI runtime handler at start-up: the real shim binary, the real
//! delegates' `features`, and the CRI containerd's own reading of the answer.

mod common;

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::containerd::containerd_path;
use common::{env, show, Env, Run};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::types::introspection::RuntimeInfo;

const FEATURES_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// `shim -info` as containerd starts it: containerd's PATH, all three streams piped.
fn spawn_info(env: &Env) -> Child {
    Command::new(&env.shim)
        .arg("-info")
        .env("PATH", containerd_path(env))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the shim")
}

/// `shim -info` with `options` written to its stdin, which is then closed.
fn info_with(env: &Env, options: &[u8]) -> Output {
    let mut child = spawn_info(env);
    child.stdin.take().unwrap().write_all(options).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `shim -info` as containerd does: options on stdin, containerd's PATH.
fn info(env: &Env, options: &[u8]) -> (RuntimeInfo, String) {
    let out = info_with(env, options);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "-info failed: {} {stderr}", out.status);
    (RuntimeInfo::parse_from_bytes(&out.stdout).expect("stdout is a RuntimeInfo protobuf"), stderr)
}

fn runc_options(binary_name: &str) -> Vec<u8> {
    // containerd.runc.v1.Options { binary_name = 6 }
    let mut value = vec![0x32, binary_name.len() as u8];
    value.extend_from_slice(binary_name.as_bytes());
    Any { type_url: "containerd.runc.v1.Options".into(), value, ..Default::default() }.write_to_bytes().unwrap()
}

fn run(program: &str, args: &[&str]) -> Run {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("run {program}: {e}")).into()
}

fn features_json(info: &RuntimeInfo) -> serde_json::Value {
    assert_eq!(info.features.type_url, FEATURES_URL);
    sorted(serde_json::from_slice(&info.features.value).expect("features are JSON"))
}

/// youki lists its capabilities in a different order at every call.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Array(a) => {
            let mut a: Vec<Value> = a.into_iter().map(sorted).collect();
            a.sort_by_key(|x| x.to_string());
            Value::Array(a)
        }
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, sorted(v))).collect()),
        other => other,
    }
}

#[test]
fn info_reports_the_default_delegates_features() {
    let env = env();
    let (info, stderr) = info(&env, b"");
    assert_eq!(info.name, "io.containerd.mica.v2");
    assert_eq!(info.version.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.annotations.get("io.containerd.mica.v2.delegate").map(String::as_str), Some("crun"), "{stderr}");
    let features = features_json(&info);
    let own = run("crun", &["features"]);
    if own.code == 0 {
        assert_eq!(features, sorted(serde_json::from_str(&own.stdout).unwrap()));
    } else {
        // crun before 1.9 has no `features`: only the spec version of `crun --version`.
        let version = run("crun", &["--version"]);
        let spec = version.stdout.lines().find_map(|l| l.strip_prefix("spec:")).map(str::trim).expect("spec line");
        assert_eq!(features, serde_json::json!({"ociVersionMin": "1.0.0", "ociVersionMax": spec}));
        let source = &info.annotations["io.containerd.mica.v2.features-source"];
        assert!(source.starts_with("crun --version"), "{source}");
    }
}

#[test]
fn info_reports_the_named_delegates_features() {
    let env = env();
    for delegate in ["runc", "youki"] {
        let (info, stderr) = info(&env, &runc_options(delegate));
        assert_eq!(info.annotations.get("io.containerd.mica.v2.delegate").map(String::as_str), Some(delegate), "{stderr}");
        let own = run(delegate, &["features"]);
        assert_eq!(own.code, 0, "{delegate} features: {}", show(&own));
        let expected = sorted(serde_json::from_str(&own.stdout).unwrap());
        assert_eq!(features_json(&info), expected, "{delegate}");
        assert_eq!(info.options.type_url, "containerd.runc.v1.Options", "options echoed back");
    }
}

#[test]
fn info_refuses_a_path_as_binary_name() {
    let env = env();
    let out: Run = info_with(&env, &runc_options("/bin/sh")).into();
    assert_ne!(out.code, 0, "{}", show(&out));
    assert!(out.stderr.contains("not a path"), "{}", show(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn info_never_blocks_on_a_stdin_left_open() {
    let env = env();
    let mut child = spawn_info(&env);
    let _open = child.stdin.take();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(15) {
            child.kill().unwrap();
            panic!("-info still running after 15 s with stdin open");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert!(!status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stdin was not closed"), "{stderr}");
    eprintln!("-info with stdin left open gave up after {:?}", t.elapsed());
}

/// containerd 2.x probes every CRI handler with `-info` at start; its debug log
/// says whether the features were understood.
#[test]
fn cri_containerd_reads_micas_features() {
    let (Ok(address), Ok(state)) = (std::env::var("MICRUN_TEST_CRI_ADDRESS"), std::env::var("MICRUN_TEST_CRI_STATE")) else {
        panic!("MICRUN_TEST_CRI_ADDRESS/STATE not set: run with `bash scripts/test.sh`");
    };
    let v = common::containerd::server_version(&address);
    if !v.trim_start_matches('v').starts_with('2') {
        eprintln!("skipped: containerd {v} does not probe runtimes with -info (2.x does)");
        return;
    }
    let log = std::fs::read_to_string(format!("{state}/containerd.log")).unwrap();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("introspect") && l.contains("mica")).collect();
    assert!(failures.is_empty(), "containerd {v} could not read mica's features:\n{}", failures.join("\n"));
    assert!(
        log.contains(r#"runtime \"mica\" supports CRI userns"#) || log.contains(r#"runtime "mica" supports CRI userns"#),
        "containerd {v} logged no feature reading for handler mica (is the CRI containerd's log level debug?)"
    );
}

//! `containerd-shim-mica-v2 -info`: containerd 2.x runs it for every runtime
//! handler when CRI starts (and before an idmapped-mount container), with the
//! handler's runtime options on stdin, and reads a `containerd.types.RuntimeInfo`
//! protobuf from stdout. CRI takes the OCI features (user namespaces, idmap and
//! recursive read-only mounts) from it, so they are the features of the Linux
//! delegate the options would route an ordinary container to.
//!
//! It must answer quickly and never hang CRI's start-up: stdin is read with a
//! deadline, the delegate's `features` call is bounded, and a board without any
//! OCI runtime (RTOS only) still gets an answer, just without features.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::types::introspection::{RuntimeInfo, RuntimeVersion};

use super::container::{available, binary_name_to_delegate, runtime_options};
use crate::backend::delegate::profile::{search_path, Profile};
use crate::config::Config;
use crate::router;

/// The type URL containerd registers for OCI runtime features.
pub const FEATURES_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/features/Features";
/// RuntimeInfo annotation naming the delegate whose features are reported.
pub const DELEGATE_ANNOTATION: &str = "io.containerd.mica.v2.delegate";
/// RuntimeInfo annotation present when the features were derived from `--version`.
pub const FEATURES_SOURCE_ANNOTATION: &str = "io.containerd.mica.v2.features-source";

const STDIN_DEADLINE: Duration = Duration::from_secs(2);
const FEATURES_DEADLINE: Duration = Duration::from_secs(3);

/// True when the command line asks for `-info` (Go's flag package accepts one or two dashes).
pub fn requested(args: &[String]) -> bool {
    args.iter().skip(1).any(|a| a == "-info" || a == "--info")
}

/// Reads the options from stdin, builds the answer and returns its protobuf bytes.
pub fn answer() -> Result<Vec<u8>, String> {
    let options = read_stdin(STDIN_DEADLINE)?;
    let info = runtime_info(&options)?;
    info.write_to_bytes().map_err(|e| format!("encode RuntimeInfo: {e}"))
}

/// Builds the RuntimeInfo for the serialized options `Any` (empty: no options).
pub fn runtime_info(options: &[u8]) -> Result<RuntimeInfo, String> {
    let any = if options.is_empty() {
        None
    } else {
        Some(Any::parse_from_bytes(options).map_err(|e| format!("runtime options on stdin are not a protobuf Any: {e}"))?)
    };
    let opts = runtime_options(any.as_ref()).map_err(|e| e.to_string())?;
    let cfg = Config::resolve(opts.config.as_ref(), opts.config_body.as_deref()).map_err(|e| e.to_string())?;

    let mut info = RuntimeInfo {
        name: crate::RUNTIME_NAME.to_string(),
        version: MessageField::some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        }),
        options: any.map(MessageField::some).unwrap_or_default(),
        ..Default::default()
    };
    let delegate = match &opts.binary_name {
        Some(bin) => binary_name_to_delegate(bin).map_err(|e| e.to_string())?,
        None => match router::default_delegate(&cfg, &available(&cfg), &search_path()) {
            Ok((name, _)) => name,
            Err(e) => {
                // An RTOS-only board: nothing to report, which is not an error.
                eprintln!("micrun -info: no Linux delegate, so no OCI features to report: {e}");
                return Ok(info);
            }
        },
    };
    info.annotations.insert(DELEGATE_ANNOTATION.to_string(), delegate.clone());
    let features = delegate_features(&cfg, &delegate, FEATURES_DEADLINE).or_else(|e| {
        // crun before 1.9 (Debian 12 ships 1.8.1) has no `features` command.
        let derived = version_features(&cfg, &delegate, FEATURES_DEADLINE)
            .map_err(|v| format!("{e}; and from --version: {v}"))?;
        info.annotations.insert(FEATURES_SOURCE_ANNOTATION.into(), format!("{delegate} --version ({e})"));
        Ok::<_, String>(derived)
    });
    match features {
        Ok(json) => {
            info.features = MessageField::some(Any { type_url: FEATURES_URL.into(), value: json, ..Default::default() });
        }
        // Like containerd's runc shim: a runtime without features still gets an answer.
        Err(e) => eprintln!("micrun -info: no OCI features from delegate {delegate}: {e}"),
    }
    Ok(info)
}

/// The features a runtime without a `features` command states in `--version`:
/// the spec version it implements (`spec: 1.0.0`). Nothing else is claimed, so
/// CRI enables nothing (user namespaces, rro mounts) it cannot know about.
fn version_features(cfg: &Config, name: &str, limit: Duration) -> Result<Vec<u8>, String> {
    let out = run_delegate(cfg, name, "--version", limit)?;
    let text = String::from_utf8_lossy(&out);
    let spec = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("spec:").map(str::trim))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "no `spec: VERSION` line".to_string())?;
    Ok(serde_json::to_vec(&serde_json::json!({ "ociVersionMin": "1.0.0", "ociVersionMax": spec })).expect("json"))
}

/// `<delegate> features`, bounded in time; its stdout must be a JSON object.
fn delegate_features(cfg: &Config, name: &str, limit: Duration) -> Result<Vec<u8>, String> {
    let out = run_delegate(cfg, name, "features", limit)?;
    match serde_json::from_slice::<serde_json::Value>(&out) {
        Ok(serde_json::Value::Object(_)) => Ok(out),
        _ => Err(format!("{name} features printed no JSON object")),
    }
}

/// Stdout of `<delegate> <arg>`, which must succeed within `limit`.
fn run_delegate(cfg: &Config, name: &str, arg: &str, limit: Duration) -> Result<Vec<u8>, String> {
    let profile = Profile::load(name, &cfg.delegate.profile_dir).map_err(|e| e.to_string())?;
    let binary = profile.find_binary(&search_path()).map_err(|e| e.to_string())?;
    let mut child = Command::new(&binary)
        .args(&profile.global_args)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {}: {e}", binary.display()))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().map_err(|e| format!("wait for {}: {e}", binary.display()))? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} {arg} did not answer within {limit:?}", binary.display()));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("{} {arg}: {status}: {}", binary.display(), String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(output.stdout)
}

/// All of stdin, or an error when it is not closed within `limit` (a terminal,
/// or a caller that never closes the pipe).
fn read_stdin(limit: Duration) -> Result<Vec<u8>, String> {
    if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        return Ok(Vec::new());
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = tx.send(std::io::stdin().read_to_end(&mut buf).map(|_| buf));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(buf)) => Ok(buf),
        Ok(Err(e)) => Err(format!("read runtime options from stdin: {e}")),
        Err(_) => Err(format!("stdin was not closed within {limit:?}; -info reads the runtime options from stdin")),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn runtime_options_any(config_body: &str) -> Vec<u8> {
        // runtimeoptions.v1.Options { config_body = 3 }
        let mut value = vec![0x1a];
        let mut n = config_body.len();
        while n >= 0x80 {
            value.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        value.push(n as u8);
        value.extend_from_slice(config_body.as_bytes());
        Any { type_url: "runtimeoptions.v1.Options".into(), value, ..Default::default() }.write_to_bytes().unwrap()
    }

    /// A config whose only delegate `fake` is a script printing `stdout` (or sleeping).
    fn fake_delegate(dir: &std::path::Path, script: &str) -> String {
        let bin = dir.join("fake-runtime");
        std::fs::write(&bin, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("fake.toml"), format!("name = \"fake\"\nbinary = \"{}\"\n", bin.display())).unwrap();
        format!("[delegate]\norder = [\"fake\"]\nallowed = [\"fake\"]\nprofile_dir = \"{}\"\n", dir.display())
    }

    #[test]
    fn info_flag_is_found_with_one_or_two_dashes() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(requested(&args(&["shim", "-info"])));
        assert!(requested(&args(&["shim", "--info"])));
        assert!(!requested(&args(&["shim", "-id", "x", "start"])));
        assert!(!requested(&args(&["-info"])));
    }

    #[test]
    fn features_of_the_default_delegate_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let body = fake_delegate(dir.path(), r#"[ "$1" = features ] && echo '{"ociVersionMin":"1.0.0","mountOptions":["rro"]}'"#);
        let info = runtime_info(&runtime_options_any(&body)).unwrap();
        assert_eq!(info.name, "io.containerd.mica.v2");
        assert_eq!(info.annotations.get(DELEGATE_ANNOTATION).map(String::as_str), Some("fake"));
        assert_eq!(info.features.type_url, FEATURES_URL);
        let json: serde_json::Value = serde_json::from_slice(&info.features.value).unwrap();
        assert_eq!(json["mountOptions"][0], "rro");
        assert!(info.options.is_some(), "the options are echoed back");
    }

    #[test]
    fn without_a_features_command_the_spec_version_is_taken_from_version() {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"case $1 in --version) printf 'crun version 1.8.1\nspec: 1.0.0\n+SECCOMP\n';; *) echo 'unknown command features' >&2; exit 1;; esac"#;
        let body = fake_delegate(dir.path(), script);
        let info = runtime_info(&runtime_options_any(&body)).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&info.features.value).unwrap();
        assert_eq!(json, serde_json::json!({"ociVersionMin": "1.0.0", "ociVersionMax": "1.0.0"}));
        let source = &info.annotations[FEATURES_SOURCE_ANNOTATION];
        assert!(source.starts_with("fake --version") && source.contains("unknown command features"), "{source}");
    }

    #[test]
    fn a_delegate_without_features_or_without_binary_still_gets_an_answer() {
        let dir = tempfile::tempdir().unwrap();
        let body = fake_delegate(dir.path(), "echo 'unknown command' >&2; exit 1");
        let info = runtime_info(&runtime_options_any(&body)).unwrap();
        assert!(info.features.is_none());
        std::fs::remove_file(dir.path().join("fake-runtime")).unwrap();
        let info = runtime_info(&runtime_options_any(&body)).unwrap();
        assert!(info.features.is_none());
        assert!(info.annotations.is_empty(), "no delegate found, none named");
    }

    #[test]
    fn a_hanging_features_call_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let body = fake_delegate(dir.path(), "exec sleep 30");
        let cfg = Config::parse(&body, "test").unwrap();
        let t = Instant::now();
        let e = delegate_features(&cfg, "fake", Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("did not answer"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn options_that_are_not_an_any_are_refused() {
        let e = runtime_info(b"\xff\xff\xff").unwrap_err();
        assert!(e.contains("not a protobuf Any"), "{e}");
    }

    #[test]
    fn a_path_as_binary_name_is_refused() {
        // containerd.runc.v1.Options { binary_name = 6 }
        let mut value = vec![0x32, 7];
        value.extend_from_slice(b"/bin/sh");
        let any = Any { type_url: "containerd.runc.v1.Options".into(), value, ..Default::default() };
        let e = runtime_info(&any.write_to_bytes().unwrap()).unwrap_err();
        assert!(e.contains("not a path"), "{e}");
    }
}

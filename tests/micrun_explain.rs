//! `micrun explain BUNDLE`: the route and its reason, as the shim would decide
//! at Create, and the reminder that containerd labels are not annotations.
//! Needs no containerd: it reads BUNDLE/config.json and a micrun config.

use std::path::Path;
use std::process::Command;

fn explain(spec: &str, config: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), spec).unwrap();
    let cfg = dir.path().join("micrun.toml");
    std::fs::write(&cfg, config).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_micrun"))
        .arg("explain")
        .arg(dir.path())
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

/// A config whose delegates are all found: PATH lookups use the real PATH.
fn delegates_on_path() -> String {
    let found: Vec<&str> = ["crun", "runc", "youki"]
        .into_iter()
        .filter(|d| std::env::var("PATH").unwrap_or_default().split(':').any(|p| Path::new(p).join(d).is_file()))
        .collect();
    assert!(!found.is_empty(), "no crun, runc or youki on PATH: install one (bash scripts/test.sh does)");
    format!("[delegate]\norder = {found:?}\nallowed = {found:?}\n")
}

#[test]
fn explain_shows_the_rtos_route_for_an_annotation() {
    let (ok, out, err) = explain(r#"{"annotations":{"org.openeuler.micran.container.os":"zephyr"}}"#, &delegates_on_path());
    assert!(ok, "{err}");
    let first = out.lines().next().unwrap_or_default();
    assert!(first.starts_with("mica (") && first.contains("org.openeuler.micran"), "{out}");
    assert!(out.contains("containerd labels never reach the shim") && out.contains("--annotation"), "{out}");
}

#[test]
fn explain_reminds_that_labels_are_not_read_unless_configured() {
    let (ok, out, err) = explain(r#"{"annotations":{}}"#, &delegates_on_path());
    assert!(ok, "{err}");
    assert!(out.lines().next().unwrap_or_default().starts_with("delegate "), "{out}");
    assert!(out.contains("labels_as_annotations = true"), "{out}");
    let (ok, out, err) = explain(r#"{"annotations":{}}"#, &format!("labels_as_annotations = true\n{}", delegates_on_path()));
    assert!(ok, "{err}");
    assert!(out.contains("also reads the container's containerd labels"), "{out}");
}

#[test]
fn explain_names_a_bad_annotation() {
    let (ok, _, err) = explain(r#"{"annotations":{"io.containerd.mica.v2.delegate":"/bin/sh"}}"#, &delegates_on_path());
    assert!(!ok);
    assert!(err.contains("/bin/sh") && err.contains("allowed"), "{err}");
}

//! Bad input to the exec delegate, through a real containerd, our shim and real
//! OCI runtimes: bad annotations, no runtime, a runtime failing at create, a bad
//! config. Each must fail at Create with an error naming what is wrong, and
//! leave nothing behind ("nothing lost, nothing left behind"): no
//! rootfs mount, no work dir, no micrun.json, no delegate state, no cgroup and
//! no shim process.

mod common;

use std::path::PathBuf;

use common::containerd::containerd_path;
use common::leftovers::assert_failed_create_clean;
use common::{assert_mentions, Env, Run, DELEGATE_ANNOTATION, RUNTIME};

/// `ctr run` (no --rm, so the record stays for the checks) that must fail at Create.
fn run_must_fail(env: &Env, id: &str, extra: &[&str]) -> Run {
    let mut args = vec!["run", "--null-io", "--runtime", RUNTIME];
    args.extend_from_slice(extra);
    args.extend([env.image.as_str(), id, "true"]);
    let r = env.ctr(&args);
    assert_ne!(r.code, 0, "ctr run {id} {extra:?} should fail but succeeded: {}{}", r.stdout, r.stderr);
    assert!(env.task_status(id).is_none(), "failed create of {id} left a task: {:?}", env.task_status(id));
    r
}

// ---------------------------------------------------------------------------
// 1. the delegate annotation names a profile, never a path or an unknown runtime

fn bad_delegate_annotation(value: &str) {
    let env = common::env();
    let id = common::unique_id("bad-anno");
    let anno = format!("{DELEGATE_ANNOTATION}={value}");
    let r = run_must_fail(&env, &id, &["--annotation", &anno]);
    // what is wrong (the annotation and its value) and the fix (the allowed names)
    assert_mentions(&r.stderr, &[DELEGATE_ANNOTATION, value, "allowed", "crun", "runc", "youki"]);
    assert_failed_create_clean(&env, &id);
}

#[test]
fn delegate_annotation_with_a_path_fails_and_leaves_nothing() {
    bad_delegate_annotation("/bin/sh");
}

#[test]
fn delegate_annotation_with_an_unknown_name_fails_and_leaves_nothing() {
    bad_delegate_annotation("runsc");
}

// ---------------------------------------------------------------------------
// 2. no OCI runtime at all

/// A profile dir whose crun, runc and youki profiles name binaries that exist nowhere.
fn missing_binaries_profile_dir(env: &Env, id: &str) -> PathBuf {
    let dir = env.state.join(format!("profiles-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["crun", "runc", "youki"] {
        let text = format!("name = \"{name}\"\nbinary = \"{name}-not-installed-{id}\"\n");
        std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
    }
    dir
}

#[test]
fn no_runtime_on_path_fails_naming_what_and_where() {
    // Honest note: this does not empty containerd's PATH (the shim inherits it, and
    // crun/runc/youki really are installed). It simulates an empty PATH by
    // overriding the three profiles' `binary` with names that exist nowhere, so the
    // shim's PATH search finds none of them — the same code path as a board with
    // no runtime installed.
    let env = common::env();
    let id = common::unique_id("no-runtime");
    let dir = missing_binaries_profile_dir(&env, &id);
    let cfg = env.config_file(&id, &format!("[delegate]\nprofile_dir = {:?}\n", dir.display().to_string()));
    let r = run_must_fail(&env, &id, &["--runtime-config-path", cfg.to_str().unwrap()]);
    // names the runtimes looked for and the PATH searched: the shim's, which is
    // containerd's (containerd may prepend its opt/bin dir)
    let path = containerd_path(&env);
    assert_mentions(&r.stderr, &["crun", "runc", "youki", "PATH", &path]);
    assert_failed_create_clean(&env, &id);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&cfg).unwrap();
}

#[test]
fn runtime_failing_at_create_leaves_nothing_behind() {
    // The delegate is found but its `create` fails, i.e. after the shim mounted the
    // rootfs and made the work dir: Create's own cleanup must undo both.
    let env = common::env();
    let id = common::unique_id("rt-fails");
    let dir = env.state.join(format!("profiles-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("crun.toml"), "name = \"crun\"\nbinary = \"/bin/false\"\n").unwrap();
    let cfg = env.config_file(
        &id,
        &format!("[delegate]\ndefault = \"crun\"\nprofile_dir = {:?}\n", dir.display().to_string()),
    );
    let r = run_must_fail(&env, &id, &["--runtime-config-path", cfg.to_str().unwrap()]);
    assert_mentions(&r.stderr, &["crun", "create"]);
    assert_failed_create_clean(&env, &id);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&cfg).unwrap();
}

// ---------------------------------------------------------------------------
// 3. a bad config

#[test]
fn unknown_config_key_fails_naming_the_key() {
    let env = common::env();
    let id = common::unique_id("bad-cfg");
    let cfg = env.config_file(&id, "[delegate]\ndefualt = \"crun\"\n");
    let r = run_must_fail(&env, &id, &["--runtime-config-path", cfg.to_str().unwrap()]);
    // the key, and which file holds it
    assert_mentions(&r.stderr, &["defualt", cfg.to_str().unwrap()]);
    assert_failed_create_clean(&env, &id);
    std::fs::remove_file(&cfg).unwrap();
}


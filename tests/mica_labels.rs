//! `labels_as_annotations`: containerd labels (what nerdctl 2.x `-l` and
//! `ctr run --label` set) never reach the OCI spec, so by default a labelled
//! RTOS image runs as a Linux container. With the option on, the shim reads
//! the container's labels under our prefixes from containerd's API at Create.

mod common;
#[path = "common/mica.rs"]
mod mica_common;

use std::path::Path;
use std::time::Duration;

use common::firmware::firmware_image;
use common::{route, unique_id, wait_until, Env, RUNTIME};
use mica_common::{assert_nothing_left, Sim};

const OS_LABEL: &str = "org.openeuler.micran.container.os=zephyr";

/// The simulator's micrun config with `labels_as_annotations` set as asked.
fn config(env: &Env, sim: &Sim, on: bool) -> std::path::PathBuf {
    let base = std::fs::read_to_string(&sim.config).unwrap();
    env.config_file(&format!("labels-{on}-{}", std::process::id()), &format!("labels_as_annotations = {on}\n{base}"))
}

/// `ctr c create` with `extra` flags, `ctr c label` with `labels`, `ctr t start -d`.
/// Labels are set after create because ctr 1.x's own `--label` also copies
/// them into the spec's annotations (nerdctl 2.x's does not).
fn run_labelled(env: &Env, config: &Path, extra: &[&str], labels: &[&str], image: &str, id: &str, cmd: &[&str]) -> common::Run {
    let mut a = vec!["containers", "create", "--runtime", RUNTIME, "--runtime-config-path", config.to_str().unwrap()];
    a.extend_from_slice(extra);
    a.extend([image, id]);
    a.extend_from_slice(cmd);
    let c = env.ctr(&a);
    assert_eq!(c.code, 0, "ctr c create: {}", c.stderr);
    let mut l = vec!["containers", "label", id];
    l.extend_from_slice(labels);
    let r = env.ctr(&l);
    assert_eq!(r.code, 0, "ctr c label: {}", r.stderr);
    let spec = env.ctr(&["containers", "info", "--spec", id]).stdout;
    let os_key = OS_LABEL.split_once('=').unwrap().0;
    assert!(spec.contains("\"ociVersion\"") && !spec.contains(os_key), "the os label must reach the shim only as a label: {spec}");
    env.ctr(&["task", "start", "-d", id])
}

#[test]
fn rtos_label_is_read_when_labels_as_annotations_is_on() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let id = unique_id("rtos-label");
    let r = run_labelled(&env, &config(&env, &sim, true), &[], &[OS_LABEL], &image, &id, &[]);
    assert_eq!(r.code, 0, "ctr run --label: {}{}", r.stdout, r.stderr);
    assert!(wait_until(Duration::from_secs(10), || sim.status(&id).contains("Running")), "not an RTOS: {}", sim.status(&id));
    let (route, reason) = route(&env, &id);
    assert_eq!(route, "mica", "{reason}");
    assert!(reason.contains("org.openeuler.micran"), "{reason}");
    env.remove(&id);
    assert_nothing_left(&env, &sim, &id);
}

#[test]
fn rtos_label_alone_runs_linux_by_default() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let id = unique_id("rtos-label-off");
    // the busybox image, so the Linux route has something to run
    let r = run_labelled(&env, &config(&env, &sim, false), &[], &[OS_LABEL], &env.image.clone(), &id, &["sleep", "30"]);
    assert_eq!(r.code, 0, "ctr run --label: {}{}", r.stdout, r.stderr);
    let (route, reason) = route(&env, &id);
    assert!(route.starts_with("delegate"), "a label must not route without the option: {route} ({reason})");
    assert!(!sim.has_client(&id));
    env.remove(&id);
}

#[test]
fn rtos_annotation_wins_over_a_label_of_the_same_key() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let image = firmware_image(&env, "/bin/cat");
    let id = unique_id("rtos-label-ann");
    let config = config(&env, &sim, true);
    // the label names a pedestal this simulator does not run; the annotation the right one
    let r = run_labelled(
        &env,
        &config,
        &["--annotation", "org.openeuler.micran.ped.pedestal=baremetal"],
        &["org.openeuler.micran.ped.pedestal=xen", OS_LABEL],
        &image,
        &id,
        &[],
    );
    assert_eq!(r.code, 0, "ctr run: {}{}", r.stdout, r.stderr);
    assert!(wait_until(Duration::from_secs(10), || sim.status(&id).contains("Running")), "{}", sim.status(&id));
    env.remove(&id);
    assert_nothing_left(&env, &sim, &id);
}

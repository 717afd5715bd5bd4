//! The firmware lookup through a real containerd: the kernel resolves the
//! annotated path with the container's rootfs as `/` (openat2 RESOLVE_IN_ROOT),
//! so an absolute symlink in the image reaches the image's file, one naming a
//! file only the host has is refused, and a FIFO is refused without blocking
//! Create. The test image (scripts/lib.sh micrun_build_busybox_image) carries
//! these names under /firmware-paths.

mod common;
#[path = "common/mica.rs"]
mod mica_common;

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use common::events::Events;
use common::unique_id;
use mica_common::{assert_nothing_left, Sim};

const PATH_KEY: &str = "org.openeuler.micran.container.firmware_path";

fn sha256_of(path: &str) -> String {
    Sha256::digest(std::fs::read(path).unwrap()).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn absolute_symlink_in_the_image_boots_the_images_file() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    let events = Events::start(&env);
    let id = unique_id("rtos-abslink");
    let path = format!("{PATH_KEY}=/firmware-paths/absolute-link");
    let r = env.ctr(&sim.run_args(&["-d"], &["--annotation", &path], &env.image, &id));
    assert_eq!(r.code, 0, "an absolute link inside the image was refused: {}", r.stderr);
    assert!(sim.has_client(&id), "no micad client for {id}");
    // The image's /bin/busybox is a copy of the host's (scripts/lib.sh).
    let want = sha256_of("/bin/busybox");
    let log = std::fs::read_to_string(env.state.join("containerd.log")).unwrap_or_default();
    assert!(
        log.lines().any(|l| l.contains("firmware copied") && l.contains(&id) && l.contains(&want)),
        "no 'firmware copied' line with the image's busybox (sha256 {want}): {}",
        common::leftovers::log_tail(&env, &id)
    );
    // busybox run as `firmware.elf` finds no such applet and halts at once, so
    // the kill may find the RTOS ended already.
    env.ctr(&["task", "kill", "-s", "SIGKILL", &id]);
    assert!(events.wait_for(&id, "/tasks/exit", Duration::from_secs(10)).is_some(), "no /tasks/exit");
    assert_eq!(env.ctr(&["task", "rm", &id]).code, 0);
    assert_eq!(env.ctr(&["container", "rm", &id]).code, 0);
    assert_nothing_left(&env, &sim, &id);
}

fn assert_refused(env: &common::Env, sim: &Sim, in_image: &str, needle: &str) {
    let id = unique_id("rtos-fwpath");
    let path = format!("{PATH_KEY}={in_image}");
    let started = Instant::now();
    let r = env.ctr(&sim.run_args(&["--rm"], &["--annotation", &path], &env.image, &id));
    assert_ne!(r.code, 0, "{in_image} was accepted as firmware");
    assert!(r.stderr.contains(needle), "{in_image}: expected {needle:?} in: {}", r.stderr);
    assert!(started.elapsed() < Duration::from_secs(20), "refusing {in_image} took {:?}", started.elapsed());
    assert!(!sim.has_client(&id), "refusing {in_image} still reached micad");
    common::leftovers::assert_nothing_left(env, &id);
    env.ctr(&["containers", "rm", &id]);
    assert_nothing_left(env, sim, &id);
}

#[test]
fn links_to_host_files_and_fifos_are_refused_leaving_nothing() {
    let env = common::env();
    let sim = Sim::start(&env, "baremetal");
    // /usr/bin/env exists on this host, not in the image: resolved as the
    // container sees it, it does not exist.
    assert!(std::path::Path::new("/usr/bin/env").exists());
    assert_refused(&env, &sim, "/firmware-paths/host-only-link", "does not exist in the image");
    assert_refused(&env, &sim, "/firmware-paths/fifo", "is a FIFO, not a regular file");
    assert_refused(&env, &sim, "/firmware-paths/../bin/busybox", "`..` is not allowed");
}

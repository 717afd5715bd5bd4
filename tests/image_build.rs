//! `micrun image build` end to end with the demo firmware: the CLI output is
//! byte-for-byte reproducible, and (with the private containerd of
//! scripts/test.sh) the archive imports with `ctr image import` and its root
//! file system holds the firmware.
//!
//! Needs make and a C compiler with static libc for the demo firmware.

mod common;

use common::firmware::demo_firmware;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const MICRUN: &str = env!("CARGO_BIN_EXE_micrun");

fn scratch() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("image-build-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}


struct Built {
    stdout: String,
    bytes: Vec<u8>,
}

fn micrun_image_build(args: &[&str], output: &Path) -> Built {
    let o = Command::new(MICRUN)
        .args(["image", "build"])
        .args(args)
        .arg("--output")
        .arg(output)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "micrun image build {args:?}: {stdout}{}", String::from_utf8_lossy(&o.stderr));
    Built { stdout, bytes: std::fs::read(output).unwrap() }
}

/// `manifest sha256:...` from the CLI's output.
fn manifest_digest(stdout: &str) -> &str {
    stdout.lines().find_map(|l| l.strip_prefix("manifest ")).expect("manifest line")
}

#[test]
fn demo_firmware_boots_answers_and_halts_with_its_code() {
    let fw = demo_firmware();
    let mut child = Command::new(fw)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"help\nuptime\necho hello rtos\nnope\nhalt 300\nhalt 42\n").unwrap();
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(42), "{out}");
    assert!(out.starts_with("*** Booting micrun demo RTOS v1 (native_sim) ***\ncpu: "), "{out}");
    for want in ["demo:~$ ", "echo ARGS", "uptime: ", "demo:~$ hello rtos\n", "nope: command not found", "halt: usage", "halting with code 42"] {
        assert!(out.contains(want), "{want:?} missing from {out}");
    }
}

#[test]
fn demo_firmware_keeps_running_after_end_of_input() {
    let mut child = Command::new(demo_firmware()).stdin(Stdio::null()).stdout(Stdio::null()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "the RTOS must not exit when nobody types");
    // SIGTERM (not Child::kill's SIGKILL) ends it, as `ctr task kill` would.
    let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.wait().unwrap().signal(), Some(15));
}

#[test]
fn cli_build_of_the_demo_image_is_reproducible() {
    let dir = scratch();
    let fw = demo_firmware().to_str().unwrap().to_string();
    let ped = dir.join("xen.cfg");
    std::fs::write(&ped, "kernel = \"fw.bin\"\n").unwrap();
    let ped = ped.to_str().unwrap().to_string();
    let args = ["--tag", "localhost/micrun/demo-rtos:repro", "--pedestal-file", &ped, "--annotation", "k=v", &fw];
    let a = micrun_image_build(&args, &dir.join("a.tar"));
    let b = micrun_image_build(&args, &dir.join("b.tar"));
    assert!(a.bytes == b.bytes, "two builds of the same inputs differ");
    assert_eq!(manifest_digest(&a.stdout), manifest_digest(&b.stdout));
    assert!(a.stdout.contains("ctr run --runtime io.containerd.mica.v2 --annotation org.openeuler.micrun.container.os=zephyr"), "{}", a.stdout);

    // Not an ELF: a clear error and no archive.
    let out = dir.join("bad.tar");
    let o = Command::new(MICRUN).args(["image", "build", "--tag", "localhost/x:1", "--output"]).arg(&out).arg(&ped).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("is not an ELF file"), "{err}");
    assert!(!out.exists());
}

/// Removes what the containerd test added, also when it fails half-way.
struct Cleanup<'a> {
    env: &'a common::Env,
    reference: String,
    mount: PathBuf,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if self.mount.exists() {
            self.env.ctr(&["image", "unmount", "--rm", self.mount.to_str().unwrap()]);
            let _ = std::fs::remove_dir(&self.mount);
        }
        self.env.ctr(&["image", "rm", &self.reference]);
    }
}

#[test]
fn ctr_imports_and_mounts_the_built_image_skipped_without_containerd() {
    if std::env::var_os("MICRUN_TEST_ADDRESS").is_none() {
        eprintln!(
            "SKIPPED ctr_imports_and_mounts_the_built_image: MICRUN_TEST_ADDRESS is not set \
             (no private containerd); run `bash scripts/test.sh` to include it"
        );
        return;
    }
    let env = common::env();
    let dir = scratch();
    let reference = format!("localhost/micrun/demo-rtos:import-{}", std::process::id());
    let ped = dir.join("cell.conf");
    std::fs::write(&ped, "cell\n").unwrap();
    let tar = dir.join("import.tar");
    let built = micrun_image_build(
        &["--tag", &reference, "--os", "zephyr", "--pedestal-file", ped.to_str().unwrap(), demo_firmware().to_str().unwrap()],
        &tar,
    );
    let digest = manifest_digest(&built.stdout).to_string();
    let mount = env.state.join(format!("image-mount-{}", std::process::id()));
    let _cleanup = Cleanup { env: &env, reference: reference.clone(), mount: mount.clone() };

    let r = env.ctr(&["image", "import", tar.to_str().unwrap()]);
    assert_eq!(r.code, 0, "ctr image import: {}{}", r.stdout, r.stderr);

    // Listed under the full reference from the index annotations, at our manifest.
    let r = env.ctr(&["image", "ls"]);
    let line = r.stdout.lines().find(|l| l.split_whitespace().next() == Some(&reference));
    let line = line.unwrap_or_else(|| panic!("{reference} not in ctr image ls:\n{}", r.stdout));
    assert!(line.contains(&digest), "ctr lists {line}, micrun built {digest}");

    let r = env.ctr(&["image", "check"]);
    let line = r.stdout.lines().find(|l| l.split_whitespace().next() == Some(&reference)).unwrap_or("");
    assert!(line.contains("complete"), "ctr image check: {}{}", r.stdout, r.stderr);

    // The image's root file system: the firmware, executable, and the pedestal file.
    std::fs::create_dir_all(&mount).unwrap();
    let r = env.ctr(&["image", "mount", &reference, mount.to_str().unwrap()]);
    assert_eq!(r.code, 0, "ctr image mount: {}{}", r.stdout, r.stderr);
    let fw = mount.join("firmware.elf");
    assert_eq!(std::fs::read(&fw).unwrap(), std::fs::read(demo_firmware()).unwrap());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&fw).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(std::fs::read_to_string(mount.join("pedestal/cell.conf")).unwrap(), "cell\n");
    let r = env.ctr(&["image", "unmount", "--rm", mount.to_str().unwrap()]);
    assert_eq!(r.code, 0, "ctr image unmount: {}{}", r.stdout, r.stderr);
    std::fs::remove_dir(&mount).unwrap();
}

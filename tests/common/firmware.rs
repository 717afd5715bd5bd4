//! The demo RTOS firmware (examples/demo-firmware), built by its Makefile once
//! per test binary, and the image `micrun image build` packs it into.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::Env;

/// What the demo image is called in every containerd namespace it is imported into.
pub const DEMO_IMAGE: &str = "localhost/micrun-test/demo-rtos:1";

pub fn demo_firmware() -> &'static Path {
    static FW: OnceLock<PathBuf> = OnceLock::new();
    FW.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("demo-firmware-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("demo-firmware.elf");
        let st = Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-firmware"))
            .arg(format!("OUT={}", out.display()))
            .status()
            .expect("run make (the demo firmware needs make and a C compiler)");
        assert!(st.success(), "building the demo firmware failed: {st}");
        out
    })
}

/// The demo image, packed by `micrun image build` and imported into `env`'s
/// containerd namespace unless it is there already.
pub fn demo_image(env: &Env) -> String {
    let reference = DEMO_IMAGE.to_string();
    if env.ctr(&["images", "ls", "-q"]).stdout.lines().any(|l| l == reference) {
        return reference;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo-image");
    std::fs::create_dir_all(&dir).unwrap();
    let tar = dir.join(format!("demo-rtos-{}.tar", std::process::id()));
    let o = Command::new(env!("CARGO_BIN_EXE_micrun"))
        .args(["image", "build", "--tag", &reference, "--os", "zephyr", "--output"])
        .arg(&tar)
        .arg(demo_firmware())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "micrun image build: {}", String::from_utf8_lossy(&o.stderr));
    let r = env.ctr(&["images", "import", tar.to_str().unwrap()]);
    assert_eq!(r.code, 0, "import: {}", r.stderr);
    let _ = std::fs::remove_file(&tar);
    reference
}

/// Imports (once per test binary and firmware) an image holding `firmware` at /firmware.elf.
pub fn firmware_image(env: &Env, firmware: &str) -> String {
    let name = Path::new(firmware).file_name().unwrap().to_string_lossy().into_owned();
    let reference = format!("localhost/micrun-test/rtos-{name}:1");
    if env.ctr(&["images", "ls", "-q"]).stdout.lines().any(|l| l == reference) {
        return reference;
    }
    let tar = env.state.join(format!("rtos-{name}.tar"));
    let o = Command::new(env!("CARGO_BIN_EXE_micrun"))
        .args(["image", "build", firmware, "--tag", &reference, "--output"])
        .arg(&tar)
        .output()
        .expect("run micrun image build");
    assert!(o.status.success(), "micrun image build {firmware}: {}", String::from_utf8_lossy(&o.stderr));
    let r = env.ctr(&["images", "import", tar.to_str().unwrap()]);
    assert_eq!(r.code, 0, "import: {}", r.stderr);
    reference
}

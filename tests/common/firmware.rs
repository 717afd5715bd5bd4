//! The demo RTOS firmware (examples/demo-firmware), built by its Makefile once
//! per test binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

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

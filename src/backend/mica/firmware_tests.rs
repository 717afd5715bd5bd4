use std::os::unix::fs::symlink;

use super::*;

struct Fixture {
    _tmp: tempfile::TempDir,
    rootfs: PathBuf,
    work: PathBuf,
    outside: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(rootfs.join("lib/firmware")).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let outside = tmp.path().join("secret.elf");
    std::fs::write(&outside, b"host file").unwrap();
    Fixture { _tmp: tmp, rootfs, work, outside }
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn assert_refused(r: Result<Firmware>, needle: &str, work: &Path) {
    let e = r.unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert!(e.to_string().contains(needle), "{e}");
    assert_eq!(std::fs::read_dir(work).unwrap().count(), 0, "work dir must stay empty");
}

#[test]
fn default_name_is_copied_with_its_hash() {
    let f = fixture();
    std::fs::write(f.rootfs.join("firmware.elf"), b"ELF!").unwrap();
    std::fs::write(f.rootfs.join("other.elf"), b"no").unwrap();
    let fw = prepare(&f.rootfs, None, Some(&sha(b"ELF!")), &f.work).unwrap();
    assert_eq!(fw.in_rootfs, "/firmware.elf");
    assert_eq!(std::fs::read(&fw.copy).unwrap(), b"ELF!");
    assert_eq!(fw.sha256, sha(b"ELF!"));
}

#[test]
fn only_elf_at_top_level() {
    let f = fixture();
    std::fs::write(f.rootfs.join("zephyr.elf"), b"z").unwrap();
    std::fs::write(f.rootfs.join("lib/firmware/deep.elf"), b"d").unwrap();
    let fw = prepare(&f.rootfs, None, None, &f.work).unwrap();
    assert_eq!(fw.in_rootfs, "/zephyr.elf");
}

#[test]
fn several_or_no_candidates_are_refused() {
    let f = fixture();
    assert_refused(prepare(&f.rootfs, None, None, &f.work), "no firmware", &f.work);
    std::fs::write(f.rootfs.join("a.elf"), b"a").unwrap();
    std::fs::write(f.rootfs.join("b.elf"), b"b").unwrap();
    assert_refused(prepare(&f.rootfs, None, None, &f.work), "a.elf, b.elf", &f.work);
}

#[test]
fn annotated_path_leading_slash_is_rootfs_root() {
    let f = fixture();
    std::fs::write(f.rootfs.join("lib/firmware/rtos.elf"), b"r").unwrap();
    for p in ["/lib/firmware/rtos.elf", "lib/firmware/rtos.elf", "./lib/./firmware/rtos.elf"] {
        let fw = prepare(&f.rootfs, Some(p), None, &f.work).unwrap();
        assert_eq!(std::fs::read(&fw.copy).unwrap(), b"r");
        std::fs::remove_file(&fw.copy).unwrap();
    }
}

#[test]
fn dot_dot_is_refused() {
    let f = fixture();
    std::fs::write(f.rootfs.join("lib/firmware/rtos.elf"), b"r").unwrap();
    assert_refused(prepare(&f.rootfs, Some("/lib/../lib/firmware/rtos.elf"), None, &f.work), "`..`", &f.work);
    assert_refused(prepare(&f.rootfs, Some("../secret.elf"), None, &f.work), "`..`", &f.work);
}

#[test]
fn symlink_inside_is_followed() {
    let f = fixture();
    std::fs::write(f.rootfs.join("lib/firmware/rtos.elf"), b"r").unwrap();
    symlink("lib/firmware/rtos.elf", f.rootfs.join("firmware.elf")).unwrap();
    symlink("../firmware.elf", f.rootfs.join("lib/up.elf")).unwrap();
    assert_eq!(std::fs::read(prepare(&f.rootfs, None, None, &f.work).unwrap().copy).unwrap(), b"r");
    std::fs::remove_file(f.work.join(COPY_NAME)).unwrap();
    assert_eq!(std::fs::read(prepare(&f.rootfs, Some("/lib/up.elf"), None, &f.work).unwrap().copy).unwrap(), b"r");
}

#[test]
fn symlink_escaping_is_refused() {
    let f = fixture();
    symlink("../secret.elf", f.rootfs.join("firmware.elf")).unwrap();
    assert_refused(prepare(&f.rootfs, None, None, &f.work), "outside the rootfs", &f.work);
    symlink(&f.outside, f.rootfs.join("abs.elf")).unwrap();
    assert_refused(prepare(&f.rootfs, Some("/abs.elf"), None, &f.work), "absolute path", &f.work);
    // A directory link that leaves the rootfs, with the file name after it.
    symlink("../..", f.rootfs.join("lib/esc")).unwrap();
    assert_refused(prepare(&f.rootfs, Some("/lib/esc/secret.elf"), None, &f.work), "outside the rootfs", &f.work);
}

#[test]
fn missing_directory_and_loop_are_refused() {
    let f = fixture();
    assert_refused(prepare(&f.rootfs, Some("/nope.elf"), None, &f.work), "does not exist", &f.work);
    assert_refused(prepare(&f.rootfs, Some("/lib"), None, &f.work), "not a regular file", &f.work);
    assert_refused(prepare(&f.rootfs, Some("/"), None, &f.work), "rootfs itself", &f.work);
    symlink("loop.elf", f.rootfs.join("loop.elf")).unwrap();
    assert_refused(prepare(&f.rootfs, Some("loop.elf"), None, &f.work), "too many levels", &f.work);
}

#[test]
fn hash_mismatch_is_refused() {
    let f = fixture();
    std::fs::write(f.rootfs.join("firmware.elf"), b"ELF!").unwrap();
    assert_refused(prepare(&f.rootfs, None, Some(&sha(b"other")), &f.work), "expects", &f.work);
    assert_refused(prepare(&f.rootfs, None, Some(&sha(b"other")), &f.work), HASH_KEY, &f.work);
    // Malformed hashes are refused by settings.rs before a firmware is looked at.
    assert!(prepare(&f.rootfs, None, Some(&sha(b"ELF!")), &f.work).is_ok());
}

use std::io::Read;
use std::os::unix::fs::symlink;

use nix::sys::stat::{Mode, SFlag};

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

/// The kernel resolver where this kernel has openat2, else None after saying why
/// the test is skipped.
fn kernel_resolver(test: &str) -> Option<Resolver> {
    if Resolver::detect() == Resolver::Kernel {
        return Some(Resolver::Kernel);
    }
    eprintln!("SKIPPED {test}: this kernel has no openat2 (Linux 5.6 or later), so firmware paths use the walk");
    None
}

fn read_in_rootfs(f: &Fixture, path: &str, resolver: Resolver) -> Result<Vec<u8>> {
    let mut file = open_in_rootfs(&f.rootfs, path, resolver)?;
    let mut out = Vec::new();
    file.read_to_end(&mut out).unwrap();
    Ok(out)
}

fn refusal(r: Result<Vec<u8>>) -> String {
    match r {
        Ok(bytes) => panic!("opened, read {:?}", String::from_utf8_lossy(&bytes)),
        Err(e) => {
            assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn absolute_symlinks_resolve_inside_the_rootfs() {
    let f = fixture();
    let Some(kernel) = kernel_resolver("absolute_symlinks_resolve_inside_the_rootfs") else { return };
    std::fs::write(f.rootfs.join("lib/firmware/rtos.elf"), b"r").unwrap();
    symlink("/lib/firmware/rtos.elf", f.rootfs.join("firmware.elf")).unwrap();
    symlink("/lib/firmware", f.rootfs.join("lib/fw")).unwrap();
    assert_eq!(std::fs::read(prepare(&f.rootfs, None, None, &f.work).unwrap().copy).unwrap(), b"r");
    assert_eq!(read_in_rootfs(&f, "/lib/fw/rtos.elf", kernel).unwrap(), b"r");
}

#[test]
fn escapes_resolve_inside_the_rootfs_never_on_the_host() {
    let f = fixture();
    let Some(kernel) = kernel_resolver("escapes_resolve_inside_the_rootfs_never_on_the_host") else { return };
    symlink("../secret.elf", f.rootfs.join("up.elf")).unwrap();
    symlink(&f.outside, f.rootfs.join("abs.elf")).unwrap();
    symlink("../..", f.rootfs.join("lib/esc")).unwrap();
    // As the container sees them: `..` stops at its `/`, and an absolute target
    // starts there; none of these exists in the image.
    for p in ["/up.elf", "/abs.elf", "/lib/esc/secret.elf"] {
        assert!(refusal(read_in_rootfs(&f, p, kernel)).contains("does not exist in the image"), "{p}");
    }
    std::fs::write(f.rootfs.join("secret.elf"), b"inside").unwrap();
    let mirrored = f.rootfs.join(f.outside.strip_prefix("/").unwrap());
    std::fs::create_dir_all(mirrored.parent().unwrap()).unwrap();
    std::fs::write(&mirrored, b"inside too").unwrap();
    assert_eq!(read_in_rootfs(&f, "/up.elf", kernel).unwrap(), b"inside");
    assert_eq!(read_in_rootfs(&f, "/lib/esc/secret.elf", kernel).unwrap(), b"inside");
    assert_eq!(read_in_rootfs(&f, "/abs.elf", kernel).unwrap(), b"inside too");
}

#[test]
fn the_walk_refuses_links_that_leave_or_are_absolute() {
    let f = fixture();
    symlink("../secret.elf", f.rootfs.join("firmware.elf")).unwrap();
    assert!(refusal(read_in_rootfs(&f, "/firmware.elf", Resolver::Walk)).contains("outside the rootfs"));
    symlink(&f.outside, f.rootfs.join("abs.elf")).unwrap();
    assert!(refusal(read_in_rootfs(&f, "/abs.elf", Resolver::Walk)).contains("absolute path"));
    symlink("../..", f.rootfs.join("lib/esc")).unwrap();
    assert!(refusal(read_in_rootfs(&f, "/lib/esc/secret.elf", Resolver::Walk)).contains("outside the rootfs"));
    std::fs::write(f.rootfs.join("lib/firmware/rtos.elf"), b"r").unwrap();
    symlink("firmware/rtos.elf", f.rootfs.join("lib/rel.elf")).unwrap();
    assert_eq!(read_in_rootfs(&f, "/lib/rel.elf", Resolver::Walk).unwrap(), b"r");
}

#[test]
fn fifos_and_devices_are_refused_without_being_opened() {
    let f = fixture();
    nix::unistd::mkfifo(&f.rootfs.join("firmware.elf"), Mode::from_bits_truncate(0o644)).unwrap();
    // A reader opening a FIFO blocks until a writer comes: the refusal must not.
    let rootfs = f.rootfs.clone();
    let work = f.work.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(prepare(&rootfs, None, None, &work).map_err(|e| e.to_string()));
    });
    let r = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("opening a FIFO firmware blocked");
    assert!(r.unwrap_err().contains("is a FIFO, not a regular file"));
    assert!(refusal(read_in_rootfs(&f, "/firmware.elf", Resolver::Walk)).contains("not a regular file"));
    // /dev/null's numbers: a device node in an image would reach the host's driver.
    match nix::sys::stat::mknod(&f.rootfs.join("dev.elf"), SFlag::S_IFCHR, Mode::from_bits_truncate(0o644), nix::sys::stat::makedev(1, 3)) {
        Ok(()) => {
            assert!(refusal(read_in_rootfs(&f, "/dev.elf", Resolver::detect())).contains("not a regular file"));
        }
        Err(e) => eprintln!("SKIPPED the device half of fifos_and_devices_are_refused_without_being_opened: mknod: {e} (needs CAP_MKNOD)"),
    }
    assert_eq!(std::fs::read_dir(&f.work).unwrap().count(), 0);
}

#[test]
fn a_name_swapped_while_opening_never_reaches_the_host() {
    let f = fixture();
    // One name flips between an image file and a link to a host file; every open
    // must read the image's file or fail, never read the host's.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (rootfs, outside, stop) = (f.rootfs.clone(), f.outside.clone(), stop.clone());
        std::thread::spawn(move || {
            let name = rootfs.join("fw.elf");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(rootfs.join("tmp"));
                symlink(&outside, rootfs.join("tmp")).unwrap();
                std::fs::rename(rootfs.join("tmp"), &name).unwrap();
                std::fs::write(rootfs.join("tmp"), b"image").unwrap();
                std::fs::rename(rootfs.join("tmp"), &name).unwrap();
            }
        })
    };
    let mut read = 0;
    for resolver in [Resolver::detect(), Resolver::Walk] {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
        while std::time::Instant::now() < until {
            if let Ok(bytes) = read_in_rootfs(&f, "/fw.elf", resolver) {
                assert_eq!(bytes, b"image", "{resolver:?} read through a swapped name");
                read += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(read > 0, "no open succeeded, so the test showed nothing");
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

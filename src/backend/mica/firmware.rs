//! Finding the RTOS firmware inside a container's rootfs and copying it out.
//!
//! The rootfs comes from an image, so every name in it is untrusted. The kernel
//! resolves the path with the rootfs as `/` (openat2 with RESOLVE_IN_ROOT), so
//! symlinks, absolute ones included, resolve as the container would see them
//! and `..` never climbs out. The result is held as an O_PATH descriptor, checked
//! to be a regular file before anything opens it for reading (a FIFO would block,
//! a device node would run its driver), and reopened through that descriptor, so
//! nothing can be swapped between the check and the read. Kernels without openat2
//! (before 5.6, or a seccomp filter refusing it) get a walk by hand that follows
//! relative symlinks inside the rootfs and refuses absolute ones. The file is
//! copied (the bundle's rootfs may be unmounted while micad still needs the
//! firmware) into the container's work dir.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

use sha2::{Digest, Sha256};

use crate::backend::{Error, Result};

/// Annotation keys (after the mica prefix) named in messages; settings.rs parses them.
pub const PATH_KEY: &str = super::settings::FIRMWARE_PATH;
pub const HASH_KEY: &str = super::settings::FIRMWARE_HASH;
/// Name tried when no path is annotated.
pub const DEFAULT_NAME: &str = "firmware.elf";
/// Name of the copy in the work dir.
pub const COPY_NAME: &str = "firmware.elf";
/// Bound on symlinks followed, as the kernel's MAXSYMLINKS.
const MAX_LINKS: usize = 40;

/// Where the firmware came from and where its copy is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firmware {
    /// Path inside the rootfs (as the container sees it), for messages.
    pub in_rootfs: String,
    pub copy: PathBuf,
    pub sha256: String,
}

/// Resolves the firmware in `rootfs`, checks the optional hash and copies it to
/// `work_dir`. `expected` is a sha256 as `MicaSettings` gives it (64 lowercase hex
/// digits). On error nothing is left in `work_dir`.
pub fn prepare(rootfs: &Path, annotated_path: Option<&str>, expected: Option<&str>, work_dir: &Path) -> Result<Firmware> {
    let in_rootfs = match annotated_path {
        Some(p) => p.to_string(),
        None => find_default(rootfs)?,
    };
    let source = open_in_rootfs(rootfs, &in_rootfs, Resolver::detect())?;
    let copy = work_dir.join(COPY_NAME);
    let sha256 = copy_hashing(source, &copy).map_err(|e| {
        let _ = std::fs::remove_file(&copy);
        Error::Failed(format!("copy firmware {in_rootfs} from the rootfs: {e}"))
    })?;
    if let Some(want) = expected {
        if want != sha256 {
            let _ = std::fs::remove_file(&copy);
            return Err(Error::InvalidArgument(format!(
                "firmware {in_rootfs} has sha256 {sha256}, but annotation {HASH_KEY} expects {want}"
            )));
        }
    }
    tracing::info!(firmware = %in_rootfs, copy = %copy.display(), sha256, "firmware copied");
    Ok(Firmware { in_rootfs, copy, sha256 })
}

/// `firmware.elf`, else the only `*.elf` at the rootfs's top level, as a path
/// inside the rootfs.
fn find_default(rootfs: &Path) -> Result<String> {
    if std::fs::symlink_metadata(rootfs.join(DEFAULT_NAME)).is_ok() {
        return Ok(format!("/{DEFAULT_NAME}"));
    }
    let entries = std::fs::read_dir(rootfs).map_err(|e| Error::failed(&format!("read rootfs {}", rootfs.display()), e))?;
    let mut elfs: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".elf"))
        .collect();
    elfs.sort();
    match elfs.as_slice() {
        [only] => Ok(format!("/{only}")),
        [] => Err(Error::InvalidArgument(format!(
            "no firmware in the image: no /{DEFAULT_NAME} and no *.elf at the rootfs top level; set annotation {PATH_KEY}"
        ))),
        many => Err(Error::InvalidArgument(format!(
            "several firmware candidates at the rootfs top level ({}); choose one with annotation {PATH_KEY}",
            many.join(", ")
        ))),
    }
}

/// How a path inside the rootfs is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// openat2 with RESOLVE_IN_ROOT: the kernel keeps every step inside.
    Kernel,
    /// The walk by hand, for kernels without openat2.
    Walk,
}

impl Resolver {
    /// Kernel where openat2 works, else Walk (asked once per process).
    pub fn detect() -> Resolver {
        static FOUND: std::sync::OnceLock<Resolver> = std::sync::OnceLock::new();
        *FOUND.get_or_init(|| {
            let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC).resolve(ResolveFlag::RESOLVE_IN_ROOT);
            match nix::fcntl::openat2(nix::fcntl::AT_FDCWD, "/", how) {
                Ok(_) => Resolver::Kernel,
                Err(e) => {
                    tracing::info!(error = %e, "openat2 unavailable, firmware paths are resolved by a walk that refuses absolute symlinks");
                    Resolver::Walk
                }
            }
        })
    }
}

/// Opens `path` (a leading `/` means the rootfs root, as upstream reads it) inside
/// `rootfs` for reading. Refuses `..` in the path itself, anything that is not a
/// regular file (without opening it), and names that do not resolve.
pub fn open_in_rootfs(rootfs: &Path, path: &str, resolver: Resolver) -> Result<File> {
    let refuse = |why: String| Error::InvalidArgument(format!("firmware path {path:?} ({PATH_KEY}): {why}"));
    let relative = relative_components(path).map_err(refuse)?;
    let held: OwnedFd = match resolver {
        Resolver::Kernel => {
            let root = nix::fcntl::open(rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| Error::Failed(format!("open rootfs {}: {e}", rootfs.display())))?;
            let how = OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            // EAGAIN: a rename or mount raced the lookup; the kernel asks for a retry.
            let mut tries = 0;
            loop {
                match nix::fcntl::openat2(&root, relative.as_path(), how) {
                    Err(Errno::EAGAIN) if tries < 8 => tries += 1,
                    Err(e) => return Err(refuse(lookup_error(e))),
                    Ok(fd) => break fd,
                }
            }
        }
        Resolver::Walk => {
            let host = resolve(rootfs, path)?;
            nix::fcntl::open(&host, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| refuse(lookup_error(e)))?
        }
    };
    let st = fstat(&held).map_err(|e| Error::Failed(format!("stat firmware {path}: {e}")))?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    if kind != SFlag::S_IFREG {
        return Err(refuse(format!("is {}, not a regular file", kind_name(kind))));
    }
    // Reopening the O_PATH descriptor reads the very inode just checked, whatever
    // the rootfs's names point at by now.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(format!("/proc/self/fd/{}", held.as_raw_fd()))
        .map_err(|e| Error::Failed(format!("reopen firmware {path} through /proc/self/fd: {e}")))
}

/// The components of an annotated path, relative to the rootfs root.
fn relative_components(path: &str) -> std::result::Result<PathBuf, String> {
    if path.trim().is_empty() {
        return Err("empty".into());
    }
    let mut names = Vec::new();
    push_components(&mut names, Path::new(path)).map_err(|_| "`..` is not allowed; give a path inside the rootfs".to_string())?;
    if names.is_empty() {
        return Err("names the rootfs itself, not a file".into());
    }
    Ok(names.iter().rev().collect())
}

fn lookup_error(e: Errno) -> String {
    match e {
        Errno::ENOENT => "does not exist in the image".into(),
        Errno::ENOTDIR => "a component of it is not a directory".into(),
        Errno::ELOOP => "too many levels of symlinks".into(),
        Errno::EXDEV => "it left the rootfs while being resolved (the image changed underneath)".into(),
        e => format!("cannot be opened: {e}"),
    }
}

fn kind_name(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFLNK => "a symlink",
        _ => "something else",
    }
}

/// The walk by hand: resolves `path` inside `rootfs`, following relative
/// symlinks component by component. Refuses `..`, symlinks that leave the
/// rootfs or are absolute (the host would resolve them), and anything that is
/// not a regular file.
fn resolve(rootfs: &Path, path: &str) -> Result<PathBuf> {
    let refuse = |why: String| Error::InvalidArgument(format!("firmware path {path:?} ({PATH_KEY}): {why}"));
    let mut pending: Vec<String> = Vec::new();
    push_components(&mut pending, &relative_components(path).map_err(refuse)?).map_err(|_| refuse("`..`".into()))?;
    // `inside` holds the components resolved so far, relative to the rootfs.
    let mut inside: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            // Only symlink targets can bring `..` here; it may not climb above the rootfs.
            if inside.pop().is_none() {
                return Err(refuse("a symlink in it points outside the rootfs".into()));
            }
            continue;
        }
        let here: PathBuf = inside.iter().chain(std::iter::once(&name)).collect();
        let host = rootfs.join(&here);
        let meta = std::fs::symlink_metadata(&host)
            .map_err(|e| refuse(format!("/{} does not exist in the image: {e}", here.display())))?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(refuse("too many levels of symlinks".into()));
            }
            let target = std::fs::read_link(&host).map_err(|e| refuse(format!("read symlink /{}: {e}", here.display())))?;
            if target.is_absolute() {
                return Err(refuse(format!(
                    "symlink /{} points to the absolute path {}, which the host resolves outside the rootfs; use a relative link",
                    here.display(),
                    target.display()
                )));
            }
            // The target's components replace the link, resolved relative to its directory.
            let mut expanded = Vec::new();
            for c in target.components() {
                match c {
                    Component::Normal(s) => expanded.push(s.to_string_lossy().into_owned()),
                    Component::ParentDir => expanded.push("..".into()),
                    _ => {}
                }
            }
            pending.extend(expanded.into_iter().rev());
            continue;
        }
        inside.push(name);
        if !pending.is_empty() && !meta.is_dir() {
            return Err(refuse(format!("/{} is not a directory", here.display())));
        }
        if pending.is_empty() && !meta.is_file() {
            return Err(refuse(format!("/{} is not a regular file", here.display())));
        }
    }
    if inside.is_empty() {
        return Err(refuse("names the rootfs itself, not a file".into()));
    }
    Ok(rootfs.join(inside.iter().collect::<PathBuf>()))
}

/// Pushes the normal components of `p` onto `stack` in reverse order (so popping
/// yields them in order); errors on `..`.
fn push_components(stack: &mut Vec<String>, p: &Path) -> std::result::Result<(), ()> {
    let mut names = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => names.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => return Err(()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    stack.extend(names.into_iter().rev());
    Ok(())
}

/// Copies `src` to a new file `to` and returns the copy's sha256 in hex.
fn copy_hashing(mut src: File, to: &Path) -> std::io::Result<String> {
    let mut dst = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o700).open(to)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        dst.write_all(&buf[..n])?;
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
#[path = "firmware_tests.rs"]
mod tests;

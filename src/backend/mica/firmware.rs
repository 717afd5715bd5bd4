//! Finding the RTOS firmware inside a container's rootfs and copying it out.
//!
//! The rootfs comes from an image, so every name in it is untrusted: the path is
//! walked one component at a time, symlinks are followed by hand and must stay
//! inside the rootfs, and the file is copied (the bundle's rootfs may be unmounted
//! while micad still needs the firmware) into the container's work dir.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

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
    let (in_rootfs, host) = match annotated_path {
        Some(p) => (p.to_string(), resolve(rootfs, p)?),
        None => find_default(rootfs)?,
    };
    let copy = work_dir.join(COPY_NAME);
    let sha256 = copy_hashing(&host, &copy).map_err(|e| {
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

/// `firmware.elf`, else the only `*.elf` at the rootfs's top level.
fn find_default(rootfs: &Path) -> Result<(String, PathBuf)> {
    if std::fs::symlink_metadata(rootfs.join(DEFAULT_NAME)).is_ok() {
        return Ok((format!("/{DEFAULT_NAME}"), resolve(rootfs, DEFAULT_NAME)?));
    }
    let entries = std::fs::read_dir(rootfs).map_err(|e| Error::failed(&format!("read rootfs {}", rootfs.display()), e))?;
    let mut elfs: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".elf"))
        .collect();
    elfs.sort();
    match elfs.as_slice() {
        [only] => Ok((format!("/{only}"), resolve(rootfs, only)?)),
        [] => Err(Error::InvalidArgument(format!(
            "no firmware in the image: no /{DEFAULT_NAME} and no *.elf at the rootfs top level; set annotation {PATH_KEY}"
        ))),
        many => Err(Error::InvalidArgument(format!(
            "several firmware candidates at the rootfs top level ({}); choose one with annotation {PATH_KEY}",
            many.join(", ")
        ))),
    }
}

/// Resolves `path` (a leading `/` means the rootfs root, as upstream reads it)
/// inside `rootfs`, following symlinks component by component. Refuses `..`,
/// symlinks that leave the rootfs, and anything that is not a regular file.
pub fn resolve(rootfs: &Path, path: &str) -> Result<PathBuf> {
    let refuse = |why: String| Error::InvalidArgument(format!("firmware path {path:?} ({PATH_KEY}): {why}"));
    if path.trim().is_empty() {
        return Err(refuse("empty".into()));
    }
    let mut pending: Vec<String> = Vec::new();
    push_components(&mut pending, Path::new(path)).map_err(|_| refuse("`..` is not allowed; give a path inside the rootfs".into()))?;
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

/// Copies without following a symlink at the last step (one swapped in after
/// `resolve` is refused by O_NOFOLLOW) and returns the copy's sha256 in hex.
fn copy_hashing(from: &Path, to: &Path) -> std::io::Result<String> {
    let mut src = std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW).open(from)?;
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

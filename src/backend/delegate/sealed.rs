//! A sealed in-memory copy of a runtime binary, to execute in its place.
//!
//! youki (through the pentacle crate, against CVE-2019-5736) re-executes itself
//! from a sealed memfd copy at every start. Now and then the kernel refuses
//! the seal with EBUSY while it still holds references to the fresh copy's
//! pages, and youki then fails the whole call before doing anything ("failed
//! to seal /proc/self/exe"; about 1 call in 1000 on the test machine). Handed a
//! copy that is already sealed, youki skips its own copy and re-exec, and a
//! refused seal here is simply tried again on a fresh copy.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};

const ATTEMPTS: usize = 5;

pub struct SealedCopy(File);

impl SealedCopy {
    pub fn of(binary: &Path) -> std::io::Result<SealedCopy> {
        let mut refused = None;
        for _ in 0..ATTEMPTS {
            match copy_and_seal(binary) {
                Ok(copy) => return Ok(SealedCopy(copy)),
                Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => refused = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(refused.unwrap_or_else(|| std::io::Error::other("no attempt made")))
    }

    /// What to execute: valid in this process and in a child forked from it
    /// (the descriptor is close-on-exec, which execve of an ELF file allows).
    pub fn exec_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.0.as_raw_fd()))
    }
}

fn copy_and_seal(binary: &Path) -> std::io::Result<File> {
    let fd = memfd_create("micrun-runtime", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
    let mut copy = File::from(fd);
    std::io::copy(&mut File::open(binary)?, &mut copy)?;
    // The seals pentacle requires before it accepts a running copy as sealed.
    let seals = SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE;
    fcntl(&copy, FcntlArg::F_ADD_SEALS(seals))?;
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_copy_runs_and_cannot_be_written() {
        let copy = SealedCopy::of(Path::new("/bin/echo")).unwrap();
        let out = std::process::Command::new(copy.exec_path()).arg("from the copy").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "from the copy\n");
        let seals = fcntl(&copy.0, FcntlArg::F_GET_SEALS).unwrap();
        assert_eq!(seals & nix::libc::F_SEAL_WRITE, nix::libc::F_SEAL_WRITE);
        assert!(std::fs::OpenOptions::new().write(true).open(copy.exec_path()).and_then(|mut f| {
            use std::io::Write;
            f.write_all(b"x")
        })
        .is_err());
    }
}

//! Running child processes under a subreaper. The shim reaps every child itself, so
//! std's `wait` would lose the exit status: subscribe to the crate's exit monitor
//! first, then spawn, then wait for the monitor to report our pid.

use std::io::{Read, Seek};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

use containerd_shim::monitor::{monitor_subscribe, monitor_unsubscribe, Subject, Topic};

/// What a finished command left: its exit code (128+signal when killed) and output.
#[derive(Debug)]
pub struct Finished {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Stdio for the child: given descriptors, or captured output when `None`.
#[derive(Default)]
pub struct ChildStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Runs `cmd` to completion. Captured output goes to memfds rather than pipes, so a
/// grandchild that inherits them (a container's init) cannot keep us waiting.
pub async fn run(mut cmd: Command, stdio: ChildStdio) -> std::io::Result<Finished> {
    let out = match stdio.stdout {
        Some(fd) => Capture::Given(fd),
        None => Capture::Memfd(memfd("stdout")?),
    };
    let err = match stdio.stderr {
        Some(fd) => Capture::Given(fd),
        None => Capture::Memfd(memfd("stderr")?),
    };
    cmd.stdin(stdio.stdin.map_or_else(Stdio::null, Stdio::from));
    cmd.stdout(out.for_child()?);
    cmd.stderr(err.for_child()?);

    let mut sub = monitor_subscribe(Topic::Pid).await.map_err(std::io::Error::other)?;
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = monitor_unsubscribe(sub.id).await;
            return Err(e);
        }
    };
    drop(cmd); // closes our copies of the descriptors handed to the child
    let pid = child.id() as i32;
    let mut code = None;
    while let Some(ev) = sub.rx.recv().await {
        if matches!(ev.subject, Subject::Pid(p) if p == pid) {
            code = Some(ev.exit_code);
            break;
        }
    }
    let _ = monitor_unsubscribe(sub.id).await;
    Ok(Finished {
        code: code.ok_or_else(|| std::io::Error::other("exit monitor closed before the child exited"))?,
        stdout: out.read()?,
        stderr: err.read()?,
    })
}

enum Capture {
    Given(OwnedFd),
    Memfd(std::fs::File),
}

impl Capture {
    fn for_child(&self) -> std::io::Result<Stdio> {
        Ok(match self {
            Capture::Given(fd) => Stdio::from(fd.try_clone()?),
            Capture::Memfd(f) => Stdio::from(f.try_clone()?),
        })
    }

    fn read(self) -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        if let Capture::Memfd(mut f) = self {
            f.rewind()?;
            f.read_to_end(&mut buf)?;
        }
        Ok(buf)
    }
}

fn memfd(name: &str) -> std::io::Result<std::fs::File> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC)?;
    Ok(std::fs::File::from(fd))
}

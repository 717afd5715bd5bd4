//! The state machine of one process (a container's init or an exec) as containerd
//! sees it, and the channel its waiters block on.

use std::time::SystemTime;

use tokio::sync::watch;

use crate::stdio::StdioPaths;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: u32,
    pub at: SystemTime,
}

pub struct Process {
    pub pid: u32,
    pub status: Status,
    pub stdio: StdioPaths,
    exit: watch::Sender<Option<Exit>>,
}

impl Process {
    pub fn new(pid: u32, stdio: StdioPaths) -> Process {
        Process { pid, status: Status::Created, stdio, exit: watch::channel(None).0 }
    }

    pub fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    /// Records the exit once; later reports (e.g. a reaped pid after `stop`) are ignored.
    pub fn set_exited(&mut self, code: u32) -> Option<Exit> {
        if self.exit().is_some() {
            return None;
        }
        let e = Exit { code, at: SystemTime::now() };
        self.status = Status::Stopped;
        self.exit.send_replace(Some(e));
        Some(e)
    }

    /// Moves to `to` unless the process already exited.
    pub fn set_status(&mut self, to: Status) {
        if self.status != Status::Stopped {
            self.status = to;
        }
    }

    pub fn waiter(&self) -> watch::Receiver<Option<Exit>> {
        self.exit.subscribe()
    }
}

/// Waits until the process exited.
pub async fn wait(mut rx: watch::Receiver<Option<Exit>>) -> Option<Exit> {
    rx.wait_for(|e| e.is_some()).await.ok().and_then(|e| *e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exit_is_recorded_once_and_wakes_waiters() {
        let mut p = Process::new(42, StdioPaths::default());
        let rx = p.waiter();
        let waiter = tokio::spawn(wait(rx));
        p.set_status(Status::Running);
        assert!(p.set_exited(3).is_some());
        assert!(p.set_exited(9).is_none());
        p.set_status(Status::Running);
        assert_eq!(p.status, Status::Stopped);
        assert_eq!(waiter.await.unwrap().unwrap().code, 3);
    }
}

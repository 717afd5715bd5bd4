//! The state machine of one process (a container's init or an exec) as containerd
//! sees it, and the channel its waiters block on.

use std::collections::VecDeque;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::stdio::{IoSlot, StdioPaths};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What moves a process from one status to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Start,
    Pause,
    Resume,
    Exit,
}

/// Every allowed move; anything else is refused.
const TABLE: [(Status, Transition, Status); 6] = [
    (Status::Created, Transition::Start, Status::Running),
    (Status::Running, Transition::Pause, Status::Paused),
    (Status::Paused, Transition::Resume, Status::Running),
    (Status::Created, Transition::Exit, Status::Stopped),
    (Status::Running, Transition::Exit, Status::Stopped),
    (Status::Paused, Transition::Exit, Status::Stopped),
];

fn next(from: Status, what: Transition) -> Option<Status> {
    TABLE.iter().find(|(f, w, _)| *f == from && *w == what).map(|(_, _, to)| *to)
}

impl Transition {
    fn from_names(self) -> String {
        let names: Vec<&str> = TABLE.iter().filter(|(_, w, _)| *w == self).map(|(f, _, _)| f.name()).collect();
        names.join(" or ")
    }
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
    /// The process's IO, filled by its backend when it is attached.
    pub io: IoSlot,
    exit: watch::Sender<Option<Exit>>,
}

impl Process {
    pub fn new(pid: u32, stdio: StdioPaths, io: IoSlot) -> Process {
        Process { pid, status: Status::Created, stdio, io, exit: watch::channel(None).0 }
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
        self.apply(Transition::Exit);
        self.exit.send_replace(Some(e));
        Some(e)
    }

    /// Refuses a request the process's state does not allow, before the
    /// backend is asked to do it.
    pub fn check(&self, what: Transition) -> Result<(), String> {
        next(self.status, what).map(drop).ok_or_else(|| format!("it is {}; {what:?} needs it {}", self.status.name(), what.from_names()))
    }

    /// Takes the transition after the backend did the work. An exit recorded
    /// meanwhile wins (the process ended while it was being started).
    pub fn apply(&mut self, what: Transition) {
        if let Some(to) = next(self.status, what) {
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

/// Exits of pids not yet known to any process: an exec can exit before the
/// runtime's pid file is read. Bounded, oldest first out.
#[derive(Default)]
pub struct Unclaimed(VecDeque<(i32, i32)>);

const UNCLAIMED_MAX: usize = 128;

impl Unclaimed {
    pub(super) fn push(&mut self, pid: i32, code: i32) {
        if self.0.len() == UNCLAIMED_MAX {
            self.0.pop_front();
        }
        self.0.push_back((pid, code));
    }

    pub(super) fn take(&mut self, pid: u32) -> Option<i32> {
        let i = self.0.iter().position(|(p, _)| *p as u32 == pid)?;
        self.0.remove(i).map(|(_, c)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stdio::io_slot;

    #[test]
    fn transitions_follow_the_table() {
        let mut p = Process::new(1, StdioPaths::default(), io_slot());
        assert_eq!(p.check(Transition::Pause).unwrap_err(), "it is created; Pause needs it running");
        assert!(p.check(Transition::Resume).unwrap_err().contains("needs it paused"));
        p.check(Transition::Start).unwrap();
        p.apply(Transition::Start);
        assert_eq!(p.status, Status::Running);
        assert!(p.check(Transition::Start).unwrap_err().contains("it is running; Start needs it created"));
        p.apply(Transition::Pause);
        assert_eq!(p.status, Status::Paused);
        p.set_exited(0).unwrap();
        assert_eq!(p.status, Status::Stopped);
        // an exit that won the race is kept
        p.apply(Transition::Resume);
        assert_eq!(p.status, Status::Stopped);
        assert!(p.check(Transition::Exit).is_err());
    }

    #[tokio::test]
    async fn exit_is_recorded_once_and_wakes_waiters() {
        let mut p = Process::new(42, StdioPaths::default(), io_slot());
        let rx = p.waiter();
        let waiter = tokio::spawn(wait(rx));
        p.apply(Transition::Start);
        assert!(p.set_exited(3).is_some());
        assert!(p.set_exited(9).is_none());
        p.apply(Transition::Start);
        assert_eq!(p.status, Status::Stopped);
        assert_eq!(waiter.await.unwrap().unwrap().code, 3);
    }
}

//! Turning exits into TaskExit events. One loop per shim receives every exit
//! of a child from the reaper (the crate's monitor, by pid) and every backend
//! notice (OOM kills; exits of RTOSes, which are not processes of ours), the
//! notices first.

use containerd_shim::monitor::{monitor_subscribe, ExitEvent, Subject, Topic};
use containerd_shim::protos::events::task::{TaskExit, TaskOOM};
use containerd_shim::protos::protobuf::MessageField;

use super::service::{timestamp, Service};
use crate::backend::Notice;

impl Service {
    /// Starts the loop; call once, before any container exists.
    pub(super) async fn watch_exits(&self, mut notices: tokio::sync::mpsc::UnboundedReceiver<Notice>) {
        let mut sub = monitor_subscribe(Topic::All).await.expect("the exit monitor always accepts subscribers");
        let svc = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    // Notices first: an OOM seen by the watcher goes out before the exit it caused.
                    biased;
                    Some(n) = notices.recv() => svc.notice(n).await,
                    ev = sub.rx.recv() => match ev {
                        Some(ev) => svc.exited(ev).await,
                        None => return,
                    },
                }
            }
        });
    }

    async fn notice(&self, n: Notice) {
        match n {
            Notice::Oom { id } => {
                tracing::info!(id, "oom kill in container");
                self.publish(TaskOOM { container_id: id, ..Default::default() }).await;
            }
            Notice::Exit { id, exec, code } => self.exit_of(&id, exec.as_deref(), code as u32).await,
        }
    }

    async fn exited(&self, ev: ExitEvent) {
        let found = {
            let map = self.containers.lock().await;
            match &ev.subject {
                Subject::Pid(pid) => map.values().find_map(|c| {
                    if c.init.pid as i32 == *pid && c.init.exit().is_none() {
                        return Some((c.id.clone(), None, c.instance.clone()));
                    }
                    c.execs
                        .iter()
                        .find(|(_, p)| p.pid as i32 == *pid && p.exit().is_none())
                        .map(|(x, _)| (c.id.clone(), Some(x.clone()), c.instance.clone()))
                }),
                // No backend reports this way: exits of non-children are notices.
                Subject::Exec(..) => None,
            }
        };
        let Some((id, exec, instance)) = found else {
            if let Subject::Pid(pid) = ev.subject {
                self.unclaimed.lock().await.push(pid, ev.exit_code);
            }
            return;
        };
        self.record_exit(&id, exec.as_deref(), ev.exit_code as u32, instance).await;
    }

    /// A delegate container without a pid namespace of its own keeps its other
    /// processes when init exits: kill them all before the exit is published,
    /// as containerd's runc shim does (containerd's TestContainerKillInitPidHost
    /// lists the host's processes right after the exit).
    async fn kill_orphans(&self, id: &str, instance: &std::sync::Arc<dyn crate::backend::Instance>) {
        let wanted = self.containers.lock().await.get(id).is_some_and(|c| c.kill_all_on_exit);
        if wanted {
            if let Err(e) = instance.kill(None, nix::libc::SIGKILL as u32, true).await {
                tracing::warn!(id, error = %e, "init exited; killing the container's other processes failed");
            }
        }
    }

    /// Applies an exit that arrived before the process's pid was known.
    pub(super) async fn claim_early_exit(&self, id: &str, exec: Option<&str>, pid: u32) {
        let Some(code) = self.unclaimed.lock().await.take(pid) else { return };
        self.exit_of(id, exec, code as u32).await;
    }

    /// Records an exit of container `id` (or its exec), if it is still held.
    async fn exit_of(&self, id: &str, exec: Option<&str>, code: u32) {
        // Bind first: the map lock must be released before record_exit takes it again.
        let instance = self.containers.lock().await.get(id).map(|c| c.instance.clone());
        if let Some(instance) = instance {
            self.record_exit(id, exec, code, instance).await;
        }
    }

    async fn record_exit(&self, id: &str, exec: Option<&str>, code: u32, instance: std::sync::Arc<dyn crate::backend::Instance>) {
        if exec.is_none() && instance.oom_at_exit().await {
            tracing::info!(id, "init was OOM-killed");
            self.publish(TaskOOM { container_id: id.into(), ..Default::default() }).await;
        }
        if exec.is_none() {
            self.kill_orphans(id, &instance).await;
        }
        let recorded = {
            let mut map = self.containers.lock().await;
            let Some(c) = map.get_mut(id) else { return };
            let p = match exec {
                None => &mut c.init,
                Some(x) => match c.execs.get_mut(x) {
                    Some(p) => p,
                    None => return,
                },
            };
            p.set_exited(code).map(|e| (p.pid, e))
        };
        let Some((pid, e)) = recorded else { return };
        tracing::info!(id, exec = exec.unwrap_or(""), pid, code, "exit");
        self.publish(TaskExit {
                container_id: id.into(),
                id: exec.unwrap_or(id).into(),
                pid,
                exit_status: code,
                exited_at: MessageField::some(timestamp(e.at)),
            ..Default::default()
        })
        .await;
    }
}

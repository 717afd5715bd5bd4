//! The core of the shim: containers and processes, their states, waiters and
//! events, answering the Task service's requests as plain async methods (task.rs
//! puts them on ttrpc, sandbox/ calls them for the Sandbox service). The
//! backends behind `Instance` do the work.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use containerd_shim::api::*;
use containerd_shim::protos::events::task::*;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::protobuf::{Message, MessageField};
use containerd_shim::protos::shim::oci::ProcessDetails;
use containerd_shim::ExitSignal;
use tokio::sync::Mutex;

use super::container::{self, Container};
use super::events::{encode, EventSink, TaskEvent};
use super::process::{self, Process, Status, Transition};
use crate::backend::{Backends, Error, Instance, NoticeSender};
use crate::spec::check_json_object;
use crate::state::ContainerState;
use crate::stdio::{io_slot, IoSlot, StdioPaths, DRAIN_BOUND};

/// Cheap to clone: every field is shared, so the exit loop holds a copy.
#[derive(Clone)]
pub struct Service {
    pub(super) namespace: String,
    /// containerd's gRPC socket, asked for labels when the config says so.
    pub(super) containerd: String,
    pub(super) containers: Arc<Mutex<HashMap<String, Container>>>,
    pub(super) events: Arc<dyn EventSink>,
    /// Which backend serves a route: the registry's, a stub in the core's tests.
    pub(super) backends: Backends,
    pub(super) exit: Arc<ExitSignal>,
    pub(super) notices: NoticeSender,
    pub(super) unclaimed: Arc<Mutex<super::process::Unclaimed>>,
    /// Ids whose Create is under way: neither a second Create of the id nor a
    /// Shutdown (containerd 2.x sends one after every delete in a group) may
    /// act as if they did not exist.
    pub(super) creating: Arc<std::sync::Mutex<HashSet<String>>>,
}

/// An id held in `Service::creating` until Create returns.
struct Reservation {
    creating: Arc<std::sync::Mutex<HashSet<String>>>,
    id: String,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.creating.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}


fn exec_id(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

pub fn timestamp(t: std::time::SystemTime) -> Timestamp {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32, ..Default::default() }
}

impl Service {
    pub(super) async fn publish<E: TaskEvent>(&self, event: E) {
        match encode(&event) {
            Ok(any) => self.events.send(E::TOPIC, any).await,
            Err(e) => tracing::warn!(topic = E::TOPIC, error = %e, "encode event failed"),
        }
    }

    /// Runs `f` on the container, or answers NOT_FOUND naming it.
    async fn with<T>(&self, id: &str, f: impl FnOnce(&mut Container) -> Result<T, Error>) -> Result<T, Error> {
        let mut map = self.containers.lock().await;
        let c = map.get_mut(id).ok_or_else(|| Error::NotFound(format!("container {id} not found")))?;
        f(c)
    }

    /// Refuses `what` on a process whose status does not allow it (the
    /// process table in process.rs), before any backend work.
    async fn allowed(&self, id: &str, exec: Option<&str>, what: Transition) -> Result<(), Error> {
        self.with(id, |c| {
            let p = Self::process(c, exec)?;
            p.check(what).map_err(|why| {
                let whom = exec.map_or(format!("container {id}"), |x| format!("exec {x} of {id}"));
                Error::FailedPrecondition(format!("cannot {} {whom}: {why}", format!("{what:?}").to_lowercase()))
            })
        })
        .await
    }

    /// Takes `what` after the backend did it.
    async fn moved(&self, id: &str, exec: Option<&str>, what: Transition) -> Result<u32, Error> {
        self.with(id, |c| {
            let p = Self::process(c, exec)?;
            p.apply(what);
            Ok(p.pid)
        })
        .await
    }

    /// Reserves `id` for a Create, refusing one that exists or is being created.
    async fn reserve(&self, id: &str) -> Result<Reservation, Error> {
        let map = self.containers.lock().await;
        let mut creating = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        if map.contains_key(id) || !creating.insert(id.to_string()) {
            return Err(Error::InvalidArgument(format!("container {id} already exists in this shim")));
        }
        Ok(Reservation { creating: self.creating.clone(), id: id.to_string() })
    }

    /// Members alive or on their way: a grouped shim must not exit while any are.
    async fn members(&self) -> usize {
        let map = self.containers.lock().await;
        map.len() + self.creating.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Lets the shim exit after `after` if no container is left by then.
    pub(super) fn exit_when_empty(&self, after: std::time::Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if me.members().await == 0 {
                tracing::info!("no containers and no sandbox left: shim exits");
                me.exit.signal();
            }
        });
    }

    async fn io_of(&self, id: &str, exec: Option<&str>) -> Result<IoSlot, Error> {
        self.with(id, |c| Ok(Self::process(c, exec)?.io.clone())).await
    }

    async fn instance(&self, id: &str) -> Result<Arc<dyn Instance>, Error> {
        self.with(id, |c| Ok(c.instance.clone())).await
    }

    /// The process a request names: init when `exec_id` is empty.
    fn process<'a>(c: &'a mut Container, exec: Option<&str>) -> Result<&'a mut Process, Error> {
        match exec {
            None => Ok(&mut c.init),
            Some(x) => c.execs.get_mut(x).ok_or_else(|| Error::NotFound(format!("exec {x} not found in container {}", c.id))),
        }
    }
}

/// The Task service's requests as plain async methods: containerd's request
/// and response messages in, `backend::Error` out. task.rs puts them on ttrpc.
impl Service {
    pub async fn create(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse, Error> {
        self.create_as(req, false).await
    }

    /// The Sandbox API's sandbox: always the holder, whatever `[sandbox] mode`
    /// says, since no pause image comes with it.
    pub async fn create_holder(&self, req: CreateTaskRequest) -> Result<CreateTaskResponse, Error> {
        self.create_as(req, true).await
    }

    async fn create_as(&self, req: CreateTaskRequest, holder: bool) -> Result<CreateTaskResponse, Error> {
        if !req.checkpoint.is_empty() {
            return Err(Error::Unimplemented("restoring from a checkpoint is not supported by micrun".into()));
        }
        let _reservation = self.reserve(&req.id).await?;
        let c = container::create(&req, &self.namespace, &self.containerd, self.notices.clone(), self.backends, holder)
            .await
            .inspect_err(|e| tracing::warn!(id = %req.id, error = %e, "create refused"))?;
        super::logging::adopt(&req.id, &c.bundle);
        let pid = c.init.pid;
        self.containers.lock().await.insert(req.id.clone(), c);
        self.publish(TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                ..Default::default()
            }),
            pid,
            ..Default::default()
        })
        .await;
        // An init that already exited: its exit follows its create event.
        self.claim_early_exit(&req.id, None, pid).await;
        Ok(CreateTaskResponse { pid, ..Default::default() })
    }

    pub async fn start(&self, req: StartRequest) -> Result<StartResponse, Error> {
        let instance = self.instance(&req.id).await?;
        self.allowed(&req.id, exec_id(&req.exec_id), Transition::Start).await?;
        let pid = match exec_id(&req.exec_id) {
            None => {
                instance.start().await?;
                self.moved(&req.id, None, Transition::Start).await?
            }
            Some(x) => {
                let pid = instance.start_exec(x).await?;
                self.with(&req.id, |c| {
                    let p = Self::process(c, Some(x))?;
                    p.pid = pid;
                    p.apply(Transition::Start);
                    Ok(())
                })
                .await?;
                pid
            }
        };
        match exec_id(&req.exec_id) {
            None => self.publish(TaskStart { container_id: req.id.clone(), pid, ..Default::default() }).await,
            Some(x) => {
                self.publish(TaskExecStarted { container_id: req.id.clone(), exec_id: x.into(), pid, ..Default::default() })
                    .await;
                // An exec that exited before its pid was known: its exit
                // follows its started event, as containerd's clients expect.
                self.claim_early_exit(&req.id, Some(x), pid).await;
            }
        }
        Ok(StartResponse { pid, ..Default::default() })
    }

    pub async fn delete(&self, req: DeleteRequest) -> Result<DeleteResponse, Error> {
        let exec = exec_id(&req.exec_id);
        let (instance, pid, exit, io) = self
            .with(&req.id, |c| {
                let instance = c.instance.clone();
                let p = Self::process(c, exec)?;
                if matches!(p.status, Status::Running | Status::Paused) {
                    return Err(Error::FailedPrecondition(format!(
                        "{} is still running; kill it before deleting",
                        exec.map_or(format!("container {}", req.id), |x| format!("exec {x}"))
                    )));
                }
                Ok((instance, p.pid, p.exit(), p.io.clone()))
            })
            .await?;
        let exit_status = exit.map_or(0, |e| e.code);
        let exited_at = exit.map_or_else(std::time::SystemTime::now, |e| e.at);
        match exec {
            Some(x) => {
                instance.delete_exec(x).await?;
                io.lock().await.drain(DRAIN_BOUND).await;
                self.with(&req.id, |c| Ok(c.execs.remove(x))).await?;
            }
            None => {
                instance.delete().await?;
                // What the process wrote reaches containerd before Delete returns.
                io.lock().await.drain(DRAIN_BOUND).await;
                let (c, next, left) = {
                    let mut map = self.containers.lock().await;
                    let c = map.remove(&req.id);
                    (c, map.values().next().map(|o| (o.id.clone(), o.bundle.clone())), map.len())
                };
                // The runtime's live tasks: a count that only grows across
                // lifecycles is a task that never ends (bench/churn.sh reads it).
                let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
                tracing::info!(id = %req.id, containers_left = left, runtime_tasks = tasks, heap_bytes = heap_in_use().unwrap_or(0), "deleted");
                if let Some(c) = c {
                    container::unmount(c.mounted_rootfs.as_deref());
                    ContainerState::remove(&c.bundle);
                }
                super::logging::released(&req.id, next.as_ref().map(|(i, b)| (i.as_str(), b.as_path())));
                self.publish(TaskDelete {
                    container_id: req.id.clone(),
                    pid,
                    exit_status,
                    exited_at: MessageField::some(timestamp(exited_at)),
                    id: req.id.clone(),
                    ..Default::default()
                })
                .await;
            }
        }
        Ok(DeleteResponse { pid, exit_status, exited_at: MessageField::some(timestamp(exited_at)), ..Default::default() })
    }

    pub async fn pids(&self, req: PidsRequest) -> Result<PidsResponse, Error> {
        let instance = self.instance(&req.id).await?;
        let pids = instance.pids().await?;
        let execs: HashMap<u32, String> =
            self.with(&req.id, |c| Ok(c.execs.iter().map(|(k, p)| (p.pid, k.clone())).collect())).await?;
        let mut processes = Vec::with_capacity(pids.len());
        for pid in pids {
            let mut info = containerd_shim::protos::types::task::ProcessInfo { pid, ..Default::default() };
            if let Some(x) = execs.get(&pid) {
                let d = ProcessDetails { exec_id: x.clone(), ..Default::default() };
                info.info = MessageField::some(Any {
                    type_url: "containerd.runc.v1.ProcessDetails".into(),
                    value: d.write_to_bytes().unwrap_or_default(),
                    ..Default::default()
                });
            }
            processes.push(info);
        }
        Ok(PidsResponse { processes, ..Default::default() })
    }

    pub async fn pause(&self, req: PauseRequest) -> Result<Empty, Error> {
        self.allowed(&req.id, None, Transition::Pause).await?;
        self.instance(&req.id).await?.pause().await?;
        self.moved(&req.id, None, Transition::Pause).await?;
        self.publish(TaskPaused { container_id: req.id, ..Default::default() }).await;
        Ok(Empty::new())
    }

    pub async fn resume(&self, req: ResumeRequest) -> Result<Empty, Error> {
        self.allowed(&req.id, None, Transition::Resume).await?;
        self.instance(&req.id).await?.resume().await?;
        self.moved(&req.id, None, Transition::Resume).await?;
        self.publish(TaskResumed { container_id: req.id, ..Default::default() }).await;
        Ok(Empty::new())
    }

    pub async fn checkpoint(&self, _req: CheckpointTaskRequest) -> Result<Empty, Error> {
        Err(Error::Unimplemented("checkpoint is not supported by micrun; stop and recreate the container instead".into()))
    }

    pub async fn kill(&self, req: KillRequest) -> Result<Empty, Error> {
        let instance = self.instance(&req.id).await?;
        tracing::info!(id = %req.id, exec = %req.exec_id, signal = req.signal, all = req.all, "kill");
        instance.kill(exec_id(&req.exec_id), req.signal, req.all).await?;
        Ok(Empty::new())
    }

    pub async fn exec(&self, req: ExecProcessRequest) -> Result<Empty, Error> {
        let spec = req.spec.as_ref().ok_or_else(|| Error::InvalidArgument("exec request carries no process spec".into()))?;
        check_json_object(&spec.value, "exec process spec").map_err(Error::InvalidArgument)?;
        let process = crate::spec::exec_process_terminal(&spec.value, req.terminal).map_err(Error::InvalidArgument)?;
        let instance = self
            .with(&req.id, |c| {
                if c.init.status != Status::Running {
                    return Err(Error::FailedPrecondition(format!("container {} is not running", c.id)));
                }
                if c.execs.contains_key(&req.exec_id) {
                    return Err(Error::InvalidArgument(format!("exec id {} already exists", req.exec_id)));
                }
                Ok(c.instance.clone())
            })
            .await?;
        let stdio = StdioPaths { stdin: req.stdin.clone(), stdout: req.stdout.clone(), stderr: req.stderr.clone(), terminal: req.terminal };
        let io = io_slot();
        instance.exec(&req.exec_id, process, stdio.clone(), io.clone()).await?;
        self.with(&req.id, |c| Ok(c.execs.insert(req.exec_id.clone(), Process::new(0, stdio, io)))).await?;
        self.publish(TaskExecAdded { container_id: req.id, exec_id: req.exec_id, ..Default::default() }).await;
        Ok(Empty::new())
    }

    pub async fn resize_pty(&self, req: ResizePtyRequest) -> Result<Empty, Error> {
        let io = self.io_of(&req.id, exec_id(&req.exec_id)).await?;
        io.lock().await.resize(req.width, req.height).map_err(|e| Error::FailedPrecondition(format!("resize: {e}")))?;
        Ok(Empty::new())
    }

    pub async fn close_io(&self, req: CloseIORequest) -> Result<Empty, Error> {
        if req.stdin {
            self.io_of(&req.id, exec_id(&req.exec_id)).await?.lock().await.close_stdin();
        }
        Ok(Empty::new())
    }

    pub async fn update(&self, req: UpdateTaskRequest) -> Result<Empty, Error> {
        let any = req.resources.as_ref().ok_or_else(|| Error::InvalidArgument("update carries no resources".into()))?;
        check_json_object(&any.value, &format!("update resources ({})", any.type_url))
            .map_err(Error::InvalidArgument)?;
        let instance = self.instance(&req.id).await?;
        tracing::info!(id = %req.id, resources = %String::from_utf8_lossy(&any.value), "update");
        instance.update(&any.value).await?;
        Ok(Empty::new())
    }

    pub async fn wait(&self, req: WaitRequest) -> Result<WaitResponse, Error> {
        let rx = self.with(&req.id, |c| Ok(Self::process(c, exec_id(&req.exec_id))?.waiter())).await?;
        let exit = process::wait(rx).await.ok_or_else(|| Error::Failed("process state was dropped".into()))?;
        Ok(WaitResponse { exit_status: exit.code, exited_at: MessageField::some(timestamp(exit.at)), ..Default::default() })
    }

    pub async fn state(&self, req: StateRequest) -> Result<StateResponse, Error> {
        self.with(&req.id, |c| {
            let bundle = c.bundle.display().to_string();
            let p = Self::process(c, exec_id(&req.exec_id))?;
            let exit = p.exit();
            let st = match p.status {
                Status::Created => containerd_shim::api::Status::CREATED,
                Status::Running => containerd_shim::api::Status::RUNNING,
                Status::Paused => containerd_shim::api::Status::PAUSED,
                Status::Stopped => containerd_shim::api::Status::STOPPED,
            };
            Ok(StateResponse {
                id: req.id.clone(),
                bundle,
                pid: p.pid,
                status: st.into(),
                stdin: p.stdio.stdin.clone(),
                stdout: p.stdio.stdout.clone(),
                stderr: p.stdio.stderr.clone(),
                terminal: p.stdio.terminal,
                exit_status: exit.map_or(0, |e| e.code),
                exited_at: exit.map(|e| timestamp(e.at)).into(),
                exec_id: req.exec_id.clone(),
                ..Default::default()
            })
        })
        .await
    }

    pub async fn stats(&self, req: StatsRequest) -> Result<StatsResponse, Error> {
        let stats = self.instance(&req.id).await?.stats().await?;
        Ok(StatsResponse { stats: MessageField::some(stats), ..Default::default() })
    }

    pub async fn connect(&self, req: ConnectRequest) -> Result<ConnectResponse, Error> {
        let task_pid = self.with(&req.id, |c| Ok(c.init.pid)).await?;
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        })
    }

    pub async fn shutdown(&self, req: ShutdownRequest) -> Result<Empty, Error> {
        // A grouped shim serves a whole pod: exit only when its last container is
        // gone. containerd 2.x asks after every task delete, 1.x after the last.
        match self.members().await {
            0 => {
                tracing::info!(id = %req.id, "shutdown: no containers left");
                self.exit.signal();
            }
            n => tracing::info!(id = %req.id, members = n, "shutdown declined"),
        }
        Ok(Empty::new())
    }
}

/// Bytes the allocator has handed out and not had back (glibc: every arena),
/// for leak counts in bench/churn.sh; RSS alone mixes leaks with fragmentation.
fn heap_in_use() -> Option<u64> {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { nix::libc::mallinfo2() };
        Some(info.uordblks as u64)
    }
    #[cfg(not(target_env = "gnu"))]
    None
}

//! The ttrpc transport of containerd's Task service: each request goes to the
//! core's method of the same name (service.rs) and a `backend::Error` comes
//! back as the ttrpc status containerd expects.

use std::future::Future;
use std::time::Instant;

use async_trait::async_trait;
use containerd_shim::api::*;
use containerd_shim::protos::ttrpc::{self, r#async::TtrpcContext, Code};
use containerd_shim::{Task, TtrpcResult};

use super::Service;
use crate::backend::Error;
use tracing::Instrument;

pub struct TaskService(pub Service);

pub fn status(e: Error) -> ttrpc::Error {
    let code = match e {
        Error::InvalidArgument(_) => Code::INVALID_ARGUMENT,
        Error::NotFound(_) => Code::NOT_FOUND,
        Error::Unimplemented(_) => Code::UNIMPLEMENTED,
        Error::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
        Error::Failed(_) => Code::UNKNOWN,
    };
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, e.to_string()))
}

/// Answers one request: the core's work runs in a span naming the method and
/// the container (so the backend's own lines, such as each micad request, say
/// which step they belong to), and one debug line says how long the shim took
/// from request in to reply out. bench/rtos.sh reads those lines to find the
/// shim's own share of each step.
async fn answer<T>(method: &'static str, id: &str, work: impl Future<Output = Result<T, Error>>) -> TtrpcResult<T> {
    let began = Instant::now();
    let span = tracing::debug_span!("task", method, id);
    let r = work.instrument(span.clone()).await;
    span.in_scope(|| tracing::debug!(us = began.elapsed().as_micros() as u64, ok = r.is_ok(), "answered"));
    r.map_err(status)
}

#[async_trait]
impl Task for TaskService {
    async fn create(&self, _ctx: &TtrpcContext, req: CreateTaskRequest) -> TtrpcResult<CreateTaskResponse> {
        let id = req.id.clone();
        answer("create", &id, self.0.create(req)).await
    }
    async fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> TtrpcResult<StartResponse> {
        let id = req.id.clone();
        answer("start", &id, self.0.start(req)).await
    }
    async fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        let id = req.id.clone();
        answer("delete", &id, self.0.delete(req)).await
    }
    async fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        let id = req.id.clone();
        answer("pids", &id, self.0.pids(req)).await
    }
    async fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> TtrpcResult<Empty> {
        let id = req.id.clone();
        answer("pause", &id, self.0.pause(req)).await
    }
    async fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> TtrpcResult<Empty> {
        let id = req.id.clone();
        answer("resume", &id, self.0.resume(req)).await
    }
    async fn checkpoint(&self, _ctx: &TtrpcContext, req: CheckpointTaskRequest) -> TtrpcResult<Empty> {
        let id = req.id.clone();
        answer("checkpoint", &id, self.0.checkpoint(req)).await
    }
    async fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> TtrpcResult<Empty> {
        let id = req.id.clone();
        answer("kill", &id, self.0.kill(req)).await
    }
    async fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> TtrpcResult<Empty> {
        let id = req.id.clone();
        answer("exec", &id, self.0.exec(req)).await
    }
    async fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> TtrpcResult<Empty> {
        let id = req.id.clone();
        answer("resize_pty", &id, self.0.resize_pty(req)).await
    }
    async fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> TtrpcResult<Empty> {
        let id = req.id.clone();
        answer("close_io", &id, self.0.close_io(req)).await
    }
    async fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        let id = req.id.clone();
        answer("update", &id, self.0.update(req)).await
    }
    async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
        let id = req.id.clone();
        answer("wait", &id, self.0.wait(req)).await
    }
    async fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
        let id = req.id.clone();
        answer("state", &id, self.0.state(req)).await
    }
    async fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        let id = req.id.clone();
        answer("stats", &id, self.0.stats(req)).await
    }
    async fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        let id = req.id.clone();
        answer("connect", &id, self.0.connect(req)).await
    }
    async fn shutdown(&self, _ctx: &TtrpcContext, req: ShutdownRequest) -> TtrpcResult<Empty> {
        let id = req.id.clone();
        answer("shutdown", &id, self.0.shutdown(req)).await
    }
}

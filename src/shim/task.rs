//! The ttrpc transport of containerd's Task service: each request goes to the
//! core's method of the same name (service.rs) and a `backend::Error` comes
//! back as the ttrpc status containerd expects.

use async_trait::async_trait;
use containerd_shim::api::*;
use containerd_shim::protos::ttrpc::{self, r#async::TtrpcContext, Code};
use containerd_shim::{Task, TtrpcResult};

use super::Service;
use crate::backend::Error;

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

#[async_trait]
impl Task for TaskService {
    async fn create(&self, _ctx: &TtrpcContext, req: CreateTaskRequest) -> TtrpcResult<CreateTaskResponse> {
        self.0.create(req).await.map_err(status)
    }
    async fn start(&self, _ctx: &TtrpcContext, req: StartRequest) -> TtrpcResult<StartResponse> {
        self.0.start(req).await.map_err(status)
    }
    async fn delete(&self, _ctx: &TtrpcContext, req: DeleteRequest) -> TtrpcResult<DeleteResponse> {
        self.0.delete(req).await.map_err(status)
    }
    async fn pids(&self, _ctx: &TtrpcContext, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        self.0.pids(req).await.map_err(status)
    }
    async fn pause(&self, _ctx: &TtrpcContext, req: PauseRequest) -> TtrpcResult<Empty> {
        self.0.pause(req).await.map_err(status)
    }
    async fn resume(&self, _ctx: &TtrpcContext, req: ResumeRequest) -> TtrpcResult<Empty> {
        self.0.resume(req).await.map_err(status)
    }
    async fn checkpoint(&self, _ctx: &TtrpcContext, req: CheckpointTaskRequest) -> TtrpcResult<Empty> {
        self.0.checkpoint(req).await.map_err(status)
    }
    async fn kill(&self, _ctx: &TtrpcContext, req: KillRequest) -> TtrpcResult<Empty> {
        self.0.kill(req).await.map_err(status)
    }
    async fn exec(&self, _ctx: &TtrpcContext, req: ExecProcessRequest) -> TtrpcResult<Empty> {
        self.0.exec(req).await.map_err(status)
    }
    async fn resize_pty(&self, _ctx: &TtrpcContext, req: ResizePtyRequest) -> TtrpcResult<Empty> {
        self.0.resize_pty(req).await.map_err(status)
    }
    async fn close_io(&self, _ctx: &TtrpcContext, req: CloseIORequest) -> TtrpcResult<Empty> {
        self.0.close_io(req).await.map_err(status)
    }
    async fn update(&self, _ctx: &TtrpcContext, req: UpdateTaskRequest) -> TtrpcResult<Empty> {
        self.0.update(req).await.map_err(status)
    }
    async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
        self.0.wait(req).await.map_err(status)
    }
    async fn state(&self, _ctx: &TtrpcContext, req: StateRequest) -> TtrpcResult<StateResponse> {
        self.0.state(req).await.map_err(status)
    }
    async fn stats(&self, _ctx: &TtrpcContext, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        self.0.stats(req).await.map_err(status)
    }
    async fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        self.0.connect(req).await.map_err(status)
    }
    async fn shutdown(&self, _ctx: &TtrpcContext, req: ShutdownRequest) -> TtrpcResult<Empty> {
        self.0.shutdown(req).await.map_err(status)
    }
}

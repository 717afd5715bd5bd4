//! containerd 2.x's Sandbox API (`containerd.runtime.sandbox.v1.Sandbox`), for a
//! runtime handler with `sandboxer = "shim"`: CRI runs no pause container and
//! asks the shim for the pod's sandbox instead. The sandbox is the holder, kept
//! as a container of the core (service.rs) under the sandbox's id, so its exit,
//! state, statistics and recovery after a shim crash are the core's; this
//! service adds the pod config, the pod files and the sandbox's answers.

mod pod_config;
mod pod_files;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use containerd_shim::api::{CreateTaskRequest, DeleteRequest, KillRequest, StartRequest, StateRequest, StatsRequest, WaitRequest};
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::sandbox_api::*;
use containerd_shim::protos::sandbox_async::Sandbox;
use containerd_shim::protos::ttrpc::{self, r#async::TtrpcContext, Code};
use tokio::sync::Mutex;

pub use self::pod_config::PodConfig;
use self::pod_files::PodFiles;
use super::service::{timestamp, Service};
use super::task::status;
use crate::backend::Error;

const READY: &str = "SANDBOX_READY";
const NOT_READY: &str = "SANDBOX_NOTREADY";
/// How long StopSandbox waits for the holder after SIGKILL when containerd gives no timeout.
const STOP_WAIT: Duration = Duration::from_secs(10);

struct Held {
    files: Option<PodFiles>,
    created_at: SystemTime,
    /// The holder's OCI spec: StartSandbox hands it to CRI, which keeps it as
    /// the sandbox's spec (NRI and verbose status read it).
    spec: Vec<u8>,
}

/// containerd's type URL of an OCI runtime spec.
const SPEC_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

pub struct SandboxService {
    tasks: Service,
    held: Mutex<HashMap<String, Held>>,
}

fn rpc_error(code: Code, msg: String) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg))
}

/// Go's names for the machine, as containerd's platforms use them.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl SandboxService {
    pub fn new(tasks: Service) -> SandboxService {
        SandboxService { tasks, held: Mutex::new(HashMap::new()) }
    }

    /// What `f` reads of sandbox `id`, or NOT_FOUND.
    async fn held<T>(&self, id: &str, f: impl FnOnce(&Held) -> T) -> ttrpc::Result<T> {
        match self.held.lock().await.get(id) {
            Some(h) => Ok(f(h)),
            None => Err(rpc_error(Code::NOT_FOUND, format!("sandbox {id} not found in this shim"))),
        }
    }

    async fn known(&self, id: &str) -> ttrpc::Result<()> {
        self.held(id, |_| ()).await
    }

    /// Kills the holder if it still runs and waits for its exit.
    async fn stop(&self, id: &str, timeout: Duration) -> ttrpc::Result<()> {
        let state = self.tasks.state(StateRequest { id: id.into(), ..Default::default() }).await.map_err(status)?;
        if state.status.enum_value_or_default() == containerd_shim::api::Status::STOPPED {
            return Ok(());
        }
        let kill = KillRequest { id: id.into(), signal: nix::libc::SIGKILL as u32, ..Default::default() };
        if let Err(e) = self.tasks.kill(kill).await {
            tracing::debug!(id, error = %e, "sandbox kill: holder already gone");
        }
        let wait = self.tasks.wait(WaitRequest { id: id.into(), ..Default::default() });
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r.map(drop).map_err(status),
            Err(_) => Err(rpc_error(Code::DEADLINE_EXCEEDED, format!("sandbox {id}: the holder did not exit within {timeout:?} of SIGKILL"))),
        }
    }
}

#[async_trait]
impl Sandbox for SandboxService {
    async fn create_sandbox(&self, _ctx: &TtrpcContext, req: CreateSandboxRequest) -> ttrpc::Result<CreateSandboxResponse> {
        let id = req.sandbox_id.clone();
        if id.is_empty() || req.bundle_path.is_empty() {
            return Err(rpc_error(Code::INVALID_ARGUMENT, "CreateSandbox needs a sandbox id and a bundle path".into()));
        }
        if self.held.lock().await.contains_key(&id) {
            return Err(rpc_error(Code::ALREADY_EXISTS, format!("sandbox {id} already exists in this shim")));
        }
        let invalid = |e: String| rpc_error(Code::INVALID_ARGUMENT, format!("sandbox {id}: {e}"));
        let pod = PodConfig::decode(req.options.as_ref()).map_err(invalid)?;
        let oom_floor = std::fs::read_to_string("/proc/self/oom_score_adj").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        let spec = pod.holder_spec(&self.tasks.namespace, &id, &req.netns_path, oom_floor).map_err(invalid)?;
        let bundle = PathBuf::from(&req.bundle_path);
        let spec = spec.to_string().into_bytes();
        std::fs::write(bundle.join("config.json"), &spec)
            .map_err(|e| rpc_error(Code::UNKNOWN, format!("sandbox {id}: write the holder's spec into {}: {e}", bundle.display())))?;
        let files = match PodFiles::for_bundle(&bundle, &id) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(id, error = %e, "pod files not written: the pod's Linux containers keep the image's /etc files");
                None
            }
        };
        if let Some(f) = &files {
            f.write(&pod).map_err(|e| rpc_error(Code::FAILED_PRECONDITION, format!("sandbox {id}: {e}")))?;
        }
        tracing::info!(id, netns = %req.netns_path, pod_files = files.is_some(), "sandbox create");
        let made = self.tasks.create_holder(CreateTaskRequest { id: id.clone(), bundle: req.bundle_path.clone(), ..Default::default() }).await;
        if let Err(e) = made {
            if let Some(f) = &files {
                f.remove();
            }
            return Err(status(e));
        }
        self.held.lock().await.insert(id, Held { files, created_at: SystemTime::now(), spec });
        Ok(CreateSandboxResponse::new())
    }

    async fn start_sandbox(&self, _ctx: &TtrpcContext, req: StartSandboxRequest) -> ttrpc::Result<StartSandboxResponse> {
        let (created_at, spec) = self.held(&req.sandbox_id, |h| (h.created_at, h.spec.clone())).await?;
        let started = self.tasks.start(StartRequest { id: req.sandbox_id.clone(), ..Default::default() }).await.map_err(status)?;
        tracing::info!(id = %req.sandbox_id, pid = started.pid, "sandbox start");
        Ok(StartSandboxResponse {
            pid: started.pid,
            created_at: MessageField::some(timestamp(created_at)),
            spec: MessageField::some(Any { type_url: SPEC_URL.into(), value: spec, ..Default::default() }),
            ..Default::default()
        })
    }

    async fn platform(&self, _ctx: &TtrpcContext, req: PlatformRequest) -> ttrpc::Result<PlatformResponse> {
        self.known(&req.sandbox_id).await?;
        let mut resp = PlatformResponse::new();
        let p = resp.platform.mut_or_insert_default();
        p.os = "linux".into();
        p.architecture = go_arch().into();
        Ok(resp)
    }

    async fn stop_sandbox(&self, _ctx: &TtrpcContext, req: StopSandboxRequest) -> ttrpc::Result<StopSandboxResponse> {
        self.known(&req.sandbox_id).await?;
        let timeout = match req.timeout_secs {
            0 => STOP_WAIT,
            s => Duration::from_secs(s.into()),
        };
        tracing::info!(id = %req.sandbox_id, "sandbox stop");
        self.stop(&req.sandbox_id, timeout).await?;
        Ok(StopSandboxResponse::new())
    }

    async fn wait_sandbox(&self, _ctx: &TtrpcContext, req: WaitSandboxRequest) -> ttrpc::Result<WaitSandboxResponse> {
        self.known(&req.sandbox_id).await?;
        let exit = self.tasks.wait(WaitRequest { id: req.sandbox_id.clone(), ..Default::default() }).await.map_err(status)?;
        Ok(WaitSandboxResponse { exit_status: exit.exit_status, exited_at: exit.exited_at, ..Default::default() })
    }

    async fn sandbox_status(&self, _ctx: &TtrpcContext, req: SandboxStatusRequest) -> ttrpc::Result<SandboxStatusResponse> {
        let created_at = self.held(&req.sandbox_id, |h| h.created_at).await?;
        let st = self.tasks.state(StateRequest { id: req.sandbox_id.clone(), ..Default::default() }).await.map_err(status)?;
        let running = st.status.enum_value_or_default() == containerd_shim::api::Status::RUNNING;
        Ok(SandboxStatusResponse {
            sandbox_id: req.sandbox_id,
            pid: st.pid,
            state: if running { READY } else { NOT_READY }.into(),
            created_at: MessageField::some(timestamp(created_at)),
            exited_at: if running { MessageField::none() } else { st.exited_at },
            ..Default::default()
        })
    }

    async fn ping_sandbox(&self, _ctx: &TtrpcContext, req: PingRequest) -> ttrpc::Result<PingResponse> {
        self.known(&req.sandbox_id).await?;
        Ok(PingResponse::new())
    }

    async fn shutdown_sandbox(&self, _ctx: &TtrpcContext, req: ShutdownSandboxRequest) -> ttrpc::Result<ShutdownSandboxResponse> {
        let id = req.sandbox_id;
        self.known(&id).await?;
        self.stop(&id, STOP_WAIT).await?;
        match self.tasks.delete(DeleteRequest { id: id.clone(), ..Default::default() }).await {
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(status(e)),
        }
        if let Some(Held { files: Some(f), .. }) = self.held.lock().await.remove(&id) {
            f.remove();
        }
        tracing::info!(id, "sandbox shutdown");
        // containerd deletes a sandbox's shim without a Task Shutdown: the shim
        // goes by itself once nothing is left, after this answer is out.
        self.tasks.exit_when_empty(Duration::from_millis(50));
        Ok(ShutdownSandboxResponse::new())
    }

    async fn sandbox_metrics(&self, _ctx: &TtrpcContext, req: SandboxMetricsRequest) -> ttrpc::Result<SandboxMetricsResponse> {
        self.known(&req.sandbox_id).await?;
        let stats = self.tasks.stats(StatsRequest { id: req.sandbox_id.clone(), ..Default::default() }).await.map_err(status)?;
        let mut resp = SandboxMetricsResponse::new();
        let m = resp.metrics.mut_or_insert_default();
        m.timestamp = MessageField::some(timestamp(SystemTime::now()));
        m.id = req.sandbox_id;
        m.data = stats.stats;
        Ok(resp)
    }
}

/// What `shim delete` removes for a sandbox whose shim died: the pod files,
/// when the bundle is a sandbox controller's.
pub fn cleanup_dead(bundle: &std::path::Path, id: &str) {
    if let Ok(f) = PodFiles::for_bundle(bundle, id) {
        f.remove();
    }
}

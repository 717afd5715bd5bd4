//! A Kubernetes CRI v1 client (the `k8s-cri` crate over tonic) for the
//! CRI-enabled containerd that scripts/test.sh starts (scripts/lib-cri.sh), and
//! the pod and container configs the pod tests share.
//! Not part of common/mod.rs, so only the pod tests compile tonic: a test file
//! pulls it in with `#[path = "common/cri.rs"] mod cri;` next to `mod common;`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as api;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::common::{self, Env};

/// The runtime handler scripts/lib-cri.sh registers (examples/containerd-config.toml,
/// examples/containerd-config-v3.toml on containerd 2.x).
pub const HANDLER: &str = "mica";
/// The handler on containerd 2.x's Sandbox API (`sandboxer = "shim"`,
/// examples/containerd-config-v3.toml only).
pub const SHIM_SANDBOXER_HANDLER: &str = "mica-shim";
/// A CRI call that takes longer has hung; fail rather than wait for ever.
const CALL_BOUND: Duration = Duration::from_secs(60);

/// The CRI containerd as an `Env` (its socket, the `k8s.io` namespace, its state
/// dir), so the ctr-based helpers of common/ work on it, and the micrun config
/// file its runtime handler names (ConfigPath), rewritten by each test.
pub struct CriEnv {
    pub env: Env,
    pub micrun_config: PathBuf,
}

pub fn cri_env() -> CriEnv {
    cri_env_of("MICRUN_TEST_CRI")
}

/// The CRI containerd with nothing but the shim on its PATH (no crun, runc or youki).
pub fn cri_bare_env() -> CriEnv {
    cri_env_of("MICRUN_TEST_CRI_BARE")
}

fn cri_env_of(prefix: &str) -> CriEnv {
    let base = common::env();
    let get = |k: &str| {
        let k = format!("{prefix}_{k}");
        std::env::var(&k).unwrap_or_else(|_| {
            panic!("{k} is not set: the CRI tests need the CRI-enabled containerds of `bash scripts/test.sh` (scripts/lib-cri.sh)")
        })
    };
    let env = Env {
        address: get("ADDRESS"),
        namespace: std::env::var("MICRUN_TEST_CRI_NAMESPACE").expect("MICRUN_TEST_CRI_NAMESPACE is not set (scripts/lib-cri.sh)"),
        image: base.image,
        state: get("STATE").into(),
        shim: base.shim,
    };
    CriEnv { env, micrun_config: get("CONFIG").into() }
}

/// Blocking calls over one tonic channel to containerd's CRI socket.
pub struct Cri {
    rt: tokio::runtime::Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl Cri {
    pub fn connect(socket: &str) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let path = socket.to_string();
        // tonic wants a URI; the connector ignores it and dials the unix socket.
        let endpoint = Endpoint::from_static("http://localhost");
        let connect = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }));
        let channel = rt
            .block_on(async { tokio::time::timeout(CALL_BOUND, connect).await })
            .unwrap_or_else(|_| panic!("connecting to CRI at {socket} took over {CALL_BOUND:?}"))
            .unwrap_or_else(|e| panic!("connect to CRI at {socket}: {e}"));
        Cri { rt, runtime: RuntimeServiceClient::new(channel.clone()), images: ImageServiceClient::new(channel) }
    }

    /// Runs one call; None when it did not answer within CALL_BOUND.
    fn try_call<T>(&self, f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>) -> Option<Result<T, tonic::Status>> {
        // the timer must be made inside the runtime
        self.rt.block_on(async { tokio::time::timeout(CALL_BOUND, f).await }).ok().map(|r| r.map(tonic::Response::into_inner))
    }

    fn call<T>(&self, what: &str, f: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>) -> Result<T, tonic::Status> {
        self.try_call(f).unwrap_or_else(|| panic!("CRI {what} did not answer within {CALL_BOUND:?}"))
    }

    pub fn version(&self) -> api::VersionResponse {
        let mut c = self.runtime.clone();
        self.call("Version", async move { c.version(api::VersionRequest::default()).await }).expect("CRI Version")
    }

    /// The image as CRI sees it (None: CRI does not know it).
    pub fn image(&self, reference: &str) -> Option<api::Image> {
        let mut c = self.images.clone();
        let req = api::ImageStatusRequest { image: Some(image_spec(reference)), verbose: false };
        self.call("ImageStatus", async move { c.image_status(req).await }).expect("CRI ImageStatus").image
    }

    pub fn run_pod(&self, config: &api::PodSandboxConfig) -> Result<String, tonic::Status> {
        self.run_pod_on(config, HANDLER)
    }

    pub fn run_pod_on(&self, config: &api::PodSandboxConfig, handler: &str) -> Result<String, tonic::Status> {
        let mut c = self.runtime.clone();
        let req = api::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: handler.into() };
        self.call("RunPodSandbox", async move { c.run_pod_sandbox(req).await }).map(|r| r.pod_sandbox_id)
    }

    /// The pod's status and containerd's verbose `info` (pid, runtime, spec) as JSON.
    pub fn pod_status(&self, id: &str) -> (api::PodSandboxStatus, serde_json::Value) {
        let mut c = self.runtime.clone();
        let req = api::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: true };
        let r = self.call("PodSandboxStatus", async move { c.pod_sandbox_status(req).await }).expect("CRI PodSandboxStatus");
        (r.status.expect("PodSandboxStatus without status"), verbose_info(&r.info))
    }

    /// The pod's state, or CRI's error (a Sandbox-API pod whose shim just died
    /// answers "ttrpc: closed" until containerd has noticed).
    pub fn pod_state(&self, id: &str) -> Result<api::PodSandboxState, tonic::Status> {
        let mut c = self.runtime.clone();
        let req = api::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: false };
        let r = self.call("PodSandboxStatus", async move { c.pod_sandbox_status(req).await })?;
        Ok(r.status.expect("PodSandboxStatus without status").state())
    }

    pub fn pods(&self) -> Vec<api::PodSandbox> {
        let mut c = self.runtime.clone();
        self.call("ListPodSandbox", async move { c.list_pod_sandbox(api::ListPodSandboxRequest::default()).await })
            .expect("CRI ListPodSandbox")
            .items
    }

    pub fn create_container(
        &self,
        pod: &str,
        config: &api::ContainerConfig,
        pod_config: &api::PodSandboxConfig,
    ) -> Result<String, tonic::Status> {
        let mut c = self.runtime.clone();
        // Without sandbox_config containerd 1.6.20 panics and orphans the pod.
        let req = api::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config.clone()),
            sandbox_config: Some(pod_config.clone()),
        };
        self.call("CreateContainer", async move { c.create_container(req).await }).map(|r| r.container_id)
    }

    pub fn start_container(&self, id: &str) -> Result<(), tonic::Status> {
        let mut c = self.runtime.clone();
        let req = api::StartContainerRequest { container_id: id.into() };
        self.call("StartContainer", async move { c.start_container(req).await }).map(|_| ())
    }

    /// SIGTERM (the image's stop signal), SIGKILL after `timeout_secs`.
    pub fn stop_container(&self, id: &str, timeout_secs: i64) -> Result<(), tonic::Status> {
        let mut c = self.runtime.clone();
        let req = api::StopContainerRequest { container_id: id.into(), timeout: timeout_secs };
        self.call("StopContainer", async move { c.stop_container(req).await }).map(|_| ())
    }

    /// The container's status and containerd's verbose `info` (pid, runtime, spec) as JSON.
    pub fn container_status(&self, id: &str) -> (api::ContainerStatus, serde_json::Value) {
        let mut c = self.runtime.clone();
        let req = api::ContainerStatusRequest { container_id: id.into(), verbose: true };
        let r = self.call("ContainerStatus", async move { c.container_status(req).await }).expect("CRI ContainerStatus");
        (r.status.expect("ContainerStatus without status"), verbose_info(&r.info))
    }

    pub fn containers_of(&self, pod: &str) -> Vec<api::Container> {
        let mut c = self.runtime.clone();
        let filter = api::ContainerFilter { pod_sandbox_id: pod.into(), ..Default::default() };
        let req = api::ListContainersRequest { filter: Some(filter) };
        self.call("ListContainers", async move { c.list_containers(req).await }).expect("CRI ListContainers").containers
    }

    pub fn exec_sync(&self, id: &str, cmd: &[&str], timeout_secs: i64) -> Result<api::ExecSyncResponse, tonic::Status> {
        let mut c = self.runtime.clone();
        let req = api::ExecSyncRequest { container_id: id.into(), cmd: cmd.iter().map(|s| s.to_string()).collect(), timeout: timeout_secs };
        self.call("ExecSync", async move { c.exec_sync(req).await })
    }

    pub fn stop_pod(&self, id: &str) -> Result<(), tonic::Status> {
        let mut c = self.runtime.clone();
        let req = api::StopPodSandboxRequest { pod_sandbox_id: id.into() };
        self.call("StopPodSandbox", async move { c.stop_pod_sandbox(req).await }).map(|_| ())
    }

    pub fn remove_pod(&self, id: &str) -> Result<(), tonic::Status> {
        let mut c = self.runtime.clone();
        let req = api::RemovePodSandboxRequest { pod_sandbox_id: id.into() };
        self.call("RemovePodSandbox", async move { c.remove_pod_sandbox(req).await }).map(|_| ())
    }

    /// Stop and remove, errors ignored and never panicking: for guards.
    fn discard_pod(&self, id: &str) {
        let mut c = self.runtime.clone();
        let req = api::StopPodSandboxRequest { pod_sandbox_id: id.into() };
        let _ = self.try_call(async move { c.stop_pod_sandbox(req).await });
        let mut c = self.runtime.clone();
        let req = api::RemovePodSandboxRequest { pod_sandbox_id: id.into() };
        let _ = self.try_call(async move { c.remove_pod_sandbox(req).await });
    }
}

/// containerd puts its own view of a pod or container in `info["info"]` (JSON).
fn verbose_info(info: &HashMap<String, String>) -> serde_json::Value {
    let text = info.get("info").unwrap_or_else(|| panic!("verbose status without an \"info\" entry: {info:?}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("verbose info is not JSON ({e}): {text}"))
}

/// A pod that is stopped and removed when the test ends, passed or failed.
pub struct Pod<'a> {
    pub cri: &'a Cri,
    pub id: String,
    pub config: api::PodSandboxConfig,
    removed: bool,
}

impl<'a> Pod<'a> {
    pub fn run(cri: &'a Cri, config: api::PodSandboxConfig) -> Pod<'a> {
        Self::run_on(cri, config, HANDLER)
    }

    pub fn run_on(cri: &'a Cri, config: api::PodSandboxConfig, handler: &str) -> Pod<'a> {
        let name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let id = cri.run_pod_on(&config, handler).unwrap_or_else(|e| panic!("RunPodSandbox {name} (handler {handler}): {e}"));
        Pod { cri, id, config, removed: false }
    }

    pub fn stop(&self) {
        self.cri.stop_pod(&self.id).unwrap_or_else(|e| panic!("StopPodSandbox {}: {e}", self.id));
    }

    pub fn remove(&mut self) {
        self.cri.remove_pod(&self.id).unwrap_or_else(|e| panic!("RemovePodSandbox {}: {e}", self.id));
        self.removed = true;
    }

    pub fn create(&self, config: &api::ContainerConfig) -> Result<String, tonic::Status> {
        self.cri.create_container(&self.id, config, &self.config)
    }

    /// CreateContainer + StartContainer, which must both succeed; the container id.
    pub fn start(&self, config: &api::ContainerConfig) -> String {
        let name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let id = self.create(config).unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"));
        self.cri.start_container(&id).unwrap_or_else(|e| panic!("StartContainer {name} ({id}): {e}"));
        id
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        if !self.removed {
            self.cri.discard_pod(&self.id);
        }
    }
}

/// What kubelet asks for a pod without hostNetwork or shareProcessNamespace:
/// the pod's network and IPC namespaces, a PID namespace per container.
fn kubelet_namespaces() -> api::NamespaceOption {
    api::NamespaceOption {
        network: api::NamespaceMode::Pod as i32,
        pid: api::NamespaceMode::Container as i32,
        ipc: api::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn string_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn image_spec(reference: &str) -> api::ImageSpec {
    api::ImageSpec { image: reference.into(), ..Default::default() }
}

/// `pod_config` for a pod whose containers share one pid namespace
/// (Kubernetes' shareProcessNamespace), given to the pod and to `container`.
pub fn share_pids(pod: &mut api::PodSandboxConfig, containers: &mut [&mut api::ContainerConfig]) {
    let pod_ns = |ns: Option<&mut api::NamespaceOption>| ns.expect("namespace options").pid = api::NamespaceMode::Pod as i32;
    pod_ns(pod.linux.as_mut().and_then(|l| l.security_context.as_mut()).and_then(|s| s.namespace_options.as_mut()));
    for c in containers {
        pod_ns(c.linux.as_mut().and_then(|l| l.security_context.as_mut()).and_then(|s| s.namespace_options.as_mut()));
    }
}

/// A pod named `name` (also its hostname), logging into `log_dir`, with pod annotations.
pub fn pod_config(name: &str, log_dir: &Path, annotations: &[(&str, &str)]) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: common::unique_id(name),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_dir.display().to_string(),
        annotations: string_map(annotations),
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(kubelet_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container `name` of `image` running `command` (empty: the image's own),
/// logging to `<pod log dir>/<name>.log`, with container annotations.
pub fn container_config(name: &str, image: &str, command: &[&str], annotations: &[(&str, &str)]) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata { name: name.into(), attempt: 0 }),
        image: Some(image_spec(image)),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        annotations: string_map(annotations),
        linux: Some(api::LinuxContainerConfig {
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(kubelet_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

//! The Task service in-process, with a stub backend and an event recorder in
//! place of the registry and containerd: what the service itself owes
//! containerd whatever the backend (event order, preconditions, exits that
//! come early, a group's shutdown, one id created twice at once).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use containerd_shim::api::*;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::ttrpc::{self, Code};
use containerd_shim::ExitSignal;

use super::events::EventSink;
use super::Service;
use crate::backend::{Backend, CreateContext, Instance, Result, Stats};
use crate::router::Route;

/// Records the topics in the order the service sent them.
#[derive(Default)]
struct Recorder(Mutex<Vec<&'static str>>);

#[async_trait]
impl EventSink for Recorder {
    async fn send(&self, topic: &'static str, _event: Any) {
        self.0.lock().unwrap().push(topic);
    }
}

impl Recorder {
    fn topics(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().clone()
    }
}

/// A backend whose containers have no process: their exits are notices, as
/// micad clients' are. The spec's annotations
/// steer it: `stub.oom` (init dies of OOM), `stub.create_ms` (a slow create).
struct Stub;
static STUB: Stub = Stub;
static NEXT_PID: AtomicU32 = AtomicU32::new(4_000_000);

fn stub_backends(_: &Route) -> &'static dyn Backend {
    &STUB
}

struct StubInstance {
    id: String,
    oom: bool,
    notices: crate::backend::NoticeSender,
}

#[async_trait]
impl Backend for Stub {
    fn name(&self) -> &'static str {
        "stub"
    }
    fn needs_rootfs(&self) -> bool {
        false
    }
    async fn create(&self, ctx: &CreateContext<'_>) -> Result<Arc<dyn Instance>> {
        if let Some(ms) = ctx.spec.annotations.get("stub.create_ms") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
        }
        Ok(Arc::new(StubInstance { id: ctx.id.into(), oom: ctx.spec.annotations.contains_key("stub.oom"), notices: ctx.notices.clone() }))
    }
    async fn cleanup(&self, _record: serde_json::Value, _bundle: &Path, _id: &str) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl Instance for StubInstance {
    fn pid(&self) -> u32 {
        0
    }
    fn record(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    async fn start(&self) -> Result<()> {
        Ok(())
    }
    async fn kill(&self, exec_id: Option<&str>, signal: u32, _all: bool) -> Result<()> {
        let exit = crate::backend::Notice::Exit { id: self.id.clone(), exec: exec_id.map(String::from), code: 128 + signal as i32 };
        self.notices.send(exit).unwrap();
        Ok(())
    }
    async fn delete(&self) -> Result<()> {
        Ok(())
    }
    async fn pids(&self) -> Result<Vec<u32>> {
        Ok(vec![])
    }
    async fn stats(&self) -> Result<Stats> {
        Ok(Any::new())
    }
    async fn exec(&self, _exec_id: &str, _process: Vec<u8>, _stdio: crate::stdio::StdioPaths, _io: crate::stdio::IoSlot) -> Result<()> {
        Ok(())
    }
    /// The exec's process exits before its pid is handed back (a runtime's
    /// pid file read after the process already ended).
    async fn start_exec(&self, _exec_id: &str) -> Result<u32> {
        let pid = NEXT_PID.fetch_add(1, Ordering::SeqCst);
        containerd_shim::monitor::monitor_notify_by_pid(pid as i32, 3).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(pid)
    }
    async fn delete_exec(&self, _exec_id: &str) -> Result<()> {
        Ok(())
    }
    async fn oom_at_exit(&self) -> bool {
        self.oom
    }
}

struct Harness {
    svc: Service,
    events: Arc<Recorder>,
    exit: Arc<ExitSignal>,
    dir: PathBuf,
}

/// The status code containerd would see for a core error.
fn code(e: crate::backend::Error) -> Code {
    match super::task::status(e) {
        ttrpc::Error::RpcStatus(s) => s.code(),
        other => panic!("not a status: {other:?}"),
    }
}

impl Harness {
    async fn new(name: &str) -> Harness {
        let dir = std::env::temp_dir().join(format!("micrun-core-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let events = Arc::new(Recorder::default());
        let exit = Arc::new(ExitSignal::default());
        let svc = Service::build("core-test", "", events.clone(), stub_backends, exit.clone()).await;
        Harness { svc, events, exit, dir }
    }

    /// A bundle whose spec routes to mica (any route reaches the stub).
    fn bundle(&self, id: &str, annotations: &[(&str, &str)]) -> CreateTaskRequest {
        let bundle = self.dir.join(id);
        std::fs::create_dir_all(&bundle).unwrap();
        let mut ann: serde_json::Map<String, serde_json::Value> =
            annotations.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect();
        ann.insert("org.openeuler.micran.container.os".into(), serde_json::json!("zephyr"));
        std::fs::write(bundle.join("config.json"), serde_json::json!({"ociVersion": "1.1.0", "annotations": ann}).to_string()).unwrap();
        // runtimeoptions.v1.Options { config_body = 3 }: a private state root
        let body = format!("state_root = \"{}\"\n", self.dir.join("state").display());
        let mut value = vec![(3 << 3) | 2, body.len() as u8];
        value.extend_from_slice(body.as_bytes());
        CreateTaskRequest {
            id: id.into(),
            bundle: bundle.display().to_string(),
            options: Some(Any { type_url: "runtimeoptions.v1.Options".into(), value, ..Default::default() }).into(),
            ..Default::default()
        }
    }

    async fn run(&self, id: &str, annotations: &[(&str, &str)]) {
        self.svc.create(self.bundle(id, annotations)).await.unwrap();
        self.svc.start(StartRequest { id: id.into(), ..Default::default() }).await.unwrap();
    }

    async fn kill_and_wait(&self, id: &str) -> WaitResponse {
        self.svc.kill(KillRequest { id: id.into(), signal: 9, ..Default::default() }).await.unwrap();
        let wait = self.svc.wait(WaitRequest { id: id.into(), ..Default::default() });
        tokio::time::timeout(Duration::from_secs(5), wait).await.expect("no exit within 5 s").unwrap()
    }

    async fn delete(&self, id: &str) -> std::result::Result<DeleteResponse, crate::backend::Error> {
        self.svc.delete(DeleteRequest { id: id.into(), ..Default::default() }).await
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn oom_goes_out_before_the_exit_it_caused() {
    let h = Harness::new("oom").await;
    h.run("c1", &[("stub.oom", "")]).await;
    assert_eq!(h.kill_and_wait("c1").await.exit_status, 137);
    assert_eq!(h.events.topics(), ["/tasks/create", "/tasks/start", "/tasks/oom", "/tasks/exit"]);
}

#[tokio::test]
async fn delete_waits_for_the_exit_and_bad_moves_are_refused() {
    let h = Harness::new("delete").await;
    h.svc.create(h.bundle("c1", &[])).await.unwrap();
    let pause = h.svc.pause(PauseRequest { id: "c1".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(code(pause), Code::FAILED_PRECONDITION, "pause of a created container");
    h.svc.start(StartRequest { id: "c1".into(), ..Default::default() }).await.unwrap();
    let again = h.svc.start(StartRequest { id: "c1".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(code(again), Code::FAILED_PRECONDITION, "a second start");
    assert_eq!(code(h.delete("c1").await.unwrap_err()), Code::FAILED_PRECONDITION, "delete while running");
    h.kill_and_wait("c1").await;
    let deleted = h.delete("c1").await.unwrap();
    assert_eq!(deleted.exit_status, 137);
    assert_eq!(code(h.delete("c1").await.unwrap_err()), Code::NOT_FOUND, "a second delete");
    assert_eq!(h.events.topics(), ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]);
    assert!(!h.dir.join("c1/micrun.json").exists(), "the state file outlived delete");
}

#[tokio::test]
async fn an_exec_that_exits_before_its_pid_is_known_still_gets_its_exit() {
    let h = Harness::new("early").await;
    h.run("c1", &[]).await;
    let spec = Any { type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(), value: br#"{"args":["true"],"cwd":"/"}"#.to_vec(), ..Default::default() };
    h.svc.exec(ExecProcessRequest { id: "c1".into(), exec_id: "x".into(), spec: Some(spec).into(), ..Default::default() }).await.unwrap();
    let started = h.svc.start(StartRequest { id: "c1".into(), exec_id: "x".into(), ..Default::default() }).await.unwrap();
    let wait = h.svc.wait(WaitRequest { id: "c1".into(), exec_id: "x".into(), ..Default::default() });
    let exit = tokio::time::timeout(Duration::from_secs(2), wait).await.expect("the early exit was lost").unwrap();
    assert_eq!(exit.exit_status, 3);
    let topics = h.events.topics();
    assert_eq!(&topics[2..], ["/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"], "pid {}", started.pid);
}

#[tokio::test]
async fn a_group_shim_stays_until_its_last_container_is_gone() {
    let h = Harness::new("group").await;
    h.run("a", &[]).await;
    h.run("b", &[]).await;
    let req = || ShutdownRequest { id: "a".into(), ..Default::default() };
    h.kill_and_wait("a").await;
    h.delete("a").await.unwrap();
    h.svc.shutdown(req()).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(100), h.exit.wait()).await.is_err(), "exited with b still there");
    h.kill_and_wait("b").await;
    h.delete("b").await.unwrap();
    h.svc.shutdown(req()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), h.exit.wait()).await.expect("no exit after the last delete");
}

#[tokio::test]
async fn one_id_created_twice_at_once_makes_one_container() {
    let h = Harness::new("twice").await;
    let slow = [("stub.create_ms", "100")];
    let shutdown_meanwhile = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        h.svc.shutdown(ShutdownRequest { id: "c1".into(), ..Default::default() }).await
    };
    let (r1, r2, s) =
        tokio::join!(h.svc.create(h.bundle("c1", &slow)), h.svc.create(h.bundle("c1", &slow)), shutdown_meanwhile);
    s.unwrap();
    let err = match (r1, r2) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
        other => panic!("both or neither created: {other:?}"),
    };
    assert!(format!("{err:?}").contains("already exists"), "{err:?}");
    assert!(tokio::time::timeout(Duration::from_millis(50), h.exit.wait()).await.is_err(), "a Shutdown during Create ended the shim");
    assert_eq!(h.events.topics(), ["/tasks/create"]);
}

/// Resize and CloseIO are answered by the core from the process's IO slot,
/// whatever the backend: no terminal is a precondition, an unknown exec is
/// not found, closing stdin of a process without one is a no-op.
#[tokio::test]
async fn io_requests_are_answered_from_the_process_io() {
    let h = Harness::new("io").await;
    h.run("c1", &[]).await;
    let resize = h.svc.resize_pty(ResizePtyRequest { id: "c1".into(), width: 80, height: 24, ..Default::default() }).await;
    let e = resize.unwrap_err();
    assert!(e.to_string().contains("no terminal"), "{e}");
    assert_eq!(code(e), Code::FAILED_PRECONDITION);
    let close = |exec: &str| CloseIORequest { id: "c1".into(), exec_id: exec.into(), stdin: true, ..Default::default() };
    assert_eq!(code(h.svc.close_io(close("nope")).await.unwrap_err()), Code::NOT_FOUND);
    h.svc.close_io(close("")).await.unwrap();
}

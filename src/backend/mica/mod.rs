//! The mica backend: an RTOS client of openEuler MICA's micad per container.
//! Create resolves and copies the firmware, maps resources and sends micad's
//! create message; Start boots it and wires its rpmsg tty to containerd's stdio;
//! a watcher turns the RTOS halting into an exit (see `watch.rs`).

pub mod client;
pub mod firmware;
pub mod protocol;
pub mod resources;
pub mod settings;
pub mod status;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

use self::client::{MicadClient, MicadError};
use self::protocol::{CreateMsg, Pedestal};
use self::settings::MicaSettings;
use self::watch::Life;
use crate::backend::{Backend, CreateContext, Error, Instance, Result, Stats};
use crate::config::MicaConfig;
use crate::hooks::{HookContext, Point};
use crate::stdio::{IoCopy, IoSlot, StdioPaths};

/// cgroup v1 metrics with no field set: what an RTOS container's Stats carries.
const EMPTY_METRICS_URL: &str = "io.containerd.cgroups.v1.Metrics";

/// What `shim delete` needs to remove the micad client after the shim died.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct MicaRecord {
    pub socket_dir: PathBuf,
    pub name: String,
}

pub struct MicaContainer {
    id: String,
    /// containerd's namespace, for a logging binary (`binary://` stdout).
    namespace: String,
    /// The micad client name: the container id (containerd ids are at most 76
    /// bytes, so longer ones are refused at create rather than truncated).
    name: String,
    pedestal: Pedestal,
    /// Upstream's auto-close timeout (settings.rs), None when off.
    auto_close: Option<Duration>,
    client: MicadClient,
    /// The spec's OCI hooks, which the shim runs itself: an RTOS has no OCI runtime.
    hooks: HookContext,
    config: MicaConfig,
    stdio: StdioPaths,
    work: PathBuf,
    /// The console's IO, owned by the core (the init process's slot), filled
    /// by the follower once the RTOS announces its tty.
    console: IoSlot,
    /// The shim's event loop, which takes this RTOS's exit.
    notices: crate::backend::NoticeSender,
    life: Arc<Mutex<Life>>,
    watcher: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

pub struct MicaBackend;

#[async_trait]
impl Backend for MicaBackend {
    fn name(&self) -> &'static str {
        "mica"
    }

    async fn create(&self, ctx: &CreateContext<'_>) -> Result<Arc<dyn Instance>> {
        Ok(Arc::new(create(ctx).await?))
    }

    async fn cleanup(&self, record: serde_json::Value, bundle: &Path, id: &str) -> Result<()> {
        let left: MicaRecord =
            serde_json::from_value(record).map_err(|e| Error::failed("read the micad record in the container state", e))?;
        force_delete(&left, bundle, id).await
    }
}

async fn create(ctx: &CreateContext<'_>) -> Result<MicaContainer> {
    let ann = ctx.annotations;
    let set = MicaSettings::parse(ann)?;
    set.warn_unknown(ctx.id);
    let name = ctx.id.to_string();
    if name.len() > protocol::usable_len(protocol::NAME) {
        return Err(Error::InvalidArgument(format!(
            "container id {name:?} is {} bytes; micad names clients with at most {}",
            name.len(),
            protocol::usable_len(protocol::NAME)
        )));
    }
    let pedestal = set.pedestal;
    let hooks = hook_context(ctx)?;
    let client = MicadClient::new(&ctx.config.mica);
    if client.exists(&name) {
        // Never touch a client we did not create: no rm on this path.
        return Err(Error::FailedPrecondition(format!(
            "micad already has a client named {name} ({}); remove it with `mica rm {name}` first",
            client.client_socket(&name).display()
        )));
    }
    let rootfs = ctx.spec.rootfs(ctx.bundle);
    let fw = firmware::prepare(&rootfs, set.firmware_path.as_deref(), set.firmware_hash.as_deref(), &ctx.work_dir)?;
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    // A failed Create has its work dir (and so the firmware copy) removed by the caller.
    let plan = resources::plan(ctx.spec.resources(), pedestal, &online, set.min_memory_mib)?;
    xen_requirements(pedestal, plan.memory_mib, set.pedestal_conf.as_deref())?;
    let max_vcpu_num = set.max_vcpu_num.unwrap_or(-1);
    if max_vcpu_num > 0 && plan.vcpu_num > max_vcpu_num {
        return Err(Error::InvalidArgument(format!(
            "the container asks for {} vCPUs, more than annotation {}={max_vcpu_num} allows",
            plan.vcpu_num,
            ann.mica_keys.get(settings::MAX_VCPU_NUM).map_or(settings::MAX_VCPU_NUM, String::as_str)
        )));
    }
    let msg = CreateMsg {
        pedestal_config: set.pedestal_conf.clone().unwrap_or_default(),
        debug: set.gdb,
        vcpu_num: plan.vcpu_num,
        max_vcpu_num,
        cpu_weight: plan.cpu_weight,
        cpu_capacity: plan.cpu_capacity,
        memory_mib: plan.memory_mib,
        max_memory_mib: plan.max_memory_mib,
        ..CreateMsg::new(&name, &fw.copy.to_string_lossy(), pedestal, &plan.cpu)
    };
    // Check the message before talking to micad, so bad input is ours to report.
    msg.encode().map_err(|e| Error::InvalidArgument(format!("micad create message: {e}")))?;
    tracing::info!(id = ctx.id, os = set.os.as_deref().unwrap_or("-"), auto_close = ?set.auto_close, gdb = set.gdb, runtime_debug = set.runtime_debug, pedestal = %pedestal, cpu = %msg.cpu, vcpu = msg.vcpu_num, memory_mib = msg.memory_mib,
        firmware = %fw.in_rootfs, "creating micad client");
    if let Err(e) = client.create(&msg).await {
        if outcome_unknown(&e) {
            // micad may have created the client before its reply was lost. The
            // name was free just before, so a client by it now is ours: without
            // this rm it would outlive the failed Create and refuse the id's reuse.
            match client.rm(&name).await {
                Ok(()) => tracing::info!(id = ctx.id, "removed the RTOS client of a create whose reply never came"),
                Err(rm) if is_gone(&rm) => {}
                Err(rm) => tracing::warn!(id = ctx.id, error = %rm, "removing the RTOS client of a create whose reply never came"),
            }
        }
        return Err(micad_error("create the RTOS client", e));
    }
    if let Err(e) = run_create_hooks(&hooks).await {
        // The spec's order after a failed prestart/createRuntime hook: destroy
        // the container, then run poststop.
        if let Err(rm) = client.rm(&name).await {
            tracing::warn!(id = ctx.id, error = %rm, "removing the RTOS client after a failed hook");
        }
        hooks.run_logged(Point::Poststop).await;
        return Err(Error::Failed(e));
    }
    Ok(MicaContainer {
        id: ctx.id.into(),
        namespace: ctx.namespace.into(),
        name,
        pedestal,
        auto_close: set.auto_close,
        client,
        hooks,
        config: ctx.config.mica.clone(),
        stdio: ctx.stdio.clone(),
        work: ctx.work_dir.clone(),
        console: ctx.io.clone(),
        notices: ctx.notices.clone(),
        life: Arc::new(Mutex::new(Life::default())),
        watcher: std::sync::Mutex::new(None),
    })
}

/// micad's Xen pedestal writes a domain config from the create message and
/// fails, without a word, when the memory size is negative (our "no limit")
/// or the pedestal config is empty (xen_rproc.c, generate_xen_cfg). Said here
/// in words the user can act on.
fn xen_requirements(pedestal: Pedestal, memory_mib: i32, conf: Option<&str>) -> Result<()> {
    if pedestal != Pedestal::Xen {
        return Ok(());
    }
    if memory_mib < 0 {
        return Err(Error::InvalidArgument(format!(
            "the Xen pedestal boots an RTOS with a fixed memory size, and this container has none: set a memory limit \
             (ctr --memory-limit, nerdctl --memory, a Kubernetes memory limit) or annotation {}{}",
            crate::annotations::MICA_PREFIXES[0],
            settings::MIN_MEMORY_MB
        )));
    }
    if conf.is_none_or(str::is_empty) {
        return Err(Error::InvalidArgument(format!(
            "the Xen pedestal needs its config: set annotation {}{} (micad builds the Xen domain from it)",
            crate::annotations::MICA_PREFIXES[0],
            settings::PEDESTAL_CONF
        )));
    }
    Ok(())
}

/// The container's hooks, checked before micad is asked for anything.
fn hook_context(ctx: &CreateContext<'_>) -> Result<HookContext> {
    let hooks = HookContext::new(ctx.spec, ctx.id, ctx.bundle);
    hooks.hooks.validate().map_err(|e| Error::InvalidArgument(format!("the container's OCI hooks: {e}")))?;
    let skipped = hooks.hooks.in_container_namespace();
    if skipped > 0 {
        tracing::warn!(id = ctx.id, skipped, "createContainer/startContainer hooks are not run: an RTOS has no container namespace to run them in");
    }
    Ok(hooks)
}

async fn run_create_hooks(hooks: &HookContext) -> std::result::Result<(), String> {
    hooks.run(Point::Prestart).await?;
    hooks.run(Point::CreateRuntime).await
}

/// micad's own words reach the user; a missing daemon is a precondition.
fn micad_error(what: &str, e: MicadError) -> Error {
    match e {
        MicadError::NotRunning { .. } | MicadError::NoSuchClient { .. } => Error::FailedPrecondition(format!("{what}: {e}")),
        _ => Error::Failed(format!("{what}: {e}")),
    }
}

/// micad may or may not have acted on a request that failed this way.
fn outcome_unknown(e: &MicadError) -> bool {
    matches!(e, MicadError::Timeout { .. } | MicadError::Protocol { .. } | MicadError::Io { .. })
}

fn is_gone(e: &MicadError) -> bool {
    matches!(e, MicadError::NoSuchClient { .. } | MicadError::NotRunning { .. })
}

/// Removes the micad client of a container whose shim died (`shim delete`),
/// then runs its poststop hooks, which the dead shim can no longer run.
async fn force_delete(left: &MicaRecord, bundle: &Path, id: &str) -> Result<()> {
    let client = MicadClient::new(&MicaConfig { socket_dir: left.socket_dir.clone(), ..MicaConfig::default() });
    match client.rm(&left.name).await {
        Err(e) if !is_gone(&e) => return Err(micad_error("remove the RTOS client", e)),
        _ => {}
    }
    match crate::spec::BundleSpec::load(bundle) {
        Ok(spec) => HookContext::new(&spec, id, bundle).run_logged(Point::Poststop).await,
        Err(e) => tracing::warn!(id, error = %e, "poststop hooks not run: the bundle's spec is unreadable"),
    }
    Ok(())
}

impl MicaContainer {
    fn no_exec(exec_id: &str) -> Error {
        Error::NotFound(format!("exec {exec_id} not found: an RTOS container has no processes to exec into"))
    }

    fn no_pause(&self) -> Error {
        Error::FailedPrecondition(format!(
            "the {} pedestal cannot pause an RTOS (micad has no pause request); stop it with SIGTERM instead",
            self.pedestal
        ))
    }

}

#[async_trait]
impl Instance for MicaContainer {
    /// An RTOS has no host process: containerd is told pid 0 rather than a made-up one.
    fn pid(&self) -> u32 {
        0
    }

    fn record(&self) -> serde_json::Value {
        serde_json::to_value(MicaRecord { socket_dir: self.client.socket_dir().to_path_buf(), name: self.name.clone() })
            .expect("a micad record is plain data")
    }

    /// Boots the RTOS and answers: the console attaches when the RTOS
    /// announces it (watch.rs), and the pty keeps what the RTOS writes until
    /// then, so containerd loses nothing and Start does not wait on a boot.
    async fn start(&self) -> Result<()> {
        self.client.start(&self.name).await.map_err(|e| micad_error("start the RTOS", e))?;
        self.life.lock().await.started = true;
        *self.console.lock().await = IoCopy::awaiting_console();
        let follower = watch::Follower {
            client: self.client.clone(),
            name: self.name.clone(),
            console: watch::Console {
                slot: self.console.clone(),
                stdio: self.stdio.clone(),
                namespace: self.namespace.clone(),
                tty_dir: self.config.tty_dir.clone(),
            },
            interval: Duration::from_millis(self.config.status_interval_ms.max(10)),
            life: self.life.clone(),
            auto_close: self.auto_close,
            notices: self.notices.clone(),
        };
        *self.watcher.lock().expect("watcher lock") = Some(tokio::spawn(follower.run()));
        self.hooks.run_logged(Point::Poststart).await;
        Ok(())
    }

    async fn kill(&self, exec_id: Option<&str>, signal: u32, _all: bool) -> Result<()> {
        if let Some(x) = exec_id {
            return Err(Self::no_exec(x));
        }
        const SIGINT: u32 = 2;
        const SIGKILL: u32 = 9;
        const SIGTERM: u32 = 15;
        const SIGCONT: u32 = 18;
        const SIGSTOP: u32 = 19;
        let mut life = self.life.lock().await;
        if life.exit.is_some() || !life.started {
            return Err(Error::NotFound(format!("RTOS of container {} is not running", self.id)));
        }
        match signal {
            0 => Ok(()),
            SIGTERM | SIGINT | SIGKILL => {
                self.client.stop(&self.name).await.map_err(|e| micad_error("stop the RTOS", e))?;
                let code = 128 + signal as i32;
                life.exit = Some(code);
                drop(life);
                watch::notify_exit(&self.notices, &self.id, code);
                Ok(())
            }
            SIGSTOP | SIGCONT => Err(self.no_pause()),
            other => Err(Error::InvalidArgument(format!(
                "signal {other} has no meaning for an RTOS: SIGTERM, SIGINT and SIGKILL stop it (micad `stop`)"
            ))),
        }
    }

    async fn exec(&self, _exec_id: &str, _process: Vec<u8>, _stdio: StdioPaths, _io: IoSlot) -> Result<()> {
        Err(Error::Unimplemented("an RTOS container has no processes to exec into".into()))
    }

    async fn start_exec(&self, exec_id: &str) -> Result<u32> {
        Err(Self::no_exec(exec_id))
    }

    async fn delete_exec(&self, exec_id: &str) -> Result<()> {
        Err(Self::no_exec(exec_id))
    }

    async fn delete(&self) -> Result<()> {
        if let Some(h) = self.watcher.lock().expect("watcher lock").take() {
            h.abort();
        }
        let r = self.client.rm(&self.name).await;
        let _ = std::fs::remove_dir_all(&self.work);
        match r {
            Err(e) if !is_gone(&e) => Err(micad_error("remove the RTOS client", e)),
            _ => {
                self.hooks.run_logged(Point::Poststop).await;
                Ok(())
            }
        }
    }

    /// No host process belongs to an RTOS.
    async fn pids(&self) -> Result<Vec<u32>> {
        Ok(Vec::new())
    }

    async fn pause(&self) -> Result<()> {
        Err(self.no_pause())
    }

    async fn resume(&self) -> Result<()> {
        Err(self.no_pause())
    }

    async fn update(&self, body: &[u8]) -> Result<()> {
        let res: crate::spec::Resources =
            serde_json::from_slice(body).map_err(|e| Error::InvalidArgument(format!("update resources: {e}")))?;
        for (key, value) in resources::set_requests(&res)? {
            if let Err(e) = self.client.set(&self.name, key, &value).await {
                let hint = if self.pedestal == Pedestal::Xen {
                    String::new()
                } else {
                    format!(" (micad implements `set` only on the Xen pedestal; this RTOS runs on {})", self.pedestal)
                };
                return Err(micad_error(&format!("update {key} to {value}{hint}"), e));
            }
        }
        Ok(())
    }

    /// micad reports no resource usage for an RTOS client (its status has only
    /// the state and CPU list), so the metrics are empty: no figure rather than
    /// an error, because containerd 2.x's CRI collects every task's metrics
    /// each second and logs each error it gets.
    async fn stats(&self) -> Result<Stats> {
        Ok(Stats { type_url: EMPTY_METRICS_URL.into(), ..Default::default() })
    }

    async fn oom_at_exit(&self) -> bool {
        false
    }
}


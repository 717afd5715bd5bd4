//! The exec delegate: a Linux container run by an OCI runtime CLI (crun, runc,
//! youki, ...) that the shim drives the way containerd's runc shim drives runc.

pub mod cli;
pub mod console;
pub mod profile;
pub mod sealed;
mod spec_version;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::cgroup::{self, ContainerCgroup};
use self::cli::Cli;
use self::profile::Profile;
use crate::backend::{Backend, CreateContext, Error, Instance, Notice, Result, Stats};
use crate::router::Route;
use crate::spawn::ChildStdio;
use crate::stdio::{IoCopy, IoSlot, StdioPaths};

/// How long output may take to reach containerd after a process exited.

pub struct DelegateContainer {
    id: String,
    namespace: String,
    /// Where console sockets go: short, since socket paths are limited to 108 bytes.
    console_dir: PathBuf,
    cli: Cli,
    work: PathBuf,
    pid: u32,
    execs: Mutex<HashMap<String, Exec>>,
    cgroup: Option<ContainerCgroup>,
    ooms_reported: Arc<AtomicU64>,
    exec_seq: std::sync::atomic::AtomicU32,
}

struct Exec {
    process: Vec<u8>,
    stdio: StdioPaths,
    io: IoSlot,
    pid: Option<u32>,
}

/// The delegate's `--root`: one per delegate and namespace, under the shim's state root.
pub fn root_dir(state_root: &Path, namespace: &str, delegate: &str) -> PathBuf {
    state_root.join(namespace).join("delegates").join(delegate)
}

/// The cgroups path has the systemd form `slice:prefix:name`.
fn is_systemd_cgroup(spec: &crate::spec::BundleSpec) -> bool {
    spec.cgroups_path().is_some_and(|p| p.split(':').count() == 3)
}

/// Whether the delegate gets `--systemd-cgroup`: when the config says so, or
/// the cgroups path has the systemd form on a host systemd manages. CRI writes
/// that form whenever the pod's cgroup parent ends in ".slice", whatever the
/// host (critest's default parent is "system.slice"); without systemd there is
/// no bus to ask, and containerd's runc shim, which asks for systemd only when
/// its SystemdCgroup option is set, hands the path to the runtime's cgroupfs
/// manager as it is. So does micrun there.
fn wants_systemd_cgroup(configured: bool, spec: &crate::spec::BundleSpec, booted: bool) -> bool {
    configured || (booted && is_systemd_cgroup(spec))
}

/// What `shim delete` needs to run the delegate's `delete --force` after the shim died.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct DelegateRecord {
    pub name: String,
    pub binary: PathBuf,
    pub root: PathBuf,
    pub systemd_cgroup: bool,
    #[serde(default)]
    pub global_args: Vec<String>,
    #[serde(default)]
    pub sealed_exec: bool,
}

pub struct DelegateBackend;

#[async_trait]
impl Backend for DelegateBackend {
    fn name(&self) -> &'static str {
        "delegate"
    }

    async fn create(&self, ctx: &CreateContext<'_>) -> Result<Arc<dyn Instance>> {
        let Route::Delegate(name) = &ctx.decision.route else {
            return Err(Error::Failed(format!("the delegate backend was given route {}", ctx.decision)));
        };
        Ok(Arc::new(create(ctx, name).await?))
    }

    fn planned_record(&self, ctx: &CreateContext<'_>) -> Result<Option<serde_json::Value>> {
        let Route::Delegate(name) = &ctx.decision.route else { return Ok(None) };
        Ok(Some(record_of(&cli_for(ctx, name)?)))
    }

    async fn cleanup(&self, record: serde_json::Value, _bundle: &Path, id: &str) -> Result<()> {
        let left: DelegateRecord =
            serde_json::from_value(record).map_err(|e| Error::failed("read the delegate's record in the container state", e))?;
        force_delete(&left, id).await
    }
}

/// The runtime CLI the delegate `name` runs for this container.
fn cli_for(ctx: &CreateContext<'_>, name: &str) -> Result<Cli> {
    let cfg = &ctx.config.delegate;
    let profile = Profile::load(name, &cfg.profile_dir).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let binary = profile.find_binary(&profile::search_path()).map_err(|e| Error::FailedPrecondition(e.to_string()))?;
    Ok(Cli {
        profile,
        binary,
        root: root_dir(&ctx.config.state_root, ctx.namespace, name),
        log: ctx.work_dir.join("log.json"),
        systemd_cgroup: wants_systemd_cgroup(cfg.systemd_cgroup, ctx.spec, cgroup::systemd_booted()),
    })
}

fn record_of(cli: &Cli) -> serde_json::Value {
    serde_json::to_value(DelegateRecord {
        name: cli.profile.name.clone(),
        binary: cli.binary.clone(),
        root: cli.root.clone(),
        systemd_cgroup: cli.systemd_cgroup,
        global_args: cli.profile.global_args.clone(),
        sealed_exec: cli.profile.sealed_exec,
    })
    .expect("a delegate record is plain data")
}

async fn create(ctx: &CreateContext<'_>, name: &str) -> Result<DelegateContainer> {
    let cli = cli_for(ctx, name)?;
    let root = &cli.root;
    crate::state::private_dir(root).map_err(|e| Error::failed(&format!("create {}", root.display()), e))?;
    tracing::info!(id = ctx.id, delegate = name, binary = %cli.binary.display(), root = %cli.root.display(),
        systemd_cgroup = cli.systemd_cgroup, "delegate chosen");

    if let Some(max) = &cli.profile.oci_version_max {
        if let Some(from) = spec_version::cap(ctx.bundle, max)? {
            tracing::info!(id = ctx.id, delegate = name, from = %from, to = %max, "spec version lowered for the delegate");
        }
    }

    let pid_file = ctx.work_dir.join("init.pid");
    let args: Vec<OsString> = vec!["create".into(), "--bundle".into(), ctx.bundle.into(), "--pid-file".into(), (&pid_file).into()];
    let attach = Attach { id: ctx.id, namespace: ctx.namespace, stdio: ctx.stdio, console_dir: &ctx.config.state_root };
    let created = async { Ok::<_, Error>((attach.run(&cli, args).await?, read_pid(&pid_file)?)) }.await;
    let (io, pid) = match created {
        Ok(v) => v,
        Err(e) => {
            // The runtime may hold the container even though a later step failed.
            let _ = cli.simple(&["delete", "--force", ctx.id]).await;
            return Err(e);
        }
    };

    *ctx.io.lock().await = io;
    let cgroup = ContainerCgroup::of_pid(pid);
    let ooms_reported = Arc::new(AtomicU64::new(0));
    if let Some(cg) = cgroup.clone() {
        let notices = ctx.notices.clone();
        ooms_reported.store(cg.oom_kills(), std::sync::atomic::Ordering::SeqCst);
        let id = ctx.id.to_string();
        tokio::spawn(cg.watch_oom(ooms_reported.clone(), move || {
            let _ = notices.send(Notice::Oom { id: id.clone() });
        }));
    }
    Ok(DelegateContainer {
        id: ctx.id.into(),
        namespace: ctx.namespace.into(),
        console_dir: ctx.config.state_root.clone(),
        cli,
        work: ctx.work_dir.clone(),
        pid,
        execs: Mutex::new(HashMap::new()),
        cgroup,
        ooms_reported,
        exec_seq: Default::default(),
    })
}

/// How a process (init or exec) is attached to containerd's stdio while the
/// runtime creates it: through a console socket for a terminal, pipes otherwise.
struct Attach<'a> {
    id: &'a str,
    namespace: &'a str,
    stdio: &'a StdioPaths,
    console_dir: &'a Path,
}

impl Attach<'_> {
    /// Runs `create`/`exec` (`args` without the trailing id) attached; returns the copy tasks.
    async fn run(&self, cli: &Cli, mut args: Vec<OsString>) -> Result<IoCopy> {
        if self.stdio.terminal {
            let console = console::Listener::bind(self.console_dir).await?;
            args.extend(["--console-socket".into(), console.path().into(), self.id.into()]);
            cli.run(args, ChildStdio::default()).await?;
            let master = console.receive().await?;
            IoCopy::console(self.stdio, master, self.id, self.namespace).await.map_err(|e| Error::failed("connect the console to containerd", e))
        } else {
            let (io, ends) = IoCopy::pipes(self.stdio, self.id, self.namespace)
                .await
                .map_err(|e| Error::failed("open the process's stdio", e))?;
            args.push(self.id.into());
            cli.run(args, ChildStdio { stdin: ends.stdin, stdout: ends.stdout, stderr: ends.stderr }).await?;
            Ok(io)
        }
    }
}

fn read_pid(path: &Path) -> Result<u32> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::failed(&format!("read {}", path.display()), e))?;
    text.trim().parse().map_err(|_| Error::Failed(format!("{} holds no pid: {text:?}", path.display())))
}

/// Removes a container the delegate may still hold; used by `shim delete` after a
/// dead shim, when nothing but the recorded leftovers is known.
async fn force_delete(left: &DelegateRecord, id: &str) -> Result<()> {
    let cli = Cli {
        profile: Profile {
            name: left.name.clone(),
            binary: left.binary.clone(),
            global_args: left.global_args.clone(),
            log: Default::default(),
            sealed_exec: left.sealed_exec,
            oci_version_max: None,
        },
        binary: left.binary.clone(),
        root: left.root.clone(),
        log: std::env::temp_dir().join(format!("micrun-delete-{id}.json")),
        systemd_cgroup: left.systemd_cgroup,
    };
    let r = cli.simple(&["delete", "--force", id]).await;
    let _ = std::fs::remove_file(&cli.log);
    match r {
        Err(e) if !cli::is_gone(&e) => Err(e),
        _ => Ok(()),
    }
}

impl DelegateContainer {
    fn gone_is_not_found(e: Error) -> Error {
        if cli::is_gone(&e) { Error::NotFound(format!("process already finished ({e})")) } else { e }
    }
}

#[async_trait]
impl Instance for DelegateContainer {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn record(&self) -> serde_json::Value {
        record_of(&self.cli)
    }

    async fn start(&self) -> Result<()> {
        self.cli.simple(&["start", &self.id]).await.map(drop)
    }

    async fn kill(&self, exec_id: Option<&str>, signal: u32, all: bool) -> Result<()> {
        let Some(exec_id) = exec_id else {
            let sig = signal.to_string();
            let mut args = vec!["kill"];
            if all {
                args.push("--all");
            }
            args.extend([self.id.as_str(), sig.as_str()]);
            return self.cli.simple(&args).await.map(drop).map_err(Self::gone_is_not_found);
        };
        let execs = self.execs.lock().await;
        let pid = execs
            .get(exec_id)
            .and_then(|e| e.pid)
            .ok_or_else(|| Error::NotFound(format!("exec {exec_id} is not running")))?;
        let sig = nix::sys::signal::Signal::try_from(signal as i32)
            .map_err(|_| Error::InvalidArgument(format!("signal {signal} is not a valid signal number")))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig)
            .map_err(|e| Error::NotFound(format!("exec {exec_id} (pid {pid}): {e}")))
    }

    async fn exec(&self, exec_id: &str, process: Vec<u8>, stdio: StdioPaths, io: IoSlot) -> Result<()> {
        let mut execs = self.execs.lock().await;
        if execs.contains_key(exec_id) {
            return Err(Error::InvalidArgument(format!("exec id {exec_id} already exists in container {}", self.id)));
        }
        execs.insert(exec_id.into(), Exec { process, stdio, io, pid: None });
        Ok(())
    }

    async fn start_exec(&self, exec_id: &str) -> Result<u32> {
        let (process, stdio) = {
            let execs = self.execs.lock().await;
            let e = execs.get(exec_id).ok_or_else(|| Error::NotFound(format!("exec {exec_id} not found")))?;
            (e.process.clone(), e.stdio.clone())
        };
        let n = self.exec_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let spec_file = self.work.join(format!("exec-{n}.json"));
        let pid_file = self.work.join(format!("exec-{n}.pid"));
        std::fs::write(&spec_file, process).map_err(|e| Error::failed("write exec process", e))?;
        let args: Vec<OsString> =
            vec!["exec".into(), "--process".into(), (&spec_file).into(), "--detach".into(), "--pid-file".into(), (&pid_file).into()];
        let attach = Attach { id: &self.id, namespace: &self.namespace, stdio: &stdio, console_dir: &self.console_dir };
        let result = attach.run(&self.cli, args).await;
        let _ = std::fs::remove_file(&spec_file);
        let pid = read_pid(&pid_file);
        let _ = std::fs::remove_file(&pid_file);
        let io = match result {
            Ok(io) => io,
            Err(e) => {
                // The process may run although attaching its console failed: do not leave it behind.
                if let Ok(pid) = pid {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
                }
                return Err(e);
            }
        };
        let pid = pid?;
        let mut execs = self.execs.lock().await;
        if let Some(e) = execs.get_mut(exec_id) {
            *e.io.lock().await = io;
            e.pid = Some(pid);
        }
        Ok(pid)
    }

    async fn delete_exec(&self, exec_id: &str) -> Result<()> {
        match self.execs.lock().await.remove(exec_id) {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(format!("exec {exec_id} not found"))),
        }
    }

    async fn delete(&self) -> Result<()> {
        match self.cli.simple(&["delete", "--force", &self.id]).await {
            // The work dir stays: it holds the runtime's --log file, without
            // which the runtime refuses every retried delete.
            Err(e) if !cli::is_gone(&e) => Err(e),
            _ => {
                let _ = std::fs::remove_dir_all(&self.work);
                Ok(())
            }
        }
    }

    async fn pids(&self) -> Result<Vec<u32>> {
        let cg = self.cgroup.as_ref().ok_or_else(|| Error::FailedPrecondition("container cgroup not found".into()))?;
        cg.pids().map_err(|e| Error::failed("read the container's cgroup.procs", e))
    }

    async fn pause(&self) -> Result<()> {
        self.cli.simple(&["pause", &self.id]).await.map(drop)
    }

    async fn resume(&self) -> Result<()> {
        self.cli.simple(&["resume", &self.id]).await.map(drop)
    }

    async fn update(&self, resources: &[u8]) -> Result<()> {
        let file = self.work.join("update.json");
        std::fs::write(&file, resources).map_err(|e| Error::failed("write resources", e))?;
        let r = self.cli.simple(&["update", "--resources", &file.to_string_lossy(), &self.id]).await;
        let _ = std::fs::remove_file(&file);
        r.map(drop)
    }

    async fn stats(&self) -> Result<Stats> {
        let cg = self.cgroup.as_ref().ok_or_else(|| Error::FailedPrecondition("container cgroup not found".into()))?;
        cg.stats().map_err(|e| Error::Failed(format!("read cgroup statistics: {e}")))
    }

    async fn oom_at_exit(&self) -> bool {
        self.cgroup.as_ref().map(|cg| cgroup::report_new(cg, &self.ooms_reported)).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_cgroup_form_is_detected() {
        let spec = |p: &str| crate::spec::BundleSpec {
            linux: Some(crate::spec::Linux { cgroups_path: Some(p.into()), ..Default::default() }),
            ..Default::default()
        };
        assert!(is_systemd_cgroup(&spec("system.slice:cri-containerd:abc")));
        assert!(!is_systemd_cgroup(&spec("/k8s.io/abc")));
        assert!(!is_systemd_cgroup(&crate::spec::BundleSpec::default()));
    }

    #[test]
    fn systemd_cgroup_only_where_systemd_runs_or_configured() {
        let spec = |p: &str| crate::spec::BundleSpec {
            linux: Some(crate::spec::Linux { cgroups_path: Some(p.into()), ..Default::default() }),
            ..Default::default()
        };
        let form = spec("system.slice:cri-containerd:abc");
        assert!(wants_systemd_cgroup(false, &form, true));
        assert!(!wants_systemd_cgroup(false, &form, false), "no systemd: the path goes to cgroupfs as it is");
        assert!(wants_systemd_cgroup(true, &form, false), "the config's systemd_cgroup = true wins");
        assert!(!wants_systemd_cgroup(false, &spec("/k8s.io/abc"), true));
    }
}

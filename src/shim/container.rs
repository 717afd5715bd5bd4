//! One container held by the shim: its route, its backend instance, its init and
//! exec processes. Also the Create-time steps that are not backend work: options,
//! config, rootfs mounts, routing, and undoing all of it when Create fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use containerd_shim::api::CreateTaskRequest;
use containerd_shim::protos::protobuf::well_known_types::any::Any;

use super::process::Process;
use crate::annotations::Annotations;
use crate::backend::{self, delegate, CreateContext, Error, Instance, NoticeSender, Result};
use crate::config::{Config, ConfigSource};
use crate::router::{self, Decision, Route};
use crate::spec::BundleSpec;
use crate::state::{self, ContainerState};
use crate::stdio::StdioPaths;

pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub instance: Arc<dyn Instance>,
    pub init: Process,
    pub execs: HashMap<String, Process>,
    pub mounted_rootfs: Option<PathBuf>,
    /// A Linux container whose processes outlive its init (no pid namespace of
    /// its own): they are killed when init exits, as the runc shim does.
    pub kill_all_on_exit: bool,
}

const RUNTIME_OPTIONS_URL: &str = "runtimeoptions.v1.Options";
const RUNC_OPTIONS_URL: &str = "containerd.runc.v1.Options";

/// What containerd's runtime options ask of us.
#[derive(Debug, Default, PartialEq)]
pub struct RuntimeOptions {
    pub config: Option<ConfigSource>,
    pub config_body: Option<String>,
    /// `ctr --runc-binary NAME`: a delegate name (never a path we did not allow).
    pub binary_name: Option<String>,
}

/// Decodes the options Any by its type URL; the two kinds we know share no layout.
pub fn runtime_options(any: Option<&Any>) -> Result<RuntimeOptions> {
    let Some(any) = any.filter(|a| !a.type_url.is_empty()) else { return Ok(RuntimeOptions::default()) };
    let url = any.type_url.rsplit('/').next().unwrap_or_default();
    let mut out = RuntimeOptions::default();
    match url {
        RUNTIME_OPTIONS_URL => {
            // runtimeoptions.v1.Options { type_url = 1; config_path = 2; config_body = 3; }
            let (mut path, mut body) = (None, None);
            for (field, value) in string_fields(&any.value)? {
                match field {
                    2 if !value.is_empty() => path = Some(value),
                    3 if !value.is_empty() => body = Some(value),
                    _ => {}
                }
            }
            // With both set the body wins, as it did for containerd's encoding
            // (path before body); decided after the loop so that fields in
            // another order cannot leave a file source beside a body.
            match (path, body) {
                (_, Some(body)) => {
                    out.config = Some(ConfigSource::Body);
                    out.config_body = Some(body);
                }
                (Some(path), None) => out.config = Some(ConfigSource::File(path.into())),
                (None, None) => {}
            }
        }
        RUNC_OPTIONS_URL => {
            use containerd_shim::protos::protobuf::Message;
            let o = containerd_shim::api::Options::parse_from_bytes(&any.value)
                .map_err(|e| Error::InvalidArgument(format!("runc options: {e}")))?;
            if !o.binary_name.is_empty() {
                out.binary_name = Some(o.binary_name.clone());
            }
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "runtime options of type {other:?} are not understood; use {RUNTIME_OPTIONS_URL} (config_path/config_body)"
            )))
        }
    }
    Ok(out)
}

/// The length-delimited (string) fields of a message; others are skipped.
fn string_fields(bytes: &[u8]) -> Result<Vec<(u32, String)>> {
    let bad = |e: String| Error::InvalidArgument(format!("runtime options: {e}"));
    let mut out = Vec::new();
    for (field, value) in crate::wire::fields(bytes).map_err(bad)? {
        if let crate::wire::Value::Bytes(_) = value {
            out.push((field, value.text().map_err(bad)?));
        }
    }
    Ok(out)
}

/// `ctr --runc-binary crun` picks a delegate by name; a path is refused unless it
/// is a known profile's binary name.
pub(crate) fn binary_name_to_delegate(name: &str) -> Result<String> {
    let base = name.rsplit('/').next().unwrap_or(name);
    if name.contains('/') || delegate::profile::check_name(base).is_err() {
        return Err(Error::InvalidArgument(format!(
            "runtime option binary_name {name:?}: give a delegate name (crun, runc, youki), not a path"
        )));
    }
    Ok(base.to_string())
}

/// The PATH-based availability check the router needs.
pub(crate) fn available(cfg: &Config) -> impl Fn(&str) -> bool + '_ {
    move |name: &str| {
        delegate::profile::Profile::load(name, &cfg.delegate.profile_dir)
            .and_then(|p| p.find_binary(&delegate::profile::search_path()))
            .is_ok()
    }
}

/// Reads the bundle's spec, resolves config and decides the route.
pub fn decide(bundle: &Path, opts: &RuntimeOptions) -> Result<(BundleSpec, Config, Decision)> {
    let (spec, cfg) = load(bundle, opts)?;
    let decision = route(&parse_annotations(&spec)?, &cfg, opts)?;
    Ok((spec, cfg, decision))
}

fn parse_annotations(spec: &BundleSpec) -> Result<Annotations> {
    Annotations::parse(&spec.annotations).map_err(|e| Error::InvalidArgument(e.to_string()))
}

fn load(bundle: &Path, opts: &RuntimeOptions) -> Result<(BundleSpec, Config)> {
    let cfg = Config::resolve(opts.config.as_ref(), opts.config_body.as_deref())
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let spec = BundleSpec::load(bundle).map_err(Error::InvalidArgument)?;
    Ok((spec, cfg))
}

fn route(annotations: &Annotations, cfg: &Config, opts: &RuntimeOptions) -> Result<Decision> {
    let mut decision = router::route(annotations, cfg, &available(cfg), &delegate::profile::search_path())
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    if let (Some(bin), Route::Delegate(_)) = (&opts.binary_name, &decision.route) {
        if annotations.delegate.is_none() {
            let name = binary_name_to_delegate(bin)?;
            if !cfg.delegate.allowed.contains(&name) {
                return Err(Error::InvalidArgument(format!(
                    "runtime option binary_name {bin:?} is not an allowed delegate; allowed: {}",
                    cfg.delegate.allowed.join(", ")
                )));
            }
            decision = Decision { route: Route::Delegate(name.clone()), reason: format!("runtime option binary_name={name}") };
        }
    }
    Ok(decision)
}

/// `labels_as_annotations`: the container's labels under our prefixes join
/// the spec's annotations; an annotation of the same key wins.
async fn add_labels(spec: &mut BundleSpec, containerd: &str, namespace: &str, id: &str) -> Result<()> {
    let (address, ns, cid) = (containerd.to_string(), namespace.to_string(), id.to_string());
    let started = std::time::Instant::now();
    let labels = tokio::task::spawn_blocking(move || super::labels::ours(&address, &ns, &cid))
        .await
        .map_err(|e| Error::failed("read the container's labels", e))?
        .map_err(|e| Error::FailedPrecondition(format!("{e} (labels_as_annotations is on in the micrun config)")))?;
    let used: Vec<&String> = labels.keys().filter(|k| !spec.annotations.contains_key(*k)).collect();
    tracing::info!(id, us = started.elapsed().as_micros() as u64, labels = ?used, "containerd labels read as annotations");
    for (k, v) in labels {
        spec.annotations.entry(k).or_insert(v);
    }
    Ok(())
}

/// Creates a container; on failure nothing of it is left behind. `sandbox_api`:
/// the Sandbox API's sandbox, always the holder.
pub async fn create(
    req: &CreateTaskRequest,
    namespace: &str,
    containerd: &str,
    notices: NoticeSender,
    backends: backend::Backends,
    sandbox_api: bool,
) -> Result<Container> {
    let opts = runtime_options(req.options.as_ref())?;
    let bundle = PathBuf::from(&req.bundle);
    let (mut spec, cfg) = load(&bundle, &opts)?;
    if cfg.labels_as_annotations {
        add_labels(&mut spec, containerd, namespace, &req.id).await?;
    }
    let annotations = parse_annotations(&spec)?;
    let decision = match sandbox_api {
        true => Decision { route: Route::Holder, reason: "sandbox of containerd's Sandbox API (sandboxer = \"shim\")".into() },
        false => route(&annotations, &cfg, &opts)?,
    };
    tracing::info!(id = %req.id, route = ?decision.route, reason = %decision.reason, "route");
    let backend = backends(&decision.route);

    let mounted_rootfs = if backend.needs_rootfs() { mount_rootfs(req, &bundle).await? } else { None };
    let work_dir = state::work_dir(&cfg.state_root, namespace, &req.id);
    let stdio = StdioPaths { stdin: req.stdin.clone(), stdout: req.stdout.clone(), stderr: req.stderr.clone(), terminal: req.terminal };
    let io = crate::stdio::io_slot();
    let made = async {
        state::private_dir(&work_dir).map_err(|e| Error::failed(&format!("create {}", work_dir.display()), e))?;
        let ctx = CreateContext {
            id: &req.id,
            namespace,
            bundle: &bundle,
            spec: &spec,
            annotations: &annotations,
            stdio: &stdio,
            config: &cfg,
            decision: &decision,
            work_dir: work_dir.clone(),
            notices,
            io: io.clone(),
        };
        // Saved before the backend acts: a shim killed inside create (the
        // runtime may already hold the container) leaves `shim delete` the
        // work dir, the mount and the runtime's container to undo.
        let planned = backend.planned_record(&ctx)?;
        let mut st = ContainerState {
            id: req.id.clone(),
            namespace: namespace.into(),
            decision: decision.clone(),
            pid: 0,
            work_dir: work_dir.clone(),
            mounted_rootfs: mounted_rootfs.clone(),
            leftovers: planned.map(|r| backend::Leftovers::of(backend.name(), r)).unwrap_or_default(),
        };
        st.save(&bundle).map_err(|e| Error::failed("save container state", e))?;
        let instance = backend.create(&ctx).await?;
        st.pid = instance.pid();
        st.leftovers = backend::Leftovers::of(backend.name(), instance.record());
        if let Err(e) = st.save(&bundle) {
            let _ = instance.delete().await;
            return Err(Error::failed("save container state", e));
        }
        Ok::<_, Error>(instance)
    }
    .await;
    let instance = match made {
        Ok(i) => i,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work_dir);
            unmount(mounted_rootfs.as_deref());
            state::ContainerState::remove(&bundle);
            return Err(e);
        }
    };
    let pid = instance.pid();
    Ok(Container {
        id: req.id.clone(),
        bundle,
        instance,
        init: Process::new(pid, stdio, io),
        execs: HashMap::new(),
        mounted_rootfs,
        kill_all_on_exit: matches!(decision.route, Route::Delegate(_)) && spec.kill_all_on_exit(),
    })
}

async fn mount_rootfs(req: &CreateTaskRequest, bundle: &Path) -> Result<Option<PathBuf>> {
    if req.rootfs.is_empty() {
        return Ok(None);
    }
    let target = bundle.join("rootfs");
    std::fs::create_dir_all(&target).map_err(|e| Error::failed("create rootfs dir", e))?;
    for m in &req.rootfs {
        if let Err(e) = containerd_shim::util::mount_rootfs(m, &target).await {
            unmount(Some(&target));
            return Err(Error::Failed(format!("mount rootfs ({} {}): {e}", m.type_, m.source)));
        }
    }
    Ok(Some(target))
}

pub fn unmount(rootfs: Option<&Path>) {
    if let Some(p) = rootfs {
        if let Err(e) = containerd_shim::mount::umount_recursive(p.to_str(), nix::libc::MNT_DETACH) {
            tracing::warn!(rootfs = %p.display(), error = %e, "unmount failed");
        }
    }
}

/// Cleans up after a shim that died: what `shim delete` runs.
pub async fn cleanup_dead(bundle: &Path, id: &str) -> Result<u32> {
    let Some(st) = ContainerState::load(bundle).map_err(|e| Error::failed("read container state", e))? else {
        // Nothing recorded: create never got far enough to hold anything, but the
        // rootfs may still be mounted.
        unmount(Some(&bundle.join("rootfs")));
        return Ok(0);
    };
    backend::cleanup_dead(st.leftovers, bundle, id).await?;
    unmount(st.mounted_rootfs.as_deref());
    let _ = std::fs::remove_dir_all(&st.work_dir);
    ContainerState::remove(bundle);
    Ok(st.pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(fields: &[(u32, &str)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (f, s) in fields {
            v.push(((f << 3) | 2) as u8);
            v.push(s.len() as u8);
            v.extend_from_slice(s.as_bytes());
        }
        v
    }

    #[test]
    fn options_by_type_url() {
        let any = Any { type_url: "runtimeoptions.v1.Options".into(), value: encode(&[(1, "x"), (2, "/etc/m.toml")]), ..Default::default() };
        assert_eq!(runtime_options(Some(&any)).unwrap().config, Some(ConfigSource::File("/etc/m.toml".into())));
        let any = Any { type_url: "runtimeoptions.v1.Options".into(), value: encode(&[(3, "log_level = \"debug\"")]), ..Default::default() };
        let o = runtime_options(Some(&any)).unwrap();
        assert_eq!(o.config, Some(ConfigSource::Body));
        assert_eq!(o.config_body.as_deref(), Some("log_level = \"debug\""));
        let bad = Any { type_url: "example.Other".into(), ..Default::default() };
        assert!(runtime_options(Some(&bad)).unwrap_err().to_string().contains("example.Other"));
        assert_eq!(runtime_options(None).unwrap(), RuntimeOptions::default());
    }

    /// Found by fuzz/ (runtime_options): config_body before config_path gave
    /// `config: File` with `config_body` still set, so the body was ignored.
    #[test]
    fn body_wins_over_path_in_either_order() {
        for fields in [[(2, "/etc/m.toml"), (3, "log_level = \"debug\"")], [(3, "log_level = \"debug\""), (2, "/etc/m.toml")]] {
            let any = Any { type_url: "runtimeoptions.v1.Options".into(), value: encode(&fields), ..Default::default() };
            let o = runtime_options(Some(&any)).unwrap();
            assert_eq!((o.config, o.config_body.as_deref()), (Some(ConfigSource::Body), Some("log_level = \"debug\"")), "{fields:?}");
        }
    }

    #[test]
    fn binary_name_is_a_name() {
        assert_eq!(binary_name_to_delegate("crun").unwrap(), "crun");
        assert!(binary_name_to_delegate("/usr/bin/crun").is_err());
        assert!(binary_name_to_delegate("../x").is_err());
    }
}

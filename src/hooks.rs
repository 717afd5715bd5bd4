//! OCI lifecycle hooks for containers the shim runs itself (the RTOS route).
//! A delegate runs a Linux container's hooks on its own; a container with no
//! host process has nobody else to run them, and tools such as nerdctl keep
//! their books (names, /etc/hosts, networks) in `createRuntime` and
//! `postStop` hooks.
//!
//! What follows the OCI runtime spec (config.md "POSIX-platform Hooks",
//! runtime.md "Lifecycle"), as runc and crun do it:
//! - a hook runs `path` with `args` (args[0] is argv[0]) and exactly `env`
//!   (the shim's own environment when `env` is absent, as runc does), the
//!   container's state JSON on stdin, the bundle as working directory;
//! - `timeout` (seconds) kills a hook that runs longer and counts as failure;
//! - prestart and createRuntime run at Create; one failing fails Create;
//!   poststart runs at Start, poststop after the container is gone: their
//!   failures are logged as warnings and the lifecycle goes on.
//!
//! createContainer and startContainer run in the container's namespaces,
//! which an RTOS does not have: they are skipped with a warning at Create.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

/// The spec's `hooks` object.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Hooks {
    pub prestart: Vec<Hook>,
    pub create_runtime: Vec<Hook>,
    pub create_container: Vec<Hook>,
    pub start_container: Vec<Hook>,
    pub poststart: Vec<Hook>,
    pub poststop: Vec<Hook>,
}

#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Hook {
    pub path: String,
    pub args: Vec<String>,
    pub env: Option<Vec<String>>,
    pub timeout: Option<i64>,
}

/// The lifecycle points, named as in the spec (and in the shim's log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Prestart,
    CreateRuntime,
    Poststart,
    Poststop,
}

impl Point {
    pub fn name(self) -> &'static str {
        match self {
            Point::Prestart => "prestart",
            Point::CreateRuntime => "createRuntime",
            Point::Poststart => "poststart",
            Point::Poststop => "poststop",
        }
    }

    /// The container status a hook at this point sees in the state.
    fn status(self) -> &'static str {
        match self {
            Point::Prestart | Point::CreateRuntime => "creating",
            Point::Poststart => "running",
            Point::Poststop => "stopped",
        }
    }
}

impl Hooks {
    pub fn at(&self, point: Point) -> &[Hook] {
        match point {
            Point::Prestart => &self.prestart,
            Point::CreateRuntime => &self.create_runtime,
            Point::Poststart => &self.poststart,
            Point::Poststop => &self.poststop,
        }
    }

    /// Checks what the spec requires of every hook, so a bad one fails Create
    /// before anything runs: an absolute `path` and a positive `timeout`.
    pub fn validate(&self) -> Result<(), String> {
        let all = [
            ("prestart", &self.prestart),
            ("createRuntime", &self.create_runtime),
            ("createContainer", &self.create_container),
            ("startContainer", &self.start_container),
            ("poststart", &self.poststart),
            ("poststop", &self.poststop),
        ];
        for (name, hooks) in all {
            for (i, h) in hooks.iter().enumerate() {
                if !Path::new(&h.path).is_absolute() {
                    return Err(format!("hooks.{name}[{i}].path {:?} is not an absolute path", h.path));
                }
                if h.timeout.is_some_and(|t| t <= 0) {
                    return Err(format!("hooks.{name}[{i}].timeout must be a positive number of seconds"));
                }
            }
        }
        Ok(())
    }

    /// Hooks that cannot run on a container without namespaces of its own.
    pub fn in_container_namespace(&self) -> usize {
        self.create_container.len() + self.start_container.len()
    }
}

/// The OCI state a hook reads on stdin.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct State<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: &'static str,
    /// No host process: left out, as runc's encoder leaves out a zero pid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub bundle: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
}

/// What a container's hooks need: its spec's hooks and the state's fields.
#[derive(Debug, Clone, Default)]
pub struct HookContext {
    pub hooks: Hooks,
    pub oci_version: String,
    pub id: String,
    pub bundle: std::path::PathBuf,
    pub annotations: HashMap<String, String>,
}

impl HookContext {
    pub fn new(spec: &crate::spec::BundleSpec, id: &str, bundle: &Path) -> HookContext {
        HookContext {
            hooks: spec.hooks.clone().unwrap_or_default(),
            oci_version: spec.oci_version.clone(),
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            annotations: spec.annotations.clone(),
        }
    }

    /// Runs every hook of `point` in order; the first failure stops the rest
    /// and is returned with the hook's output.
    pub async fn run(&self, point: Point) -> Result<(), String> {
        let hooks = self.hooks.at(point);
        if hooks.is_empty() {
            return Ok(());
        }
        let bundle = self.bundle.to_string_lossy();
        let state = State {
            oci_version: &self.oci_version,
            id: &self.id,
            status: point.status(),
            pid: None,
            bundle: &bundle,
            annotations: &self.annotations,
        };
        let state = serde_json::to_vec(&state).map_err(|e| format!("encode the container state: {e}"))?;
        for (i, hook) in hooks.iter().enumerate() {
            let started = std::time::Instant::now();
            let r = run_one(hook, &state, &self.bundle).await;
            tracing::info!(id = %self.id, hook = point.name(), index = i, path = %hook.path,
                ms = started.elapsed().as_millis() as u64, ok = r.is_ok(), "ran OCI hook");
            r.map_err(|e| format!("{} hook #{i} ({}): {e}", point.name(), hook.path))?;
        }
        Ok(())
    }

    /// For the points whose failures the spec turns into warnings.
    pub async fn run_logged(&self, point: Point) {
        if let Err(e) = self.run(point).await {
            tracing::warn!(id = %self.id, hook = point.name(), error = %e, "OCI hook failed; the lifecycle goes on");
        }
    }
}

/// Output kept for an error message: a hook that prints a lot is cut here.
const OUTPUT_LIMIT: usize = 4096;

async fn run_one(hook: &Hook, state: &[u8], cwd: &Path) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(&hook.path);
    if let Some((argv0, rest)) = hook.args.split_first() {
        std::os::unix::process::CommandExt::arg0(cmd.as_std_mut(), argv0);
        cmd.args(rest);
    }
    if let Some(env) = &hook.env {
        cmd.env_clear();
        for kv in env {
            match kv.split_once('=') {
                Some((k, v)) => cmd.env(k, v),
                None => cmd.env(kv, ""),
            };
        }
    }
    cmd.current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run it: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let state = state.to_vec();
    // A hook may exit without reading its stdin: a broken pipe is not its failure.
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(&state).await;
    });
    let wait = child.wait_with_output();
    let out = match hook.timeout {
        Some(t) => match tokio::time::timeout(Duration::from_secs(t as u64), wait).await {
            Ok(r) => r,
            // dropping the future kills the hook (kill_on_drop)
            Err(_) => return Err(format!("ran past its timeout of {t} s and was killed")),
        },
        None => wait.await,
    }
    .map_err(|e| format!("wait for it: {e}"))?;
    feed.abort();
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{}, stdout: {:?}, stderr: {:?}",
        describe(out.status),
        clip(&out.stdout),
        clip(&out.stderr)
    ))
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    }
}

fn clip(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(OUTPUT_LIMIT)]);
    s.trim_end().to_string()
}

#[cfg(test)]
#[path = "hooks_tests.rs"]
mod tests;
